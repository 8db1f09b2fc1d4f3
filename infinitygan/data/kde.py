"""Author and licence of a KDE wallpaper from its own ``metadata.json``.

KDE packages document each wallpaper there, more specifically than ``debian/copyright``, which
blankets plasma-workspace-wallpapers as GPL-2+; CREDITS.md quotes both.
"""

from __future__ import annotations

import json
import re
from pathlib import Path


def wallpaper_metadata(root: Path, path: str) -> str:
    """``"metadata.json: <authors>; License <licence>"`` for the wallpaper whose image is at
    ``path`` (``<wallpaper>/contents/images/<size>.jpg``) under ``root``; "" when there is
    none or it cannot be read."""
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
