"""Download and unpack Debian packages without installing them.

``apt-get download`` fetches a ``.deb`` with the machine's ordinary package client (its mirrors,
its signatures) and ``dpkg-deb -x`` extracts the files into a scratch folder: no maintainer
scripts run and nothing is installed system-wide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class FetchError(RuntimeError):
    """Raised with a message a user can act on (missing tool, unknown package, too few images)."""


@dataclass(frozen=True)
class UnpackedPackage:
    """A downloaded and extracted package: where its files are and which version they are."""

    name: str
    version: str
    deb: Path
    root: Path


def require_tool(tool: str) -> str:
    """The path of ``tool`` on PATH, or a `FetchError` that says what to do instead."""
    path = shutil.which(tool)
    if path is None:
        raise FetchError(
            f"'{tool}' was not found on PATH. Fetching the landscape photos needs a Debian or "
            "Ubuntu system with apt and dpkg, or point training at any folder of your own "
            "landscape images instead."
        )
    return path


def _apt_download_cmd(package: str) -> list[str]:
    cmd = [require_tool("apt-get"), "download", "-q"]
    # As root, apt drops privileges to the '_apt' user for downloads; that user usually cannot
    # write into a root-owned temp dir, which makes apt warn ("Download is performed unsandboxed
    # as root"). Downloading as root explicitly is equivalent here and keeps the output clean.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd += ["-o", "APT::Sandbox::User=root"]
    return [*cmd, package]


def _find_deb(package: str, dest: Path) -> Path | None:
    # apt names files '<pkg>_<version with ':' as %3a>_<arch>.deb'
    debs = sorted(dest.glob(f"{package}_*.deb"))
    return debs[-1] if debs else None


def download_package(package: str, dest: Path) -> Path:
    """``apt-get download`` one package into ``dest`` and return the ``.deb`` path.

    An already-downloaded ``.deb`` in ``dest`` is reused, so re-runs with a kept work folder do
    not touch the network.
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
        raise FetchError(f"apt-get download {package} failed:\n{err}{hint}")
    deb = _find_deb(package, dest)
    if deb is None:
        raise FetchError(f"apt-get download {package} reported success but no .deb found")
    return deb


def unpack_package(deb: Path, root: Path) -> UnpackedPackage:
    """Extract ``deb`` with ``dpkg-deb -x`` (no maintainer scripts, no install) into ``root``."""
    dpkg_deb = require_tool("dpkg-deb")

    def field(name: str) -> str:
        out = subprocess.run(
            [dpkg_deb, "-f", str(deb), name], capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            raise FetchError(f"dpkg-deb -f {deb.name} {name} failed: {out.stderr.strip()}")
        return out.stdout.strip()

    name, version = field("Package"), field("Version")
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [dpkg_deb, "-x", str(deb), str(root)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise FetchError(f"dpkg-deb -x {deb.name} failed: {proc.stderr.strip()}")
    return UnpackedPackage(name=name, version=version, deb=deb, root=root)
