"""Checkpoint files: written atomically, loaded safely.

What a checkpoint holds, and its keys, is train_state.py's; this module moves
the dict to and from disk. It is a plain dict of tensors and Python scalars, so
it loads with `weights_only=True` (no pickle code execution from a file someone
handed you).

Writes go to a temp file in the same directory, are fsync'ed, then renamed over
the old file: a crash mid-write never destroys the last good checkpoint.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..config import ConfigError
from ..run_files import LAST_CKPT


class CheckpointError(ConfigError):
    pass


class CheckpointWriteError(RuntimeError):
    """The disk refused a checkpoint (full, read-only, too large a file). The previous one is intact."""

    hint = (
        "free disk space or fix the run directory's permissions, then "
        "--resume: the previous last.pt and best.pt are intact."
    )

    def __init__(self, path: Path, exc: OSError):
        reason = exc.strerror or type(exc).__name__
        super().__init__(f"Could not write the checkpoint {path}: {reason}.")
        self.path = path


def save_atomic(obj: dict, path: Path) -> None:
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            writer = _WriteRecorder(f)
            try:
                torch.save(obj, writer)
            except RuntimeError:
                if writer.error is None:
                    raise
                raise writer.error from None
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise CheckpointWriteError(path, exc) from None
    except BaseException:
        _discard(tmp)
        raise
    # fsync the directory so the rename itself survives a power cut
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class _WriteRecorder:
    """A file that remembers why a write failed: torch.save reports a full disk
    only as an opaque RuntimeError ("unexpected pos ..."), and users need the reason."""

    def __init__(self, f):
        self.f = f
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.f.flush()


def _discard(tmp: str | None) -> None:
    if tmp:
        try:
            Path(tmp).unlink(missing_ok=True)
        except OSError:
            pass  # the disk that refused the write may refuse this too; a stray .tmp harms nothing


def keep_recent(run_dir: Path, step: int, keep: int) -> None:
    """Keep last.pt's step as ckpt-STEP.pt too, and only the `keep` most recent of those.

    A hard link: no second copy on disk. The next atomic save replaces last.pt
    with a new file, so the link keeps this step's content.
    """
    last, kept = run_dir / LAST_CKPT, run_dir / f"ckpt-{step}.pt"
    try:
        kept.unlink(missing_ok=True)
        try:
            os.link(last, kept)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(last, kept)
    except OSError as exc:
        raise CheckpointWriteError(kept, exc) from None
    steps = sorted(
        int(p.stem.removeprefix("ckpt-")) for p in run_dir.glob("ckpt-*.pt") if p.stem.removeprefix("ckpt-").isdigit()
    )
    for s in steps[:-keep]:
        (run_dir / f"ckpt-{s}.pt").unlink(missing_ok=True)


def load(path: Path) -> dict:
    """The checkpoint file at path, every tensor on the CPU (train_state.read checks its format).

    Always the CPU, whatever device trained it: RNG states must be CPU
    ByteTensors (`torch.set_rng_state`, `torch.cuda.set_rng_state` and
    `Generator.set_state` refuse anything else), and `load_state_dict` copies
    weights and optimizer moments to wherever the parameters live, so nothing
    lands on the GPU that is not needed there (a sampler never needs the
    optimizer's moments).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}.", "train first, or pick another with --checkpoint best|last.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a checkpoint, or holds pickled code
        raise CheckpointError(
            f"Checkpoint {path} could not be read ({type(exc).__name__}).",
            "it may be truncated or not a gptbench checkpoint; try the other one (best.pt / last.pt).",
        ) from None
    return ckpt


# How an optimizer runs on its device, not what it learned: a checkpoint's values
# describe the device it was saved on.
OPTIMIZER_DEVICE_FLAGS = ("fused", "foreach", "capturable")


def optimizer_state_for(optimizer, saved: dict) -> dict:
    """A saved optimizer state to load into `optimizer`, with the device flags `optimizer` was made with.

    An MPS checkpoint (fused=False) resumed on CUDA would otherwise run the slow
    per-parameter AdamW, and a mismatched flag breaks fp16's GradScaler. The
    flags go in before loading: load_state_dict places each step counter by them
    (on the device when fused, on the CPU otherwise).
    """
    made = optimizer.state_dict()
    if "param_groups" not in made:  # optimizers stepped as one (Muon + AdamW): each part by its name
        return {name: optimizer_state_for(getattr(optimizer, name), saved[name]) for name in made if name in saved}
    made = made["param_groups"]
    groups = [
        {**old, **{k: new[k] for k in OPTIMIZER_DEVICE_FLAGS if k in new}}
        for old, new in zip(saved["param_groups"], made)
    ]
    return {**saved, "param_groups": groups}


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
