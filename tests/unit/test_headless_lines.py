"""The headless lines fit the terminal: fields go whole, in a stated order, never cut mid-word."""

from rich.console import Console
from rich.text import Text

from workbench.commands.run import DROPPED_FIRST, PIPED_WIDTH, HeadlessView

STARTED = {"event": "run_started", "config": {"train": {"max_steps": 2000}}, "t": 0.0}
GPU_STEP = {"event": "step", "step": 100, "loss": 2.5, "lr": 6e-4, "grad_norm": 0.5, "tokens_per_sec": 163_000.0}
GPU_STEP |= {"mfu": 0.412, "elapsed_s": 3.0, "active_s": 3.0, "t": 1.0}
FINISHED = {"event": "run_finished", "reason": "completed", "step": 2000, "best_val_loss": 0.0123, "t": 9.0}
FINISHED |= {"metrics": {"accuracy": 1.0, "accuracy_all": 0.9987}}


def view(width: int | None) -> HeadlessView:
    """A view on a terminal `width` columns wide; None: piped."""
    console = Console(width=width, force_terminal=True) if width else Console(width=80, force_terminal=False)
    v = HeadlessView(console, as_json=False)
    v.state.apply(STARTED)
    return v


def plain(markup: str) -> list[str]:
    return Text.from_markup(markup).plain.splitlines()


def test_the_step_line_drops_grad_norm_then_lr_then_mfu_then_tok_s():
    assert DROPPED_FIRST == ("grad_norm", "lr", "mfu", "tokens_per_sec")
    whole = "step  100/2000 | loss 2.5000 | lr 6.00e-04 | grad 0.500 | 163.00k tok/s | MFU 41.2% | ETA -"
    assert plain(view(PIPED_WIDTH).format(GPU_STEP)) == [whole]
    for width, shown in [
        (len(whole), whole),
        (80, "step  100/2000 | loss 2.5000 | lr 6.00e-04 | 163.00k tok/s | MFU 41.2% | ETA -"),
        (70, "step  100/2000 | loss 2.5000 | 163.00k tok/s | MFU 41.2% | ETA -"),
        (60, "step  100/2000 | loss 2.5000 | 163.00k tok/s | ETA -"),
        (40, "step  100/2000 | loss 2.5000 | ETA -"),
        (20, "step  100/2000 | loss 2.5000 | ETA -"),  # step, loss and ETA always stay
    ]:
        assert plain(view(width).format(GPU_STEP)) == [shown], width


def test_a_cpu_step_line_has_no_mfu_and_fits_80_columns():
    line = plain(view(80).format(GPU_STEP | {"mfu": None}))
    assert line == ["step  100/2000 | loss 2.5000 | lr 6.00e-04 | grad 0.500 | 163.00k tok/s | ETA -"]


def test_piped_output_keeps_every_field():
    assert "grad 0.500" in view(None).format(GPU_STEP)


def test_the_summary_breaks_between_fields_never_inside_one():
    at_80 = view(80)
    for event in (GPU_STEP, FINISHED):
        at_80.state.apply(event)
    assert plain(at_80.format(FINISHED)) == [
        "completed at step 2000 in 0:11 | best val loss 0.0123 | accuracy 1.0000",
        "  accuracy_all 0.9987",
    ]
    assert len(plain(view(PIPED_WIDTH).format(FINISHED))) == 1
