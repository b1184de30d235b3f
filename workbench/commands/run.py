"""`gptbench run PRESET --headless`: train with log-friendly output.

The job runs in a trainer subprocess through `launcher.TrainerProcess`, exactly
as under the app; this module only turns its events into lines. Rich styles
them on a terminal; piped, the same lines come out plain. `--json` prints the
raw events instead.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from .. import presets
from ..config import ConfigError
from ..launcher import Nodes, TrainerProcess, trainer_command
from ..progress import eta_seconds, format_count, format_duration
from ..runs import new_run_dir, require_run_dir, write_labels


class HeadlessView:
    """Prints one line per event worth a line."""

    def __init__(self, console: Console, as_json: bool):
        self.console = console
        self.as_json = as_json
        self.max_steps = 0
        self.steps: list[dict] = []
        self.started: dict = {}
        self.finished: dict | None = None
        self.error: dict | None = None

    def on_event(self, e: dict) -> None:
        if self.as_json:
            import json

            print(json.dumps(e), flush=True)
        kind = e["event"]
        if kind == "run_started":
            self.started = e
            self.max_steps = e["config"]["train"]["max_steps"]
        elif kind == "step":
            self.steps.append(e)
        elif kind == "run_finished":
            self.finished = e
        elif kind == "error":
            self.error = e
        if not self.as_json:
            line = self.format(e)
            if line:
                self.console.print(line, soft_wrap=True, highlight=False)

    def on_stderr(self, line: str) -> None:
        # Warnings and tracebacks from the trainer: keep them visible, but apart.
        print(line, file=sys.stderr, flush=True)

    def format(self, e: dict) -> str | None:
        kind = e["event"]
        if kind == "run_started":
            c = e["config"]
            resumed = f" (resumed at step {e['resumed_from']})" if e.get("resumed_from") else ""
            init = c["model"].get("init_from", "scratch")
            weights = f" · weights and architecture from {escape(init)}" if init != "scratch" else ""
            return (
                f"[bold]gptbench[/] {c['preset']} · profile {c['profile']}{weights} · {format_count(e['params'])} params · "
                f"{escape(e.get('device_name', e['device']))} · {e['dtype']} · compile {'on' if e['compile'] else 'off'} · "
                f"{e['world_size']} process{'es' if e['world_size'] > 1 else ''} · {format_count(e['tokens_per_step'])} tokens/step · "
                f"{c['train']['max_steps']} steps{resumed}\n[dim]run dir {escape(e.get('run_dir', ''))}[/]"
            )
        if kind == "step":
            width = len(str(self.max_steps))
            mfu = f"{e['mfu'] * 100:4.1f}%" if e.get("mfu") is not None else "  - "
            return (
                f"step {e['step']:>{width}}/{self.max_steps} | loss [bold]{e['loss']:.4f}[/] | lr {e['lr']:.2e} | "
                f"grad {e['grad_norm']:.3f} | {format_count(e['tokens_per_sec'])} tok/s | MFU {mfu} | "
                f"ETA {format_duration(eta_seconds(self.steps, self.max_steps))}"
            )
        if kind == "eval":
            metrics = "".join(f" | {k} [bold]{v:.4f}[/]" for k, v in e["metrics"].items())
            val = f"{e['val_loss']:.4f}" if e["val_loss"] is not None else "nan"
            return f"[cyan]eval[/] step {e['step']} | val loss [bold]{val}[/]{metrics}"
        if kind == "log":
            return f"[dim]{escape(e['message'])}[/]"
        if kind == "error":
            return f"[red bold]error:[/] {escape(e['message'])}\n  [yellow]hint:[/] {escape(e['hint'])}"
        if kind == "status" and e["state"] in ("compiling", "paused", "stopping"):
            return f"[dim]{e['state']}…[/]"
        if kind == "run_finished":
            elapsed = self.steps[-1]["elapsed_s"] if self.steps else None
            best = f"{e['best_val_loss']:.4f}" if e["best_val_loss"] is not None else "-"
            metrics = "".join(f" | {k} {v:.4f}" for k, v in (e.get("metrics") or {}).items())
            return (
                f"[bold]{e['reason']}[/] at step {e['step']} in {format_duration(elapsed)} | best val loss {best}{metrics}"
            )
        return None


def check_nodes(nodes: Nodes) -> None:
    if nodes.nproc_per_node < 1:
        raise ConfigError(f"--nproc-per-node must be at least 1, got {nodes.nproc_per_node}.", "use 1 for one process, N for N GPUs.")
    if nodes.nnodes < 1 or not 0 <= nodes.node_rank < nodes.nnodes:
        raise ConfigError(f"--node-rank must be in 0..{nodes.nnodes - 1} and --nnodes at least 1, got "
                          f"--nnodes {nodes.nnodes} --node-rank {nodes.node_rank}.", "number the machines 0, 1, ... N-1.")
    if nodes.nnodes > 1:
        host, sep, port = nodes.rdzv_endpoint.rpartition(":")
        if not (host and sep and port.isdigit()):
            raise ConfigError(f"--rdzv-endpoint must be HOST:PORT of node 0, got {nodes.rdzv_endpoint!r}.",
                              "e.g. --rdzv-endpoint 10.0.0.1:29500 (the same on every node)")


@dataclass
class Labels:
    """--name, --tag, --notes: what the user calls a run (RUN_DIR/labels.json)."""

    name: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None and not self.name.strip():
            raise ConfigError("--name is empty.", 'give the run a name, e.g. --name "lr sweep 3e-4", or leave --name out.')
        if any(not tag.strip() for tag in self.tags):
            raise ConfigError("--tag is empty.", "each --tag needs a word, e.g. --tag baseline --tag cpu")

    @property
    def given(self) -> bool:
        return self.name is not None or bool(self.tags) or self.notes is not None


def run_headless(
    preset_name: str | None,
    overrides: list[str],
    run_dir: Path | None,
    resume: Path | None,
    nodes: Nodes,
    as_json: bool,
    config_file: Path | None = None,
    labels: Labels | None = None,
) -> int:
    """Validate, start the trainer, print its events, return its exit code."""
    if resume is not None:
        run_dir = require_run_dir(resume)
        preset_name = config_file = None
    else:
        # Catch typos before a process starts; the trainer re-resolves for its real device.
        presets.resolve_run(preset_name, config_file, overrides, "cpu")
        run_dir = run_dir or new_run_dir(labels.name if labels and labels.name else preset_name or config_file.stem)
        if (run_dir / "events.jsonl").exists():
            raise ConfigError(f"{run_dir} already holds a run.", f"continue it with --resume {run_dir}, or pick another --run-dir.")
    check_nodes(nodes)
    if labels and labels.given and nodes.node_rank == 0:
        write_labels(run_dir, labels.name, labels.tags, labels.notes)

    console = Console(highlight=False)
    view = HeadlessView(console, as_json)
    argv = trainer_command(preset_name, run_dir, overrides, resume=resume is not None, nodes=nodes, config_file=config_file)
    if nodes.node_rank > 0:
        console.print(f"[dim]node {nodes.node_rank} of {nodes.nnodes}: its processes train silently; node 0 writes the run "
                      f"and prints its progress[/]", highlight=False)
    trainer = TrainerProcess(argv, run_dir, on_event=view.on_event, on_stderr=view.on_stderr).start()

    # Ctrl-C reaches the trainer too (same process group): it checkpoints and
    # stops by itself. We wait for it; a second Ctrl-C kills it.
    interrupts = 0

    def on_interrupt(signum, frame):
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            print("stopping: saving a checkpoint (Ctrl-C again to kill)", file=sys.stderr, flush=True)
        else:
            trainer.kill()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        code = trainer.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    if view.finished is None and code not in (0, 130):
        tail = "\n".join(list(trainer.stderr_tail)[-15:])
        console.print(f"[red bold]error:[/] the trainer exited with code {code} before finishing.", highlight=False)
        if tail:
            console.print(escape(tail), highlight=False, soft_wrap=True)
    return code

