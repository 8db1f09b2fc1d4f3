"""Canvas-level scores that need no feature network: seams between independently rendered tiles,
horizontal repetition of a long strip, and pairwise diversity. Pure numpy on uint8 images
[..., H, W, 3], so tests can feed them synthetic strips and tiles.
"""

from __future__ import annotations

import numpy as np


def _gray(img: np.ndarray) -> np.ndarray:
    """uint8 [..., H, W, 3] -> float64 luminance-ish mean of the channels in [0, 1]."""
    return img.astype(np.float64).mean(axis=-1) / 255.0


def column_step(img: np.ndarray, col: int) -> float:
    """Mean |img[:, col-1] - img[:, col]| in [0, 1] units: the jump across a vertical border."""
    a = img[..., :, col - 1, :].astype(np.float64)
    b = img[..., :, col, :].astype(np.float64)
    return float(np.abs(a - b).mean() / 255.0)


def row_step(img: np.ndarray, row: int) -> float:
    """Mean |img[row-1] - img[row]| in [0, 1] units: the jump across a horizontal border."""
    a = img[..., row - 1, :, :].astype(np.float64)
    b = img[..., row, :, :].astype(np.float64)
    return float(np.abs(a - b).mean() / 255.0)


NEIGHBOURS = (-2, -1, 1, 2)  # lines beside a border that a seam detector compares it with


def border_step(img: np.ndarray, col: int, row: int) -> float:
    """Mean jump across the vertical line before `col` and the horizontal line before `row`."""
    return (column_step(img, col) + row_step(img, row)) / 2.0


def neighbour_step(img: np.ndarray, col: int, row: int) -> float:
    """The same jump at the lines 1 and 2 px beside that border: what the border would look like
    if it were no seam. (Comparing with the whole image would not do: the server's tile grid
    puts a border exactly on the horizon, where every image has its largest vertical jump.)"""
    return float(np.mean([border_step(img, col + d, row + d) for d in NEIGHBOURS]))


def seam_stats(onepass: np.ndarray, tiled: np.ndarray, tile: int) -> dict[str, float]:
    """Compare a 2x2-tile block rendered in one pass with the same block assembled from four
    independently rendered tiles ([2T, 2T, 3] each). `border_*` is the mean jump across the two
    tile borders; the seamlessness contract says tiled == onepass to one level, so the ratio of
    the two jumps is ~1, and the ratio to `neighbours` says whether a tile grid is visible."""
    if onepass.shape != tiled.shape or onepass.shape[0] != 2 * tile:
        raise ValueError(f"need two [2T, 2T, 3] blocks, got {onepass.shape} and {tiled.shape}")
    return {
        "border_tiled": border_step(tiled, tile, tile),
        "border_onepass": border_step(onepass, tile, tile),
        "neighbours": neighbour_step(tiled, tile, tile),
        "max_abs_diff": float(np.abs(tiled.astype(np.int16) - onepass.astype(np.int16)).max()),
    }


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


def pair_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over pairs of the L2 distance between rows of a and b (features [N, D])."""
    return float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=1).mean())


def pixel_pair_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference (in [0, 1] units) between paired uint8 images."""
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean() / 255.0)
