"""The shipped curated list stays well-formed (so a typo cannot silently drop or misattribute a
photo), and the reader refuses entries it cannot place."""

from __future__ import annotations

from pathlib import Path

import pytest

from infinitygan.data.curated import catalogue, parse_catalogue
from infinitygan.data.landscapes import MIN_IMAGES


def test_curated_list_well_formed() -> None:
    cat = catalogue()
    assert len(cat.images) >= MIN_IMAGES
    assert len(cat.packages) == 6
    keys = [(c.package.name, c.path) for c in cat.images]
    assert len(keys) == len(set(keys)), "duplicate (package, path) entry"
    names = [c.out_name for c in cat.images]
    assert len(names) == len(set(names)), "two entries would write the same file"
    prefixes = [p.prefix for p in cat.packages]
    assert len(prefixes) == len(set(prefixes)), "two packages share a file name prefix"
    for c in cat.images:
        assert c.package in cat.packages
        assert c.licence.strip() and c.author.strip()
        assert not c.path.startswith("/") and c.path.startswith("usr/share/")
        assert Path(c.path).suffix.lower() in {".jpg", ".jpeg", ".png", ".gif"}
        assert c.name.replace("_", "").isalnum() and c.name.islower()
    assert {p.name for p in cat.packages if p.kde_metadata} == {"plasma-workspace-wallpapers"}


PACKAGE = '[packages."a-1.0"]\nprefix = "a"\n'
IMAGE = '[[images]]\npackage = "{pkg}"\npath = "usr/share/x.png"\nname = "x"\nlicence = "L"\n'


def test_a_dotted_package_name_and_its_note_reach_the_images() -> None:
    cat = parse_catalogue(PACKAGE + 'note = "n"\n' + IMAGE.format(pkg="a-1.0") + 'author = "A"\n')
    (image,) = cat.images
    assert image.package.name == "a-1.0" and image.package.note == "n"
    assert image.out_name == "a_x.png"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (PACKAGE + IMAGE.format(pkg="b") + 'author = "A"\n', "package 'b' is not one of"),
        (PACKAGE + IMAGE.format(pkg="a-1.0"), "author"),  # a missing field
        (PACKAGE + IMAGE.format(pkg="a-1.0") + 'author = "A"\nlicense = "L"\n', "license"),
        (PACKAGE + 'perfix = "a"\n', "perfix"),
    ],
)
def test_an_entry_that_cannot_be_placed_is_an_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_catalogue(text)
