"""`gptbench run PRESET --headless`: train with log-friendly output.

The job runs in a trainer subprocess through `launcher.EngineProcess`, exactly
as under the app; this module only turns its events into lines. Rich styles
them on a terminal; piped, the same lines come out plain. `--json` prints the
raw events instead.

This command is a view of the run, the trainer is the run. The trainer lives in
its own session, so the terminal's hangup (SSH dropped, tmux killed) ends only
the view; Ctrl-C and SIGTERM are meant for the run and are passed on to it. If
our output goes away (`| head`, a terminal that is gone) we stop viewing and
leave; the trainer trains on in its run directory (`gptbench logs -f`, `attach`).
`--detach` starts it without a view at all.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from .. import metrics, presets, units
from ..config import ConfigError
from ..launcher import EngineProcess, Nodes, first_event, start_in_background, trainer_command
from ..run_files import EVENTS_FILE, STDERR_FILE
from ..run_state import RunState
from ..runs import new_run_dir, require_run_dir, write_labels
from .error_line import error_markup

# How long `--detach` waits for the trainer's first event: after torch loads (and
# on --resume, once the checkpoint is checked). It stops waiting, not the trainer.
DETACH_START_TIMEOUT_S = 120.0


# A step line wider than the terminal drops fields, these first and in this order;
# the step, the loss, any metric not named here and the ETA always stay.
DROPPED_FIRST = ("grad_norm", "lr", "mfu", "tokens_per_sec")
# Piped into a file or another program there is no terminal to fit: lines are kept this wide.
PIPED_WIDTH = 120


def visible_width(markup: str) -> int:
    return Text.from_markup(markup).cell_len


def fit_step_line(head: str, fields: dict[str, str], tail: str, width: int) -> str:
    """`head | field | ... | tail` in `width` columns, dropping fields in DROPPED_FIRST order until it fits."""
    fields = dict(fields)
    for key in DROPPED_FIRST:
        line = " | ".join([head, *fields.values(), tail])
        if visible_width(line) <= width:
            return line
        fields.pop(key, None)
    return " | ".join([head, *fields.values(), tail])


def wrap_fields(fields: list[str], sep: str, width: int) -> str:
    """Join fields with `sep`, starting a new (indented) line between two fields rather than inside one."""
    lines = [fields[0]]
    for part in fields[1:]:
        if visible_width(lines[-1] + sep + part) <= width:
            lines[-1] += sep + part
        else:
            lines.append("  " + part)
    return "\n".join(lines)


class ViewConsole(Console):
    """A Console whose broken pipe is the view's business: Rich's default exits the process."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


class HeadlessView:
    """Prints one line per event worth a line, until its output goes away."""

    def __init__(self, console: Console, as_json: bool, on_output_closed=lambda: None):
        self.console = console
        self.as_json = as_json
        self.on_output_closed = on_output_closed
        self.output_closed = False
        self.state = RunState()  # the run as its events so far tell it (ETA, elapsed, finished)

    def on_event(self, e: dict) -> bool:
        """Fold the event in and print its line; False (nothing printed) for an event of the wrong shape."""
        if not self.state.apply(e):
            return False
        if self.as_json:
            self._write(sys.stdout, lambda: print(json.dumps(e), flush=True))
        else:
            line = self.format(e)
            if line:
                self._write(sys.stdout, lambda: self.console.print(line, soft_wrap=True, highlight=False))
        return True

    def on_stderr(self, line: str) -> None:
        # Warnings and tracebacks from the trainer: keep them visible, but apart.
        self._write(sys.stderr, lambda: print(line, file=sys.stderr, flush=True))

    def _write(self, stream, write) -> None:
        if self.output_closed:
            return
        try:
            write()
        except OSError:  # a broken pipe (`| head`), a terminal that is gone (EIO)
            self.output_closed = True
            # Python flushes stdout/stderr once more at exit: let that land in /dev/null.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
            self.on_output_closed()

    @property
    def width(self) -> int:
        """The terminal's width now (it may be resized); PIPED_WIDTH when there is no terminal."""
        return self.console.width if self.console.is_terminal else PIPED_WIDTH

    def format(self, e: dict) -> str | None:
        kind = e["event"]
        if kind == "run_started":
            c = e["config"]
            resumed = f" (resumed at step {e['resumed_from']})" if e.get("resumed_from") else ""
            init = c["model"].get("init_from", "scratch")
            weights = f" · weights and architecture from {escape(init)}" if init != "scratch" else ""
            recipe = f" · recipe {c['recipe']}" if c.get("recipe", "classic") != "classic" else ""
            fields = [
                f"[bold]gptbench[/] {c['preset']}",
                f"profile {c['profile']}{recipe}{weights}",
                escape(e.get("optimizer", "adamw")),
                f"{units.count(e['params'])} params",
                escape(e.get("device_name", e["device"])),
                e["dtype"],
                f"compile {'on' if e['compile'] else 'off'}",
                f"{e['world_size']} process{'es' if e['world_size'] > 1 else ''}",
                f"{units.count(e['tokens_per_step'])} tokens/step",
                f"{c['train']['max_steps']} steps{resumed}",
            ]
            return wrap_fields(fields, " · ", self.width) + f"\n[dim]run dir {escape(e.get('run_dir', ''))}[/]"
        if kind == "step":
            max_steps = self.state.max_steps
            fields = {m.key: m.headless(e.get(m.key)) for m in metrics.of_event("step") if m.headless}
            return fit_step_line(
                f"step {e['step']:>{len(str(max_steps))}}/{max_steps}",
                {key: text for key, text in fields.items() if text is not None},
                f"ETA {units.duration(self.state.eta_s)}",
                self.width,
            )
        if kind == "eval":
            task = [f"{k} [bold]{v:.4f}[/]" for k, v in e["metrics"].items()]
            val = f"{e['val_loss']:.4f}" if e["val_loss"] is not None else "nan"
            return wrap_fields(
                [f"[cyan]eval[/] step {e['step']}", f"val loss [bold]{val}[/]", *task], " | ", self.width
            )
        if kind == "progress" and e["stage"] == "micro_step":  # a long step, between its micro-steps
            return (
                f"[dim]step {e['step']} · micro {e['done']}/{e['total']} | {units.count(e['tokens_seen'])} tokens | "
                f"{e['micro_s']:.1f} s/micro-step[/]"
            )
        if kind == "log":
            return f"[dim]{escape(e['message'])}[/]"
        if kind == "error":
            return error_markup(e["message"], e["hint"])
        if kind == "status" and e["state"] in ("compiling", "paused", "stopping"):
            return f"[dim]{e['state']}…[/]"
        if kind == "run_finished":
            if e["reason"] == "error" and not self.state.started:
                return None  # refused before training: its error said it all
            best = f"{e['best_val_loss']:.4f}" if e["best_val_loss"] is not None else "-"
            task = [f"{k} {v:.4f}" for k, v in (e.get("metrics") or {}).items()]
            took = units.duration(self.state.elapsed_s)
            summary = [f"[bold]{e['reason']}[/] at step {e['step']} in {took}", f"best val loss {best}", *task]
            return wrap_fields(summary, " | ", self.width)
        return None


def check_nodes(nodes: Nodes) -> None:
    if nodes.nproc_per_node < 1:
        raise ConfigError(
            f"--nproc-per-node must be at least 1, got {nodes.nproc_per_node}.", "use 1 for one process, N for N GPUs."
        )
    if nodes.nnodes < 1 or not 0 <= nodes.node_rank < nodes.nnodes:
        raise ConfigError(
            f"--node-rank must be in 0..{nodes.nnodes - 1} and --nnodes at least 1, got "
            f"--nnodes {nodes.nnodes} --node-rank {nodes.node_rank}.",
            "number the machines 0, 1, ... N-1.",
        )
    if nodes.nnodes > 1:
        host, sep, port = nodes.rdzv_endpoint.rpartition(":")
        if not (host and sep and port.isdigit()):
            raise ConfigError(
                f"--rdzv-endpoint must be HOST:PORT of node 0, got {nodes.rdzv_endpoint!r}.",
                "e.g. --rdzv-endpoint 10.0.0.1:29500 (the same on every node)",
            )


@dataclass
class Labels:
    """--name, --tag, --notes: what the user calls a run (RUN_DIR/labels.json)."""

    name: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None and not self.name.strip():
            raise ConfigError(
                "--name is empty.", 'give the run a name, e.g. --name "lr sweep 3e-4", or leave --name out.'
            )
        if any(not tag.strip() for tag in self.tags):
            raise ConfigError("--tag is empty.", "each --tag needs a word, e.g. --tag baseline --tag cpu")

    @property
    def given(self) -> bool:
        return self.name is not None or bool(self.tags) or self.notes is not None


def plan_run(
    preset_name: str | None,
    overrides: list[str],
    run_dir: Path | None,
    resume: Path | None,
    config_file: Path | None,
    labels: Labels | None,
) -> tuple[str | None, Path | None, Path]:
    """(preset, config file, run dir) of the run to start: a resume names no preset
    (the run dir has its config); a new run is checked for typos before a process starts."""
    if resume is not None:
        return None, None, require_run_dir(resume)
    presets.resolve_run(preset_name, config_file, overrides, "cpu")  # the trainer re-resolves for its real device
    run_dir = run_dir or new_run_dir(labels.name if labels and labels.name else preset_name or config_file.stem)
    if (run_dir / EVENTS_FILE).exists():
        raise ConfigError(
            f"{run_dir} already holds a run.", f"continue it with --resume {run_dir}, or pick another --run-dir."
        )
    return preset_name, config_file, run_dir


def run_headless(
    preset_name: str | None,
    overrides: list[str],
    run_dir: Path | None,
    resume: Path | None,
    nodes: Nodes,
    as_json: bool,
    config_file: Path | None = None,
    labels: Labels | None = None,
    detach: bool = False,
) -> int:
    """Validate, start the trainer, print its events, return its exit code."""
    preset_name, config_file, run_dir = plan_run(preset_name, overrides, run_dir, resume, config_file, labels)
    check_nodes(nodes)
    if detach and as_json:
        raise ConfigError(
            "--detach prints no events, so --json has nothing to do.",
            f"read them later with `gptbench logs`, or from {EVENTS_FILE}.",
        )
    if labels and labels.given and nodes.node_rank == 0:
        write_labels(run_dir, labels.name, labels.tags, labels.notes)

    argv = trainer_command(
        preset_name, run_dir, overrides, resume=resume is not None, nodes=nodes, config_file=config_file
    )
    # meta.json records the user's command (`gptbench run ...`), not the worker's
    user_command = {"GPTBENCH_ARGV": json.dumps(["gptbench", *sys.argv[1:]])}
    console = ViewConsole(highlight=False)
    if nodes.node_rank > 0:
        console.print(
            f"[dim]node {nodes.node_rank} of {nodes.nnodes}: its processes train silently; node 0 writes the run "
            f"and prints its progress[/]",
            highlight=False,
        )
    if detach:
        return start_detached(argv, run_dir, console, silent_node=nodes.node_rank > 0, env=user_command)

    ended = threading.Event()  # the trainer exited, or our output went away
    view = HeadlessView(console, as_json, on_output_closed=ended.set)
    trainer = EngineProcess(
        argv,
        run_dir,
        on_event=view.on_event,
        on_stderr=view.on_stderr,
        detach=True,
        env=user_command,
        on_exit=lambda code: ended.set(),
    )
    with StopForwarder(trainer) as stops:
        trainer.start()
        stops.started()
        ended.wait()
    if view.output_closed:
        _say(
            f"gptbench: the output went away; the run goes on in {run_dir} "
            f"(`gptbench logs -f {run_dir}` follows it, `gptbench attach {run_dir}` takes it over)."
        )
        return 0
    code = trainer.wait()
    if view.state.finished is None and code not in (0, 130):
        tail = "\n".join(list(trainer.stderr_tail)[-15:])
        console.print(f"[red bold]error:[/] the trainer exited with code {code} before finishing.", highlight=False)
        if tail:
            console.print(escape(tail), highlight=False, soft_wrap=True)
    return 128 - code if code < 0 else code  # killed by signal N: exit 128+N, as a shell says it


class StopForwarder:
    """Pass Ctrl-C and SIGTERM on to the trainer's process group while we watch.

    The trainer checkpoints and stops by itself on either; we wait for it. A
    second one kills it. A signal that lands while the trainer is still being
    started is passed on as soon as it exists.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, trainer: EngineProcess):
        self.trainer = trainer
        self.received: list[int] = []

    def __enter__(self) -> StopForwarder:
        self.previous = {s: signal.signal(s, self._on_signal) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def _on_signal(self, signum: int, frame) -> None:
        self.received.append(signum)
        if self.trainer.process is not None:
            self._pass_on()

    def started(self) -> None:
        if self.received:
            self._pass_on()

    def _pass_on(self) -> None:
        if len(self.received) == 1:
            _say("stopping: saving a checkpoint (Ctrl-C again to kill)")
            self.trainer.signal(self.received[0])
        else:
            self.trainer.signal(signal.SIGKILL)


def _say(message: str) -> None:
    """One line to stderr, if stderr is still there."""
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass


def start_detached(argv: list[str], run_dir: Path, console: Console, silent_node: bool, env: dict[str, str]) -> int:
    """`--detach`: start the trainer in the background, wait for its first event, say where it is.

    The first event says whether it started or refused (an error: e.g. a resume
    that does not fit the checkpoint, which writes nothing into the run, so
    here is the only place to say so). A node other than 0 says nothing at all.
    """
    trainer = start_in_background(argv, run_dir, env)
    first = None if silent_node else first_event(trainer, DETACH_START_TIMEOUT_S)
    trainer.stdout.close()  # from here on the trainer writes its events to events.jsonl only
    if first is not None and first["event"] == "error":
        console.print(HeadlessView(console, as_json=False).format(first), highlight=False, soft_wrap=True)
        return trainer.wait()
    if first is None and trainer.poll() is not None:
        raise ConfigError(
            f"The trainer exited at once (code {trainer.returncode}).", f"its messages are in {run_dir / STDERR_FILE}."
        )
    console.print(
        f"training in the background (pid {trainer.pid})\n"
        f"run dir  {escape(str(run_dir))}\n"
        f"follow   gptbench logs -f {escape(str(run_dir))}\n"
        f"attach   gptbench attach {escape(str(run_dir))}",
        highlight=False,
        soft_wrap=True,
    )
    return 0
