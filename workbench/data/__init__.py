"""The torch-free data side: corpora, token shards, tokenizers and `gptbench data`'s prep worker.

Nothing here imports torch or textual, so the CLI, the app and the prep
subprocess can read and write token data without paying for either; the
torch side (`engine/batches.py`, `engine/data.py`) turns these arrays into batches.
"""
