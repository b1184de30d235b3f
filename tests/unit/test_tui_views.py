"""What the app shows on recorded runs (no training): help, plots, config, system, compare, small terminals,
corrupt runs."""

import json
import re
import shutil
from pathlib import Path

import pytest
from rich.style import Style
from screen_text import until, visible_text

from workbench.tui.app import GPTBenchApp
from workbench.tui.curve_styles import RUN_STYLES
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.run import RunScreen
from workbench.tui.screens.runs import RunsScreen
from workbench.tui.widgets.metric_plot import MetricPlot
from workbench.tui.widgets.runs_table import RunsTable

FIXTURES = Path(__file__).parents[1] / "fixtures" / "runs"
SYSTEM_EVENT = {
    "event": "system",
    "t": 1.0,
    "cpu_percent": 97,
    "cpu_count": 2,
    "ram_used_gb": 5.1,
    "ram_total_gb": 23.4,
    "rss_gb": 0.41,
    "gpus": [],
    "gpu_note": "nvidia-ml-py is not installed",
}


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "runs")
    monkeypatch.setenv("GPTBENCH_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


async def replayed(pilot) -> RunScreen:
    await until(
        pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.state.finished, "the replay"
    )
    return pilot.app.screen


async def replayed_crash(pilot) -> RunScreen:
    await until(pilot, lambda: isinstance(pilot.app.screen, RunScreen) and pilot.app.screen.state.started, "the run")
    return pilot.app.screen


async def test_a_replay_draws_its_plots_at_once(runs):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await replayed(pilot)
        # No redraw forced here: the plots must not wait for the CPU budget's next frame.
        await until(pilot, lambda: all(p.has_data for p in screen.query(MetricPlot)), "the curves", timeout=1.5)
        assert "waiting for data" not in visible_text(app)


async def test_help_lists_every_key_of_the_screen(runs):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(100, 50)) as pilot:
        await replayed(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        text = visible_text(app)
        for line in ("Pause", "Max plot", "System", "Zoom", "Cursor left", "Quit"):
            assert line in text, line
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run again")


async def test_plot_options_are_one_for_every_screen_and_show_in_the_titles(runs):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await replayed(pilot)
        loss = screen.query_one("#plot-loss", MetricPlot)
        assert loss.heading.endswith("· EMA 0.6")
        await pilot.press("g", "x")
        assert loss.heading.endswith("· EMA 0.6 · log y · x=time")
        assert screen.query_one("#plot-lr", MetricPlot).heading == "learning rate · x=time"  # neither EMA nor log apply
        await pilot.press("z")
        assert loss.options.window == 50 and "last 50" in loss.heading
        app.compare_runs([runs / "addition-completed", runs / "addition-lr1e-3"])
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.states, "the comparison")
        plot = app.screen.query_one("#compare-plot", MetricPlot)
        assert plot.options == loss.options and "log y · x=time · last 50" in plot.heading
        await pilot.press("e")  # toggled on the compare screen, seen on the run screen
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "the run screen")
        assert not loss.options.smoothing and "EMA" not in loss.heading


async def test_the_value_cursor_reads_step_value_and_time(runs):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await replayed(pilot)
        loss = screen.query_one("#plot-loss", MetricPlot)
        loss.focus()
        await pilot.press("left")
        series = screen.state.series["loss"]
        assert loss.cursor_step == series.steps[-1]
        await pilot.press("left")
        assert loss.cursor_step == series.steps[-2] == 290
        assert re.search(r"▸ step 290 · ─ \d\.\d+ \(raw \d\.\d+\) · • \d\.\d+ · 0:\d\d$", loss.heading), loss.heading
        await pilot.press("m")  # maximised, the cursor stays
        assert screen.maximized is loss
        await pilot.press("escape")  # the cursor goes first
        assert loss.cursor_step is None and screen.maximized is loss
        await pilot.press("escape")
        assert screen.maximized is None and app.screen is screen


def plot_text(app, plot) -> list[str]:
    """The rows of the screen inside `plot`, under its title row."""
    region = plot.region
    lines = [line.ljust(region.right)[region.x : region.right] for line in visible_text(app).split("\n")]
    top = next(i for i, line in enumerate(lines) if line[1:].startswith(plot.border_title))
    return lines[top + 1 : top + region.height]


BRAILLE = re.compile("[\u2801-\u28ff]")


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_log_y_draws_the_loss_and_grad_norm_curves_with_labels(runs, size):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=size) as pilot:
        screen = await replayed(pilot)
        await pilot.press("g")
        plots = [screen.query_one(f"#plot-{name}", MetricPlot) for name in ("loss", "grad-norm")]
        await until(pilot, lambda: all(p.options.log_scale and not p.stale for p in plots), "the log plots")
        await pilot.pause()
        for plot in plots:
            rows = plot_text(app, plot)
            curve_cells = sum(len(BRAILLE.findall(row)) for row in rows)
            assert curve_cells > 20, (plot.id, rows)
            # round y labels on the axis: a number, then the tick
            labels = [m.group(1) for row in rows if (m := re.match(r"\s*([\d.]+k?)┤", row))]
            assert len(labels) >= 2, (plot.id, rows)


async def test_at_80x24_the_cursor_readout_is_whole_on_a_line_of_its_own(runs):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await replayed(pilot)
        loss = screen.query_one("#plot-loss", MetricPlot)
        loss.focus()
        await pilot.press("left", "left")
        await until(pilot, lambda: not loss.stale, "the cursor drawn")
        await pilot.pause()
        assert "…" not in loss.border_title
        shown = " · ".join(row.strip() for row in plot_text(app, loss)[:2])
        value = r"\d\.\d+"
        assert re.search(rf"▸ step 290 · ─ {value} \(raw {value}\) · • {value} · 0:\d\d", shown), shown
        await pilot.press("escape")  # the options, not cut either
        await until(pilot, lambda: not loss.stale, "the cursor gone")
        await pilot.press("g")
        await until(pilot, lambda: not loss.stale, "log y drawn")
        await pilot.pause()
        assert "…" not in loss.border_title and "log y" in visible_text(app)


async def test_at_80x24_stats_and_log_fold_into_lines_that_unfold(runs):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await replayed(pilot)
        await pilot.pause(0.2)
        text = visible_text(app)
        assert re.search(r"step 300/300  loss 0\.566  val 0\.563  accuracy 0\.504  elapsed \d+:\d\d\n", text)
        assert "log › status: finished" in text
        assert screen.query_one("#stats").display is False or not screen.query_one("#stats").region.height
        await pilot.press("i", "o")
        await pilot.pause(0.2)
        text = visible_text(app)
        assert re.search(r"best val\s+0\.5633", text) and "run finished (completed) at step 300" in text
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(200, 50)) as pilot:
        await replayed(pilot)
        await pilot.pause(0.2)
        assert re.search(r"best val\s+0\.5633", visible_text(app))  # room enough: unfolded


async def test_a_crashed_runs_log_line_says_it_crashed(runs):
    app = GPTBenchApp(attach=runs / "addition-crashed")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await replayed_crash(pilot)
        await until(pilot, lambda: screen.state.crash is not None, "the crash")
        await pilot.pause(0.2)
        text = visible_text(app)
        assert "log › crashed: the trainer is gone and never said it finished" in text, text
        assert "status: training" not in text


async def test_a_run_stopped_before_its_first_step_does_not_wait_for_data(runs):
    stopped = runs / "addition-stopped-early"
    stopped.mkdir()
    lines = (runs / "addition-completed" / "events.jsonl").read_text().splitlines()
    head = [line for line in lines if '"event":"step"' not in line][:3]  # starting, run_started, training
    finished = {"event": "run_finished", "t": 1795416700.0, "reason": "stopped", "step": 0}
    finished |= {"best_val_loss": None, "metrics": {}}
    (stopped / "events.jsonl").write_text("\n".join([*head, json.dumps(finished)]) + "\n")
    shutil.copy(runs / "addition-completed" / "config.json", stopped)
    app = GPTBenchApp(attach=stopped)
    async with app.run_test(size=(100, 30)) as pilot:
        await replayed(pilot)
        await pilot.pause(0.3)
        text = visible_text(app)
        assert "waiting for data" not in text
        assert "no steps were logged before the run ended" in text


async def test_at_200_columns_the_log_wraps_at_its_own_width(runs):
    events = runs / "addition-completed" / "events.jsonl"
    lines = events.read_text().splitlines()
    long = "a long line " + "abcdefghij " * 14 + "END"  # 166 characters
    lines.insert(3, json.dumps({"event": "log", "t": 1795416687.2, "message": long}))
    events.write_text("\n".join(lines) + "\n")
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await replayed(pilot)
        await pilot.pause(0.2)
        log = screen.query_one("#log")  # back to its top (it follows the end as lines come)
        await until(
            pilot,
            lambda: (
                log.scroll_home(animate=False) or any(line.strip() == long for line in visible_text(app).split("\n"))
            ),
            "the long line on one row",
        )
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(80, 24)) as pilot:
        await replayed(pilot)
        await pilot.press("o")  # the whole log, at 80 columns: the line wraps to fit
        await pilot.pause(0.2)
        log = app.screen.query_one("#log")
        rows = [strip.text.rstrip() for strip in log.lines]
        assert "abcdefghij END" in rows and max(map(len, rows)) <= log.scrollable_content_region.width


async def test_the_config_tab_marks_what_the_run_changed_from_its_preset(runs):
    app = GPTBenchApp(attach=runs / "addition-lr1e-3")
    async with app.run_test(size=(100, 40)) as pilot:
        await replayed(pilot)
        await pilot.press("f")
        await until(pilot, lambda: "changed from the preset" in visible_text(app), "the config")
        text = visible_text(app)
        assert re.search(r"\*\s+train\.lr\s+0\.001\s+0\.003", text), text
        assert re.search(r"^\s+train\.seed\s+1337\s*$", text, re.M)  # unchanged: no mark, no preset value


async def test_the_system_pane_shows_the_readings_as_past_once_the_trainer_exits(runs):
    with open(runs / "addition-completed" / "events.jsonl", "a") as f:
        f.write(json.dumps(SYSTEM_EVENT) + "\n")
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(100, 30)) as pilot:
        await replayed(pilot)
        await pilot.press("u")
        await pilot.pause(0.2)
        text = visible_text(app)
        # the run is over: its readings are history, not the machine now
        assert "trainer exited; last readings" in text
        assert re.search(r"CPU\s+was 97% of 2 cores", text) and re.search(r"RAM\s+was 5\.1 / 23\.4 GB", text)
        assert re.search(r"trainer\s+exited, was 0\.41 GB", text) and "nvidia-ml-py is not installed" in text


async def test_the_stats_show_the_cpu_threads_in_use_now_and_the_log_says_why(runs):
    events = runs / "addition-completed" / "events.jsonl"
    lines = events.read_text().splitlines()
    why = "cpu threads 2 -> 1: another gptbench process started: 2 share 2 cores"
    lines.insert(5, json.dumps({"event": "log", "t": 1795416690.0, "message": why, "level": "info", "threads": 1}))
    events.write_text("\n".join(lines) + "\n")
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(120, 40)) as pilot:
        await replayed(pilot)
        await pilot.pause(0.2)
        text = visible_text(app)
        assert re.search(r"device\s+cpu \(1 thread\)", text)  # run_started said 2
        log = app.screen.query_one("#log")  # back to its top (it follows the end as lines come)
        await until(pilot, lambda: log.scroll_home(animate=False) or why in visible_text(app), "the log's line")


async def test_compare_overlays_any_metric_and_lists_config_differences(runs):
    app = GPTBenchApp()
    async with app.run_test(size=(100, 30)) as pilot:
        app.compare_runs([runs / "addition-completed", runs / "addition-lr1e-3"])
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.states, "the comparison")
        await pilot.pause(0.2)
        text = visible_text(app)
        assert re.search(r"train\.lr\s+0\.003\s+0\.001", text)
        plot = app.screen.query_one("#compare-plot", MetricPlot)
        names = []
        for _ in range(7):
            names.append(plot.metric.split(" (")[0])
            await pilot.press("n")
        assert names == [
            "train loss",
            "val loss",
            "learning rate",
            "grad norm",
            "tokens/sec",
            "accuracy",
            "accuracy all",
        ]
        assert [len(c.series) for c in plot.curves] == [30, 30]  # back at train loss, both runs


def test_every_run_colour_is_one_rich_and_plotext_understand():
    for style in RUN_STYLES:
        Style.parse(style.rich_color)  # "orange" (the old palette) raises here
    assert len({s.marker for s in RUN_STYLES}) == len(RUN_STYLES)  # NO_COLOR: markers tell runs apart


def recorded_as(runs: Path, name: str, preset: str, kind: str) -> Path:
    """A copy of the recorded addition run that says it was `preset` (data.kind `kind`)."""
    run = runs / name
    shutil.copytree(runs / "addition-completed", run)
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    for event in events:
        if event["event"] == "run_started":
            event["config"]["preset"] = preset
            event["config"]["data"]["kind"] = kind
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run


async def test_talk_offers_an_example_of_the_preset_and_keeps_its_settings_per_preset(runs):
    first = recorded_as(runs, "shakespeare-1", "shakespeare-char", "text")
    second = recorded_as(runs, "shakespeare-2", "shakespeare-char", "text")
    app = GPTBenchApp(attach=first)
    async with app.run_test(size=(100, 30)) as pilot:
        await replayed(pilot)
        await pilot.press("t")
        prompt = app.screen.query_one("#prompt")
        await until(pilot, lambda: "ROMEO:" in prompt.placeholder, "the preset's example")
        assert "23+58" not in prompt.placeholder
        temperature = app.screen.query_one("#temperature")
        temperature.focus()
        await pilot.press("ctrl+u", *"0.5", "tab")
        for run, example, kept in ((second, "ROMEO:", "0.5"), (runs / "addition-lr1e-3", "23+58", "0.8")):
            app.open_run(run)
            await until(pilot, lambda r=run: app.screen.run_dir == r and app.screen.state.finished, "the other run")
            await pilot.press("t")
            await until(pilot, lambda e=example: e in app.screen.query_one("#prompt").placeholder, f"{example}")
            assert app.screen.query_one("#temperature").value == kept


def text_colour(svg: str, text: str) -> tuple[int, int, int]:
    """The colour of `text` in an exported screenshot (its element's class names the fill)."""
    cls = re.search(rf'<text class="([^"]+)"[^>]*>{re.escape(text)}</text>', svg).group(1)
    fill = re.search(rf"\.{cls} {{ fill: #(\w\w)(\w\w)(\w\w)", svg)
    return tuple(int(channel, 16) for channel in fill.groups())


async def test_without_colour_a_crashed_run_reads_clearly_in_the_runs_table(runs, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = GPTBenchApp()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("r")
        await until(
            pilot,
            lambda: isinstance(app.screen, RunsScreen) and any(t.row_count == 3 for t in app.screen.query(RunsTable)),
            "the runs",
        )
        table = app.screen.query_one(RunsTable)
        crashed = table.get_row_index(str(runs / "addition-crashed"))
        table.move_cursor(row=(crashed + 1) % table.row_count)  # the cursor row has a colour of its own
        await pilot.pause(0.2)
        assert min(text_colour(app.export_screenshot(), "crashed")) >= 0xA0  # light grey or white on the dark table


async def test_corrupt_runs_cost_their_own_row_not_the_table(runs):
    broken = runs / "addition-garbage"
    shutil.copytree(runs / "addition-completed", broken)
    with open(broken / "events.jsonl", "a", encoding="utf-8") as f:
        f.write("\x00\x00garbage {not json\n")
        f.write('{"event": "step", "loss": 1.0}\n')  # a step without a step
    headless = runs / "addition-no-start"
    headless.mkdir()
    (headless / "events.jsonl").write_text(
        '{"event": "step", "step": 10, "loss": 2.0, "lr": 0.001, "grad_norm": 1.0, "tokens_per_sec": 1.0, '
        '"mfu": null, "elapsed_s": 1.0, "t": 1.0}\n'
    )
    unreadable = runs / "addition-unreadable"
    unreadable.mkdir()
    (unreadable / "events.jsonl").write_text('{"event": "run_started", "config": [], "t": 1.0}\n')
    app = GPTBenchApp()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("r")
        await until(
            pilot,
            lambda: isinstance(app.screen, RunsScreen) and any(t.row_count == 6 for t in app.screen.query(RunsTable)),
            "every run",
        )
        table = app.screen.query_one(RunsTable)
        table.move_cursor(row=table.get_row_index(str(broken)))
        await pilot.press("enter")
        screen = await replayed(pilot)
        await pilot.pause(0.2)
        assert screen.state.step == 300  # the last good step: the damaged lines never reached the run's state
        await pilot.press("o")  # the whole log
        await pilot.pause(0.2)
        assert visible_text(app).count("skipped a damaged line of events.jsonl") == 2
        await pilot.press("escape")
        app.open_run(headless)
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, RunScreen) and app.screen.run_dir == headless and app.screen.state.step == 10
            ),
            "the run without run_started",
        )


async def test_undecodable_bytes_in_events_never_take_the_app_down(runs):
    with open(runs / "addition-completed" / "events.jsonl", "ab") as f:
        f.write(b"\xff\xfe\xfa not utf-8\n")
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        # The reader skips the bad line, or (decoding the file in chunks) fails on it and says so.
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, RunScreen)
                and (app.screen.state.finished or "following events.jsonl failed" in visible_text(app))
            ),
            "the replay, or the reader's failure on screen",
        )
        assert app.is_running and isinstance(app.screen, RunScreen) and app.screen.state.started


async def test_a_failing_background_task_is_reported_not_fatal(runs, monkeypatch):
    from workbench.tui.screens import compare as compare_module

    def unreadable(path):
        raise OSError(f"{path}: input/output error")

    monkeypatch.setattr(compare_module, "read_events", unreadable)  # a disk that fails under the worker
    app = GPTBenchApp()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        app.compare_runs([runs / "addition-completed", runs / "addition-lr1e-3"])
        await until(pilot, lambda: "reading the runs to compare failed: OSError" in visible_text(app), "the report")
        assert app.is_running and isinstance(app.screen, CompareScreen)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, CompareScreen), "back")


async def test_text_that_does_not_fit_ends_in_an_ellipsis_or_leaves_whole_columns_out(runs):
    app = GPTBenchApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.screen.query("#config-table") and app.screen.current, "the picker")
        table = app.screen.query_one("#config-table")
        table.focus()
        table.move_cursor(row=table.get_row_index("recipe"))
        await pilot.pause(0.2)
        help_lines = [line for line in visible_text(app).splitlines() if "│" in line][-4:]
        assert help_lines[-1].rstrip(" │").endswith("…"), help_lines  # the recipe help is longer than 4 lines
        for name in ("shakespeare-char-20261123-101500", "addition-20261123-101500-2"):
            shutil.copytree(runs / "addition-completed", runs / name)
        await pilot.press("r")
        await until(
            pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one(RunsTable).row_count, "runs"
        )
        await pilot.pause(0.2)
        text = visible_text(app)
        assert "shakespeare-char-20261123-101500" in text
        assert re.search(r"best val\s+accuracy", text) and "0.504" in text  # the metric, whole, named in its header
        assert "preset" not in text  # a whole column left out, not one cut at the edge


async def test_at_200x50_every_help_line_is_whole(runs):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(200, 50)) as pilot:
        await replayed(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        text = visible_text(app)
        assert "or back to the previous screen (the run keeps going)" in text
        assert "…" not in text


async def test_at_80x24_the_plot_options_take_one_row_at_most(runs):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await replayed(pilot)
        await pilot.press("g", "x", "z", "u")  # every option on, and the system pane narrows the plots
        await pilot.pause(0.2)
        for plot in screen.query(MetricPlot):
            assert "\n" not in plot.note, (plot.id, plot.note)
        assert "log y" in visible_text(app)


async def test_the_stats_line_keeps_elapsed_and_leaves_out_whole_fields(runs):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(80, 24)) as pilot:
        await replayed(pilot)
        await pilot.pause(0.2)
        line = next(line for line in visible_text(app).splitlines() if line.startswith(" step 300/300"))
        assert "elapsed 0:" in line and "ETA" not in line  # a finished run has no ETA to show
        assert line.rstrip().endswith(tuple("0123456789")) and "…" not in line


async def test_while_talk_has_the_focus_the_footer_says_which_key_still_works(runs):
    app = GPTBenchApp(attach=runs / "addition-completed")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await replayed(pilot)
        await pilot.press("t")
        await until(pilot, lambda: app.focused and app.focused.id == "prompt", "the prompt")
        assert re.search(r"esc\s+Back", visible_text(app).splitlines()[-1])
        await pilot.press("escape")
        await until(pilot, lambda: screen.query_one("TabbedContent").active == "watch", "the dashboard")
