"""`python -m workbench`: the `gptbench` command."""

from .cli import main

main()
