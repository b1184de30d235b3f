"""What a trial is scored by, and the figures of a trial folded from its events.

    val_loss          the best val loss (lower is better; the default)
    steps_to:LOSS     the first eval step whose val loss is <= LOSS
    seconds_to:LOSS   the run's own clock (elapsed_s: start-up left out) at that eval
    METRIC            a task metric at its best, e.g. accuracy (addition), hellaswag_acc_norm;
                      higher is better, except losses and perplexities

A steps_to / seconds_to objective stops each trial at its target
(train.target_val_loss), unless --set gives one: time after the target tells nothing.
An objective a trial never reached is None here (Optuna is told +inf).

Plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ConfigError, parse_override
from ..run_state import RunState

KINDS = ("val_loss", "steps_to", "seconds_to")


@dataclass(frozen=True)
class Objective:
    kind: str  # val_loss | steps_to | seconds_to | metric
    target: float | None = None  # steps_to / seconds_to: the val loss to reach
    metric: str = ""  # kind metric: the task metric's name

    @classmethod
    def parse(cls, text: str) -> Objective:
        kind, sep, rest = text.partition(":")
        hint = "e.g. --objective val_loss, steps_to:1.8857, seconds_to:1.8857 or accuracy"
        if kind in ("steps_to", "seconds_to"):
            try:
                target = float(rest)
            except ValueError:
                raise ConfigError(
                    f"--objective {text!r} needs a val loss after {kind}, like {kind}:1.8857.", hint
                ) from None
            if not target > 0:
                raise ConfigError(f"--objective {text!r}: the target val loss must be above 0.", hint)
            return cls(kind, target)
        if sep or not text.replace("_", "").isalnum():
            raise ConfigError(f"--objective {text!r} is not an objective.", hint)
        return cls("val_loss") if text == "val_loss" else cls("metric", metric=text)

    @property
    def maximize(self) -> bool:
        return self.kind == "metric" and not any(word in self.metric for word in ("loss", "ppl"))

    @property
    def direction(self) -> str:
        return "maximize" if self.maximize else "minimize"

    @property
    def is_time(self) -> bool:
        return self.kind == "seconds_to"

    @property
    def label(self) -> str:
        if self.kind == "val_loss":
            return "best val loss"
        if self.kind == "metric":
            return f"best {self.metric}"
        return f"{'steps' if self.kind == 'steps_to' else 'seconds'} to val {self.target:g}"

    def trainer_sets(self, sets: list[str]) -> list[str]:
        """What each trial's trainer gets for this objective: a target stops it once reached."""
        if self.target is None or any(parse_override(s)[0] == "train.target_val_loss" for s in sets):
            return []
        return [f"train.target_val_loss={self.target!r}"]

    def intermediate(self, event: dict) -> float | None:
        """What an eval event tells the pruner: the val loss, or the task metric it is scored by."""
        value = (event.get("metrics") or {}).get(self.metric) if self.kind == "metric" else event.get("val_loss")
        return float(value) if isinstance(value, (int, float)) else None

    def value(self, figures: TrialFigures) -> float | None:
        if self.kind == "val_loss":
            return figures.state.best_val_loss
        if self.kind == "steps_to":
            return figures.steps_to_target
        if self.kind == "seconds_to":
            return figures.seconds_to_target
        return figures.best_metrics.get(self.metric)


def report_target(objective: Objective, sets: list[str]) -> float | None:
    """The val loss the report's "to target" columns count to: the objective's, else --set train.target_val_loss."""
    if objective.target is not None:
        return objective.target
    for text in sets:
        key, value = parse_override(text)
        if key == "train.target_val_loss":
            try:
                return float(value) or None
            except ValueError:
                return None
    return None


@dataclass
class TrialFigures:
    """One trial's events folded: the run's state, and when it first reached the target."""

    target: float | None = None
    state: RunState = field(default_factory=RunState)
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)  # each task metric at its best

    def apply(self, event: dict) -> bool:
        if not self.state.apply(event):
            return False
        if event["event"] == "eval":
            val = event.get("val_loss")
            if self.target is not None and self.steps_to_target is None and val is not None and val <= self.target:
                self.steps_to_target = int(event["step"])
                self.seconds_to_target = self.state.elapsed_s  # the clock at the end of this eval
            for name, value in (event.get("metrics") or {}).items():
                if isinstance(value, (int, float)):
                    better = max if Objective("metric", metric=name).maximize else min
                    self.best_metrics[name] = better(value, self.best_metrics.get(name, value))
        return True
