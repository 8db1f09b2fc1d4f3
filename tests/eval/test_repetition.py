"""Repetition score: an exactly periodic strip repeats at its period, a random one nowhere; the
FFT autocorrelation equals the direct sum."""

from __future__ import annotations

import numpy as np
import pytest

from infinitygan.eval import repetition


def test_repetition_score_detects_a_periodic_strip() -> None:
    rng = np.random.default_rng(0)
    period = 256
    pattern = (rng.random((64, period, 3)) * 255).astype(np.uint8)
    periodic = np.tile(pattern, (1, 8, 1))  # 64 x 2048
    random = (rng.random(periodic.shape) * 255).astype(np.uint8)
    rep = repetition.repetition_stats(periodic, period, 2, np.random.default_rng(1))
    ref = repetition.repetition_stats(random, period, 2, np.random.default_rng(1))
    assert rep["at_period"] > 0.99 and rep["peak_lag"] % period == 0
    assert abs(ref["at_period"]) < 0.05 and abs(ref["random"]) < 0.02
    assert rep["at_period"] > 10 * ref["peak"]


def test_autocorrelation_is_one_at_lag_zero_and_matches_a_direct_sum() -> None:
    strip = (np.random.default_rng(2).random((4, 300, 3)) * 255).astype(np.uint8)
    r = repetition.autocorrelation(strip, 100)
    assert r[0] == pytest.approx(1.0)
    x = strip.astype(np.float64).mean(-1) / 255
    x -= x.mean(axis=1, keepdims=True)
    lag = 37
    direct = (x[:, :-lag] * x[:, lag:]).sum() / np.sqrt(
        (x[:, :-lag] ** 2).sum() * (x[:, lag:] ** 2).sum()
    )
    assert r[lag] == pytest.approx(direct, rel=1e-9)
