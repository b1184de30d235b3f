"""The training loop.

Read it top to bottom: build (data, model, optimizer, maybe resume), then the
loop, then what happens between steps (logging, evals, checkpoints, commands).

Speed rules this file follows:
- No host synchronisation per step. The loss and grad norm of every step stay
  on the device and are read back together once per log interval; that single
  read is also where throughput is measured.
- Commands are polled with one non-blocking read of a FIFO (a syscall, not a
  device sync). Under DDP the ranks agree on them at log intervals, where we
  synchronise anyway.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from .. import __version__
from ..config import Config, ConfigError, flops_per_token
from ..control import CommandInbox
from ..events import PROTOCOL_VERSION
from ..runs import BEST_CKPT, CONFIG_FILE, LAST_CKPT, META_FILE
from ..system_monitor import SystemMonitor
from . import checkpoint
from .data import build_dataset
from .device import DeviceSetup
from .distributed import World, any_across, main_process_first, mean_across, weights_fingerprint
from .event_log import EventLog
from .model import GPT
from .optim import lr_at, make_optimizer
from .sampler import SampleRequest, stream_sample


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, setup: DeviceSetup, world: World, log: EventLog, resume: bool):
        self.cfg, self.run_dir, self.setup, self.world, self.log = cfg, run_dir, setup, world, log
        t = cfg.train
        torch.manual_seed(t.seed + world.rank)  # dropout differs per rank; weights start equal (see below)

        # Data first: it fixes the vocabulary size the model needs. One process
        # tokenizes and fills the cache; the others then read it.
        with main_process_first(world):
            self.dataset = build_dataset(cfg, setup.device)
        self.grad_accum = cfg.grad_accum_steps(world.size)
        self.tokens_per_step = cfg.tokens_per_step(world.size)
        self.stream = self.dataset.train_stream(t.batch_size, self.grad_accum, world.rank, world.size, t.seed)

        # Model: same seed on every rank, so all replicas start identical.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(t.seed)
            self.model = GPT(cfg.model).to(setup.device)
        self.optimizer = make_optimizer(self.model, t, setup.kind)
        self.flops_per_token = flops_per_token(cfg.model, self.model.num_params())

        self.step = 0
        self.last_saved_step = -1
        self.best_val_loss: float | None = None
        self.last_metrics: dict = {}
        if resume:
            self._load(run_dir / LAST_CKPT)

        # torch.compile first, then DDP on top (the order nanoGPT uses).
        self.compiled = torch.compile(self.model) if setup.compile else self.model
        self.train_model = DDP(self.compiled, device_ids=[setup.device.index] if setup.kind == "cuda" else None) if world.distributed else self.compiled

        self.inbox = CommandInbox(run_dir) if world.is_main else None
        self.system = SystemMonitor() if world.is_main else None
        self.pending_losses: list[torch.Tensor] = []  # not yet read back to the host
        # Requests arrive any time (Ctrl-C, SIGTERM, commands); decisions are
        # taken from them at safe points, identically on every rank.
        self.requests = {"stop": False, "pause": False, "checkpoint": False}
        self.stop_now = self.pause_now = self.checkpoint_now = False

    # ------------------------------------------------------------------ the run

    def run(self) -> str:
        """Train until max_steps, a target, or a stop. Returns the finish reason."""
        cfg = self.cfg
        self.log.emit(
            "run_started", v=PROTOCOL_VERSION, config=cfg.to_dict(), params=self.model.num_params(),
            device=str(self.setup.device), device_name=self.setup.name, dtype=self.setup.dtype,
            compile=self.setup.compile, world_size=self.world.size, tokens_per_step=self.tokens_per_step,
            grad_accum=self.grad_accum, preset=cfg.preset, profile=cfg.profile, run_dir=str(self.run_dir),
            resumed_from=self.step if self.step else None, pid=os.getpid(),
        )
        self._install_signal_handlers()
        return self._loop()

    def _loop(self) -> str:
        t = self.cfg.train
        self.log.emit("status", state="compiling" if self.setup.compile else "training", step=self.step)
        norms = []  # device tensors, one per step since the last log (losses: self.pending_losses)
        interval_start, interval_steps = time.time(), 0
        run_start = interval_start
        first_log = True

        while self.step < t.max_steps:
            loss, norm = self._train_step(lr_at(self.step, t))
            self.pending_losses.append(loss)
            norms.append(norm)
            self.step += 1
            interval_steps += 1
            last = self.step == t.max_steps
            log_now = self.step % t.log_every == 0 or last

            if log_now:
                # The one host sync of the interval: read back every step's numbers.
                loss_values = self._verified_losses()
                norm_values = torch.stack(norms).tolist()
                now = time.time()
                tokens_per_sec = interval_steps * self.tokens_per_step / max(now - interval_start, 1e-9)
                mfu = None
                if self.setup.peak_flops:
                    mfu = self.flops_per_token * tokens_per_sec / (self.setup.peak_flops * self.world.size)
                extra = {}
                if self.setup.kind == "cuda":
                    extra["gpu_mem_gb"] = round(torch.cuda.max_memory_allocated(self.setup.device) / 2**30, 2)
                if first_log:
                    self.log.emit("status", state="training", step=self.step)
                    first_log = False
                self.log.emit(
                    "step", step=self.step, loss=sum(loss_values) / len(loss_values), lr=lr_at(self.step - 1, t),
                    grad_norm=sum(norm_values) / len(norm_values), tokens_per_sec=tokens_per_sec, mfu=mfu,
                    elapsed_s=now - run_start, tokens_seen=self.step * self.tokens_per_step, **extra,
                )
                norms = []
                self._report_system()
            # One process decides every step; several agree at log intervals,
            # where they synchronise anyway, so all of them act on the same step.
            if log_now or not self.world.distributed:
                self._decide()

            if self.step % t.eval_every == 0 or last:
                if self._evaluate(final=last):
                    self._save_last()
                    return "completed"
                if not t.ckpt_every:
                    self._save_last()
            if t.ckpt_every and self.step % t.ckpt_every == 0 and not last:
                self._save_last()
            if self.checkpoint_now:
                self._save_last()
                self.checkpoint_now = False
            if self.pause_now and not self.stop_now:
                self._pause()
            if self.stop_now:
                self.log.emit("status", state="stopping", step=self.step)
                self._save_last()
                return "stopped"
            if log_now:
                interval_start, interval_steps = time.time(), 0  # evals and saves don't count against tok/s
        if self.last_saved_step != self.step:
            self._save_last()
        return "completed"

    def _verified_losses(self) -> list[float]:
        """Read back the pending losses (mean over ranks); refuse to go on past a NaN."""
        if not self.pending_losses:
            return []
        values = mean_across(self.world, torch.stack(self.pending_losses)).tolist()
        self.pending_losses = []
        if not all(math.isfinite(v) for v in values):
            raise NonFiniteLoss(self.step)
        return values

    def _train_step(self, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step over grad_accum micro-batches. Returns device scalars."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = torch.zeros((), device=self.setup.device)
        for micro in range(self.grad_accum):
            x, y = self.stream.next()
            # DDP all-reduces gradients on every backward; only the last
            # micro-step needs it, the others just accumulate locally.
            syncing = not self.world.distributed or micro == self.grad_accum - 1
            with (nullcontext() if syncing else self.train_model.no_sync()), self.setup.autocast():
                _, loss = self.train_model(x, y)
            loss = loss / self.grad_accum
            loss.backward()
            total += loss.detach()
        params = self.model.parameters()
        if self.cfg.train.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.train.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total, norm.detach()

    # -------------------------------------------------------------- evaluation

    @torch.no_grad()
    def _evaluate(self, final: bool) -> bool:
        """Val loss and task metrics; saves best.pt. True when a target is reached."""
        t = self.cfg.train
        self.log.emit("status", state="evaluating", step=self.step)
        self.compiled.eval()
        total = torch.zeros((), device=self.setup.device)
        for x, y in self.dataset.val_batches(t.batch_size, t.eval_steps):
            with self.setup.autocast():
                _, loss = self.compiled(x, y)
            total += loss.float()
        val_loss = (total / t.eval_steps).item()
        metrics = self.dataset.metrics(self.model, final=final)
        self.compiled.train()
        self.last_metrics = metrics
        self.log.emit("eval", step=self.step, val_loss=val_loss, metrics=metrics)
        if self.world.is_main and (self.best_val_loss is None or val_loss < self.best_val_loss):
            self.best_val_loss = val_loss
            self._save(BEST_CKPT, with_optimizer=False)
        if not final:
            self.log.emit("status", state="training", step=self.step)
        hit_loss = t.target_val_loss > 0 and val_loss <= t.target_val_loss
        # every accuracy the task reports must be there (addition: held-out and all problems)
        accuracies = [v for k, v in metrics.items() if k.startswith("accuracy")]
        hit_acc = t.target_accuracy > 0 and bool(accuracies) and min(accuracies) >= t.target_accuracy
        if hit_loss or hit_acc:
            self.log.log(f"target reached at step {self.step}: " + ("val loss" if hit_loss else "accuracy"))
        return hit_loss or hit_acc

    # -------------------------------------------------------------- checkpoints

    def _save(self, name: str, with_optimizer: bool = True) -> None:
        self._verified_losses()  # never overwrite a good checkpoint with NaN weights
        if not self.world.is_main:
            return
        ckpt = {
            "format": checkpoint.FORMAT_VERSION,
            "model": self.model.state_dict(),
            "config": self.cfg.to_dict(),
            "step": self.step,
            "best_val_loss": self.best_val_loss,
        }
        if with_optimizer:
            ckpt["optimizer"] = self.optimizer.state_dict()
            ckpt["rng"] = checkpoint.rng_state()
            ckpt["data"] = self.stream.state_dict()
        path = self.run_dir / name
        checkpoint.save_atomic(ckpt, path)
        if with_optimizer:
            self.last_saved_step = self.step
        self.log.emit("checkpoint", step=self.step, path=str(path), kind=name.removesuffix(".pt"))

    def _save_last(self) -> None:
        self._save(LAST_CKPT)

    def _load(self, path: Path) -> None:
        ckpt = checkpoint.load(path, map_location=self.setup.device)
        if "optimizer" not in ckpt:
            raise checkpoint.CheckpointError(f"{path} holds weights only and cannot resume training.", "resume from last.pt.")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.stream.load_state_dict(ckpt["data"])
        checkpoint.restore_rng(ckpt["rng"])
        self.step = ckpt["step"]
        self.best_val_loss = ckpt["best_val_loss"]
        if self.step >= self.cfg.train.max_steps:
            raise ConfigError(
                f"The run already reached step {self.step} of train.max_steps={self.cfg.train.max_steps}.",
                f"resume with a larger budget, e.g. --set train.max_steps={self.step * 2}.",
            )

    def _report_system(self) -> None:
        """A `system` event every few seconds of wall time, when a reading changed (no device sync)."""
        fields = self.system.poll() if self.system else None
        if fields:
            self.log.emit("system", **fields)

    # ----------------------------------------------------------------- commands

    def _install_signal_handlers(self) -> None:
        def request_stop(signum, frame):
            self.requests["stop"] = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def _decide(self) -> None:
        """Read commands, then turn all requests into decisions every rank shares."""
        if self.inbox:
            for cmd in self.inbox.poll():
                name = cmd.get("cmd")
                if name == "sample":
                    self._sample(cmd)
                elif name == "resume":
                    self.requests["pause"] = False
                elif name in self.requests:
                    self.requests[name] = True
        r = self.requests
        self.stop_now, self.pause_now, self.checkpoint_now = any_across(self.world, [r["stop"], r["pause"], r["checkpoint"]])
        r["checkpoint"] = False  # one request, one checkpoint

    def _pause(self) -> None:
        """Sit between steps, still answering commands, until resumed or stopped."""
        self.log.emit("status", state="paused", step=self.step)
        while self.pause_now and not self.stop_now:
            time.sleep(0.05)
            self._report_system()
            self._decide()
            if self.checkpoint_now:
                self._save_last()
                self.checkpoint_now = False
        if not self.stop_now:
            self.log.emit("status", state="training", step=self.step)

    def _sample(self, cmd: dict) -> None:
        """Answer a prompt from the live model without touching training state.

        The raw (uncompiled) model runs in eval mode under no_grad with its own
        random generator, so neither the weights, the optimizer, the data stream
        nor the training RNG move.
        """
        was_training = self.model.training
        self.model.eval()
        try:
            stream_sample(self.model, self.dataset.tokenizer, self.dataset, SampleRequest.from_command(cmd), self.setup, self.log.emit)
        except Exception as exc:  # a request we did not foresee must never end the training run
            self.log.emit("error", kind="prompt", id=str(cmd.get("id")), message=f"Sampling failed: {type(exc).__name__}: {exc}",
                          hint="check the sampling settings (max_new_tokens, temperature, top_k, top_p).")
        finally:
            self.model.train(was_training)

    # ------------------------------------------------------------------ finish

    def finish(self, reason: str) -> None:
        fields = {}
        if self.world.distributed:
            prints = weights_fingerprint(self.world, self.model)
            fields["ranks_in_sync"] = all(p == prints[0] for p in prints)
        self.log.emit(
            "run_finished", reason=reason, step=self.step, best_val_loss=self.best_val_loss,
            metrics=self.last_metrics, **fields,
        )
        self.log.emit("status", state="finished", step=self.step)

    def close(self) -> None:
        """Stop listening for commands. Last of all: an attached app takes a
        vanished control FIFO without a `run_finished` before it for a crash."""
        if self.inbox:
            self.inbox.close()


class NonFiniteLoss(RuntimeError):
    def __init__(self, step: int):
        super().__init__(f"The loss became NaN or infinite by step {step}.")
        self.step = step


def write_run_files(trainer: Trainer) -> None:
    """config.json, meta.json, tokenizer.json: everything needed to understand or rebuild the run."""
    cfg, run_dir, setup, world = trainer.cfg, trainer.run_dir, trainer.setup, trainer.world
    trainer.dataset.tokenizer.save(run_dir)
    (run_dir / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    meta = {
        "gptbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "git_sha": _git_sha(),
        "device": str(setup.device),
        "device_name": setup.name,
        "dtype": setup.dtype,
        "compile": setup.compile,
        "world_size": world.size,
        "seed": cfg.train.seed,
        "host": platform.node(),
        "argv": sys.argv,
        "started": time.time(),
    }
    (run_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
