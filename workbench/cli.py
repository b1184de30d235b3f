"""The `gptbench` command. Thin: each verb lives in `workbench/commands/`.

    gptbench                      the app
    gptbench presets              what can be trained
    gptbench run PRESET --headless
    gptbench sample RUN_DIR --prompt TEXT
    gptbench runs [DIR]
    gptbench attach RUN_DIR       the app, on one run
    gptbench bench [PRESET ...]   speed benchmarks

Mistakes a user can make end in one sentence and a hint, exit code 2. This
module never imports torch: training and sampling run in subprocesses.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .config import ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    invoke_without_command=True,
    help="A terminal workbench for training small GPTs. With no command, opens the app.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def fail(exc: ConfigError) -> None:
    err = Console(stderr=True, highlight=False)
    err.print(f"[red bold]error:[/] {escape(exc.message)}")
    if exc.hint:
        err.print(f"  [yellow]hint:[/] {escape(exc.hint)}")
    raise typer.Exit(2)


@app.callback()
def root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        from .tui.app import run_app

        run_app()


@app.command("presets")
def presets_cmd() -> None:
    """List the presets: what each trains, parameters, tokens per step."""
    from .commands.list_presets import list_presets

    try:
        list_presets()
    except ConfigError as exc:
        fail(exc)


@app.command("run")
def run_cmd(
    preset: Optional[str] = typer.Argument(None, help="addition, shakespeare-char, gpt2-124m, or a user preset"),
    headless: bool = typer.Option(False, "--headless", help="print log lines instead of opening the app"),
    overrides: List[str] = typer.Option([], "--set", help="override a config key, e.g. --set train.lr=3e-4 (repeatable)"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="where the run lives (default runs/PRESET-TIMESTAMP)"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the run in this directory from its last.pt"),
    nproc_per_node: int = typer.Option(1, "--nproc-per-node", help="processes (GPUs) for data-parallel training via torchrun"),
    nnodes: int = typer.Option(1, "--nnodes", help="machines taking part (torchrun); run the same command on each"),
    node_rank: int = typer.Option(0, "--node-rank", help="this machine's number, 0..nnodes-1"),
    rdzv_endpoint: str = typer.Option("", "--rdzv-endpoint", help="HOST:PORT of node 0, where the machines meet (nnodes > 1)"),
    as_json: bool = typer.Option(False, "--json", help="print the raw events (JSON lines)"),
) -> None:
    """Train a preset. Ctrl-C stops gracefully (checkpoint first, exit code 130)."""
    if device:
        overrides = [*overrides, f"train.device={device}"]
    from .commands.run import run_headless
    from .launcher import Nodes

    try:
        if not headless:
            if resume or run_dir or nproc_per_node != 1 or nnodes != 1 or as_json:
                raise ConfigError("--resume, --run-dir, --nproc-per-node, --nnodes and --json need --headless.",
                                  "add --headless, or open the app with `gptbench` and pick the run there.")
            from .tui.app import run_app

            run_app(preset=preset, overrides=overrides)
            return
        nodes = Nodes(nproc_per_node, nnodes, node_rank, rdzv_endpoint)
        code = run_headless(preset, overrides, run_dir, resume, nodes, as_json)
    except ConfigError as exc:
        fail(exc)
    raise typer.Exit(code)


@app.command("sample")
def sample_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    prompt: str = typer.Option("", "--prompt", "-p", help="text to continue (addition: 23+58)"),
    max_new_tokens: int = typer.Option(200, "--max-new-tokens"),
    temperature: float = typer.Option(0.8, "--temperature", help="0 = greedy"),
    top_k: int = typer.Option(200, "--top-k", help="0 = off"),
    top_p: Optional[float] = typer.Option(None, "--top-p"),
    num_samples: int = typer.Option(1, "--num-samples"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    seed: Optional[int] = typer.Option(None, "--seed"),
) -> None:
    """Stream a continuation of PROMPT from a run's checkpoint."""
    from .commands.sample import sample

    try:
        code = sample(run_dir, prompt, max_new_tokens, temperature, top_k, top_p, num_samples, checkpoint, seed)
    except ConfigError as exc:
        fail(exc)
    raise typer.Exit(code)


@app.command("runs")
def runs_cmd(root: Optional[Path] = typer.Argument(None, help="directory of runs (default ./runs or $GPTBENCH_RUNS)")) -> None:
    """A table of runs: preset, status, steps, best val loss, task metric, started."""
    from .commands.list_runs import list_runs

    list_runs(root)


@app.command("attach")
def attach_cmd(run_dir: Path = typer.Argument(..., help="a run directory (running or finished)")) -> None:
    """Open the app on one run: follow it live, or replay it."""
    from .runs import require_run_dir
    from .tui.app import run_app

    try:
        require_run_dir(run_dir)
    except ConfigError as exc:
        fail(exc)
    run_app(attach=run_dir)


@app.command("bench")
def bench_cmd(
    names: List[str] = typer.Argument(None, help="presets to benchmark (default: all)"),
    overrides: List[str] = typer.Option([], "--set", help="override a config key for every job"),
    tiny: bool = typer.Option(False, "--tiny", help="CPU-sized models and budgets: checks the harness in seconds"),
    out: Path = typer.Option(Path("bench/results"), "--out", help="where the results JSON and raw log go"),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="where the benchmark runs live (default OUT/runs)"),
) -> None:
    """Measure tokens/sec, MFU, step time, time to target and decode speed."""
    from .commands.bench import bench

    try:
        bench(names or [], overrides, tiny, out, work_dir)
    except ConfigError as exc:
        fail(exc)


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # `gptbench runs | head`
        sys.stderr.close()


if __name__ == "__main__":
    main()
