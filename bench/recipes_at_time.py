"""Best val loss of each side of a recipe pair at its classic run's time to target, from the raw events.

    python bench/recipes_at_time.py results/2026-12-03-recipes.json [results/2026-12-03-recipes-ablation.json]

`bench/recipes.py` reports each side's best val within its classic's whole
wall time (the command's start to its end). This reads the same raw events
again and takes the best val within classic's time to the target instead:
the wall time at which classic's first eval reached it. The events carry
wall-clock times, not the command's start, so each run's start is recovered
as t(its first eval at or below the target) - its `to_target_s` in the
summary (rounded there to 0.1 s, so an eval within 0.1 s of the limit is
flagged). Writes `<summary stem>-at-classic-target.json` beside the summary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TOLERANCE_S = 0.1  # to_target_s is rounded to 0.1 s in the summary


def evals(path: Path) -> list[dict]:
    events = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in events if e["event"] == "eval"]


def since_start(path: Path, target: float, to_target_s: float) -> list[tuple[float, float]]:
    """(seconds since the command started, val loss) of each eval of one run."""
    runs = evals(path)
    start = next(e["t"] for e in runs if e["val_loss"] <= target) - to_target_s
    return [(e["t"] - start, e["val_loss"]) for e in runs]


def best_within(points: list[tuple[float, float]], limit: float) -> dict:
    inside = [v for t, v in points if t <= limit + TOLERANCE_S / 2]
    near = [round(t, 2) for t, _ in points if abs(t - limit) < TOLERANCE_S]
    return {"best_val": round(min(inside), 4), "evals_within_0.1s_of_the_limit": near}


def main(summaries: list[Path]) -> None:
    for summary_path in summaries:
        summary = json.loads(summary_path.read_text())
        raw = summary_path.with_suffix("")
        target, rows = summary["target"], []
        for i, row in enumerate(summary["shakespeare_char"]):
            label = row["variant"].replace("=", "-")
            classic, variant = row["classic"], row["variant_figures"]
            limit = classic["to_target_s"]
            rows.append(
                {
                    "variant": row["variant"],
                    "classic_to_target_s": limit,
                    "classic": best_within(since_start(raw / f"char-{i}-classic.events.jsonl", target, limit), limit),
                    "variant_figures": best_within(
                        since_start(raw / f"char-{i}-{label}.events.jsonl", target, variant["to_target_s"]), limit
                    ),
                }
            )
            print(
                f"{row['variant']}: at {limit} s, classic {rows[-1]['classic']}, variant {rows[-1]['variant_figures']}"
            )
        out = summary_path.with_name(f"{summary_path.stem}-at-classic-target.json")
        out.write_text(json.dumps({"source": summary_path.name, "target": target, "pairs": rows}, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
