"""Which ``debian/copyright`` stanza covers a file *as installed*.

The files are parsed with python-debian (Debian's own reader of the machine-readable copyright
format, DEP-5). What it cannot do for us is match: DEP-5 ``Files`` globs are relative to the
source tree (``nature/Dune.jpg``, ``16.04/x.jpg``) while the fetcher holds installed paths
(``usr/share/backgrounds/mate/nature/Dune.jpg``), so the matching rule is ours.
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path

from debian.copyright import Copyright, FilesParagraph, NotMachineReadableError

log = logging.getLogger(__name__)

NO_STANZA = ("(no matching stanza)", "(unknown)")


def files_match(pattern: str, path: str) -> bool:
    """Does one DEP-5 ``Files`` glob match an installed path?

    A pattern matches if it matches any path suffix, or failing that if its file-name part
    matches ours.
    """
    if pattern == "*":
        return True
    if fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, "*/" + pattern):
        return True
    base = pattern.rsplit("/", 1)[-1]
    return base not in ("*", "") and fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], base)


def copyright_for(stanzas: list[FilesParagraph], path: str) -> tuple[str, str]:
    """Return ``(copyright, licence name)`` of the most specific stanza covering ``path``.

    As in DEP-5, the last matching stanza wins; ``debian/*`` stanzas are skipped because they
    cover packaging, not the shipped images. The copyright holders are joined onto one line.
    """
    best = None
    for stanza in stanzas:
        patterns = stanza.files
        if all(p.startswith("debian/") for p in patterns):
            continue
        if any(files_match(p, path) for p in patterns):
            best = stanza
    if best is None:
        return NO_STANZA
    holder = " ".join((best.copyright or "").split())
    licence = best.license.synopsis if best.license is not None else ""
    return holder, licence


def parse_copyright(text: str) -> list[FilesParagraph]:
    """The ``Files`` stanzas of a machine-readable copyright file (lenient about format errors:
    an odd header costs one stanza's attribution, not the whole fetch)."""
    return list(Copyright(text, strict=False).all_files_paragraphs())


def read_copyright(root: Path, package: str) -> list[FilesParagraph]:
    """The ``Files`` stanzas of ``usr/share/doc/<package>/copyright`` in an unpacked package;
    none (with a warning) when the file is missing or not machine-readable."""
    f = root / "usr" / "share" / "doc" / package / "copyright"
    if not f.is_file():
        log.warning("%s: no copyright file at %s", package, f)
        return []
    try:
        return parse_copyright(f.read_text(encoding="utf-8", errors="replace"))
    except NotMachineReadableError:
        log.warning("%s: %s is not a machine-readable copyright file", package, f)
        return []
