"""Hashed latents (a contract): N(0,1), uncorrelated, deterministic, window-independent.

The values are a pure function of (seed, stream, coordinates), so every statistical check below
is deterministic; the thresholds are ~4-5 standard errors, loose enough for any decent hash and
tight enough to catch a broken one (e.g. a mix that leaks the coordinate into the value).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from infinitygan.model import latents


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _check_normal(x: np.ndarray) -> None:
    x = x.astype(np.float64).ravel()
    n = x.size
    assert abs(x.mean()) < 5 / np.sqrt(n), x.mean()
    assert abs(x.std() - 1.0) < 5 / np.sqrt(2 * n), x.std()
    assert stats.kstest(x, "norm").pvalue > 1e-3
    assert abs(stats.skew(x)) < 5 * np.sqrt(6 / n)
    assert abs(stats.kurtosis(x)) < 5 * np.sqrt(24 / n)


@pytest.mark.parametrize("origin", [(0, 0), (-40, -7), (2**40, -(2**40))])
def test_local_latent_is_standard_normal_and_uncorrelated(origin: tuple[int, int]) -> None:
    z = latents.local_latent(3, origin[0], origin[1], 96, 96, 8).numpy()  # [C, H, W]
    assert z.shape == (8, 96, 96) and z.dtype == np.float32
    _check_normal(z)
    bound = 5 / np.sqrt(z[:, :, 1:].size)
    assert abs(_corr(z[:, :, 1:], z[:, :, :-1])) < bound  # horizontal neighbours
    assert abs(_corr(z[:, 1:], z[:, :-1])) < bound  # vertical neighbours
    assert abs(_corr(z[:, 1:, 1:], z[:, :-1, :-1])) < bound  # diagonal neighbours
    assert abs(_corr(z[1:], z[:-1])) < bound  # neighbouring channels of the same cell
    # nothing systematic per channel, row or column
    assert np.abs(z.mean(axis=(1, 2))).max() < 5 / np.sqrt(96 * 96)
    assert np.abs(z.mean(axis=(0, 2))).max() < 5 / np.sqrt(8 * 96)
    assert np.abs(z.mean(axis=(0, 1))).max() < 5 / np.sqrt(8 * 96)


def test_noise_map_is_standard_normal_and_uncorrelated() -> None:
    n = latents.noise_map(11, 2, -150, 37, 256, 256).numpy()
    _check_normal(n)
    bound = 5 / np.sqrt(n.size)
    assert abs(_corr(n[:, 1:], n[:, :-1])) < bound
    assert abs(_corr(n[1:], n[:-1])) < bound
    # mirrored coordinates (two's complement of negatives) are not related
    pos = latents.noise_map(11, 2, 0, 1, 1, 4096).numpy()
    neg = latents.noise_map(11, 2, 0, -4096, 1, 4096).numpy()[:, ::-1]
    assert abs(_corr(pos, neg)) < 5 / np.sqrt(4096)


def test_global_latent_is_standard_normal_across_seeds() -> None:
    z = np.stack([latents.global_latent(s, 64).numpy() for s in range(200)])  # [seed, dim]
    _check_normal(z)
    assert abs(_corr(z[1:], z[:-1])) < 5 / np.sqrt(z[1:].size)  # consecutive seeds
    assert abs(_corr(z[:, 1:], z[:, :-1])) < 5 / np.sqrt(z[:, 1:].size)  # neighbouring dims


def test_no_coupling_between_seed_and_coordinates() -> None:
    """Regression: the hash once combined the (seed, stream) state and a coordinate with a
    symmetric XOR, so z_g[dim s] of seed s was always -8.3 (its two halves cancelled) and
    z_g(seed a)[b] == z_g(seed b)[a]; seeds 5 - G and 5 also shared noise layers (state seed +
    G * stream)."""
    z = np.stack([latents.global_latent(s, 64).numpy() for s in range(64)])
    assert np.abs(z).max() < 5.0
    assert not np.any(np.isclose(z, z.T) & ~np.eye(64, dtype=bool))
    golden = 0x9E3779B97F4A7C15
    other = 5 + (2**64 - golden)  # 5 - G mod 2**64, a valid seed
    assert 0 <= other < 2**63
    a = latents.noise_map(5, 0, 0, 0, 64, 64).numpy()
    b = latents.noise_map(other, 1, 0, 0, 64, 64).numpy()
    assert abs(_corr(a, b)) < 5 / 64


def test_deterministic_across_calls() -> None:
    for _ in range(2):
        torch.manual_seed(123)  # the global RNG must play no part
        np.random.seed(123)
        a = latents.local_latent(9, -3, 5, 7, 6, 4)
        torch.manual_seed(456)
        np.random.seed(456)
        b = latents.local_latent(9, -3, 5, 7, 6, 4)
        assert torch.equal(a, b)
    assert torch.equal(latents.global_latent(5, 32), latents.global_latent(5, 32))
    assert torch.equal(latents.noise_map(5, 1, 2, 3, 4, 5), latents.noise_map(5, 1, 2, 3, 4, 5))


@pytest.mark.parametrize("row0,col0", [(0, 0), (-17, -9), (2**39 - 5, -(2**39) - 5)])
def test_sub_window_equals_slice_of_larger_window(row0: int, col0: int) -> None:
    big = latents.local_latent(77, row0, col0, 20, 30, 6)
    sub = latents.local_latent(77, row0 + 4, col0 + 11, 9, 7, 6)
    assert torch.equal(sub, big[:, 4:13, 11:18])
    # fewer channels are the first channels: dim is not part of the hash input
    assert torch.equal(latents.local_latent(77, row0, col0, 20, 30, 3), big[:3])
    nbig = latents.noise_map(77, 3, row0, col0, 40, 50)
    nsub = latents.noise_map(77, 3, row0 + 13, col0 + 2, 5, 41)
    assert torch.equal(nsub, nbig[13:18, 2:43])
    assert torch.equal(latents.global_latent(77, 10), latents.global_latent(77, 20)[:10])


def test_streams_seeds_and_layers_differ() -> None:
    def c(a: torch.Tensor, b: torch.Tensor) -> float:
        return abs(_corr(a.numpy(), b.numpy()))

    bound = 5 / np.sqrt(64 * 64)
    base = latents.noise_map(1, 0, 0, 0, 64, 64)
    assert c(base, latents.noise_map(2, 0, 0, 0, 64, 64)) < bound  # seed
    assert c(base, latents.noise_map(1, 1, 0, 0, 64, 64)) < bound  # layer
    assert c(base, latents.noise_map(2**63 - 1, 0, 0, 0, 64, 64)) < bound
    z1 = latents.local_latent(1, 0, 0, 64, 64, 1)[0]
    assert c(base, z1) < bound  # z_l stream vs noise stream
    assert c(z1, latents.local_latent(2, 0, 0, 64, 64, 1)[0]) < bound
    # transposed coordinates are different values (rows and columns are not symmetric)
    assert c(base, base.t().contiguous()) < bound


@pytest.mark.parametrize(
    "seed,exc,msg",
    [
        (-1, ValueError, "0 <= seed < 2\\*\\*63"),
        (2**63, ValueError, "0 <= seed < 2\\*\\*63"),
        (2**64 + 1, ValueError, "0 <= seed"),
        (True, TypeError, "integer"),
        (1.0, TypeError, "integer"),
        ("3", TypeError, "integer"),
        (None, TypeError, "integer"),
    ],
)
def test_bad_seeds_rejected(seed: object, exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        latents.check_seed(seed)  # type: ignore[arg-type]
    with pytest.raises(exc, match=msg):
        latents.global_latent(seed, 4)  # type: ignore[arg-type]
    with pytest.raises(exc, match=msg):
        latents.local_latent(seed, 0, 0, 2, 2, 2)  # type: ignore[arg-type]


def test_valid_seed_edges() -> None:
    assert latents.check_seed(0) == 0
    assert latents.check_seed(2**63 - 1) == 2**63 - 1
    assert latents.check_seed(np.int64(5)) == 5
    assert not torch.equal(latents.global_latent(0, 8), latents.global_latent(2**63 - 1, 8))
    assert torch.isfinite(latents.noise_map(2**63 - 1, 0, -(2**50), 2**50 - 8, 8, 8)).all()
