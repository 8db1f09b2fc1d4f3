"""The evaluation report's rows and its printed table.

Every figure is one row: the checkpoint's value beside the real floor and the untrained ceiling,
and which direction is better. The JSON report keeps the raw values; the table rounds them.
"""

from __future__ import annotations

import numpy as np

Row = dict[str, float | str | None]


def _num(value: float | None) -> float | None:
    """JSON has no NaN: an undefined figure is null."""
    return None if value is None or not np.isfinite(value) else float(value)


def row(trained: float | None, real: float | None, untrained: float | None, better: str) -> Row:
    """One report row; a missing or undefined value (no real analogue, NaN) is None."""
    return {
        "trained": _num(trained),
        "real": _num(real),
        "untrained": _num(untrained),
        "better": better,
    }


def _fmt(value: float | None, scale: float = 1.0) -> str:
    if value is None:
        return "-"
    return f"{value * scale:.4g}"


def format_table(report: dict) -> str:
    """The report's rows as a fixed-width table (KID shown x1000)."""
    head = ("metric", "trained", "real floor", "untrained", "better")
    rows = [head]
    for name, r in report["metrics"].items():
        scale = 1000.0 if "_kid" in name else 1.0
        label = f"{name} (x1000)" if scale != 1.0 else name
        rows.append(
            (
                label,
                _fmt(r["trained"], scale),
                _fmt(r["real"], scale),
                _fmt(r["untrained"], scale),
                r["better"],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
