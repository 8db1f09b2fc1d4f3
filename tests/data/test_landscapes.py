"""The landscape fetch end to end, offline: fake packages stand in for apt and dpkg, so the
steps after the download (which photos are written, at what size, what CREDITS.md says about
each, which stale files go) are checked without a network."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from infinitygan.data import landscapes
from infinitygan.data.curated import parse_catalogue
from infinitygan.data.debian import FetchError, UnpackedPackage

CATALOGUE = """
[packages.kde-walls]
prefix = "kde"
note = "see metadata.json"
kde_metadata = true

[packages."photos-1.0"]
prefix = "ph"

[[images]]
package = "kde-walls"
path = "usr/share/wallpapers/Lake/contents/images/300x100.jpg"
name = "lake"
licence = "LGPL-3.0"
author = "K. Author"

[[images]]
package = "photos-1.0"
path = "usr/share/backgrounds/hill.png"
name = "hill"
licence = "CC-BY-4.0"
author = "A | B"

[[images]]
package = "photos-1.0"
path = "usr/share/backgrounds/gone.png"
name = "gone"
licence = "CC-BY-4.0"
author = "A"
"""

COPYRIGHT = (
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
    "Files: *\nCopyright: 2020, Holder\nLicense: GPL-2+\n"
)
# KDE's lenient JSON: trailing commas.
METADATA = '{"KPlugin": {"Authors": [{"Name": "K. Author",},], "License": "LGPL-3.0",},}'


def fake_package(name: str, root: Path) -> None:
    """The files a package would unpack to: its photos, its copyright file, KDE metadata."""
    doc = root / "usr/share/doc" / name
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    if name == "kde-walls":
        wall = root / "usr/share/wallpapers/Lake"
        (wall / "contents/images").mkdir(parents=True)
        Image.new("RGB", (300, 100), (10, 20, 200)).save(wall / "contents/images/300x100.jpg")
        (wall / "metadata.json").write_text(METADATA)
    else:
        (root / "usr/share/backgrounds").mkdir(parents=True)
        Image.new("RGBA", (120, 160), (200, 20, 10, 255)).save(
            root / "usr/share/backgrounds/hill.png"
        )


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace apt and dpkg: a download is an empty file, unpacking writes `fake_package`."""

    def download(package: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        deb = dest / f"{package}_1.0-2_all.deb"
        deb.touch()
        return deb

    def unpack(deb: Path, root: Path) -> UnpackedPackage:
        name = deb.name.split("_")[0]
        fake_package(name, root)
        return UnpackedPackage(name=name, version="1.0-2", deb=deb, root=root)

    monkeypatch.setattr(landscapes, "require_tool", lambda tool: tool)
    monkeypatch.setattr(landscapes, "download_package", download)
    monkeypatch.setattr(landscapes, "unpack_package", unpack)


def test_fetch_writes_the_curated_photos_and_their_credits(
    offline: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "ph_rejected.png").touch()  # written by an earlier, longer curated list
    (out / "mine.png").touch()  # not the fetcher's: kept
    paths = landscapes.fetch_landscapes(
        out, size=50, min_images=2, curated=parse_catalogue(CATALOGUE)
    )

    assert [p.name for p in paths] == ["kde_lake.png", "ph_hill.png"]
    assert "does not contain usr/share/backgrounds/gone.png" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == [
        "CREDITS.md", "kde_lake.png", "mine.png", "ph_hill.png",
    ]  # fmt: skip
    sizes = {p.name: Image.open(p).size for p in paths}
    assert sizes == {"kde_lake.png": (100, 50), "ph_hill.png": (50, 50)}  # 3:1 cut to 2:1

    credits = (out / "CREDITS.md").read_text()
    assert credits.startswith("# Landscape training set: credits\n\n2 photographs, resized to 50")
    rows = [line for line in credits.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `kde_lake.png` | kde-walls | 1.0-2 | `/usr/share/wallpapers/Lake/contents/images/"
        "300x100.jpg` | LGPL-3.0 | K. Author | GPL-2+ — 2020, Holder | see metadata.json; "
        "metadata.json: K. Author; License LGPL-3.0 |",
        "| `ph_hill.png` | photos-1.0 | 1.0-2 | `/usr/share/backgrounds/hill.png` | CC-BY-4.0 "
        "| A \\| B | GPL-2+ — 2020, Holder |  |",
    ]


def test_too_few_photos_is_an_error_that_says_so(offline: None, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="only 2 curated landscape images were found"):
        landscapes.fetch_landscapes(tmp_path, size=50, curated=parse_catalogue(CATALOGUE))
    assert not (tmp_path / "CREDITS.md").exists()
