"""Build the landscape training set from real photographs shipped in Debian packages.

Why Debian packages: they are a stable, mirrored, licence-audited source of real scenery photos that
any Debian/Ubuntu machine can fetch with its ordinary package client, so the training set can be
rebuilt bit-for-bit without scraping the web. The packages are only *downloaded* and unpacked into
a scratch directory (``apt-get download`` + ``dpkg-deb -x``); nothing is installed system-wide.

Why a hand-curated list: most wallpapers in these packages are abstract art, logos, macros or
space images. InfinityGAN learns a vertical structure (sky above, horizon, land or water below)
from vertical-position labels, so every such image would teach it the wrong prior. Each entry in
:data:`CURATED` was chosen by looking at the picture (and at its centre crop, which is what
gets written).

This module needs only Pillow and the Debian tools; it deliberately does not import torch.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

#: The Debian packages the photos come from (names valid in Debian 12 "bookworm").
PACKAGES: tuple[str, ...] = (
    "plasma-workspace-wallpapers",
    "lomiri-wallpapers-16.04",
    "lxqt-themes",
    "lifeograph",
    "mate-backgrounds",
    "scratch",
)

#: Short prefixes for output file names, so a file name alone tells where the photo came from.
PACKAGE_PREFIX: dict[str, str] = {
    "plasma-workspace-wallpapers": "plasma",
    "lomiri-wallpapers-16.04": "lomiri",
    "lxqt-themes": "lxqt",
    "lifeograph": "lifeograph",
    "mate-backgrounds": "mate",
    "scratch": "scratch",
}

#: Default output folder (git-ignored via ``/data/``), relative to the repository root.
DEFAULT_OUT_DIR = Path("data/landscapes")

#: Fewer usable images than this means something is badly wrong (wrong release, moved files).
MIN_IMAGES = 10

CREDITS_NAME = "CREDITS.md"


@dataclass(frozen=True)
class CuratedImage:
    """One hand-picked scenery photo.

    ``licence`` and ``author`` are what the package documents for this file (its
    ``debian/copyright``, or a more specific notice inside the package, named in ``note``);
    ``fetch_landscapes`` additionally copies the matching ``copyright`` stanza into CREDITS.md
    so the two can be compared.
    """

    package: str
    path: str  # path inside the package (as unpacked by ``dpkg-deb -x``), no leading slash
    name: str  # stable descriptive stem for the output file
    licence: str
    author: str
    note: str = ""

    @property
    def out_name(self) -> str:
        """Output file name: ``<package prefix>_<name>.png``."""
        return f"{PACKAGE_PREFIX[self.package]}_{self.name}.png"


_PLASMA = "usr/share/wallpapers"
_KDE_IMG = "contents/images/2560x1600.jpg"
_LOMIRI = "usr/share/backgrounds"
_LXQT = "usr/share/lxqt/wallpapers"
_LIFEO = "usr/share/net.sourceforge.Lifeograph/backgrounds"
_MATE = "usr/share/backgrounds/mate"
_SCRATCH = "usr/share/scratch/Media/Backgrounds"
_LXQT_NOTE = "per usr/share/lxqt/wallpapers/License (CC-BY-SA-3.0, LXQt Project Team)"
_PLASMA_NOTE = "debian/copyright blankets the package as GPL-2+; the metadata.json is specific"
_SCRATCH_AUTHOR = "Massachusetts Institute of Technology"

#: The curated scenery photos. Every one was looked at; left out on purpose were e.g. lomiri's
#: Bridge (cables across the frame), lifeograph's pier/snow (no sky or horizon), lxqt's cloud.png
#: (sky only), plasma's Path and Volna (no sky), the Altai/Autumn/SafeLanding illustrations, all
#: abstract/logo wallpapers, the MATE macros, and scratch's city, sports, indoor and cartoon
#: backgrounds.
CURATED: tuple[CuratedImage, ...] = (
    # --- plasma-workspace-wallpapers (largest real file; the smaller ones are symlinks to it)
    CuratedImage(
        "plasma-workspace-wallpapers",
        f"{_PLASMA}/BytheWater/{_KDE_IMG}",
        "lake_shore_boardwalk",
        "LGPL-3.0",
        "Maciej Wiklo",
        _PLASMA_NOTE,
    ),
    CuratedImage(
        "plasma-workspace-wallpapers",
        f"{_PLASMA}/ColdRipple/{_KDE_IMG}",
        "foggy_jetty_lake",
        "LGPL-3.0",
        "Risto Saukonpää",
        _PLASMA_NOTE,
    ),
    CuratedImage(
        "plasma-workspace-wallpapers",
        f"{_PLASMA}/DarkestHour/{_KDE_IMG}",
        "misty_lake_blue_hour",
        "LGPL-3.0",
        "Risto Saukonpää",
        _PLASMA_NOTE,
    ),
    CuratedImage(
        "plasma-workspace-wallpapers",
        f"{_PLASMA}/EveningGlow/{_KDE_IMG}",
        "rowing_boats_lake_sunset",
        "LGPL-3.0",
        "Ian Hex",
        _PLASMA_NOTE,
    ),
    CuratedImage(
        "plasma-workspace-wallpapers",
        f"{_PLASMA}/summer_1am/{_KDE_IMG}",
        "lake_twilight_reeds",
        "LGPL-3.0",
        "Risto Saukonpää",
        _PLASMA_NOTE,
    ),
    # --- lomiri-wallpapers-16.04
    CuratedImage(
        "lomiri-wallpapers-16.04",
        f"{_LOMIRI}/aitzgorri_by_Aitzol_Berasategi.jpg",
        "aitzgorri_mountains_autumn_meadow",
        "CC-BY-4.0",
        "Aitzol Berasategi, 2018",
    ),
    CuratedImage(
        "lomiri-wallpapers-16.04",
        f"{_LOMIRI}/picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "picos_de_europa_trail",
        "CC-BY-4.0",
        "Aitzol Berasategi, 2018",
    ),
    CuratedImage(
        "lomiri-wallpapers-16.04",
        f"{_LOMIRI}/sunset_by_Aitzol_Berasategi.jpg",
        "mountain_ridge_sunset",
        "CC-BY-4.0",
        "Aitzol Berasategi, 2018",
    ),
    # --- lxqt-themes
    CuratedImage(
        "lxqt-themes",
        f"{_LXQT}/Valendas.png",
        "valendas_alps_clouds",
        "CC-BY-SA-3.0",
        "LXQt Project Team",
        _LXQT_NOTE,
    ),
    CuratedImage(
        "lxqt-themes",
        f"{_LXQT}/after-the-rain.jpg",
        "after_the_rain_sunset_clouds",
        "CC-BY-SA-3.0",
        "stefonarch / LXQt Project Team",
        _LXQT_NOTE,
    ),
    CuratedImage(
        "lxqt-themes",
        f"{_LXQT}/beam.png",
        "sunbeams_over_forested_hills",
        "CC-BY-SA-3.0",
        "stefonarch / LXQt Project Team",
        _LXQT_NOTE,
    ),
    CuratedImage(
        "lxqt-themes",
        f"{_LXQT}/fog.jpg",
        "fog_over_hillside_field",
        "CC-BY-SA-3.0",
        "stefonarch / LXQt Project Team",
        _LXQT_NOTE,
    ),
    CuratedImage(
        "lxqt-themes",
        f"{_LXQT}/this-is-not-windows.jpg",
        "green_hills_blue_sky",
        "CC-BY-SA-3.0",
        "stefonarch / LXQt Project Team",
        _LXQT_NOTE,
    ),
    # --- lifeograph
    CuratedImage("lifeograph", f"{_LIFEO}/fog.jpg", "foggy_tree_meadow", "GPL-3+", "Ahmet Öztürk"),
    CuratedImage(
        "lifeograph", f"{_LIFEO}/horizon.jpg", "sea_horizon_dusk", "GPL-3+", "Ahmet Öztürk"
    ),
    CuratedImage("lifeograph", f"{_LIFEO}/sands.jpg", "sand_beach_sea", "GPL-3+", "Ahmet Öztürk"),
    # --- mate-backgrounds
    CuratedImage(
        "mate-backgrounds",
        f"{_MATE}/nature/Dune.jpg",
        "dune_grass_sea",
        "GPL-2+",
        "Marco Cogoni, Hylke Bons",
    ),
    CuratedImage(
        "mate-backgrounds",
        f"{_MATE}/nature/Storm.jpg",
        "storm_over_plain",
        "GPL-2+",
        "Sergey Nazarov",
    ),
    # --- scratch (480x360 photos; small but real scenery)
    CuratedImage(
        "scratch",
        f"{_SCRATCH}/Nature/beach-malibu.jpg",
        "malibu_beach",
        "CC-BY-SA-3.0",
        _SCRATCH_AUTHOR,
    ),
    CuratedImage(
        "scratch",
        f"{_SCRATCH}/Nature/canyon.jpg",
        "canyon_rim_trail",
        "CC-BY-SA-3.0",
        _SCRATCH_AUTHOR,
    ),
    CuratedImage(
        "scratch",
        f"{_SCRATCH}/Nature/grand-canyon.jpg",
        "grand_canyon",
        "CC-BY-SA-3.0",
        _SCRATCH_AUTHOR,
    ),
    CuratedImage(
        "scratch",
        f"{_SCRATCH}/Nature/gravel-desert.jpg",
        "gravel_desert",
        "CC-BY-SA-3.0",
        _SCRATCH_AUTHOR,
    ),
    CuratedImage(
        "scratch",
        f"{_SCRATCH}/Nature/hill.jpg",
        "coastal_hill_sea",
        "CC-BY-SA-3.0",
        _SCRATCH_AUTHOR,
    ),
    CuratedImage(
        "scratch",
        f"{_SCRATCH}/Outdoors/bench-with-view.jpg",
        "coast_view_from_hill",
        "CC-BY-SA-3.0",
        _SCRATCH_AUTHOR,
    ),
    CuratedImage(
        "scratch",
        f"{_SCRATCH}/Outdoors/boardwalk.jpg",
        "boardwalk_sea",
        "CC-BY-SA-3.0",
        _SCRATCH_AUTHOR,
    ),
    CuratedImage(
        "scratch",
        f"{_SCRATCH}/Outdoors/hay_field.jpg",
        "hay_field",
        "CC-BY-SA-3.0",
        _SCRATCH_AUTHOR,
    ),
    CuratedImage(
        "scratch",
        f"{_SCRATCH}/Outdoors/train-tracks1.jpg",
        "railway_mountain_valley",
        "CC-BY-SA-3.0",
        _SCRATCH_AUTHOR,
    ),
)


class LandscapeFetchError(RuntimeError):
    """Raised with a message a user can act on (missing tool, unknown package, too few images)."""


@dataclass(frozen=True)
class UnpackedPackage:
    """A downloaded and extracted package: where its files are and which version they are."""

    name: str
    version: str
    deb: Path
    root: Path


# --------------------------------------------------------------------------- image processing


MAX_ASPECT = 2.0  # wider photos keep their centre 2:1; the training loader cuts patches across it


def fit_height(image: Image.Image, size: int, max_aspect: float = MAX_ASPECT) -> Image.Image:
    """Resize ``image`` to ``size`` px high with LANCZOS, keeping its width (up to ``max_aspect``).

    Keeping the full width (not a square crop) gives the patch sampler every horizontal position
    of each landscape; a crop (never a squash) keeps the horizon level and the sky/ground
    proportions real. Portrait images keep their centre square. The image is converted to RGB
    first because the sources mix palette GIFs and RGBA PNGs.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    image = image.convert("RGB")
    w, h = image.size
    crop_w = min(w, int(h * max_aspect))
    crop_h = min(h, w)
    left, top = (w - crop_w) // 2, (h - crop_h) // 2
    image = image.crop((left, top, left + crop_w, top + crop_h))
    width = max(size, round(crop_w * size / crop_h))
    if (width, size) == image.size:
        return image
    return image.resize((width, size), Image.Resampling.LANCZOS)


def process_image(src: Path, dst: Path, size: int) -> None:
    """Read ``src``, resize it to ``size`` px high (see `fit_height`) and write a PNG to ``dst``."""
    with Image.open(src) as im:
        out = fit_height(im, size)
    dst.parent.mkdir(parents=True, exist_ok=True)
    out.save(dst, format="PNG", optimize=True)


# --------------------------------------------------------------------------- Debian tooling


def _require_tool(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise LandscapeFetchError(
            f"'{tool}' was not found on PATH. fetch_landscapes needs a Debian or Ubuntu system "
            "with apt and dpkg, or point training "
            "at any folder of your own landscape images instead."
        )
    return path


def _apt_download_cmd(package: str) -> list[str]:
    cmd = [_require_tool("apt-get"), "download", "-q"]
    # As root, apt drops privileges to the '_apt' user for downloads; that user usually cannot
    # write into a root-owned temp dir, which makes apt warn ("Download is performed unsandboxed
    # as root"). Downloading as root explicitly is equivalent here and keeps the output clean.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd += ["-o", "APT::Sandbox::User=root"]
    return [*cmd, package]


def download_package(package: str, dest: Path) -> Path:
    """``apt-get download`` one package into ``dest`` and return the ``.deb`` path.

    An already-downloaded ``.deb`` in ``dest`` is reused, so re-runs with a kept ``work_dir``
    do not touch the network.
    """
    dest.mkdir(parents=True, exist_ok=True)
    existing = _find_deb(package, dest)
    if existing is not None:
        return existing
    proc = subprocess.run(
        _apt_download_cmd(package), cwd=dest, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip()
        hint = ""
        if "Unable to locate package" in err or "has no installation candidate" in err:
            hint = (
                f"\nThe package '{package}' is not known to apt here. Run 'apt-get update' "
                "first; if it still fails, this Debian/Ubuntu release may name it differently "
                f"('apt-cache search --names-only {package}', 'apt-cache policy {package}')."
            )
        raise LandscapeFetchError(f"apt-get download {package} failed:\n{err}{hint}")
    deb = _find_deb(package, dest)
    if deb is None:
        raise LandscapeFetchError(f"apt-get download {package} reported success but no .deb found")
    return deb


def _find_deb(package: str, dest: Path) -> Path | None:
    # apt names files '<pkg>_<version with ':' as %3a>_<arch>.deb'
    debs = sorted(dest.glob(f"{package}_*.deb"))
    return debs[-1] if debs else None


def unpack_package(deb: Path, root: Path) -> UnpackedPackage:
    """Extract ``deb`` with ``dpkg-deb -x`` (no maintainer scripts, no install) into ``root``."""
    dpkg_deb = _require_tool("dpkg-deb")

    def field(name: str) -> str:
        out = subprocess.run(
            [dpkg_deb, "-f", str(deb), name], capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            raise LandscapeFetchError(f"dpkg-deb -f {deb.name} {name} failed: {out.stderr.strip()}")
        return out.stdout.strip()

    name, version = field("Package"), field("Version")
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [dpkg_deb, "-x", str(deb), str(root)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise LandscapeFetchError(f"dpkg-deb -x {deb.name} failed: {proc.stderr.strip()}")
    return UnpackedPackage(name=name, version=version, deb=deb, root=root)


# --------------------------------------------------------------------------- copyright files


def parse_dep5(text: str) -> list[dict[str, str]]:
    """Parse a machine-readable ``debian/copyright`` into stanzas of folded header fields.

    Only the first line of multi-line values is kept verbatim plus continuation lines joined by
    newlines, which is enough for the ``Files``, ``Copyright`` and ``License`` headers we need.
    """
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if line[0] in " \t":
            if key is not None:
                current[key] += "\n" + line.strip()
            continue
        m = re.match(r"^([A-Za-z0-9-]+):\s*(.*)$", line)
        if m:
            key = m.group(1).lower()
            current[key] = m.group(2).strip()
    if current:
        stanzas.append(current)
    return stanzas


def _files_match(pattern: str, path: str) -> bool:
    """Does one DEP-5 ``Files`` glob match an *installed* path?

    DEP-5 globs are relative to the source tree (``nature/Dune.jpg``, ``16.04/x.jpg``) while we
    hold installed paths (``usr/share/backgrounds/mate/nature/Dune.jpg``), so a pattern matches
    if it matches any path suffix, or failing that if its file-name part matches ours.
    """
    if pattern == "*":
        return True
    if fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, "*/" + pattern):
        return True
    base = pattern.rsplit("/", 1)[-1]
    return base not in ("*", "") and fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], base)


def copyright_for(stanzas: list[dict[str, str]], path: str) -> tuple[str, str]:
    """Return ``(copyright, licence name)`` of the most specific stanza covering ``path``.

    As in DEP-5, the last matching stanza wins; ``debian/*`` stanzas are skipped because they
    cover packaging, not the shipped images.
    """
    best: dict[str, str] | None = None
    for st in stanzas:
        files = st.get("files")
        if not files:
            continue
        patterns = files.split()
        if all(p.startswith("debian/") for p in patterns):
            continue
        if any(_files_match(p, path) for p in patterns):
            best = st
    if best is None:
        return ("(no matching stanza)", "(unknown)")
    holder = " ".join(best.get("copyright", "").split())
    licence = best.get("license", "").splitlines()[0] if best.get("license") else ""
    return holder, licence


def read_copyright(root: Path, package: str) -> list[dict[str, str]]:
    """Read and parse ``usr/share/doc/<package>/copyright`` from an unpacked package."""
    f = root / "usr" / "share" / "doc" / package / "copyright"
    if not f.is_file():
        log.warning("%s: no copyright file at %s", package, f)
        return []
    return parse_dep5(f.read_text(encoding="utf-8", errors="replace"))


# --------------------------------------------------------------------------- main entry


def _plasma_metadata(root: Path, path: str) -> str:
    """Author/licence from a KDE wallpaper's ``metadata.json`` (it is more specific than
    debian/copyright, which blankets the whole package as GPL-2+)."""
    parts = path.split("/")
    if "contents" not in parts:
        return ""
    meta = root.joinpath(*parts[: parts.index("contents")], "metadata.json")
    if not meta.is_file():
        return ""
    # The files contain trailing commas (KDE's lenient JSON); strip them before parsing.
    text = re.sub(r",(\s*[}\]])", r"\1", meta.read_text(encoding="utf-8"))
    try:
        plugin = json.loads(text).get("KPlugin", {})
    except json.JSONDecodeError:
        return ""
    authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
    return f"metadata.json: {authors}; License {plugin.get('License', '?')}"


def _write_credits(
    out_dir: Path,
    rows: list[tuple[CuratedImage, UnpackedPackage, str, str, str]],
    size: int,
) -> Path:
    lines = [
        "# Landscape training set: credits",
        "",
        f"{len(rows)} photographs, resized to {size} px high (centre crop to at most 2:1) "
        "(LANCZOS), no other changes and no augmentation. Each comes from a Debian package "
        "downloaded with `apt-get download` and unpacked with `dpkg-deb -x` "
        "(built by `scripts/fetch_landscapes.py`, `infinitygan.training.landscapes`).",
        "",
        "'Licence (curated)' is what the package documents for the file; 'debian/copyright' is "
        "the matching stanza of `usr/share/doc/<package>/copyright`.",
        "",
        "| Image | Package | Version | Path in package | Licence (curated) | Author (curated) "
        "| debian/copyright | Notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for item, pkg, holder, licence, extra in rows:
        note = "; ".join(x for x in (item.note, extra) if x)
        cells = [
            f"`{item.out_name}`",
            item.package,
            pkg.version,
            f"`/{item.path}`",
            item.licence,
            item.author,
            f"{licence} — {holder}",
            note,
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "Licences: CC-BY-4.0 / CC-BY-SA-3.0 (attribution, share-alike), GPL-2+/GPL-3+ and "
        "LGPL-3.0 (as distributed by Debian). Derived models and images should keep this "
        "attribution.",
        "",
    ]
    path = out_dir / CREDITS_NAME
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    """Delete PNGs a previous run wrote (known prefixes) that are no longer curated, so a
    shrinking curated list cannot leave rejected photos in the training folder."""
    prefixes = tuple(f"{p}_" for p in PACKAGE_PREFIX.values())
    for f in out_dir.glob("*.png"):
        if f.name.startswith(prefixes) and f.name not in keep:
            log.info("removing stale %s", f.name)
            f.unlink()


def fetch_landscapes(
    out_dir: Path = DEFAULT_OUT_DIR,
    size: int = 256,
    work_dir: Path | None = None,
    *,
    min_images: int = MIN_IMAGES,
) -> list[Path]:
    """Download the six packages, extract them, and write the curated photos to ``out_dir``.

    ``work_dir`` keeps the ``.deb`` files and extracted trees (and reuses them on a re-run); when
    it is ``None`` a temporary directory is used and removed afterwards. Curated files missing
    from a package are skipped with a warning; fewer than ``min_images`` results is an error.
    Returns the written PNG paths in :data:`CURATED` order; also writes ``CREDITS.md``.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    _require_tool("apt-get")
    _require_tool("dpkg-deb")
    out_dir = Path(out_dir)
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="infinitygan-landscapes-") as tmp:
            return _fetch(out_dir, size, Path(tmp), min_images)
    return _fetch(out_dir, size, Path(work_dir), min_images)


def _fetch(out_dir: Path, size: int, work_dir: Path, min_images: int) -> list[Path]:
    debs_dir, extract_dir = work_dir / "debs", work_dir / "extract"
    unpacked: dict[str, UnpackedPackage] = {}
    stanzas: dict[str, list[dict[str, str]]] = {}
    for package in PACKAGES:
        log.info("downloading %s", package)
        deb = download_package(package, debs_dir)
        pkg = unpack_package(deb, extract_dir / package)
        unpacked[package] = pkg
        stanzas[package] = read_copyright(pkg.root, package)
        log.info("unpacked %s %s", package, pkg.version)

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    rows: list[tuple[CuratedImage, UnpackedPackage, str, str, str]] = []
    for item in CURATED:
        pkg = unpacked[item.package]
        src = pkg.root / item.path
        if not src.is_file():
            log.warning(
                "%s %s does not contain %s; skipping (the curated list may need updating "
                "for this release)",
                item.package,
                pkg.version,
                item.path,
            )
            continue
        dst = out_dir / item.out_name
        try:
            process_image(src, dst, size)
        except OSError as exc:
            log.warning("could not read %s from %s: %s; skipping", item.path, item.package, exc)
            continue
        holder, licence = copyright_for(stanzas[item.package], item.path)
        extra = _plasma_metadata(pkg.root, item.path) if item.package.startswith("plasma") else ""
        rows.append((item, pkg, holder, licence, extra))
        written.append(dst)

    if len(written) < min_images:
        raise LandscapeFetchError(
            f"only {len(written)} curated landscape images were found (need at least "
            f"{min_images}); the packages in this release probably moved or renamed their "
            "files. Check the warnings above, or train on your own image folder."
        )
    _remove_stale(out_dir, {p.name for p in written})
    _write_credits(out_dir, rows, size)
    return written
