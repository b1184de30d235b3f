"""A sweep's spec, objective and slots: checked in-process, before anything runs or is created."""

import pytest

from workbench.config import ConfigError
from workbench.sweep.objective import Objective
from workbench.sweep.resources import cpu_cores, parse_parallel, plan_slots
from workbench.sweep.spec import build_spec, default_name, write_spec
from workbench.sweep.trials import read_sweep


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"grid": ["train.lrr=1e-3"]}, "Unknown config key 'train.lrr'"),
        ({"grid": ["train.lr=1e-3,fast"]}, "train.lr must be a number, got 'fast'"),
        ({"grid": ["model.activation=gelu,swish"]}, "model.activation must be one of"),
        ({"grid": ["train.lr="]}, "--grid train.lr has no values"),
        ({"grid": ["train.lr=1e-3,1e-3"]}, "lists a value twice"),
        ({"grid": ["train.lr=1e-3", "train.lr=1e-2"]}, "--grid train.lr is given twice"),
        ({"grid": ["data.ndigit=1,2"]}, "data.ndigit cannot vary within one sweep"),
        ({"grid": ["model.vocab_size=64,128"]}, "model.vocab_size cannot vary"),
        ({"grid": ["train.seed=1,2"]}, "train.seed cannot vary"),
        ({"grid": ["model.n_head=3,5"]}, "model.n_embd=48 is not divisible by model.n_head=5"),
        ({"grid": ["model.n_head=3,4", "model.n_embd=48,45"]}, "The setting model.n_embd=45 model.n_head=4"),
        ({"grid": ["train.lr=1e-3"], "sets": ["train.lr=1e-2"]}, "train.lr is both swept and --set"),
        ({"sets": ["train.seed=3"]}, "--set train.seed is set by the sweep itself"),
        ({"space": ["train.lr=log:1e-4:1e-2"]}, "needs --trials N"),
        ({"space": ["train.lr=log:0:1e-2"], "trials": 4}, "a log-uniform range must be above 0"),
        ({"space": ["train.lr=normal:0:1"], "trials": 4}, "is not a distribution"),
        ({"space": ["model.n_layer=int:1.5:4"], "trials": 4}, "int takes whole numbers"),
        ({"space": ["model.n_layer=int:0:4"], "trials": 4}, "model.n_layer must be at least 1"),
        ({"grid": ["train.lr=1e-3"], "space": ["model.n_layer=int:1:4"], "trials": 2}, "do not mix"),
        ({"grid": ["train.lr=1e-3"], "trials": 3}, "--trials counts sampled settings"),
        ({"seeds": 0}, "--seeds must be at least 1"),
        ({"objective": "steps_to:x"}, "needs a val loss after steps_to"),
        ({"objective": "best loss"}, "is not an objective"),
        ({"prune": "mean"}, "--prune must be one of none, median, halving"),
    ],
)
def test_bad_specs_are_refused_with_a_hint(kwargs, says):
    with pytest.raises(ConfigError) as info:
        build_spec("addition", **kwargs)
    assert says in info.value.message
    assert info.value.hint


def test_a_grid_is_the_product_of_its_keys_times_the_seeds():
    spec = build_spec("addition", grid=["train.lr=1e-3,3e-3", "model.n_layer=2,3,4"], seeds=3, objective="steps_to:1.5")
    assert spec.settings_count == 6 and spec.trial_count == 18
    assert len({tuple(s.items()) for s in spec.settings}) == 6
    sets = spec.overrides({"train.lr": "1e-3", "model.n_layer": "2"}, 2)
    assert "train.seed=2" in sets and "train.target_val_loss=1.5" in sets
    assert default_name(spec) == "addition-lr-n-layer"
    assert build_spec(**{"preset": "addition", **_args(spec)}) == spec  # the spec round-trips through its command


def _args(spec) -> dict:
    """The spec's own command line, parsed back the way the CLI's options would hand it over."""
    args, out = spec.command_args()[1:], {"grid": [], "space": [], "sets": []}
    flags = {"--grid": "grid", "--space": "space", "--set": "sets"}
    for flag, value in zip(args[::2], args[1::2]):
        if flag in flags:
            out[flags[flag]].append(value)
        else:
            out[flag[2:]] = int(value) if flag in ("--seeds", "--trials") else value
    return out


def test_objectives_know_their_direction():
    assert Objective.parse("val_loss").direction == "minimize"
    assert Objective.parse("accuracy").direction == "maximize"
    assert Objective.parse("ppl").direction == "minimize"
    assert Objective.parse("seconds_to:1.8857").is_time


def test_cpu_slots_split_the_cores():
    spec = build_spec("addition", grid=["train.lr=1e-3,3e-3"], sets=["train.device=cpu"])
    two = plan_slots(spec, 2)
    assert [s.threads for s in two] == [max(1, cpu_cores() // 2)] * 2 and two[0].concurrent == 2
    timed = build_spec("addition", grid=["train.lr=1e-3,3e-3"], sets=["train.device=cpu"], objective="seconds_to:2")
    assert [s.threads for s in plan_slots(timed, None)] == [cpu_cores()]  # a clock wants the machine to itself
    with pytest.raises(ConfigError):
        parse_parallel("0")


def test_a_sweep_not_started_yet_reads_as_queued_trials(tmp_path):
    spec = build_spec("addition", grid=["train.lr=1e-3,3e-3"], seeds=2)
    write_spec(tmp_path, spec, "sqlite:///x.db")
    view = read_sweep(tmp_path)
    assert len(view.trials) == 4 and {t.status for t in view.trials} == {"queued"}
    assert [s.rank for s in view.settings] == [None, None]
