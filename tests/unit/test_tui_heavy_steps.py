"""A heavy step (minutes per optimizer step) as the app shows it: its micro-steps, what a request
or a live sample waits for, and whose weights answered. The trainer's side is played here by the
run directory's events and the real command inbox (workbench.control), so no torch runs."""

import json
import re
import shutil
from pathlib import Path

import pytest
from screen_text import until, visible_text

from workbench.control import CommandInbox
from workbench.tui.app import GPTBenchApp
from workbench.tui.screens.run import RunScreen

FIXTURES = Path(__file__).parents[1] / "fixtures" / "runs"


@pytest.fixture
def heavy(tmp_path, monkeypatch):
    """A run in its first step of 32 micro-steps of 40 s each, its 'trainer' listening for commands."""
    monkeypatch.setenv("GPTBENCH_RUNS", str(tmp_path / "runs"))
    run = tmp_path / "runs" / "heavy"
    run.mkdir(parents=True)
    shutil.copy(FIXTURES / "addition-completed" / "config.json", run)
    lines = (FIXTURES / "addition-completed" / "events.jsonl").read_text().splitlines()[:3]  # up to "training"
    progress = {"event": "progress", "t": 1795416700.0, "stage": "micro_step", "done": 7, "total": 32}
    progress |= {"step": 1, "tokens_seen": 7 * 48, "micro_s": 40.0}
    (run / "events.jsonl").write_text("\n".join([*lines, json.dumps(progress)]) + "\n")
    inbox = CommandInbox(run)
    yield run, inbox
    inbox.close()


def append(run: Path, event: dict) -> None:
    with open(run / "events.jsonl", "a") as f:
        f.write(json.dumps({"t": 1795416800.0, **event}) + "\n")


def commands(inbox: CommandInbox, seen: list) -> list:
    seen += inbox.poll()
    return seen


async def live(pilot) -> RunScreen:
    await until(
        pilot,
        lambda: (
            isinstance(pilot.app.screen, RunScreen)
            and pilot.app.screen.trainer_running
            and pilot.app.screen.state.progress
        ),
        "the live run",
    )
    return pilot.app.screen


async def test_watch_shows_the_micro_step_and_a_request_says_what_it_waits_for(heavy):
    run, inbox = heavy
    app = GPTBenchApp(attach=run)
    async with app.run_test(size=(200, 50)) as pilot:
        await live(pilot)
        await pilot.pause(0.3)
        assert re.search(r"micro-step\s+7/32 of step 1", visible_text(app))  # the stats panel
    app = GPTBenchApp(attach=run)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await live(pilot)
        await pilot.pause(0.3)
        text = visible_text(app)
        assert "step 1/300 · micro 7/32" in text  # the stats line
        assert "step 1 · micro 7/32…" in text and "waiting for data" not in text  # the plots
        await pilot.press("p")
        await until(pilot, lambda: "PAUSE REQUESTED  after this micro-step, ~40 s" in visible_text(app), "the wait")
        seen = []
        await until(pilot, lambda: {"cmd": "pause"} in commands(inbox, seen), "the pause command")
        append(run, {"event": "status", "state": "paused", "step": 0})
        await until(pilot, lambda: screen.state.status == "paused", "the pause")
        assert "after this micro-step" not in visible_text(app)
        assert screen.state.tokens_seen == 7 * 48
        # stopped there: the step is undone, and its micro-steps count no more
        append(run, {"event": "run_finished", "reason": "stopped", "step": 0, "best_val_loss": None, "metrics": {}})
        await until(pilot, lambda: screen.state.finished, "the stop")
        assert screen.state.tokens_seen is None and screen.state.micro_step is None


async def test_talk_on_a_heavy_live_model_says_it_waits_and_whose_weights_answered(heavy):
    run, inbox = heavy
    app = GPTBenchApp(attach=run)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await live(pilot)
        await pilot.press("t", *"12+34", "enter")
        await until(pilot, lambda: "waits for the next micro-step boundary, ~40 s" in visible_text(app), "the wait")
        seen = []
        await until(pilot, lambda: any(c["cmd"] == "sample" for c in commands(inbox, seen)), "the sample command")
        sample_id = next(c["id"] for c in seen if c["cmd"] == "sample")
        append(
            run,
            {
                "event": "step",
                "step": 1,
                "loss": 2.0,
                "lr": 1e-3,
                "grad_norm": 1.0,
                "tokens_per_sec": 1.0,
                "mfu": None,
                "elapsed_s": 280.0,
            },
        )
        for piece, done in (("4", False), ("6", True)):
            event = {"event": "sample", "id": sample_id, "text": piece, "done": done, "weights_step": 1}
            append(run, event | ({"answer": 46, "expected": 46, "correct": True} if done else {}))
        await until(pilot, lambda: "live model, weights of step 1" in visible_text(app), "the answer's label")
        assert "waits for the next micro-step" not in visible_text(app)
        assert screen.state.progress is None  # the step it was in is logged
