"""The curated landscape list (``landscapes.toml``, shipped with the package) as typed records.

The list is data, not code: adding or dropping a photo is an edit to the TOML file, where each
entry sits with the reasons for the choice. This module only reads it and refuses entries that
name a package the file does not declare, or fields it does not know (a typo would otherwise
drop a photo or its attribution without a word).
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib

CATALOGUE_FILE = "landscapes.toml"


@dataclass(frozen=True)
class Package:
    """A Debian package the photos come from."""

    name: str
    prefix: str  # starts each output file name: the file name alone tells the source
    note: str = ""  # where the package documents its photos' licences (copied into CREDITS.md)
    kde_metadata: bool = False  # KDE wallpapers: quote each one's metadata.json in CREDITS.md


@dataclass(frozen=True)
class CuratedImage:
    """One hand-picked scenery photo.

    ``licence`` and ``author`` are what the package documents for this file (its
    ``debian/copyright``, or a more specific notice inside the package, named in the package's
    note); the fetcher also copies the matching ``copyright`` stanza into CREDITS.md so the two
    can be compared.
    """

    package: Package
    path: str  # path inside the package (as unpacked by ``dpkg-deb -x``), no leading slash
    name: str  # stable descriptive stem for the output file
    licence: str
    author: str

    @property
    def out_name(self) -> str:
        """Output file name: ``<package prefix>_<name>.png``."""
        return f"{self.package.prefix}_{self.name}.png"


@dataclass(frozen=True)
class Catalogue:
    packages: tuple[Package, ...]  # in download order
    images: tuple[CuratedImage, ...]  # in output order


def _build(cls: type, where: str, **fields: Any) -> Any:
    try:
        return cls(**fields)
    except TypeError as e:  # a missing or unknown field
        raise ValueError(f"{CATALOGUE_FILE}: {where}: {e}") from None


def parse_catalogue(text: str) -> Catalogue:
    """Parse the TOML text of a catalogue (see ``landscapes.toml`` for its layout)."""
    data = tomllib.loads(text)
    packages = {
        name: _build(Package, f"package {name!r}", name=name, **fields)
        for name, fields in data.get("packages", {}).items()
    }
    images = []
    for i, entry in enumerate(data.get("images", [])):
        fields = dict(entry)
        package = packages.get(fields.pop("package", None))
        if package is None:
            raise ValueError(
                f"{CATALOGUE_FILE}: image {i} ({entry.get('name')!r}): package "
                f"{entry.get('package')!r} is not one of [packages] {sorted(packages)}"
            )
        images.append(_build(CuratedImage, f"image {i}", package=package, **fields))
    return Catalogue(tuple(packages.values()), tuple(images))


@functools.cache
def catalogue() -> Catalogue:
    """The shipped curated list."""
    text = resources.files(__package__).joinpath(CATALOGUE_FILE).read_text(encoding="utf-8")
    return parse_catalogue(text)
