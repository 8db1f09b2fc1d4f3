"""The one resize rule for landscape photos, shared by the data fetcher and the training loader.

Both need an image of a given height whose rows are the real photo's rows: the fetcher writes
256 px photos, the loader brings any folder to the model's training-image height. Sharing one
function keeps the two from drifting apart (a crop in one and a squash in the other would give
the model different horizons than the data on disk).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

#: Widest aspect the fetcher keeps (centre 2:1); the training loader keeps any width, since its
#: patch sampler cuts patches across the whole image.
MAX_ASPECT = 2.0


def fit_height(image: Image.Image, size: int, max_aspect: float | None = MAX_ASPECT) -> Image.Image:
    """Resize ``image`` to ``size`` px high with LANCZOS, keeping its width (up to ``max_aspect``
    times the height; ``None``: any width).

    Keeping the full width (not a square crop) gives the patch sampler every horizontal position
    of each landscape; a crop (never a squash) keeps the horizon level and the sky/ground
    proportions real. Portrait images keep their centre square. The image is converted to RGB
    first because the sources mix palette GIFs and RGBA PNGs.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    image = image.convert("RGB")
    w, h = image.size
    crop_w = w if max_aspect is None else min(w, int(h * max_aspect))
    crop_h = min(h, w)
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    image = image.crop((left, top, left + crop_w, top + crop_h))
    width = max(size, round(crop_w * size / crop_h))
    if (width, size) == image.size:
        return image
    return image.resize((width, size), Image.Resampling.LANCZOS)


def write_fitted(src: Path, dst: Path, size: int) -> None:
    """Read ``src``, resize it to ``size`` px high (see `fit_height`) and write a PNG to ``dst``."""
    with Image.open(src) as im:
        out = fit_height(im, size)
    dst.parent.mkdir(parents=True, exist_ok=True)
    out.save(dst, format="PNG", optimize=True)
