"""Build the landscape training set from real photographs shipped in Debian packages.

Why Debian packages: they are a stable, mirrored, licence-audited source of real scenery photos that
any Debian/Ubuntu machine can fetch with its ordinary package client, so the training set can be
rebuilt bit-for-bit without scraping the web. Which photos, and why only those, is the curated
list in ``landscapes.toml``.

The steps: download and unpack each package (`debian`), write each curated photo at the
requested height (`images`), and record its source and licence (`dep5`, `kde`, `credits`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from . import dep5, kde
from .credits import Credit, write_credits
from .curated import Catalogue, catalogue
from .debian import FetchError, UnpackedPackage, download_package, require_tool, unpack_package
from .images import write_fitted

log = logging.getLogger(__name__)

#: Default output folder (git-ignored via ``/data/``), relative to the repository root.
DEFAULT_OUT_DIR = Path("data/landscapes")

#: Fewer usable images than this means something is badly wrong (wrong release, moved files).
MIN_IMAGES = 10


def fetch_landscapes(
    out_dir: Path = DEFAULT_OUT_DIR,
    size: int = 256,
    work_dir: Path | None = None,
    *,
    min_images: int = MIN_IMAGES,
    curated: Catalogue | None = None,
) -> list[Path]:
    """Download the curated list's packages, extract them, and write its photos to ``out_dir``.

    ``work_dir`` keeps the ``.deb`` files and extracted trees (and reuses them on a re-run); when
    it is ``None`` a temporary directory is used and removed afterwards. Curated files missing
    from a package are skipped with a warning; fewer than ``min_images`` results is an error.
    Returns the written PNG paths in the curated order; also writes ``CREDITS.md``.
    ``curated`` replaces the shipped list (``landscapes.toml``).
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    require_tool("apt-get")
    require_tool("dpkg-deb")
    cat = catalogue() if curated is None else curated
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="infinitygan-landscapes-") as tmp:
            return _fetch(cat, Path(out_dir), size, Path(tmp), min_images)
    return _fetch(cat, Path(out_dir), size, Path(work_dir), min_images)


def _fetch(cat: Catalogue, out_dir: Path, size: int, work_dir: Path, min_images: int) -> list[Path]:
    unpacked: dict[str, UnpackedPackage] = {}
    for package in cat.packages:
        log.info("downloading %s", package.name)
        deb = download_package(package.name, work_dir / "debs")
        unpacked[package.name] = unpack_package(deb, work_dir / "extract" / package.name)
        log.info("unpacked %s %s", package.name, unpacked[package.name].version)
    stanzas = {name: dep5.read_copyright(pkg.root, name) for name, pkg in unpacked.items()}

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    credits: list[Credit] = []
    for item in cat.images:
        pkg = unpacked[item.package.name]
        src = pkg.root / item.path
        if not src.is_file():
            log.warning(
                "%s %s does not contain %s; skipping (the curated list may need updating "
                "for this release)",
                pkg.name,
                pkg.version,
                item.path,
            )
            continue
        dst = out_dir / item.out_name
        try:
            write_fitted(src, dst, size)
        except OSError as exc:
            log.warning("could not read %s from %s: %s; skipping", item.path, pkg.name, exc)
            continue
        holder, licence = dep5.copyright_for(stanzas[pkg.name], item.path)
        extra = kde.wallpaper_metadata(pkg.root, item.path) if item.package.kde_metadata else ""
        credits.append(Credit(item, pkg.version, holder, licence, extra))
        written.append(dst)

    if len(written) < min_images:
        raise FetchError(
            f"only {len(written)} curated landscape images were found (need at least "
            f"{min_images}); the packages in this release probably moved or renamed their "
            "files. Check the warnings above, or train on your own image folder."
        )
    _remove_stale(cat, out_dir, {p.name for p in written})
    write_credits(out_dir, credits, size)
    return written


def _remove_stale(cat: Catalogue, out_dir: Path, keep: set[str]) -> None:
    """Delete PNGs a previous run wrote (known prefixes) that are no longer curated, so a
    shrinking curated list cannot leave rejected photos in the training folder."""
    prefixes = tuple(f"{p.prefix}_" for p in cat.packages)
    for f in out_dir.glob("*.png"):
        if f.name.startswith(prefixes) and f.name not in keep:
            log.info("removing stale %s", f.name)
            f.unlink()
