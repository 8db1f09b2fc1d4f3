"""Fast, offline checks of the landscape data module: the curated list stays well-formed (so a
typo cannot silently drop or misattribute a photo) and the crop/resize helper gives the fitted size
the training loader expects. No apt, no network."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from infinitygan.training import landscapes as L


def test_curated_list_well_formed() -> None:
    assert len(L.CURATED) >= L.MIN_IMAGES
    keys = [(c.package, c.path) for c in L.CURATED]
    assert len(keys) == len(set(keys)), "duplicate (package, path) entry"
    names = [c.out_name for c in L.CURATED]
    assert len(names) == len(set(names)), "two entries would write the same file"
    for c in L.CURATED:
        assert c.package in L.PACKAGES
        assert c.licence.strip() and c.author.strip()
        assert not c.path.startswith("/") and c.path.startswith("usr/share/")
        assert Path(c.path).suffix.lower() in {".jpg", ".jpeg", ".png", ".gif"}
        assert c.name.replace("_", "").isalnum() and c.name.islower()
    assert set(L.PACKAGE_PREFIX) == set(L.PACKAGES)
    assert len(L.PACKAGES) == 6


@pytest.mark.parametrize(
    ("w", "h", "size", "out_w"),
    [(640, 200, 64, 128), (300, 200, 40, 60), (100, 300, 32, 32), (50, 50, 50, 50)],
)
def test_fit_height(tmp_path: Path, w: int, h: int, size: int, out_w: int) -> None:
    src = tmp_path / "wide.png"
    img = Image.new("RGBA", (w, h), (255, 0, 0, 255))
    # Paint a marker in the middle so we can tell a centre crop from an edge crop.
    cx, cy = w // 2, h // 2
    img.paste((0, 0, 255, 255), (cx - 5, cy - 5, cx + 5, cy + 5))
    img.save(src)
    dst = tmp_path / "out" / "fitted.png"
    L.process_image(src, dst, size)
    with Image.open(dst) as out:
        assert out.size == (out_w, size), "height fitted, width kept up to 2:1"
        assert out.mode == "RGB"
        r, _g, b = out.getpixel((out_w // 2, size // 2))
        assert b > r, "centre of the output should be the centre of the input"


def test_fit_height_rejects_bad_size() -> None:
    with pytest.raises(ValueError):
        L.fit_height(Image.new("RGB", (10, 10)), 0)


def test_copyright_stanza_lookup() -> None:
    text = (
        "Format: x\n\nFiles: *\nCopyright: Someone\nLicense: GPL-2+\n\n"
        "Files: nature/Dune.jpg\n       nature/Other.jpg\nCopyright: 2007, Marco\n"
        " 2008, Hylke\nLicense: GPL-2+\n\n"
        "Files: 16.04/x_by_Y.jpg\nCopyright: Y, 2018\nLicense: CC-BY-4.0\n\n"
        "Files: debian/*\nCopyright: Packager\nLicense: MIT\n"
    )
    st = L.parse_dep5(text)
    assert L.copyright_for(st, "usr/share/backgrounds/mate/nature/Dune.jpg") == (
        "2007, Marco 2008, Hylke",
        "GPL-2+",
    )
    assert L.copyright_for(st, "usr/share/backgrounds/x_by_Y.jpg") == ("Y, 2018", "CC-BY-4.0")
    assert L.copyright_for(st, "usr/share/other.png") == ("Someone", "GPL-2+")
