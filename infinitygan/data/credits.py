"""CREDITS.md of a fetched landscape folder: one table row per photo with its source package,
version, path, the curated licence and author, and the package's own copyright stanza beside
them, so anyone can check the attribution against the source."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .curated import CuratedImage
from .images import MAX_ASPECT

CREDITS_NAME = "CREDITS.md"


@dataclass(frozen=True)
class Credit:
    """What CREDITS.md says about one written photo."""

    image: CuratedImage
    version: str  # of the package it was taken from
    holder: str  # copyright holders of the matching debian/copyright stanza
    licence: str  # licence name of that stanza
    extra: str = ""  # a more specific notice found in the package (KDE metadata.json)


def _row(credit: Credit) -> str:
    item = credit.image
    note = "; ".join(x for x in (item.package.note, credit.extra) if x)
    cells = [
        f"`{item.out_name}`",
        item.package.name,
        credit.version,
        f"`/{item.path}`",
        item.licence,
        item.author,
        f"{credit.licence} — {credit.holder}",
        note,
    ]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def write_credits(out_dir: Path, credits: list[Credit], size: int) -> Path:
    """Write ``out_dir/CREDITS.md`` for photos resized to ``size`` px high; return its path."""
    lines = [
        "# Landscape training set: credits",
        "",
        f"{len(credits)} photographs, resized to {size} px high (centre crop to at most "
        f"{MAX_ASPECT:g}:1) "
        "(LANCZOS), no other changes and no augmentation. Each comes from a Debian package "
        "downloaded with `apt-get download` and unpacked with `dpkg-deb -x` "
        "(built by `scripts/fetch_landscapes.py`, `infinitygan.data.landscapes`).",
        "",
        "'Licence (curated)' is what the package documents for the file; 'debian/copyright' is "
        "the matching stanza of `usr/share/doc/<package>/copyright`.",
        "",
        "| Image | Package | Version | Path in package | Licence (curated) | Author (curated) "
        "| debian/copyright | Notes |",
        "|---|---|---|---|---|---|---|---|",
        *(_row(c) for c in credits),
        "",
        "Licences: CC-BY-4.0 / CC-BY-SA-3.0 (attribution, share-alike), GPL-2+/GPL-3+ and "
        "LGPL-3.0 (as distributed by Debian). Derived models and images should keep this "
        "attribution.",
        "",
    ]
    path = out_dir / CREDITS_NAME
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
