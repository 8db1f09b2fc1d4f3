"""Worlds: anchors and blend weights are a pure function of (world, seed, position), a partition
of unity with at most two anchors anywhere and one anchor with weight 1 away from transitions,
valid from the origin to the canvas bound; the parameters are validated and name the version."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infinitygan.model.canvas import MAX_COORD
from infinitygan.model.latents import global_latent
from infinitygan.model.world import DEFAULT_WORLD, ONE_STYLE, World

WORLD = World(biome_px=1000, transition_px=300)


def _weights_at(world: World, seed: int, positions: np.ndarray) -> dict[int, np.ndarray]:
    """{anchor index: its weights at `positions`} (anchors with weight 0 everywhere omitted)."""
    first, w = world.weights(seed, positions)
    return {first + a: w[a] for a in range(w.shape[0]) if w[a].any()}


@pytest.mark.parametrize("origin", [0, -7_777, 2**39 - 5_000, -(2**39), MAX_COORD - 5_000])
def test_weights_are_a_partition_of_unity_with_at_most_two_anchors(origin: int) -> None:
    p = np.arange(origin, origin + 5_000)
    _, w = WORLD.weights(3, p)
    assert w.dtype == np.float32 and w.shape[1] == p.size
    assert np.abs(w.sum(axis=0) - 1).max() < 1e-6
    assert w.min() >= 0 and w.max() <= 1
    assert ((w > 0).sum(axis=0) <= 2).all()
    assert w[:, 0].any() and w[:, -1].any()  # no unused anchor at either end
    # five biomes of ~1000 px: each anchor has a stretch of weight exactly 1, and transitions
    # between them; the weight changes by at most what a smoothstep over 300 px allows
    assert 4 <= w.shape[0] <= 7
    assert (w == 1).any(axis=0).mean() > 0.5
    assert np.abs(np.diff(w, axis=1)).max() <= 1.5 / 300 + 1e-6


def test_weights_are_a_pure_function_of_position() -> None:
    """The weight of a position does not depend on what else is asked with it (any window)."""
    p = np.arange(-3_000, 3_000)
    whole = _weights_at(WORLD, 11, p)
    for lo, hi in [(0, 1), (100, 2_000), (2_500, 6_000), (5_999, 6_000)]:
        part = _weights_at(WORLD, 11, p[lo:hi])
        for k, w in part.items():
            np.testing.assert_array_equal(w, whole[k][lo:hi])
    scattered = np.array([2_999, -3_000, 17, 17, 40])
    for k, w in _weights_at(WORLD, 11, scattered).items():
        np.testing.assert_array_equal(w, whole[k][scattered + 3_000])


def test_anchors_are_jittered_within_a_quarter_biome_and_depend_on_the_seed() -> None:
    ks = np.arange(-500, 500)
    x = WORLD.anchor_positions(5, ks)
    jitter = x - ks * WORLD.biome_px
    assert np.abs(jitter).max() <= WORLD.biome_px // 4
    assert jitter.std() > WORLD.biome_px / 10  # really jittered: no visible period
    assert not np.array_equal(x, WORLD.anchor_positions(6, ks))
    np.testing.assert_array_equal(x, WORLD.anchor_positions(5, ks))


def test_each_anchor_rules_around_its_position() -> None:
    ks = np.arange(-20, 20)
    x = WORLD.anchor_positions(9, ks)
    for k, pos in zip(ks, x, strict=True):
        first, w = WORLD.weights(9, np.array([pos]))
        assert (first, w.tolist()) == (k, [[1.0]])


def test_anchor_latents_are_hashed_and_anchor_zero_is_the_seeds_own() -> None:
    z = WORLD.anchor_latents(4, -2, 5, 32)
    assert z.shape == (5, 32) and z.dtype == torch.float32
    torch.testing.assert_close(z[2], global_latent(4, 32), rtol=0, atol=0)
    torch.testing.assert_close(WORLD.anchor_latents(4, 1, 2, 32), z[3:], rtol=0, atol=0)
    assert not torch.equal(z[0], z[1])
    assert not torch.equal(WORLD.anchor_latents(5, -2, 5, 32)[0], z[0])


def test_a_transition_is_centred_between_its_anchors() -> None:
    xa, xb = WORLD.anchor_positions(2, np.array([3, 4]))
    mid = (xa + xb) // 2
    half = WORLD.transition_px // 2
    p = np.array([mid - half - 1, mid, mid + half + 1])
    first, w = WORLD.weights(2, p)
    assert first == 3
    np.testing.assert_allclose(w, [[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]], atol=1 / WORLD.transition_px)


@pytest.mark.parametrize(
    "args,exc,msg",
    [
        ((-1, 10), ValueError, "biome_px"),
        ((8, 4), ValueError, "biome_px"),
        ((2**41, 4), ValueError, "biome_px"),
        ((1000, 0), ValueError, "transition_px"),
        ((1000, 501), ValueError, "transition_px"),
        ((1000.0, 10), TypeError, "biome_px"),
        ((1000, True), TypeError, "transition_px"),
    ],
)
def test_bad_worlds_are_rejected(args: tuple, exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        World(*args)


def test_one_style_world_has_no_anchors_and_keeps_the_checkpoint_version() -> None:
    assert World(0, 1234) == ONE_STYLE and not ONE_STYLE.biomes
    assert ONE_STYLE.version("abc") == "abc"
    assert ONE_STYLE.describe() == {"biomes": False, "biome_px": 0, "transition_px": 0}
    with pytest.raises(ValueError, match="no anchors"):
        ONE_STYLE.weights(1, np.arange(3))


def test_world_parameters_name_the_version() -> None:
    versions = {
        w.version("abc") for w in (ONE_STYLE, DEFAULT_WORLD, World(4096, 512), World(2048, 1024))
    }
    assert len(versions) == 4
    assert DEFAULT_WORLD.version("abc") == "abc-w1b4096t1024"
    assert "." not in DEFAULT_WORLD.version("abc")  # cache keys separate fields with dots
