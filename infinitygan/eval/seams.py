"""Seam scores: is a tile grid visible where the server's tiles meet?

Pure numpy on uint8 images [..., H, W, 3], so tests can feed them synthetic blocks. A seam is a
jump across a tile border that the image content does not explain, so every border jump is
compared with the same jump measured on the lines just beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
    tile borders; the renderer promises tiled == onepass to one level, so the ratio of the two
    jumps is ~1, and the ratio to `neighbours` says whether a tile grid is visible."""
    if onepass.shape != tiled.shape or onepass.shape[0] != 2 * tile:
        raise ValueError(f"need two [2T, 2T, 3] blocks, got {onepass.shape} and {tiled.shape}")
    return {
        "border_tiled": border_step(tiled, tile, tile),
        "border_onepass": border_step(onepass, tile, tile),
        "neighbours": neighbour_step(tiled, tile, tile),
        "max_abs_diff": float(np.abs(tiled.astype(np.int16) - onepass.astype(np.int16)).max()),
    }


def summarise(stats: Sequence[dict[str, float]]) -> dict[str, float]:
    """Several blocks' `seam_stats` as one: means, the largest pixel difference, and the two
    ratios of means (`ratio`: tiled vs one-pass border jump; `vs_neighbours`: tiled border vs
    the lines beside it)."""
    mean = {k: float(np.mean([s[k] for s in stats])) for k in stats[0] if k != "max_abs_diff"}
    mean["max_abs_diff"] = max(s["max_abs_diff"] for s in stats)
    mean["ratio"] = mean["border_tiled"] / max(mean["border_onepass"], 1e-12)
    mean["vs_neighbours"] = mean["border_tiled"] / max(mean["neighbours"], 1e-12)
    return mean


def real_seam(images: Sequence[np.ndarray], rng: np.random.Generator, per_image: int = 8) -> float:
    """`vs_neighbours` of real photos [H, W, 3] at random interior lines: the value for images
    that have no tile grid at all (~1; a ratio of means, like the generated blocks')."""
    borders, neighbours = [], []
    for x in images:
        for _ in range(per_image):
            col = int(rng.integers(3, x.shape[1] - 2))
            row = int(rng.integers(3, x.shape[0] - 2))
            borders.append(border_step(x, col, row))
            neighbours.append(neighbour_step(x, col, row))
    return float(np.mean(borders) / max(np.mean(neighbours), 1e-12))
