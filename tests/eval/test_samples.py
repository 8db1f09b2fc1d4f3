"""The image sets: rendered patches sit on the rows of real patches, horizon squares at scale 1
are crops of a panorama over the band a training image stands for, real crops are whole
training-image heights, and area resizing is the block mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from infinitygan.data.patches import PatchSampler
from infinitygan.eval import samples
from infinitygan.model.canvas import Rect, render_batch, render_region
from tests.conftest import assert_close_uint8, write_landscapes


def test_area_resize_is_the_block_mean() -> None:
    img = (np.random.default_rng(4).random((2, 8, 8, 3)) * 255).astype(np.uint8)
    out = samples.area_resize(img, 4)
    expect = img.reshape(2, 4, 2, 4, 2, 3).astype(np.float64).mean(axis=(2, 4))
    assert np.abs(out.astype(np.float64) - expect).max() <= 0.5 + 1e-9


def test_fake_patches_sit_on_the_real_patch_rows(tiny_g) -> None:
    """Bands lie on rows [(-full/2 + o) * ppc, + patch) for a cell offset o a real patch can
    have; cut into patches, 2m and 2m+1 are one canvas position under two seeds, and each patch
    equals that rectangle rendered on its own."""
    cfg = tiny_g.cfg
    ppc = cfg.pixels_per_cell
    patch = cfg.train_patch_cells * ppc
    span = cfg.train_full_cells - cfg.train_patch_cells
    jobs = samples.fake_band_jobs(
        cfg, 16, 3, torch.Generator().manual_seed(0), np.random.default_rng(0)
    )
    valid = {(-cfg.train_full_cells // 2 + o) * ppc for o in range(span + 1)}
    assert {rect.y for _, rect in jobs} <= valid
    assert all((rect.width, rect.height) == (3 * patch, patch) for _, rect in jobs)
    for (s0, r0), (s1, r1) in zip(jobs[0::2], jobs[1::2], strict=True):
        assert r0 == r1 and s0 != s1

    bands = render_batch(tiny_g, jobs[:4])
    patches = samples.cut_bands(bands, 3)
    assert patches.shape == (12, patch, patch, 3)
    expect = []
    for b in range(2):
        rect = jobs[2 * b][1]
        for i in range(3):
            for j in range(2):
                seed = jobs[2 * b + j][0]
                expect.append((seed, Rect(rect.x + i * patch, rect.y, patch, patch)))
    assert_close_uint8(patches, render_batch(tiny_g, expect))


def test_horizon_squares_at_scale_1_are_crops_of_a_panorama_over_the_band(tiny_g) -> None:
    """The generated side of band FID: H x H squares at canvas rows [-H/2, H/2), H the training
    image height, each one crop of the panorama that its seed draws along the band."""
    cfg = tiny_g.cfg
    full = cfg.train_full_cells * cfg.pixels_per_cell
    squares = samples.fake_squares(tiny_g, 3, 1, full, np.random.default_rng(7))
    assert squares.shape == (3, full, full, 3)
    assert squares.std() > 10  # not a flat image: the comparison below can fail

    rng = np.random.default_rng(7)  # the draws fake_squares made: x positions, then seeds
    xs = rng.integers(-samples.X_RANGE, samples.X_RANGE, size=3)
    for square, x, seed in zip(squares, xs, samples.seeds(rng, 3), strict=True):
        panorama = render_region(tiny_g, seed, Rect(int(x) - 40, -full // 2, full + 100, full))
        assert_close_uint8(square, panorama[:, 40 : 40 + full])


def test_real_full_crops_are_whole_image_heights(tmp_path: Path, tiny_g) -> None:
    """The real side of band FID: H x H crops of the photos at training height, flipped or not;
    resized to the patch size for ScaleInv FID."""
    sampler = PatchSampler(write_landscapes(tmp_path, n=2), tiny_g.cfg)
    crops = samples.real_full_crops(sampler, 6, sampler.height, np.random.default_rng(0))
    assert crops.shape == (6, sampler.height, sampler.height, 3)
    photos = [img.permute(1, 2, 0).numpy() for img in sampler.images]
    for crop in crops:
        found = any(
            np.array_equal(crop, view[:, x : x + sampler.height])
            for photo in photos
            for view in (photo, photo[:, ::-1])
            for x in range(photo.shape[1] - sampler.height + 1)
        )
        assert found, "every crop is a full-height window of a photo (or of its mirror image)"
    small = samples.real_full_crops(sampler, 6, sampler.patch, np.random.default_rng(0))
    np.testing.assert_array_equal(small, samples.area_resize(crops, sampler.patch))
