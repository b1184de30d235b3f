"""The app driven by Pilot against the real trainer: tiny runs on CPU.

Each test trains for a few seconds at most: the runs are long on paper
(max_steps 5000) and the tests stop them as soon as they have seen what they
came for, through the app's own controls. They must pass on a loaded 2-core
machine: every trainer gets one thread, and waits are on events, with ceilings
far above what an idle machine needs.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from screen_text import until as wait_until
from screen_text import visible_text

from workbench.control import is_live, send_command
from workbench.run_files import BEST_CKPT, LAST_CKPT
from workbench.runs import read_events
from workbench.tui.app import GPTBenchApp
from workbench.tui.screens.picker import PickerScreen
from workbench.tui.screens.quit import QuitScreen, StoppingScreen
from workbench.tui.screens.run import RunScreen
from workbench.tui.widgets.sample_console import SampleConsole

TINY = ["train.eval_every=100", "train.log_every=10"]
LONG = [*TINY, "train.max_steps=5000"]  # stopped by each test long before the end
SHARED_TEXT = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare" / "input.txt"


@pytest.fixture(autouse=True)
def runs(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GPTBENCH_RUNS", str(tmp_path / "runs"))
    # Trainers inherit this: two torch processes with a thread per core each slow down 10-30x on 2 cores.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path / "runs"


@pytest.fixture
def stray_trainers():
    """Trainers a failing test leaves behind get killed, not leaked."""
    processes: list = []  # anything with kill(): EngineProcess, Popen
    yield processes
    for process in processes:
        process.kill()


async def until(pilot, condition, what: str, timeout: float = 90.0) -> None:
    """Live runs: a generous ceiling, for a machine that other jobs share."""
    await wait_until(pilot, condition, what, timeout)


def events_of(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir) if e["event"] == kind]


async def frame(pilot, screen: RunScreen) -> str:
    """Draw now (frames are paced by CPU budget, so waiting for one is slow) and read it."""
    screen.redraw()
    await pilot.pause(0.1)
    return visible_text(pilot.app)


def answers(screen: RunScreen) -> list[dict]:
    """The final `sample` event of every exchange in the console, in order."""
    return [e.final for e in screen.query_one(SampleConsole)._exchanges.values() if e.final]


async def ask(pilot, screen: RunScreen, prompt: str) -> dict:
    before = len(answers(screen))
    await pilot.press("t", *prompt, "enter")
    await until(pilot, lambda: len(answers(screen)) > before, f"an answer to {prompt}")
    return answers(screen)[-1]


async def launched_addition(app: GPTBenchApp, pilot, overrides: list[str] = LONG) -> RunScreen:
    """Launch a long addition run from the app and wait for its run screen."""
    app.launch_run("addition", overrides)
    await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
    return app.screen


async def training(pilot, screen: RunScreen, steps: int = 5) -> None:
    await until(pilot, lambda: len(screen.state.series["loss"]) >= steps, "steps on the dashboard")


async def test_launch_watch_talk_control_and_stop(runs, stray_trainers):
    app = GPTBenchApp()
    async with app.run_test(size=(100, 30)) as pilot:
        picker = app.screen
        await until(pilot, lambda: picker.current == "addition", "the presets")
        table = picker.query_one("#config-table")

        async def edit(key: str, value: str) -> None:
            table.focus()
            table.move_cursor(row=table.get_row_index(key))
            await pilot.press("enter", "ctrl+u", *value, "enter")

        await edit("train.lr", "fast")
        assert "train.lr must be a number, got 'fast'." in visible_text(app)
        await pilot.press("escape")
        for override in LONG:
            await edit(*override.split("="))
        assert picker.overrides == dict(o.split("=") for o in LONG)

        await pilot.press("l")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        stray_trainers.append(screen.link.process)
        await training(pilot, screen, steps=8)
        losses = screen.state.series["loss"].values
        assert losses[-1] < losses[0]
        text = await frame(pilot, screen)
        assert re.search(r"step \d+/5,000", text) and re.search(r"loss \d\.\d+", text)  # 100x30: the stats on one line

        answer = await ask(pilot, screen, "23+58")
        assert answer["expected"] == 81 and "correct" in answer
        assert "live model" in visible_text(app)

        await pilot.press("escape", "p")
        await until(pilot, lambda: screen.state.status == "paused", "paused")
        paused_at = screen.state.step
        await pilot.pause(0.5)
        assert screen.state.step == paused_at and "p Resume" in await frame(pilot, screen)
        await pilot.press("p")
        await until(pilot, lambda: screen.state.step > paused_at, "training again")
        await pilot.press("c")
        await until(
            pilot,
            lambda: screen.state.last_checkpoint and screen.state.last_checkpoint["step"] > paused_at,
            "a checkpoint",
        )

        await pilot.press("s")
        await until(pilot, lambda: not screen.trainer_running, "the trainer to exit")
        assert screen.state.finished["reason"] == "stopped" and screen.state.crash is None
        assert screen.link.process.poll() == 130
        assert (screen.run_dir / LAST_CKPT).exists()

        # The run is over: the console now asks a sampler serving best.pt.
        answer = await ask(pilot, screen, "12+34")
        assert answer["expected"] == 46
        assert "best.pt" in visible_text(app)


async def test_attach_to_a_headless_run_and_control_it(runs, stray_trainers):
    run_dir = runs / "headless"
    argv = [sys.executable, "-m", "workbench.engine.worker", "--run-dir", str(run_dir), "--preset", "addition"]
    for o in LONG:
        argv += ["--set", o]
    trainer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stray_trainers.append(trainer)
    deadline = time.monotonic() + 30
    while not is_live(run_dir):
        assert time.monotonic() < deadline and trainer.poll() is None, "the headless trainer did not start"
        time.sleep(0.1)

    app = GPTBenchApp(attach=run_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await training(pilot, screen)
        assert "attached, live" in await frame(pilot, screen)
        answer = await ask(pilot, screen, "40+2")
        assert answer["expected"] == 42
        await pilot.press("escape", "p")
        await until(pilot, lambda: screen.state.status == "paused", "paused")
        await pilot.press("p")
        await until(pilot, lambda: screen.state.status == "training", "training again")
        await pilot.press("s")
        await until(pilot, lambda: screen.state.finished is not None, "the run to finish")
        assert screen.state.finished["reason"] == "stopped"
        assert trainer.wait(timeout=30) == 130
        await until(pilot, lambda: not screen.trainer_running, "the control channel to close")
        assert screen.state.crash is None
        assert "attached, the trainer has ended" in await frame(pilot, screen)  # not a replay: we saw it live


async def test_a_killed_trainer_shows_the_crash_and_resumes(runs, stray_trainers):
    app = GPTBenchApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await launched_addition(app, pilot)
        stray_trainers.append(screen.link.process)
        await until(
            pilot, lambda: screen.state.last_checkpoint and screen.state.step >= 110, "a checkpoint and more steps"
        )
        screen.link.process.process.kill()
        await until(pilot, lambda: screen.state.crash is not None, "the crash")
        text = await frame(pilot, screen)
        assert "CRASHED" in text and "Exit code: -9" in text and "Press R to resume" in text
        # The kill may land after a later checkpoint than the one the screen had shown: the file says which.
        resume_step = [e for e in events_of(screen.run_dir, "checkpoint") if e["kind"] == "last"][-1]["step"]
        elapsed_then = screen.state.elapsed_s

        await pilot.press("R")
        await until(
            pilot, lambda: screen.state.status == "training" and screen.state.step > resume_step, "the resumed run"
        )
        stray_trainers.append(screen.link.process)
        assert screen.state.started["resumed_from"] == resume_step
        times = screen.state.series["loss"].times
        assert times == sorted(times) and times[-1] > 0.5 * elapsed_then  # the time axis goes on, no line back to 0
        assert screen.state.series["loss"].steps[-1] == screen.state.step  # curves pick up at the checkpoint
        await pilot.press("s")
        await until(pilot, lambda: not screen.trainer_running, "the stop")
        assert screen.state.finished["reason"] == "stopped"


async def test_quit_can_leave_the_run_training_headless(runs, stray_trainers):
    app = GPTBenchApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await launched_addition(app, pilot)
        trainer = screen.link.process
        stray_trainers.append(trainer)
        await training(pilot, screen)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), "the quit question")
        await pilot.press("l")
    # The app is gone; the trainer is not, and it can still be controlled.
    run_dir = screen.run_dir
    steps_then = len(events_of(run_dir, "step"))
    deadline = time.monotonic() + 90
    while len(events_of(run_dir, "step")) <= steps_then:
        assert trainer.poll() is None and time.monotonic() < deadline, "the trainer stopped training when the app quit"
        time.sleep(0.2)
    send_command(run_dir, "stop")
    assert trainer.wait(timeout=90) == 130


async def test_quit_can_stop_the_run_first(runs, stray_trainers):
    app = GPTBenchApp()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await launched_addition(app, pilot)
        stray_trainers.append(screen.link.process)
        await training(pilot, screen)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), "the quit question")
        await pilot.press("s")
        await until(pilot, lambda: not app.is_running, "the app to quit after the stop")
    assert screen.link.process.poll() == 130
    assert read_events(screen.run_dir)[-2]["reason"] == "stopped"


async def test_commands_show_as_requested_and_a_stop_that_hangs_is_offered_a_kill(runs, stray_trainers):
    app = GPTBenchApp()
    app.stop_timeout_s = 2
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await launched_addition(app, pilot)
        trainer = screen.link.process
        stray_trainers.append(trainer)
        await training(pilot, screen)
        os.kill(trainer.pid, signal.SIGSTOP)  # a trainer deep in a long step: it reads no command for now
        try:
            await pilot.press("p")
            assert "PAUSE REQUESTED" in await frame(pilot, screen)  # at once, before the trainer could answer
            await pilot.press("p")  # changed my mind
            assert "RESUME REQUESTED" in await frame(pilot, screen)
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitScreen), "the quit question")
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, StoppingScreen), "the countdown")
            assert "stop requested" in visible_text(app) and "Waiting" in visible_text(app)
            await until(pilot, lambda: "Still running after 2 s" in visible_text(app), "the offer to kill")
            assert app.is_running and trainer.poll() is None  # never quits leaving a trainer asked to stop
            # a stopped trainer writes nothing: what the offer says of resuming is what is on disk
            offer = " ".join(str(app.screen.query_one("#stopping-text").render()).split())
            if (screen.run_dir / LAST_CKPT).exists():
                assert "its last checkpoint stays, `gptbench run --resume` goes on from it" in offer
            else:
                assert "it has saved no checkpoint yet (no last.pt)" in offer
            await pilot.press("k")
            await until(pilot, lambda: not app.is_running, "the app to quit after the kill")
        finally:
            if trainer.poll() is None:
                os.kill(trainer.pid, signal.SIGCONT)
    assert trainer.wait(timeout=30) == -signal.SIGKILL


async def test_talk_samples_from_last_pt_when_there_is_no_best_pt(runs, stray_trainers):
    app = GPTBenchApp()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await launched_addition(
            app, pilot, ["train.eval_every=5000", "train.log_every=10", "train.max_steps=5000"]
        )
        stray_trainers.append(screen.link.process)
        await training(pilot, screen, steps=2)
        await pilot.press("s")
        await until(pilot, lambda: not screen.trainer_running, "the stop")
        assert " STOPPED " in await frame(pilot, screen) and "FINISHED" not in await frame(pilot, screen)
        assert (screen.run_dir / LAST_CKPT).exists() and not (screen.run_dir / BEST_CKPT).exists()
        answer = await ask(pilot, screen, "12+34")
        assert answer["expected"] == 46
        text = visible_text(app)
        assert "last.pt" in text and "no best.pt" not in text
        assert "greedy decoding" in text and "temp" not in text  # addition: no settings that would be ignored


async def test_leaving_a_finished_run_ends_the_sampler_talk_started(runs, stray_trainers):
    """A sampler no screen uses would hold a process, and a share of the cores, until the app quits."""
    app = GPTBenchApp()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await launched_addition(app, pilot, ["train.eval_every=10", "train.log_every=5", "train.max_steps=20"])
        stray_trainers.append(screen.link.process)
        await until(pilot, lambda: not screen.trainer_running, "the end of the run")
        assert (await ask(pilot, screen, "12+34"))["expected"] == 46
        sampler = screen.sampler.process
        stray_trainers.append(sampler)
        await pilot.press("escape", "escape")  # Talk, Watch, then back to the picker
        await until(pilot, lambda: isinstance(app.screen, PickerScreen), "the picker")
        await until(pilot, lambda: sampler.poll() is not None, "the sampler's end")
        app.open_run(screen.run_dir)  # the run is still there to talk to: the next prompt starts a sampler again
        await until(pilot, lambda: app.screen is screen, "the run screen again")
        assert (await ask(pilot, screen, "20+22"))["expected"] == 42


@pytest.mark.skipif(not SHARED_TEXT.exists(), reason="needs ../shared/data/tinyshakespeare")
async def test_escape_cancels_a_live_sample_at_once(runs, stray_trainers):
    tiny_text_model = [
        "model.n_layer=1",
        "model.n_head=2",
        "model.n_embd=32",
        "model.block_size=64",
        "train.batch_size=4",
        "train.device=cpu",
        f"data.path={SHARED_TEXT}",
        *LONG,
    ]
    app = GPTBenchApp()
    async with app.run_test(size=(100, 30)) as pilot:
        app.launch_run("shakespeare-char", tiny_text_model)
        await until(pilot, lambda: isinstance(app.screen, RunScreen), "the run screen")
        screen = app.screen
        stray_trainers.append(screen.link.process)
        await training(pilot, screen, steps=2)
        await pilot.press("t")
        console = screen.query_one(SampleConsole)
        console.query_one("#max_new_tokens").value = "3000"
        await pilot.press(*"ROMEO:", "enter")
        await until(
            pilot, lambda: console.streaming_id and console._exchanges[console.streaming_id].text, "the first piece"
        )
        sample_id = console.streaming_id
        await pilot.press("escape")
        exchange = console._exchanges[sample_id]
        shown = exchange.text
        assert exchange.cancelled and console.streaming_id is None and "(cancelled)" in visible_text(app)
        # Whatever the trainer still sends for it (today: the rest of the sample) is not shown.
        await until(
            pilot,
            lambda: any(e.get("id") == sample_id and e.get("done") for e in events_of(screen.run_dir, "sample")),
            "the trainer to end the sample",
        )
        await pilot.pause(0.3)
        assert exchange.text == shown and exchange.final is None
        await pilot.press("escape")  # nothing streams: back to the dashboard
        await until(pilot, lambda: screen.query_one("TabbedContent").active == "watch", "the dashboard")
        await pilot.press("s")
        await until(pilot, lambda: not screen.trainer_running, "the stop")
