"""What the app's questions say: true to the run directories they are about."""

from types import SimpleNamespace

from workbench.run_files import LAST_CKPT
from workbench.tui.screens.quit import what_a_kill_keeps


def test_the_kill_offer_promises_a_resume_only_where_a_last_checkpoint_is(tmp_path):
    saved, fresh = tmp_path / "saved", tmp_path / "fresh"
    saved.mkdir()
    fresh.mkdir()
    (saved / LAST_CKPT).write_bytes(b"")
    runs = {name: SimpleNamespace(run_dir=path) for name, path in (("saved", saved), ("fresh", fresh))}
    assert "`gptbench run --resume` goes on from it" in what_a_kill_keeps([runs["saved"]])
    alone = what_a_kill_keeps([runs["fresh"]])
    assert "no last.pt" in alone and "resume" not in alone
    both = what_a_kill_keeps([runs["saved"], runs["fresh"]])
    assert both.startswith("saved can go on from last.pt") and "the others saved none yet" in both
