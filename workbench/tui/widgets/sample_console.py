"""SampleConsole: the Talk tab. Type a prompt, watch the continuation stream in.

The console only collects prompts and shows answers: it posts `Submitted`
with the prompt and the sampling settings, and the run screen decides where
the prompt goes (the live trainer, or a sampler serving a checkpoint) and feeds
the streamed `sample` events back through `add_piece` / `fail`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from ...config import ConfigError

# The sampler reads a missing top_k as its default (200); a k larger than any
# vocabulary is how "no top-k cut" travels in a sample command.
NO_TOP_K = 2**31 - 1

# What the prompt box offers as an example, per preset (any other preset: per kind of data).
EXAMPLE_PROMPTS = {"addition": "23+58", "shakespeare-char": "ROMEO:", "gpt2-124m": "The meaning of life is"}
TEXT_EXAMPLE = "Once upon a time"


def prompt_placeholder(preset: str, addition: bool) -> str:
    example = EXAMPLE_PROMPTS.get(preset) or ("23+58" if addition else TEXT_EXAMPLE)
    return f"prompt, enter samples (e.g. {example}); esc back to the dashboard"


@dataclass
class SampleSettings:
    temperature: float = 0.8
    top_k: int = 200  # 0: no top-k cut
    top_p: float = 1.0
    max_new_tokens: int = 200

    def command_fields(self) -> dict:
        """The fields of a `sample` command (see events.py)."""
        return dict(
            temperature=self.temperature,
            top_k=self.top_k or NO_TOP_K,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
        )


class SampleExchange(Static):
    """One prompt and its answer, growing as pieces arrive."""

    def __init__(self, prompt: str, source: str, waiting: str = ""):
        super().__init__(classes="exchange")
        self.prompt, self.source, self.waiting = prompt, source, waiting
        self.weights_steps: list[int] = []  # a live answer: the steps whose weights decoded its pieces
        self.text = ""
        self.final: dict | None = None  # the done=True event (answer/expected/correct for addition)
        self.error: tuple[str, str] | None = None
        self.cancelled = False
        self.redraw()

    @property
    def streaming(self) -> bool:
        return self.final is None and self.error is None and not self.cancelled

    def redraw(self) -> None:
        source = self.source
        if self.weights_steps:  # the weights may change between two slices of a live answer
            first, last = self.weights_steps[0], self.weights_steps[-1]
            source += f", weights of step {first:,}" if first == last else f", weights of steps {first:,}-{last:,}"
        parts = [Text.assemble(("› ", "bold"), (self.prompt, "bold"), (f"   {source}", "dim"))]
        if self.final and "correct" in self.final:  # addition: the answer and its verdict say it all
            verdict = (
                ("✓ right", "bold green")
                if self.final["correct"]
                else (f"✗ wrong, expected {self.final.get('expected')}", "bold red")
            )
            parts.append(Text.assemble("= ", (str(self.final.get("answer")), "bold"), "   ", verdict))
        elif self.text:
            parts.append(Text(self.text))
        if self.error:
            message, hint = self.error
            parts.append(Text(f"{message}{f' Hint: {hint}' if hint else ''}", style="bold red"))
        elif self.cancelled:
            parts.append(Text("(cancelled)", style="dim"))
        elif self.final is None:
            waiting = f"{self.waiting}  " if self.waiting and not self.text else ""
            parts.append(Text(f"…  {waiting}(esc cancels)", style="dim"))
        self.update(Group(*parts))


def parse_settings(temperature: str, top_k: str, top_p: str, max_new_tokens: str) -> SampleSettings:
    """The settings row as typed; ConfigError names the bad field, like the CLI."""
    try:
        settings = SampleSettings(float(temperature), int(top_k), float(top_p), int(max_new_tokens))
    except ValueError:
        raise ConfigError(
            "The sampling settings must be numbers.", "e.g. temperature 0.8, top-k 200, top-p 1.0, max 200."
        ) from None
    if settings.temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}.", "0 is greedy; try 0.8.")
    if settings.top_k < 0:
        raise ConfigError(f"top-k must be >= 0, got {top_k}.", "0 turns the top-k cut off; try 200.")
    if not 0 < settings.top_p <= 1:
        raise ConfigError(f"top-p must be in (0, 1], got {top_p}.", "1.0 turns nucleus sampling off.")
    if settings.max_new_tokens < 1:
        raise ConfigError(f"max tokens must be at least 1, got {max_new_tokens}.", "try 200.")
    return settings


class SampleConsole(Vertical):
    HELP_TITLE = "Talk (while you type, letters go into the prompt)"
    # The screen's keys are letters, which the prompt takes while it has the focus; the footer
    # would be empty. Escape is the key that still works: say so there.
    BINDINGS = [
        Binding(
            "escape",
            "screen.back",
            "Back",
            tooltip="Cancel the answer coming in, or back to the dashboard (then the run's keys work again)",
            id="talk.back",
        )
    ]

    @dataclass
    class Submitted(Message):
        prompt: str
        settings: SampleSettings

    @dataclass
    class CheckpointChosen(Message):
        checkpoint: str

    def __init__(self, *, id: str | None = None, kept: dict[str, dict[str, str]] | None = None):
        """`kept`: the sampling settings as last typed, per preset (the app's, shared by every run's console)."""
        super().__init__(id=id)
        self._exchanges: dict[str, SampleExchange] = {}
        self._available: list[str] = ["best", "last"]  # checkpoints there are to sample from
        self.kept = {} if kept is None else kept
        self.preset = ""

    def compose(self) -> ComposeResult:
        defaults = SampleSettings()
        yield VerticalScroll(id="history")
        with Horizontal(id="sample-settings"):
            # Addition has one right answer: the sampler decodes it greedily, so the settings would do nothing.
            yield Static(
                Text("addition: greedy decoding, exactly n+1 digits; no sampling settings", style="dim"),
                id="greedy-note",
            )
            for field, label, value, kind in (
                ("temperature", "temp", defaults.temperature, "number"),
                ("top_k", "top-k", defaults.top_k, "integer"),
                ("top_p", "top-p", defaults.top_p, "number"),
                ("max_new_tokens", "max", defaults.max_new_tokens, "integer"),
            ):
                yield Label(label)
                yield Input(str(value), type=kind, id=field, compact=True, classes="setting")
        yield Select(
            [("best.pt", "best"), ("last.pt", "last")], value="best", allow_blank=False, id="checkpoint", compact=True
        )
        yield Input(placeholder=prompt_placeholder("", addition=False), id="prompt")

    def on_mount(self) -> None:
        self.query_one("#greedy-note").display = False

    def set_task(self, preset: str, addition: bool) -> None:
        """The run's preset: its example prompt, and the settings last typed for it.
        Addition shows why there are no sampling settings instead of settings that would be ignored."""
        self.preset = preset
        self.query_one("#prompt", Input).placeholder = prompt_placeholder(preset, addition)
        self.query_one("#greedy-note").display = addition
        for widget in self.query("#sample-settings > Label, #sample-settings > .setting"):
            widget.display = not addition
        for field, value in self.kept.get(preset, {}).items():
            self.query_one(f"#{field}", Input).value = value

    @on(Input.Changed, ".setting")
    def _setting_changed(self, event: Input.Changed) -> None:
        if self.preset:
            self.kept.setdefault(self.preset, {})[event.input.id] = event.value

    def show_checkpoints(self, visible: bool, available: list[str]) -> None:
        """Only a finished run samples from a checkpoint (`available`: "best", "last"); a live one uses the training
        model."""
        select = self.query_one("#checkpoint", Select)
        select.display = visible and bool(available)
        if available and available != self._available:
            current = select.value
            select.set_options([(f"{name}.pt", name) for name in available])
            select.value = current if current in available else available[0]
        self._available = list(available)

    @property
    def checkpoint(self) -> str | None:
        """The checkpoint to sample from; None when the run has none."""
        return str(self.query_one("#checkpoint", Select).value) if self._available else None

    @property
    def streaming_id(self) -> str | None:
        """The prompt whose answer is still coming in, if any."""
        return next((sample_id for sample_id, e in reversed(self._exchanges.items()) if e.streaming), None)

    def cancel(self, sample_id: str) -> None:
        """Stop showing that answer at once; pieces still on their way are dropped."""
        exchange = self._exchanges.get(sample_id)
        if exchange is not None:
            exchange.cancelled = True
            exchange.redraw()

    @on(Input.Submitted, "#prompt")
    def _submit(self, event: Input.Submitted) -> None:
        prompt = event.value
        if not prompt.strip():
            return
        values = {i.id: i.value for i in self.query(".setting").results(Input)}
        try:
            settings = parse_settings(**values)
        except ConfigError as exc:
            self.notify(f"{exc.message} {exc.hint}", severity="error", title="sampling settings")
            return
        event.input.clear()
        self.post_message(self.Submitted(prompt, settings))

    @on(Select.Changed, "#checkpoint")
    def _checkpoint_changed(self, event: Select.Changed) -> None:
        self.post_message(self.CheckpointChosen(str(event.value)))

    # -- answers, fed by the run screen -----------------------------------

    def begin(self, sample_id: str, prompt: str, source: str, waiting: str = "") -> None:
        """`waiting`: what the answer waits for, when that is long (a heavy live model)."""
        exchange = SampleExchange(prompt, source, waiting)
        self._exchanges[sample_id] = exchange
        history = self.query_one("#history", VerticalScroll)
        history.mount(exchange)
        history.scroll_end(animate=False)

    def add_piece(self, event: dict) -> None:
        exchange = self._exchanges.get(event["id"])
        if exchange is None or exchange.cancelled:
            return  # someone else's prompt (another app attached to the same run), or one cancelled
        exchange.text += event.get("text", "")
        if "weights_step" in event:
            exchange.weights_steps.append(event["weights_step"])
        if event.get("cancelled"):  # ended by the trainer (a stop, another app's cancel)
            exchange.cancelled = True
        elif event.get("done"):
            exchange.final = event
        exchange.redraw()
        self.query_one("#history", VerticalScroll).scroll_end(animate=False)

    def fail(self, sample_id: str, message: str, hint: str = "") -> None:
        exchange = self._exchanges.get(sample_id)
        if exchange is not None:
            exchange.error = (message, hint)
            exchange.redraw()

    def fail_pending(self, message: str, hint: str = "") -> None:
        """The sampler died: every unanswered prompt gets the reason."""
        for sample_id, exchange in self._exchanges.items():
            if exchange.streaming:
                self.fail(sample_id, message, hint)
