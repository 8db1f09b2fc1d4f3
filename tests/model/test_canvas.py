"""The seamlessness contract: a region rendered in one pass equals the same region assembled from
independently rendered 256x256 tiles (identical uint8, at most 1 level off), anywhere on the
canvas up to tile +-(2**31 - 1), whatever the batch, order or chunking; plus argument checks.

The renders run on INFINITYGAN_TEST_DEVICE (default cpu): `bench/gpu_check.py` runs this file
with `cuda`, so the contract is checked on the device that serves tiles there, whose renderer
takes the batched kernels, not only on the CPU's fused ones.
"""

from __future__ import annotations

import copy
import os
import random

import numpy as np
import pytest
import torch

from infinitygan.model import canvas
from infinitygan.model.canvas import (
    CanvasRenderer,
    Rect,
    anchors_reaching,
    downsample_2x,
    render_batch,
    render_region,
    window_inputs,
)
from infinitygan.model.networks import Generator
from infinitygan.model.world import ONE_STYLE, World
from tests.conftest import assert_close_uint8, assert_informative

T = 256
FAR = 2**31 - 2
DEVICE = torch.device(os.environ.get("INFINITYGAN_TEST_DEVICE", "cpu"))
on_cpu_only = pytest.mark.skipif(DEVICE.type != "cpu", reason="the CPU renderer's policy")
# The accelerator's policy (batch windows) is the device's own there, and forced on CPU here.
BATCH_WINDOWS = None if DEVICE.type != "cpu" else True


@pytest.fixture(scope="module")
def tiny_g(tiny_g: Generator) -> Generator:
    """The session's tiny generator on DEVICE (a copy there: the session's one stays on cpu)."""
    return tiny_g if DEVICE.type == "cpu" else copy.deepcopy(tiny_g).to(DEVICE)


def _assemble(tiles: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """[rows*cols, T, T, 3] in row-major tile order -> [rows*T, cols*T, 3]."""
    grid = tiles.reshape(rows, cols, T, T, 3)
    return grid.transpose(0, 2, 1, 3, 4).reshape(rows * T, cols * T, 3)


@pytest.mark.parametrize(
    "tx,ty",
    [(0, 0), (-1, -1), (-3, 2), (FAR, FAR), (-FAR, -FAR), (FAR, -FAR), (-(2**31), 2**31 - 2)],
)
def test_one_pass_equals_assembled_tiles(tiny_g: Generator, tx: int, ty: int) -> None:
    seed = 12345
    region = render_batch(tiny_g, [(seed, Rect(T * tx, T * ty, 2 * T, 2 * T))])[0]
    jobs = [(seed, Rect(T * (tx + i), T * (ty + j), T, T)) for j in range(2) for i in range(2)]
    tiles = [render_batch(tiny_g, [job])[0] for job in jobs]  # each tile on its own
    assert_informative(region)
    assert_close_uint8(_assemble(np.stack(tiles), 2, 2), region)


def test_metatile_4x4_equals_one_pass(tiny_g: Generator) -> None:
    x0, y0 = -2 * T, -T
    region = render_region(tiny_g, 9, Rect(x0, y0, 4 * T, 4 * T), max_chunk=4 * T)
    jobs = [(9, Rect(x0 + T * i, y0 + T * j, T, T)) for j in range(4) for i in range(4)]
    assert_close_uint8(_assemble(render_batch(tiny_g, jobs), 4, 4), region)  # 16 tiles, 1 batch


def test_far_tiles_differ_from_near_tiles(tiny_g: Generator) -> None:
    """Exact periodic reduction must not make the canvas repeat: z_l and noise vary."""
    near = render_batch(tiny_g, [(1, Rect(0, 0, T, T))])[0]
    far = render_batch(tiny_g, [(1, Rect(T * FAR, 0, T, T))])[0]
    assert np.abs(near.astype(int) - far).mean() > 10


def test_unaligned_rectangles_are_slices_of_a_larger_render(tiny_g: Generator) -> None:
    big = render_region(tiny_g, 4, Rect(-40, -24, 200, 120))
    for x, y, w, h in [(-13, 5, 37, 11), (-40, -24, 1, 1), (0, 0, 160, 96), (151, 90, 9, 6)]:
        part = render_region(tiny_g, 4, Rect(x, y, w, h))
        assert_close_uint8(part, big[y + 24 : y + 24 + h, x + 40 : x + 40 + w])


def test_batch_composition_and_order_do_not_matter(tiny_g: Generator) -> None:
    jobs = [
        (0, Rect(0, 0, 64, 48)),
        (2**63 - 1, Rect(-77, 13, 64, 48)),  # another seed, unaligned
        (0, Rect(T * FAR, -T * FAR, 64, 48)),  # same seed, far away
        (5, Rect(3, -1000, 64, 48)),  # crop differs: its own group inside the batch
        (0, Rect(0, 0, 64, 48)),  # a duplicate
    ]
    alone = [render_batch(tiny_g, [job])[0] for job in jobs]
    together = render_batch(tiny_g, jobs)
    for a, b in zip(alone, together, strict=True):
        assert_close_uint8(a, b)
    order = list(range(len(jobs)))
    random.Random(0).shuffle(order)
    shuffled = render_batch(tiny_g, [jobs[i] for i in order])
    for k, i in enumerate(order):
        assert_close_uint8(shuffled[k], alone[i])
    assert not np.array_equal(alone[0], alone[1])  # seeds differ
    assert np.array_equal(alone[0], alone[4])


def _forward_calls(
    tiny_g: Generator,
    monkeypatch: pytest.MonkeyPatch,
    jobs: list[tuple[int, Rect]],
    world: World = ONE_STYLE,
    batch_windows: bool | None = None,
) -> list[tuple[int, str]]:
    """(batch, impl) of every generator call while CanvasRenderer renders `jobs` ("field" for
    the spatial kernels of a biome transition)."""
    calls: list[tuple[int, str]] = []
    forward, synthesize_field = Generator.forward, Generator.synthesize_field

    def spy(self, z_global, *args, impl="batched", **kwargs):
        calls.append((z_global.shape[0], impl))
        return forward(self, z_global, *args, impl=impl, **kwargs)

    def spy_field(self, field, *args):
        calls.append((field.z.shape[0], "field"))
        return synthesize_field(self, field, *args)

    monkeypatch.setattr(Generator, "forward", spy)
    monkeypatch.setattr(Generator, "synthesize_field", spy_field)
    out = CanvasRenderer(tiny_g, world, batch_windows)(jobs)
    assert out.shape == (len(jobs), T, T, 3)
    return calls


@on_cpu_only
def test_cpu_renderer_runs_each_window_alone_with_the_fused_kernels(
    tiny_g: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [(s, Rect(T * s, 0, T, T)) for s in range(3)]
    assert _forward_calls(tiny_g, monkeypatch, jobs) == [(1, "fused")] * 3


def test_accelerator_renderer_batches_windows_and_fuses_a_lone_one(
    tiny_g: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [(s, Rect(T * s, 0, T, T)) for s in range(3)]
    calls = _forward_calls(tiny_g, monkeypatch, jobs, batch_windows=BATCH_WINDOWS)
    assert calls == [(3, "batched")]
    calls = _forward_calls(tiny_g, monkeypatch, jobs[:1], batch_windows=BATCH_WINDOWS)
    assert calls == [(1, "fused")]


def test_renderer_pixels_equal_the_batched_reference(tiny_g: Generator) -> None:
    """What an accelerator renders (one batched pass) equals what the CPU renders (fused, one
    window at a time), so the tile server's pixels do not depend on its hardware."""

    class BatchedRenderer(CanvasRenderer):
        def _forward(self, styles, z_local, coords, noise):
            z_global = torch.stack(styles).to(z_local.device)
            return self.generator(z_global, z_local, coords, noise=noise, impl="batched")

    jobs = [(7, Rect(-40, 10, 96, 64)), (8, Rect(-40, 10, 96, 64)), (7, Rect(56, 10, 96, 64))]
    fused = CanvasRenderer(tiny_g)(jobs)
    batched = BatchedRenderer(tiny_g)(jobs)
    for a, b in zip(fused, batched, strict=True):
        assert_informative(a)
        assert_close_uint8(a, b)
    served = render_batch(tiny_g, jobs)
    if DEVICE.type == "cpu":
        assert np.array_equal(served, fused)  # the CPU renderer is the fused path, bit for bit
    for a, b in zip(served, fused, strict=True):
        assert_close_uint8(a, b)


def test_render_order_does_not_matter(tiny_g: Generator) -> None:
    rects = [Rect(T * i, T * j, T, T) for j in (-1, 0) for i in (-1, 0)]
    first = [render_batch(tiny_g, [(3, r)])[0] for r in rects]
    render_batch(tiny_g, [(4, Rect(999, 999, 50, 50))])  # unrelated work in between
    again = [render_batch(tiny_g, [(3, r)])[0] for r in reversed(rects)]
    for a, b in zip(first, reversed(again), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("chunk", [24, 100, 257])
def test_chunked_region_equals_one_pass(tiny_g: Generator, chunk: int) -> None:
    rect = Rect(-101, -37, 300, 130)
    one = render_region(tiny_g, 21, rect, max_chunk=4096)
    assert_informative(one)
    assert_close_uint8(render_region(tiny_g, 21, rect, max_chunk=chunk), one)


def test_progress_bar_does_not_change_pixels(tiny_g: Generator) -> None:
    rect = Rect(0, 0, 64, 64)
    a = render_region(tiny_g, 1, rect, max_chunk=32, progress=True)
    assert np.array_equal(a, render_region(tiny_g, 1, rect, max_chunk=32))


@pytest.mark.parametrize(
    "args,exc,msg",
    [
        ((0, 0, 0, 10), ValueError, ">= 1"),
        ((0, 0, 10, -5), ValueError, ">= 1"),
        ((0, 0, 2**20, 2**20), ValueError, "at most"),
        ((0, 0, 1.5, 10), TypeError, "width must be an integer"),
        ((0.0, 0, 10, 10), TypeError, "x must be an integer"),
        ((0, "3", 10, 10), TypeError, "y must be an integer"),
        ((0, 0, True, 10), TypeError, "width must be an integer"),
        ((0, 0, None, 10), TypeError, "width must be an integer"),
        ((2**50, 0, 1, 1), ValueError, "beyond"),
        ((0, -(2**50) - 1, 1, 1), ValueError, "beyond"),
        ((2**50 - 1, 0, 2, 1), ValueError, "beyond"),
    ],
)
def test_bad_rectangles_rejected(args: tuple, exc: type[Exception], msg: str) -> None:
    with pytest.raises(exc, match=msg):
        Rect(*args)


def test_extreme_valid_rectangles_accepted() -> None:
    Rect(-(2**50), 2**50 - 1, 1, 1)
    Rect(0, 0, canvas.MAX_REGION_PIXELS // 4, 4)
    r = Rect(np.int64(-5), np.int32(3), np.int64(7), 2)
    assert (r.x, r.y, r.width) == (-5, 3, 7) and type(r.x) is int


@pytest.mark.parametrize(
    "seed,exc", [(-1, ValueError), (2**63, ValueError), (True, TypeError), (1.0, TypeError)]
)
def test_bad_seeds_rejected(tiny_g: Generator, seed: object, exc: type[Exception]) -> None:
    with pytest.raises(exc, match="seed"):
        render_batch(tiny_g, [(seed, Rect(0, 0, 8, 8))])  # type: ignore[list-item]
    with pytest.raises(exc, match="seed"):
        render_region(tiny_g, seed, Rect(0, 0, 8, 8))  # type: ignore[arg-type]


def test_bad_batches_and_chunks_rejected(tiny_g: Generator) -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_batch(tiny_g, [])
    with pytest.raises(ValueError, match="one size"):
        render_batch(tiny_g, [(0, Rect(0, 0, 8, 8)), (0, Rect(0, 0, 8, 16))])
    for chunk, exc in [(0, ValueError), (-8, ValueError), (8.0, TypeError), (True, TypeError)]:
        with pytest.raises(exc, match="max_chunk"):
            render_region(tiny_g, 0, Rect(0, 0, 8, 8), max_chunk=chunk)  # type: ignore[arg-type]


def test_default_chunk_is_whole_cells(tiny_g: Generator) -> None:
    from infinitygan.model.config import PRESETS

    for name in ("tiny", "small", "paper"):
        cfg = PRESETS[name].generator
        c = canvas.default_chunk(cfg)
        assert c % cfg.pixels_per_cell == 0 and cfg.pixels_per_cell <= c <= 2048


def test_window_inputs_match_the_window(tiny_g: Generator) -> None:
    from infinitygan.model import geometry

    cfg = tiny_g.cfg
    window = canvas._window(cfg, Rect(-29, 17, 50, 33))
    z_g, z_l, coords, noise = canvas.window_inputs(cfg, 8, window)
    _, nr = geometry.structure_input_cells(window.rows, cfg)
    _, nc = geometry.structure_input_cells(window.cols, cfg)
    assert z_g.shape == (cfg.z_dim,)
    assert z_l.shape == (cfg.z_local_dim, nr, nc) and coords.shape == (3, nr, nc)
    sizes_r = geometry.texture_layer_sizes(window.rows.n_cells, cfg.n_up)
    sizes_c = geometry.texture_layer_sizes(window.cols.n_cells, cfg.n_up)
    assert [tuple(n.shape) for n in noise] == [
        (1, r, c) for r, c in zip(sizes_r, sizes_c, strict=True)
    ]


def test_to_uint8_mapping() -> None:
    import torch

    rgb = torch.tensor([-5.0, -1.0, 0.0, 0.999, 1.0, 7.0]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    out = canvas.to_uint8(rgb)
    assert out.shape == (1, 1, 6, 3) and out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255, 255]


def test_downsample_2x_is_exact_area_average() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(64, 48, 3), dtype=np.uint8)
    out = downsample_2x(img)
    assert out.shape == (32, 24, 3) and out.dtype == np.uint8
    for y, x, c in [(0, 0, 0), (31, 23, 2), (7, 11, 1)]:
        block = img[2 * y : 2 * y + 2, 2 * x : 2 * x + 2, c].astype(int)
        assert out[y, x, c] == (block.sum() + 2) // 4
    brute = (img.reshape(32, 2, 24, 2, 3).astype(int).sum(axis=(1, 3)) + 2) // 4
    assert np.array_equal(out, brute)
    assert np.array_equal(downsample_2x(np.full((2, 2, 3), 255, np.uint8)), np.full((1, 1, 3), 255))
    # a parent tile equals the downsample of its four assembled children, quadrant by quadrant
    parent = downsample_2x(img[:64, :48])
    assert np.array_equal(parent[:16, :12], downsample_2x(img[:32, :24]))
    for bad in (img[:63], img.astype(np.float32), img[:, :, 0]):
        with pytest.raises(ValueError, match="downsample_2x"):
            downsample_2x(bad)


# Biomes: an anchor every ~512 px, transitions 256 px wide; any 512-px span meets one.
WORLD = World(biome_px=512, transition_px=256)


def _anchors(g: Generator, seed: int, rect: Rect, world: World = WORLD) -> int:
    return anchors_reaching(g.cfg, world, seed, rect)


@pytest.mark.parametrize("tx", [0, -3, FAR - 1, -FAR])
def test_one_pass_across_a_biome_transition_equals_assembled_tiles(
    tiny_g: Generator, tx: int
) -> None:
    """Seamless across transitions, at the origin and near the canvas bound: a 4x2-tile region
    in one pass (the spatial kernels) equals its tiles rendered one by one (each with the
    spatial or the fused kernels, whichever its own window needs)."""
    seed = 77
    rect = Rect(T * tx, -T, 4 * T, 2 * T)
    region = render_batch(tiny_g, [(seed, rect)], WORLD)[0]
    jobs = [(seed, Rect(T * (tx + i), T * (j - 1), T, T)) for j in range(2) for i in range(4)]
    tiles = [render_batch(tiny_g, [job], WORLD)[0] for job in jobs]
    assert _anchors(tiny_g, seed, rect) >= 2  # the region really spans a transition
    assert_informative(region)
    assert_close_uint8(_assemble(np.stack(tiles), 2, 4), region)
    plain = render_batch(tiny_g, [(seed, rect)])[0]
    assert np.abs(region.astype(int) - plain).mean() > 5  # the world is not one style


def test_biomes_off_is_todays_renderer_bit_for_bit(tiny_g: Generator) -> None:
    """A one-style world (the default) renders exactly what the generator makes of the seed's
    hashed inputs: the pre-world renderer's path, untouched."""
    rect = Rect(-40, 10, 96, 64)
    z_g, z_l, coords, noise = window_inputs(tiny_g.cfg, 5, canvas._window(tiny_g.cfg, rect))
    with torch.inference_mode():
        rgb = tiny_g(
            z_g[None].to(DEVICE),
            z_l[None].to(DEVICE).contiguous(memory_format=torch.channels_last),
            coords[None].to(DEVICE).contiguous(memory_format=torch.channels_last),
            noise=[n[None].to(DEVICE).contiguous(memory_format=torch.channels_last) for n in noise],
            impl="fused",
        )
    w = canvas._window(tiny_g.cfg, rect)
    rgb = rgb[:, :, w.rows.crop : w.rows.crop + 64, w.cols.crop : w.cols.crop + 96]
    expect = canvas.to_uint8(rgb)[0]
    assert np.array_equal(render_batch(tiny_g, [(5, rect)])[0], expect)
    assert np.array_equal(render_batch(tiny_g, [(5, rect)], World(0, 99))[0], expect)


def test_inside_a_biome_the_world_is_its_anchors_one_style_world(tiny_g: Generator) -> None:
    """Around anchor 0 a world is the seed's own one-style landscape, bit for bit (the fused
    path with the anchor's z_g, which for anchor 0 is the seed's)."""
    world = World(biome_px=4096, transition_px=512)  # anchor 0 rules x in [-1024, 1024) at least
    rect = Rect(-T, -T, 2 * T, 2 * T)
    assert _anchors(tiny_g, 3, rect, world) == 1
    assert np.array_equal(
        render_batch(tiny_g, [(3, rect)], world)[0], render_batch(tiny_g, [(3, rect)])[0]
    )


# Biomes wide enough for a tile's whole window to lie in one.
WIDE = World(biome_px=2048, transition_px=256)


@on_cpu_only
def test_cpu_renderer_takes_the_spatial_kernels_only_across_a_transition(
    tiny_g: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = next(
        x for x in range(-16 * T, 16 * T, 16) if _anchors(tiny_g, 1, Rect(x, 0, T, T), WIDE) == 1
    )  # a tile whose whole window is in one biome
    across = next(
        x for x in range(-16 * T, 16 * T, 16) if _anchors(tiny_g, 1, Rect(x, 0, T, T), WIDE) == 2
    )
    jobs = [(1, Rect(inside, 0, T, T)), (1, Rect(across, 0, T, T)), (2, Rect(inside, 0, T, T))]
    calls = _forward_calls(tiny_g, monkeypatch, jobs, WIDE)
    assert sorted(calls) == [(1, "field"), (1, "fused"), (1, "fused")]


def test_accelerator_renderer_batches_plain_and_blended_windows_apart(
    tiny_g: Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    xs = list(range(-16 * T, 16 * T, 16))
    inside = [x for x in xs if _anchors(tiny_g, 1, Rect(x, 0, T, T), WIDE) == 1][:2]
    across = [x for x in xs if _anchors(tiny_g, 1, Rect(x, 0, T, T), WIDE) >= 2][:2]
    jobs = [(1, Rect(x, 0, T, T)) for x in (inside[0], across[0], inside[1], across[1])]
    calls = _forward_calls(tiny_g, monkeypatch, jobs, WIDE, BATCH_WINDOWS)
    assert sorted(calls) == [(2, "batched"), (2, "field")]
    one_by_one = [render_batch(tiny_g, [job], WIDE)[0] for job in jobs]  # each alone
    batched = CanvasRenderer(tiny_g, WIDE, BATCH_WINDOWS)(jobs)
    for a, b in zip(batched, one_by_one, strict=True):
        assert_close_uint8(a, b)
