"""The one resize rule of the fetcher and the training loader: height fitted, centre kept,
width kept (up to 2:1 for the fetcher, any width for the loader), portraits cut square."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from infinitygan.data.images import fit_height, write_fitted
from infinitygan.data.patches import load_image


def marked(w: int, h: int) -> Image.Image:
    """Red RGBA image with a blue square in the middle, to tell a centre crop from an edge."""
    img = Image.new("RGBA", (w, h), (255, 0, 0, 255))
    cx, cy = w // 2, h // 2
    img.paste((0, 0, 255, 255), (cx - 5, cy - 5, cx + 5, cy + 5))
    return img


@pytest.mark.parametrize(
    ("w", "h", "size", "out_w"),
    [(640, 200, 64, 128), (300, 200, 40, 60), (100, 300, 32, 32), (50, 50, 50, 50)],
)
def test_fetched_photos_keep_their_centre_up_to_2_to_1(
    tmp_path: Path, w: int, h: int, size: int, out_w: int
) -> None:
    src = tmp_path / "wide.png"
    marked(w, h).save(src)
    dst = tmp_path / "out" / "fitted.png"
    write_fitted(src, dst, size)
    with Image.open(dst) as out:
        assert out.size == (out_w, size), "height fitted, width kept up to 2:1"
        assert out.mode == "RGB"
        r, _g, b = out.getpixel((out_w // 2, size // 2))
        assert b > r, "centre of the output should be the centre of the input"


@pytest.mark.parametrize(("w", "h", "out_w"), [(640, 200, 205), (100, 300, 64), (64, 64, 64)])
def test_the_training_loader_keeps_any_width(tmp_path: Path, w: int, h: int, out_w: int) -> None:
    path = tmp_path / "img.png"
    marked(w, h).save(path)
    x = load_image(path, 64)
    assert x.shape == (3, 64, out_w) and x.dtype == torch.uint8
    with Image.open(path) as im:
        expect = np.asarray(fit_height(im, 64, max_aspect=None))
    np.testing.assert_array_equal(x.permute(1, 2, 0).numpy(), expect)


def test_fit_height_rejects_bad_size() -> None:
    with pytest.raises(ValueError):
        fit_height(Image.new("RGB", (10, 10)), 0)
