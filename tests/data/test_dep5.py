"""Finding the debian/copyright stanza of an installed file: source-tree globs against
installed paths, the last match wins, packaging stanzas never do."""

from __future__ import annotations

from pathlib import Path

import pytest

from infinitygan.data import dep5

COPYRIGHT = (
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
    "Files: *\nCopyright: Someone\nLicense: GPL-2+\n\n"
    "Files: nature/Dune.jpg\n       nature/Other.jpg\nCopyright: 2007, Marco\n"
    " 2008, Hylke\nLicense: GPL-2+\n Long licence text.\n\n"
    "Files: 16.04/x_by_Y.jpg\nCopyright: Y, 2018\nLicense: CC-BY-4.0\n\n"
    "Files: debian/*\nCopyright: Packager\nLicense: MIT\n"
)


def test_copyright_stanza_lookup() -> None:
    st = dep5.parse_copyright(COPYRIGHT)
    assert dep5.copyright_for(st, "usr/share/backgrounds/mate/nature/Dune.jpg") == (
        "2007, Marco 2008, Hylke",
        "GPL-2+",
    )
    assert dep5.copyright_for(st, "usr/share/backgrounds/x_by_Y.jpg") == ("Y, 2018", "CC-BY-4.0")
    assert dep5.copyright_for(st, "usr/share/other.png") == ("Someone", "GPL-2+")
    assert dep5.copyright_for(st[1:], "usr/share/other.png") == dep5.NO_STANZA


def test_a_missing_or_free_form_copyright_file_gives_no_stanzas(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert dep5.read_copyright(tmp_path, "pkg") == []
    doc = tmp_path / "usr/share/doc/pkg"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("This package was debianized by someone in 1999.\n")
    assert dep5.read_copyright(tmp_path, "pkg") == []
    assert "no copyright file" in caplog.text and "not a machine-readable" in caplog.text
