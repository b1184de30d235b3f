"""gptbench: a terminal workbench for training small GPTs."""

__version__ = "0.1.0"
