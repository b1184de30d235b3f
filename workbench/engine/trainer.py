"""The training loop.

Read it top to bottom: build (data, model, optimizer, and the TrainState that
holds them for checkpoints; maybe resume), then the loop, then what happens
between steps (logging, evals; last.pt when the state says it is due), then
how requests (stop, pause, checkpoint, sample) are honoured. What a checkpoint
holds, and when one is written, is train_state.py's; the pace (tokens/sec,
MFU) is clock.py's.

Speed rules this file follows:
- No host synchronisation per step. The loss and grad norm of every step stay
  on the device and are read back together once per log interval; that single
  read is also where throughput is measured.
- Requests (requests.py) are polled at every boundary (between micro-steps
  and between eval batches) with one non-blocking read of a FIFO: a syscall,
  not a device sync. So a stop lands within one micro-step, even on a
  32-micro-step GPT-2 step. A live sample is decoded in small slices there.
- The clock (clock.py) keeps time spent paused, sampling, evaluating or saving
  out of tokens/sec, and the session's first step (compile, warm-up) too;
  paused and sampling time is kept out of `active_s`, which the ETA uses.
- A heavy step still reports, timed on the host (clock.py, no device sync):
  a progress event between micro-steps every train.progress_every_s, and a
  step event every train.step_event_every_s whatever log_every says (the
  ranks agree on that step through the vote, requests.py).
"""

from __future__ import annotations

import math
import os
import resource
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from ..config import Config, ConfigError, flops_per_token
from ..control import CommandInbox
from ..events import PROTOCOL_VERSION
from ..run_files import TOKENIZER_FILE, read_json
from ..system_monitor import SystemMonitor
from .clock import Pace, RunClock
from .cpu_threads import fair_threads, why_threads_changed
from .data import build_dataset
from .device import DeviceSetup
from .distributed import (
    FlagVote,
    World,
    any_rank,
    main_process_first,
    mean_across,
    sum_across,
    weights_fingerprint,
)
from .event_log import EventLog
from .loss import resolve_loss
from .micro_batch import choose_micro_batch
from .model import GPT
from .optim import Schedule, describe_optimizer, make_optimizer, set_lr
from .pretrained import init_from
from .requests import Requests
from .sampler import SampleSession
from .tasks import build_task, evaluate_all
from .train_state import RngState, TrainState

THREADS_CHECK_S = 10.0  # CPU: how often the trainer looks again at its fair share of cores


@dataclass(frozen=True)
class Evaluation:
    """What an eval tells the loop: a stop cut it short (between its batches), or a target was reached."""

    stopped: bool = False
    target_reached: bool = False


class Trainer:
    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        setup: DeviceSetup,
        world: World,
        log: EventLog,
        resume_from: dict | None = None,
    ):
        """resume_from: a checkpoint (already loaded and checked, see resume.py) to continue."""
        self.cfg, self.run_dir, self.setup, self.world, self.log = cfg, run_dir, setup, world, log
        self.notes = [setup.note] if setup.note else []  # said in log events right after run_started
        t = cfg.train
        torch.manual_seed(t.seed + world.rank)  # dropout differs per rank; weights start equal (see below)

        # Data first: it fixes the vocabulary size the model needs. One process
        # tokenizes and fills the cache; the others then read it.
        with main_process_first(world, "prepare the data and the eval tasks"):
            self.dataset = build_dataset(cfg, setup.device)
            self.eval_tasks = [build_task(name, self.dataset.tokenizer) for name in t.eval_tasks]  # e.g. HellaSwag
        if resume_from is not None:
            self._check_tokenizer()

        # Model: same seed on every rank, so all replicas start identical. The
        # fork covers the device's RNG too (manual_seed reseeds every device),
        # so each rank keeps its own dropout stream from the seed above.
        accelerators = [setup.device] if setup.kind in ("cuda", "mps") else []
        with torch.random.fork_rng(devices=accelerators, device_type=setup.kind if accelerators else "cuda"):
            torch.manual_seed(t.seed)
            self.model = GPT(cfg.model, loss=resolve_loss(t.loss, setup.kind)).to(setup.device)
        if cfg.model.init_from != "scratch" and resume_from is None:  # a resume's weights are in its checkpoint
            with main_process_first(world, "load the pretrained weights"):  # one process fills the download cache
                self.notes.append(init_from(self.model, cfg, self.dataset.tokenizer))

        # The micro-batch (batch_size=auto: the largest that fits) decides the accumulation. The config
        # keeps "auto" (config.json, checkpoints): the choice belongs to this process on this device.
        self.micro_batch = t.batch_size
        if self.micro_batch is None:
            self.micro_batch, how = choose_micro_batch(self.model, cfg, setup, world)
            self.notes.append(f"micro-batch {self.micro_batch} (auto: {how})")
        self.grad_accum = cfg.grad_accum_steps(world.size, self.micro_batch)
        self.tokens_per_step = cfg.tokens_per_step(world.size)
        self._check_compile_mode()
        self.stream = self.dataset.train_stream(self.micro_batch, self.grad_accum, world.rank, world.size, t.seed)

        self.optimizer = make_optimizer(self.model, t, setup.kind)
        self.scaler = setup.grad_scaler()  # fp16 only; a no-op otherwise
        self.schedule = Schedule(t)
        # a heavy step still reports: progress between micro-steps, step events by the wall clock
        self.clock = RunClock(progress_every_s=t.progress_every_s, step_event_every_s=t.step_event_every_s)
        peak = setup.peak_flops * world.size if setup.peak_flops else None
        self.pace = Pace(self.tokens_per_step, flops_per_token(cfg.model, self.model.num_params()), peak)
        self.last_metrics: dict = {}

        # Everything a checkpoint holds, and when last.pt is written: train_state.py.
        self.vote = FlagVote(world)
        self.state = TrainState(
            cfg,
            run_dir,
            world,
            log,
            model=self.model,
            optimizer=self.optimizer,
            scaler=self.scaler,
            stream=self.stream,
            schedule=self.schedule,
            clock=self.clock,
            rng=RngState(world, t.seed, self.grad_accum > 1, self.vote.group),
            before_save=self._read_back,
        )
        if resume_from is not None:
            self.notes += self.state.load(resume_from)

        # torch.compile first, then DDP on top (the order nanoGPT uses). fullgraph:
        # a graph break would silently fall back to slow Python; fail loudly instead.
        if setup.compile:
            mode = None if setup.compile_mode == "default" else setup.compile_mode
            self.compiled = torch.compile(self.model, fullgraph=True, mode=mode)
        else:
            self.compiled = self.model
        if world.distributed:
            self.train_model = DDP(self.compiled, device_ids=[setup.device.index] if setup.kind == "cuda" else None)
        else:
            self.train_model = self.compiled

        self.system = SystemMonitor() if world.is_main else None
        # Requests arrive any time (signals, commands); every rank acts on them together at the next boundary.
        self.requests = Requests(
            CommandInbox(run_dir) if world.is_main else None,
            self.vote,
            self.clock,
            start_sample=lambda req: SampleSession(
                self.model, self.dataset.tokenizer, self.dataset.task, req, self.setup, self._emit_sample
            ),
            emit=self.log.emit,
            sync_device=self._sync_device,
        )
        # losses and grad norms of finished steps: on the device until read back, then on the host
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.read_back: list[tuple[float, float]] = []
        self.threads_checked = time.monotonic()
        # Compiling takes long and polls nothing: a stop then interrupts at once (see the signal handlers).
        self.compiling = setup.compile

    @property
    def step(self) -> int:
        """Optimizer steps done (the state's: a checkpoint holds it)."""
        return self.state.step

    @property
    def best_val_loss(self) -> float | None:
        return self.state.best_val_loss

    # ------------------------------------------------------------------ the run

    def run(self) -> str:
        """Train until max_steps, a target, or a stop. Returns the finish reason."""
        cfg = self.cfg
        extra = {"threads": torch.get_num_threads()} if self.setup.kind == "cpu" else {}
        self.log.emit(
            "run_started",
            v=PROTOCOL_VERSION,
            config=cfg.to_dict(),
            params=self.model.num_params(),
            device=str(self.setup.device),
            device_name=self.setup.name,
            dtype=self.setup.dtype,
            compile=self.setup.compile,
            loss=self.model.loss,
            world_size=self.world.size,
            tokens_per_step=self.tokens_per_step,
            micro_batch=self.micro_batch,
            grad_accum=self.grad_accum,
            optimizer=describe_optimizer(self.optimizer),
            preset=cfg.preset,
            profile=cfg.profile,
            run_dir=str(self.run_dir),
            resumed_from=self.step if self.step else None,
            elapsed_s=self.clock.elapsed_before,  # where the run's clock starts this session (readers' elapsed)
            pid=os.getpid(),
            **extra,
        )
        for note in self.notes:
            self.log.log(note)
        self._install_signal_handlers()
        return self._loop()

    def _loop(self) -> str:
        t = self.cfg.train
        self.clock.start_session()
        if self.compiling:
            self.log.emit("status", state="compiling", step=self.step)
            self._compile_eval_graph()
        else:
            self.log.emit("status", state="training", step=self.step)

        while self.step < t.max_steps:
            if not self._train_step():
                return self._stop()  # stopped mid-step: the step was undone
            if self.compiling:  # the first step compiled the training graph
                self.compiling = False
                self.log.emit("status", state="training", step=self.step + 1)
            self.state.step += 1
            if self.clock.interval is None:  # the session's first step (compile, warm-up): time from here on
                self._sync_device()
                self.clock.start_interval(self.step)
            last = self.step == t.max_steps
            # a step event also comes by the wall clock (train.step_event_every_s), on the step every rank agreed on
            log_now = self.step % t.log_every == 0 or last or self.requests.step_event_due
            if log_now:
                self._emit_step()
                self.requests.step_event_due = False

            evaluate = self.step % t.eval_every == 0 or last
            if evaluate or self.state.save_due(self.step, evaluated=False, target_reached=False, last_step=last):
                self._read_back()  # waits for the device: the steps so far count as training time
            with self.clock.aside():
                result = self._evaluate(final=last) if evaluate else Evaluation()
                if not result.stopped:  # a stop saves on its way out
                    self.state.save_if_due(
                        self.step, evaluated=evaluate, target_reached=result.target_reached, last_step=last
                    )
            if result.stopped:
                return self._stop()
            if result.target_reached:
                return "completed"
            if self._boundary():
                return self._stop()
        return "completed"

    def _train_step(self) -> bool:
        """One optimizer step over grad_accum micro-batches. False when a stop came mid-step.

        A stop between micro-steps undoes the step: the gradients are dropped
        and the data stream and RNG go back to where the step began, so last.pt
        holds the last completed step and a resume is exact.
        """
        set_lr(self.optimizer, self.schedule.lr(self.step), self.cfg.train)
        self.state.rng.begin_step()
        total = torch.zeros((), device=self.setup.device)
        self.clock.start_step()
        for micro in range(self.grad_accum):
            if micro:
                self._report_progress(micro)
            if micro and self._boundary():
                self.optimizer.zero_grad(set_to_none=True)
                self.stream.rewind_step()
                self.state.rng.undo_step()
                return False
            x, y = self.stream.next()
            # DDP all-reduces gradients on every backward; only the last
            # micro-step needs it, the others just accumulate locally.
            syncing = not self.world.distributed or micro == self.grad_accum - 1
            with nullcontext() if syncing else self.train_model.no_sync(), self.setup.autocast():
                _, loss = self.train_model(x, y)
            loss = loss / self.grad_accum
            self.scaler.scale(loss).backward()
            total += loss.detach()
        self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the fp16-scaled ones
        params = self.model.parameters()
        if self.cfg.train.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.train.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        self.scaler.step(self.optimizer)  # fp16: skipped when a gradient overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.rng.end_step()
        self.pending.append((total, norm.detach()))
        return True

    # ------------------------------------------------------------ step events

    def _report_progress(self, micro: int) -> None:
        """A long step says how far it got (micro-step `micro` of grad_accum done), every train.progress_every_s.

        micro_s, the mean time of this step's micro-steps so far (see RunClock.micro_s), tells the
        app how long a request waits for the next boundary.
        """
        if not self.clock.progress_due():
            return
        micro_tokens = self.tokens_per_step // self.grad_accum
        self.log.emit(
            "progress",
            stage="micro_step",
            done=micro,
            total=self.grad_accum,
            step=self.step + 1,  # the step in progress
            tokens_seen=self.step * self.tokens_per_step + micro * micro_tokens,
            micro_s=round(self.clock.micro_s(micro), 3),
        )

    def _read_back(self) -> None:
        """Bring the pending losses (mean over ranks) and norms to the host; refuse to go on past a NaN.

        Every rank calls it at the same points (log steps, evals, saves): it is
        a collective under DDP, and no collective may ever run on one rank alone.
        """
        if not self.pending:
            return
        losses = mean_across(self.world, torch.stack([loss for loss, _ in self.pending])).tolist()
        norms = torch.stack([norm for _, norm in self.pending]).tolist()
        self.pending = []
        if not all(math.isfinite(v) for v in losses):
            raise NonFiniteLoss(self.step)
        self.read_back += zip(losses, norms)

    def _emit_step(self) -> None:
        self._read_back()  # the one host sync of the interval
        tokens_per_sec, mfu = self.pace.rates(*self.clock.end_interval(self.step))
        extra = {}
        if self.setup.kind == "cuda":
            extra["gpu_mem_gb"] = round(torch.cuda.max_memory_allocated(self.setup.device) / 2**30, 2)
        losses, norms = zip(*self.read_back)
        self.read_back = []
        self.log.emit(
            "step",
            step=self.step,
            loss=sum(losses) / len(losses),
            lr=self.schedule.lr(self.step - 1),
            grad_norm=sum(norms) / len(norms),
            tokens_per_sec=tokens_per_sec,
            mfu=mfu,
            **self.clock.state_dict(),  # elapsed_s, active_s
            tokens_seen=self.step * self.tokens_per_step,
            **extra,
        )
        self.clock.step_event_sent()
        self._share_cpu_threads()
        self._report_system()

    def _report_system(self) -> None:
        """A `system` event every few seconds of wall time, when a reading changed (no device sync)."""
        fields = self.system.poll() if self.system else None
        if fields:
            self.log.emit("system", **fields)

    # -------------------------------------------------------------- evaluation

    def _compile_eval_graph(self) -> None:
        """Compile the eval graph now, inside the `compiling` status, not at the first eval."""
        x, y = next(iter(self.dataset.val_batches(self.micro_batch, 1)))
        self.compiled.eval()
        with torch.no_grad(), self.setup.autocast():
            self.compiled(x, y)
        self.compiled.train()

    @torch.no_grad()
    def _evaluate(self, final: bool) -> Evaluation:
        """Val loss and task metrics; best.pt when the val loss is the best so far."""
        t = self.cfg.train
        self._read_back()  # on every rank, before anything below runs on rank 0 alone
        self.log.emit("status", state="evaluating", step=self.step)
        self.compiled.eval()
        try:
            # Each rank evaluates its share of the val batches; the losses are summed over all ranks.
            batches = self.dataset.val_batches(self.micro_batch, t.eval_steps, self.world.rank, self.world.size)
            total = torch.zeros((), device=self.setup.device)
            for k in range(math.ceil(t.eval_steps / self.world.size)):  # the same boundaries on every rank
                if k and self._boundary():
                    return Evaluation(stopped=True)
                batch = next(batches, None)  # the last round may have no batch for this rank
                if batch is None:
                    continue
                with self.setup.autocast():
                    _, loss = self.compiled(*batch)
                total += loss.float()
            val_loss = (sum_across(self.world, total) / t.eval_steps).item()  # the same number on every rank
            metrics = self.dataset.metrics(self.model, final=final)
            with self.setup.autocast():
                metrics.update(
                    evaluate_all(self.eval_tasks, self.model, t.eval_tasks_limit, self.world.rank, self.world.size)
                )
        finally:
            self.compiled.train()
        self.last_metrics = metrics
        self.log.emit("eval", step=self.step, val_loss=val_loss, metrics=metrics)
        self.state.record_val_loss(val_loss)
        if not final:
            self.log.emit("status", state="training", step=self.step)
        hit_loss = t.target_val_loss > 0 and val_loss <= t.target_val_loss
        # every accuracy the task reports must be there (addition: held-out and all problems)
        accuracies = [v for k, v in metrics.items() if k.startswith("accuracy")]
        hit_acc = t.target_accuracy > 0 and bool(accuracies) and min(accuracies) >= t.target_accuracy
        if any_rank(self.world, hit_loss or hit_acc, self.setup.device):  # all ranks stop together, or none
            self.log.log(f"target reached at step {self.step}: " + ("val loss" if hit_loss else "accuracy"))
            return Evaluation(target_reached=True)
        return Evaluation()

    # ------------------------------------------------------------ start-up checks

    def _check_compile_mode(self) -> None:
        """CUDA graphs (reduce-overhead, max-autotune) hand a graph-owned buffer to .grad, which the
        next micro-step's replay overwrites: they cannot accumulate gradients."""
        mode = self.setup.compile_mode
        if not (self.setup.compile and self.setup.kind == "cuda" and self.grad_accum > 1):
            return
        if mode == "max-autotune":
            self.setup.compile_mode = "max-autotune-no-cudagraphs"
            self.notes.append(
                "compile_mode max-autotune without CUDA graphs: they cannot accumulate gradients "
                f"({self.grad_accum} micro-steps per step)"
            )
        elif mode == "reduce-overhead":
            raise ConfigError(
                f"train.compile_mode=reduce-overhead (CUDA graphs) cannot accumulate gradients, and this run takes "
                f"{self.grad_accum} micro-steps per step.",
                "use compile_mode=default or max-autotune, or a micro-batch that makes the whole step "
                "(train.batch_size = tokens_per_step / block_size / processes).",
            )

    def _check_tokenizer(self) -> None:
        saved = read_json(self.run_dir / TOKENIZER_FILE)
        now = self.dataset.tokenizer.to_dict()
        if saved and saved != now:
            raise ConfigError(
                f"The data's tokenizer ({now.get('kind')}, {self.dataset.tokenizer.vocab_size} tokens) differs "
                f"from the one this run trained with ({saved.get('kind')}, see {TOKENIZER_FILE}).",
                "resume with the data the run started with (data.path and its contents), or start a new run.",
            )

    # --------------------------------------------------------------- requests

    def _install_signal_handlers(self) -> None:
        def request_stop(signum, frame):
            if self.compiling:
                raise KeyboardInterrupt  # compiling polls nothing; nothing was trained yet: leave now
            self.requests.stop = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def _boundary(self) -> bool:
        """Between micro-steps, steps and eval batches: honour requests. True: stop now.

        A checkpoint taken mid-step holds the last completed step (train_state.RngState, batches.py).
        """
        stop, pause, save = self.requests.at_boundary(self.step)
        if save:
            self.state.save_last()
        if pause and not stop:
            stop = self._pause()
        self.requests.mark_boundary()
        return stop

    def _pause(self) -> bool:
        """Sit at this boundary, answering commands and samples, until resumed. True: stop."""
        self.log.emit("status", state="paused", step=self.step)
        self._sync_device()
        with self.clock.idle():
            while True:
                stop, pause, save = self.requests.while_paused(self.step)
                self._report_system()
                if save:
                    self.state.save_last()
                if stop or not pause:
                    break
        if not stop:
            self.log.emit("status", state="training", step=self.step)
        return stop

    def _emit_sample(self, event: str, **fields) -> None:
        """The live sample's events; each piece says the step whose weights decoded it (a slice
        runs between micro-steps: the weights are those of the last completed step)."""
        if event == "sample":
            fields["weights_step"] = self.step
        self.log.emit(event, **fields)

    def _stop(self) -> str:
        self.log.emit("status", state="stopping", step=self.step)
        self.requests.cancel_live_sample()
        self.state.save_if_due(self.step, last_step=True)  # a step undone mid-way is back at the saved state
        return self.requests.stop_reason  # "stopped", or "pruned" (a sweep's pruner sent the stop)

    def _sync_device(self) -> None:
        if self.setup.kind == "cuda":
            torch.cuda.synchronize(self.setup.device)

    def _share_cpu_threads(self) -> None:
        """CPU: take the fair share of cores again now and then (other gptbench processes come and go)."""
        if self.setup.kind != "cpu" or time.monotonic() - self.threads_checked < THREADS_CHECK_S:
            return
        self.threads_checked = time.monotonic()
        threads = fair_threads(self.cfg.train.threads)
        if threads != torch.get_num_threads():
            old = torch.get_num_threads()
            # `threads` (an extra of the log event): the count the app shows from now on
            self.log.emit(
                "log",
                message=f"cpu threads {old} -> {threads}: {why_threads_changed(old, threads)}",
                level="info",
                threads=threads,
            )
            torch.set_num_threads(threads)

    # ------------------------------------------------------------------ finish

    def finish(self, reason: str) -> None:
        self.vote.drain()
        fields = {}
        if self.world.distributed:
            prints = weights_fingerprint(self.world, self.model)
            fields["ranks_in_sync"] = all(p == prints[0] for p in prints)
        if self.setup.compile:
            from torch._dynamo.utils import counters

            fields["compiled_graphs"] = counters["stats"]["unique_graphs"]
            fields["compile_s"] = compile_seconds()
        # ru_maxrss is in KiB on Linux (bytes on macOS; this is a figure for people, not a check)
        fields["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        if self.setup.kind == "cuda":
            fields["gpu_peak_gb"] = round(torch.cuda.max_memory_allocated(self.setup.device) / 2**30, 2)
        self.log.emit(
            "run_finished",
            reason=reason,
            step=self.step,
            best_val_loss=self.best_val_loss,
            metrics=self.last_metrics,
            **fields,
        )
        self.log.emit("status", state="finished", step=self.step)

    def close(self) -> None:
        """Stop the data stream's reader thread, then listening for commands. Last of all: an attached
        app takes a vanished control FIFO without a `run_finished` before it for a crash."""
        self.stream.close()
        if self.requests.inbox:
            self.requests.inbox.close()


def compile_seconds() -> float:
    """Seconds this process spent in torch.compile: Dynamo with the forward graphs, and the backward
    graphs (compiled lazily, at the first backward). From torch's own compile-time records."""
    from torch._dynamo.utils import compilation_time_metrics as spent

    return round(
        sum(spent.get("_compile.compile_inner", [])) + sum(spent.get("compile_fx.<locals>.bw_compiler", [])), 2
    )


class NonFiniteLoss(RuntimeError):
    hint = "lower train.lr or raise train.warmup_steps; last.pt still holds the last good weights."

    def __init__(self, step: int):
        super().__init__(f"The loss became NaN or infinite by step {step}.")
        self.step = step
