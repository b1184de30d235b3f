"""Read-ahead of memmapped batches (engine/batches.py: PrefetchingStream), measured on this machine.

    python bench/prefetch.py [--folder /tmp/prefetch-bench]

Writes (once) 4 llm.c shards of 100M random GPT-2 tokens into --folder, then for
a synchronous BatchStream and for the read-ahead stream: evicts the shards'
pages from the page cache (posix_fadvise, only these files), and times how
long the trainer waits in `next()` for 16 x 1025-token windows, with 20 ms of
"device time" between micro-batches (the host sleeping, as it does while a GPU
computes). Prints the mean, median and p99 wait of each.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from workbench.data.corpus import Corpus
from workbench.data.shards import open_llmc, write_llmc
from workbench.data.tokenizers import GPT2Tokenizer
from workbench.engine.batches import BatchStream
from workbench.engine.data import TextDataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path, default=Path("/tmp/prefetch-bench"))
    args = p.parse_args()
    torch.set_num_threads(1)
    args.folder.mkdir(parents=True, exist_ok=True)
    paths = [args.folder / f"train_{i:06d}.bin" for i in range(1, 5)]
    rng = np.random.default_rng(0)
    for path in paths:
        if not path.exists():
            write_llmc(path, rng.integers(0, 50257, 100_000_000, dtype=np.uint16))
    val = args.folder / "val_000000.bin"
    if not val.exists():
        write_llmc(val, rng.integers(0, 50257, 1_000_000, dtype=np.uint16))
    corpus = Corpus(GPT2Tokenizer(), [open_llmc(p) for p in paths], [open_llmc(val)], str(args.folder))
    dataset = TextDataset.from_corpus(corpus, 1024, torch.device("cpu"), on_device=False)
    variants = {
        "sync": lambda: BatchStream(dataset, 16, 4, 0, 1, 0),
        "read-ahead": lambda: dataset.train_stream(16, 4, 0, 1, 0),
    }
    for name, make in variants.items():
        for path in paths:  # cold pages: the reads go to the disk
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        stream, waits = make(), []
        for _ in range(300):
            start = time.perf_counter()
            stream.next()
            waits.append(time.perf_counter() - start)
            time.sleep(0.02)
        w = np.array(waits[10:]) * 1e3
        print(
            f"{name:10s}: wait per micro-batch mean {w.mean():.3f} ms, median {np.median(w):.3f} ms, "
            f"p99 {np.percentile(w, 99):.3f} ms"
        )
        getattr(stream, "close", lambda: None)()


if __name__ == "__main__":
    main()
