"""The `gptbench` command. Thin: each verb lives in `workbench/commands/`.

    gptbench                      the app
    gptbench presets [NAME]       what can be trained; one preset's resolved config as TOML
    gptbench run PRESET --headless [--detach]
    gptbench sample SOURCE --prompt TEXT
    gptbench runs [DIR] [--json]
    gptbench logs RUN_DIR [-f]    a run's log lines, following it live
    gptbench attach RUN_DIR       the app, on one run
    gptbench serve [RUN_DIR]      the app (or one run) in a browser, behind a token
    gptbench export RUN_DIR --format hf|llmc|csv|tensorboard --out PATH
    gptbench bench [PRESET ...]   speed benchmarks
    gptbench data SOURCE --out DIR   a corpus -> GPT-2 token shards
    gptbench eval SOURCE --task T    HellaSwag, perplexity or addition on a checkpoint
    gptbench sweep PRESET --grid KEY=A,B   many settings (Optuna), pruned, reported with medians
    gptbench sweeps [DIR]         a sweep's report: one row per setting, median and spread over seeds

Mistakes a user can make end in one sentence and a hint, exit code 2. This
module never imports torch: training and sampling run in subprocesses.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from .commands.error_line import print_error
from .config import ConfigError
from .tasks import TASKS

app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    no_args_is_help=False,
    invoke_without_command=True,
    help="A terminal workbench for training small GPTs. With no command, opens the app.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def fail(exc: ConfigError) -> None:
    """Bad input: one sentence and a hint on stderr, exit 2."""
    print_error(Console(stderr=True, highlight=False), exc.message, exc.hint)
    raise typer.Exit(2)


def run_verb(verb: Callable[..., int | None], *args) -> None:
    """Run one verb and exit with its code (None: 0); bad input ends through `fail`."""
    try:
        code = verb(*args)
    except ConfigError as exc:
        fail(exc)
    raise typer.Exit(code or 0)


def print_version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"gptbench {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=print_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    if ctx.invoked_subcommand is None:
        from .tui.app import run_app

        run_app()


@app.command("presets")
def presets_cmd(
    name: str | None = typer.Argument(None, help="print this preset's fully resolved config as TOML"),
    overrides: list[str] = typer.Option([], "--set", help="with NAME: resolve with this override too (repeatable)"),
    device: str = typer.Option("cpu", "--device", help="with NAME: the device whose profile applies (cpu, cuda, mps)"),
) -> None:
    """List the presets: what each trains, parameters, tokens per step. With NAME: its config."""
    if name is None:
        from .commands.list_presets import list_presets

        run_verb(list_presets)
    from .commands.show_preset import show_preset

    run_verb(show_preset, name, overrides, device)


@app.command("run")
def run_cmd(
    preset: str | None = typer.Argument(None, help="addition, shakespeare-char, gpt2-124m, or a user preset"),
    headless: bool = typer.Option(False, "--headless", help="print log lines instead of opening the app"),
    overrides: list[str] = typer.Option(
        [], "--set", help="override a config key, e.g. --set train.lr=3e-4 (repeatable)"
    ),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="where the run lives (default runs/PRESET-TIMESTAMP)"),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps"),
    resume: Path | None = typer.Option(None, "--resume", help="continue the run in this directory from its last.pt"),
    nproc_per_node: int = typer.Option(
        1, "--nproc-per-node", help="processes (GPUs) for data-parallel training via torchrun"
    ),
    nnodes: int = typer.Option(1, "--nnodes", help="machines taking part (torchrun); run the same command on each"),
    node_rank: int = typer.Option(0, "--node-rank", help="this machine's number, 0..nnodes-1"),
    rdzv_endpoint: str = typer.Option(
        "", "--rdzv-endpoint", help="HOST:PORT of node 0, where the machines meet (nnodes > 1)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the raw events (JSON lines)"),
    detach: bool = typer.Option(False, "--detach", help="train in the background: print the run dir and return"),
    config_file: Path | None = typer.Option(
        None,
        "--config",
        help="a TOML file with [model]/[data]/[train]/[log] tables, over the preset (or, alone, the preset)",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="print the resolved config, parameters, tokens/step and device, then exit"
    ),
    name: str | None = typer.Option(
        None, "--name", help="a name for the run (shown by `gptbench runs`; names the run dir)"
    ),
    tags: list[str] = typer.Option([], "--tag", help="a tag for the run (repeatable)"),
    notes: str | None = typer.Option(None, "--notes", help="a note about the run"),
) -> None:
    """Train a preset. Ctrl-C stops gracefully (checkpoint first, exit code 130); a closed terminal does not."""
    if device:
        overrides = [*overrides, f"train.device={device}"]
    from .commands.run import Labels, run_headless
    from .launcher import Nodes

    try:
        labels = Labels(name, tags, notes)
        nodes = Nodes(nproc_per_node, nnodes, node_rank, rdzv_endpoint)
        if dry_run:
            from .commands.dry_run import dry_run as print_dry_run

            code = print_dry_run(preset, config_file, overrides, nodes, resume, run_dir, labels)
            raise typer.Exit(code)
        if not headless:
            if (
                resume
                or run_dir
                or nproc_per_node != 1
                or nnodes != 1
                or as_json
                or config_file
                or labels.given
                or detach
            ):
                raise ConfigError(
                    "--resume, --run-dir, --nproc-per-node, --nnodes, --json, --config, --name, --tag, --notes "
                    "and --detach need --headless.",
                    "add --headless, or open the app with `gptbench` and pick the run there.",
                )
            from .tui.app import run_app

            run_app(preset=preset, overrides=overrides)
            return
        code = run_headless(preset, overrides, run_dir, resume, nodes, as_json, config_file, labels, detach)
    except ConfigError as exc:
        fail(exc)
    raise typer.Exit(code)


@app.command("sample")
def sample_cmd(
    source: str = typer.Argument(
        ..., help="a run directory, gpt2 / gpt2-medium / gpt2-large / gpt2-xl, or a Hugging Face GPT-2 folder"
    ),
    prompt: str = typer.Option("", "--prompt", "-p", help="text to continue (addition: 23+58)"),
    max_new_tokens: int = typer.Option(200, "--max-new-tokens"),
    temperature: float = typer.Option(0.8, "--temperature", help="0 = greedy"),
    top_k: int = typer.Option(200, "--top-k", help="0 = off"),
    top_p: float | None = typer.Option(None, "--top-p"),
    num_samples: int = typer.Option(1, "--num-samples"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    seed: int | None = typer.Option(None, "--seed"),
) -> None:
    """Stream a continuation of PROMPT from a run's checkpoint or a pretrained GPT-2."""
    from .commands.sample import sample

    run_verb(sample, source, prompt, max_new_tokens, temperature, top_k, top_p, num_samples, checkpoint, seed)


@app.command("runs")
def runs_cmd(
    root: Path | None = typer.Argument(None, help="directory of runs (default ./runs or $GPTBENCH_RUNS)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON array of the runs' summaries"),
) -> None:
    """A table of runs: name, tags, preset, status, steps, best val loss, task metric, started."""
    from .commands.list_runs import list_runs

    run_verb(list_runs, root, as_json)


@app.command("logs")
def logs_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory (running or finished)"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines until the run finishes"),
) -> None:
    """Print a run's log lines (as `run --headless` prints them) from its events."""
    from .commands.logs import logs

    run_verb(logs, run_dir, follow)


@app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory (finished or still running)"),
    fmt: str = typer.Option(
        ..., "--format", help="hf (transformers folder), llmc (llm.c model.bin), csv or tensorboard (metrics)"
    ),
    out: Path = typer.Option(
        ..., "--out", help="hf, llmc, tensorboard: a new or empty folder; csv: a file, or - for stdout"
    ),
    checkpoint: str = typer.Option("best", "--checkpoint", help="hf, llmc: best or last"),
) -> None:
    """Weights to transformers or llm.c; metrics to CSV or TensorBoard."""
    from .commands.export import export

    run_verb(export, run_dir, fmt, out, checkpoint)


@app.command("attach")
def attach_cmd(run_dir: Path = typer.Argument(..., help="a run directory (running or finished)")) -> None:
    """Open the app on one run: follow it live, or replay it."""
    from .runs import damage_note, require_run_dir, scan_events
    from .tui.app import run_app

    try:
        require_run_dir(run_dir)
    except ConfigError as exc:
        fail(exc)
    damaged = scan_events(run_dir)[1]
    if damaged:  # printed before the app takes the screen: it is there again when the app quits
        print(damage_note(run_dir, damaged), file=sys.stderr)
    run_app(attach=run_dir)


@app.command("serve")
def serve_cmd(
    run_dir: Path | None = typer.Argument(None, help="serve `attach` on this run instead of the whole app"),
    host: str = typer.Option("127.0.0.1", "--host", help="the address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8022, "--port", help="the port to listen on"),
    view_only: bool = typer.Option(
        False, "--view-only", help="watching and sampling only: no launch, pause, stop, resume or config edits"
    ),
) -> None:
    """Serve the app to a browser: one app process per tab, behind a token in the printed URL."""
    from .commands.serve import serve

    run_verb(serve, run_dir, host, port, view_only)


@app.command("bench")
def bench_cmd(
    names: list[str] = typer.Argument(None, help="presets to benchmark (default: all)"),
    overrides: list[str] = typer.Option([], "--set", help="override a config key for every job"),
    tiny: bool = typer.Option(False, "--tiny", help="CPU-sized models and budgets: checks the harness in seconds"),
    out: Path = typer.Option(Path("bench/results"), "--out", help="where the results JSON and raw log go"),
    work_dir: Path | None = typer.Option(None, "--work-dir", help="where the benchmark runs live (default OUT/runs)"),
) -> None:
    """Measure tokens/sec, MFU, step time, time to target and decode speed."""
    from .commands.bench import bench

    run_verb(bench, names or [], overrides, tiny, out, work_dir)


@app.command("data")
def data_cmd(
    source: str = typer.Argument(
        ..., help="fineweb-edu, a Hugging Face dataset id, or local txt/jsonl/parquet files (a file or a folder)"
    ),
    out: Path | None = typer.Option(
        None, "--out", help="folder for the shards (fineweb-edu: the cache dir by default)"
    ),
    name: str | None = typer.Option(None, "--name", help="the dataset's configuration (hub ids), e.g. sample-10BT"),
    split: str = typer.Option("train", "--split", help="the split to read (hub ids)"),
    text_field: str = typer.Option("text", "--text-field", help="the field that holds the text (jsonl, parquet, hub)"),
    workers: int = typer.Option(0, "--workers", help="tokenizer processes (0: all cores)"),
    shard_tokens: str = typer.Option("100M", "--shard-tokens", help="tokens per train shard, e.g. 100M"),
    val_tokens: str | None = typer.Option(
        None,
        "--val-tokens",
        help="tokens in the val shard, written first (default: --shard-tokens; a tenth of a smaller source)",
    ),
) -> None:
    """Turn a corpus into GPT-2 token shards (llm.c .bin); resumes if interrupted."""
    from .commands.data import prepare_data

    run_verb(prepare_data, source, out, name, split, text_field, workers, shard_tokens, val_tokens)


@app.command("eval")
def eval_cmd(
    source: str = typer.Argument(..., help="a run directory, gpt2 ... gpt2-xl, or a Hugging Face GPT-2 folder"),
    task: str = typer.Option(..., "--task", help=" | ".join(TASKS)),
    data: Path | None = typer.Option(
        None, "--data", help="hellaswag: an offline hellaswag_val.jsonl; ppl: any text file (default tiny Shakespeare)"
    ),
    limit: int = typer.Option(0, "--limit", help="score the first N examples only (0: all)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps"),
) -> None:
    """Score a run's checkpoint (or pretrained weights) on HellaSwag, perplexity on a text, or addition."""
    from .commands.eval import evaluate

    run_verb(evaluate, source, task, data, limit, as_json, checkpoint, device)


# -- sweeps: workbench/sweep/ (the sweep process never imports torch either) ----------------


@app.command("sweep")
def sweep_cmd(
    preset: str = typer.Argument(..., help="addition, shakespeare-char, gpt2-124m, or a user preset"),
    grid: list[str] = typer.Option([], "--grid", help="KEY=V1,V2,...: try every value (repeatable: the product)"),
    space: list[str] = typer.Option(
        [], "--space", help="KEY=DIST, sampled: log:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH, choice:A,B (repeatable)"
    ),
    trials: int | None = typer.Option(None, "--trials", help="--space: how many settings to sample"),
    seeds: int = typer.Option(1, "--seeds", help="run each setting K times, train.seed = 0..K-1"),
    overrides: list[str] = typer.Option([], "--set", help="a config key every trial shares (repeatable)"),
    objective: str = typer.Option(
        "val_loss", "--objective", help="val_loss (best), steps_to:LOSS, seconds_to:LOSS, or a task metric (accuracy)"
    ),
    prune: str = typer.Option("none", "--prune", help="median, halving or none: stop hopeless trials early"),
    sampler: str | None = typer.Option(None, "--sampler", help="--space: tpe (default) or random"),
    parallel: str = typer.Option("auto", "--parallel", help="trials at once on this machine: N or auto (see README)"),
    sweep_dir: Path | None = typer.Option(None, "--sweep-dir", help="where the sweep lives (default runs/sweeps/NAME)"),
    storage: str | None = typer.Option(
        None, "--storage", help="the Optuna study: a database URL or journal:PATH (default: SQLite in the sweep dir)"
    ),
    headless: bool = typer.Option(False, "--headless", help="print a live table instead of opening the app"),
    as_json: bool = typer.Option(False, "--json", help="with --headless: the sweep's events as JSON lines"),
) -> None:
    """Try many settings of a preset (Optuna), prune the hopeless ones, report medians and spread over seeds."""
    from .commands.sweep import sweep

    run_verb(
        sweep,
        preset,
        grid,
        space,
        trials,
        seeds,
        overrides,
        objective,
        prune,
        sampler,
        parallel,
        sweep_dir,
        storage,
        headless,
        as_json,
    )


@app.command("sweeps")
def sweeps_cmd(
    sweep_dir: Path | None = typer.Argument(None, help="a sweep directory (default: list the sweeps)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object: settings and trials"),
    fmt: str = typer.Option("table", "--format", help="table (with charts), md or csv"),
) -> None:
    """A sweep's report: one row per setting with the median and min-max over its seeds."""
    from .commands.sweeps import sweeps

    run_verb(sweeps, sweep_dir, as_json, fmt)


def main() -> None:
    try:
        app(prog_name="gptbench")  # the same name under `python -m workbench`
    except BrokenPipeError:  # `gptbench runs | head`
        sys.stderr.close()


if __name__ == "__main__":
    main()
