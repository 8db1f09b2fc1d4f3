"""Repetition score: does a long strip of canvas repeat itself horizontally?

A generator that ignored its local latents and followed only its periodic horizontal
coordinates would repeat every coordinate period. Pure numpy on uint8 strips [H, W, 3], so tests
can feed them synthetic periodic and random strips.
"""

from __future__ import annotations

import numpy as np


def _gray(img: np.ndarray) -> np.ndarray:
    """uint8 [..., H, W, 3] -> float64 luminance-ish mean of the channels in [0, 1]."""
    return img.astype(np.float64).mean(axis=-1) / 255.0


def autocorrelation(strip: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised horizontal autocorrelation r(L), L = 0..max_lag, of a strip [H, W, 3].

    Each row's mean is removed (the sky-to-ground gradient is not repetition), then r(L) is the
    Pearson-style correlation of the strip with itself shifted by L columns over their overlap:
    sum x[:, c] x[:, c+L] / sqrt(sum_left x^2 * sum_right x^2), computed with one FFT per row.
    """
    x = _gray(strip)
    w = x.shape[1]
    if not 0 < max_lag < w:
        raise ValueError(f"max_lag must be in (0, {w}), got {max_lag}")
    x = x - x.mean(axis=1, keepdims=True)
    n = 1 << int(np.ceil(np.log2(2 * w)))
    spec = np.fft.rfft(x, n=n, axis=1)
    num = np.fft.irfft(spec * np.conj(spec), n=n, axis=1)[:, : max_lag + 1].sum(axis=0)
    energy = (x * x).sum(axis=0)  # [W]
    csum = np.concatenate(([0.0], np.cumsum(energy)))
    lags = np.arange(max_lag + 1)
    left = csum[w - lags]  # columns [0, W - L)
    right = csum[w] - csum[lags]  # columns [L, W)
    return num / np.sqrt(np.maximum(left * right, 1e-12))


def repetition_stats(
    strip: np.ndarray, period: int, tolerance: int, rng: np.random.Generator, n_random: int = 256
) -> dict[str, float]:
    """Horizontal repetition of a long strip, at lags beyond half the coordinate period.

    `peak`: the largest r(L) for L in [period/2, W/2]; `at_period`: the largest r(L) within
    +-tolerance px of a multiple of the coordinate period (where a model that ignores z_l and
    follows only its periodic coordinates would repeat); `random`: the mean r(L) at random lags
    in the same range. A strip without repetition has all three near 0; an exactly periodic one
    has `at_period` near 1.
    """
    w = strip.shape[1]
    lo, hi = max(1, period // 2), w // 2
    if hi <= lo:
        raise ValueError(f"a {w} px strip is too short for period {period} (need > {2 * lo} px)")
    r = autocorrelation(strip, hi)
    window = r[lo : hi + 1]
    near = [
        r[max(lo, k * period - tolerance) : min(hi, k * period + tolerance) + 1]
        for k in range(1, hi // period + 1)
    ]
    near = [a for a in near if a.size]
    random_lags = rng.integers(lo, hi + 1, size=n_random)
    return {
        "peak": float(window.max()),
        "peak_lag": int(lo + window.argmax()),
        "at_period": float(max(a.max() for a in near)) if near else float("nan"),
        "random": float(r[random_lags].mean()),
    }
