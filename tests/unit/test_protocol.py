"""The event protocol and the command channel, on their own (no torch, no trainer)."""

import json
import threading

import pytest

from workbench import control, events
from workbench.runs import follow_events, read_events


def test_events_round_trip_and_nan_becomes_null():
    e = events.make(
        "step", step=1, loss=float("nan"), lr=1e-3, grad_norm=0.5, tokens_per_sec=1e3, mfu=None, elapsed_s=0.1
    )
    line = events.encode(e)
    assert "\n" not in line and "NaN" not in line
    back = events.decode(line)
    assert back["event"] == "step" and back["loss"] is None and back["step"] == 1


def test_events_missing_fields_and_garbage_are_rejected():
    with pytest.raises(events.ProtocolError, match="missing"):
        events.make("eval", step=1)
    with pytest.raises(events.ProtocolError):
        events.decode("hello")
    with pytest.raises(events.ProtocolError):
        events.decode(json.dumps({"event": "nope"}))
    with pytest.raises(events.ProtocolError, match="without its fields"):  # readers index them
        events.decode(json.dumps({"event": "step", "step": 3}))


def test_commands_reach_the_inbox_without_blocking(tmp_path):
    inbox = control.CommandInbox(tmp_path)
    assert inbox.poll() == []  # nothing sent: returns at once
    assert control.is_live(tmp_path)
    control.send_command(tmp_path, "pause")
    control.send_command(tmp_path, "sample", id="a", prompt="ROMEO:")
    got = inbox.poll()
    assert [c["cmd"] for c in got] == ["pause", "sample"] and got[1]["prompt"] == "ROMEO:"
    inbox.close()
    assert not control.is_live(tmp_path)
    with pytest.raises(control.RunNotLive):
        control.send_command(tmp_path, "stop")


def test_a_dead_trainers_fifo_is_not_live(tmp_path):
    import os

    os.mkfifo(tmp_path / control.CONTROL_FILE)  # left behind by a killed trainer
    assert not control.is_live(tmp_path)
    with pytest.raises(control.RunNotLive):
        control.send_command(tmp_path, "stop")


def test_unknown_command_is_refused(tmp_path):
    with pytest.raises(events.ProtocolError):
        control.send_command(tmp_path, "explode")


def test_follow_events_sees_old_and_new_lines_but_not_torn_ones(tmp_path):
    path = tmp_path / "events.jsonl"
    first = events.encode(events.make("log", message="one"))
    path.write_text(first + "\n")
    seen, done = [], threading.Event()

    def reader():
        for e in follow_events(tmp_path, should_stop=done.is_set, poll_s=0.01):
            seen.append(e["message"])
            if len(seen) == 2:
                done.set()

    t = threading.Thread(target=reader)
    t.start()
    second = events.encode(events.make("log", message="two"))
    with open(path, "a") as f:
        f.write(second[:10])
        f.flush()
        f.write(second[10:] + "\n")
    t.join(timeout=5)
    done.set()
    assert seen == ["one", "two"]
    assert [e["message"] for e in read_events(tmp_path)] == ["one", "two"]


def test_an_engine_process_writes_one_flushed_line_per_event_and_outlives_its_reader():
    import io

    from workbench.process_frame import EventWriter

    out = io.StringIO()
    writer = EventWriter(out)
    writer.emit("log", message="hello")
    assert events.decode(out.getvalue().splitlines()[0])["message"] == "hello"

    class GoneReader(io.StringIO):
        def write(self, s):
            raise BrokenPipeError

    gone = EventWriter(GoneReader())
    gone.emit("log", message="nobody listens")  # dropped, not raised
    assert gone.stream is None


def test_one_table_says_how_each_failure_ends_an_engine_process():
    from workbench.config import ConfigError
    from workbench.process_frame import failed

    class CheckpointError(ConfigError):  # a ConfigError by its MRO, as the engine's is
        pass

    class OutOfMemoryError(RuntimeError):  # torch's, matched by its name: this module never imports torch
        pass

    bad = failed(CheckpointError("No checkpoint at x.", "train first"), bad_input="checkpoint")
    assert (bad.kind, bad.code, bad.message, bad.hint) == ("checkpoint", 2, "No checkpoint at x.", "train first")
    oom = failed(OutOfMemoryError("CUDA out of memory"))
    assert (oom.kind, oom.code, oom.message) == ("oom", 1, "The GPU ran out of memory.")
    assert (failed(KeyboardInterrupt()).kind, failed(KeyboardInterrupt()).code) == ("stopped", 130)
    bug = failed(ZeroDivisionError("division by zero"))
    assert (bug.kind, bug.code, bug.message) == ("internal", 1, "ZeroDivisionError: division by zero")


def test_run_process_turns_a_failure_into_one_error_event(capsys):
    from workbench.config import ConfigError
    from workbench.process_frame import run_process

    def work(events):
        events.emit("progress", stage="x", done=1, total=2)
        raise ConfigError("--data is not a file.", "pass a text file")

    assert run_process(work, bad_input="data") == 2
    lines = [events.decode(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in lines] == ["progress", "error"]
    assert lines[1]["kind"] == "data" and lines[1]["hint"] == "pass a text file"
    assert run_process(lambda events: {"a": "result"}, bad_input="data") == 0  # the work's result is no exit code
