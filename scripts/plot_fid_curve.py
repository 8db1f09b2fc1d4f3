"""Plot FID against images seen for the model card: the full `infinitygan eval` patch FIDs
(one line of `checkpoints/training/small-evals.jsonl` per evaluated checkpoint) and the quick
FIDs the training loop logs in its metrics file (a few hundred patches: biased upwards, so the
two are drawn as separate series, never joined).

    .venv/bin/python scripts/plot_fid_curve.py \\
        --evals checkpoints/training/small-evals.jsonl \\
        --metrics checkpoints/training/small-metrics.jsonl -o docs/fid-curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display
import matplotlib.pyplot as plt


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--evals", type=Path, required=True, help="JSONL: step, images, patch_fid, ...")
    p.add_argument("--metrics", type=Path, required=True, help="the training metrics JSONL")
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args()

    evals = read_jsonl(args.evals)
    quick = [row for row in read_jsonl(args.metrics) if "quick_fid" in row]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for key, label in (
        ("patch_fid", "patch FID (eval, 256 patches)"),
        ("band_fid", "band FID (eval, 512 squares)"),
    ):
        points = [(row["images"] / 1000, row[key]) for row in evals if key in row]
        if points:
            ax.plot(*zip(*points, strict=True), "o-", label=label)
    floors = [row["patch_fid_real"] for row in evals if "patch_fid_real" in row]
    if floors:
        ax.axhline(floors[-1], color="gray", ls="--", lw=1, label="patch FID real floor")
    if quick:
        n = quick[-1]["fid_samples"]
        xs = [row["images"] / 1000 for row in quick]
        ax.plot(
            xs,
            [row["quick_fid"] for row in quick],
            ".",
            alpha=0.7,
            label=f"quick FID during training ({n} patches)",
        )
    ax.set_xlabel("images seen (thousands)")
    ax.set_ylabel("FID (lower is better)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("small preset: FID against training images")
    fig.tight_layout()
    fig.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
