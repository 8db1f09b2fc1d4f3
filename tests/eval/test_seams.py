"""Seam scores: independently rendered tiles of a tiny generator match the one-pass render, and
the detector sees a tile grid where there is one."""

from __future__ import annotations

import numpy as np
import pytest

from infinitygan.eval import evaluate, seams
from tests.eval.synthetic import landscapes


def test_seam_score_of_a_tiny_random_generator_is_one(tiny_g) -> None:
    stats = evaluate.seam_blocks(tiny_g, 1, np.random.default_rng(0))
    assert stats["ratio"] == pytest.approx(1.0, abs=0.02)
    assert stats["max_abs_diff"] <= 1
    assert stats["border_onepass"] > 0


def test_seam_score_sees_a_visible_tile_grid() -> None:
    """The detector itself: a block whose right half is brightened has a border far above its
    neighbouring lines."""
    block = landscapes(1, size=64)[0]
    tiled = block.copy()
    tiled[:, 32:] = np.clip(tiled[:, 32:].astype(int) + 60, 0, 255).astype(np.uint8)
    stats = seams.seam_stats(block, tiled, 32)
    assert stats["border_tiled"] > 3 * stats["neighbours"]
    assert stats["max_abs_diff"] >= 59
    summary = seams.summarise([stats, seams.seam_stats(block, block, 32)])
    assert summary["max_abs_diff"] == stats["max_abs_diff"]
    assert summary["vs_neighbours"] > 1.5 and summary["ratio"] > 1.5
