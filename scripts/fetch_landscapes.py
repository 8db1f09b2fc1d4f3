#!/usr/bin/env python3
"""Build ``data/landscapes/`` from curated photos in Debian packages (see
``infinitygan.data.landscapes``). A thin CLI so the data step runs without torch."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# Allow running from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infinitygan.data.debian import FetchError
from infinitygan.data.landscapes import DEFAULT_OUT_DIR, MIN_IMAGES, fetch_landscapes


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the fetch and print a one-line summary; exit 1 on a clear error."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="output folder")
    ap.add_argument(
        "--size",
        type=int,
        default=256,
        help="image height in pixels (width keeps the aspect, up to 2:1)",
    )
    ap.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep downloaded .debs and extracted trees here (reused on re-runs)",
    )
    ap.add_argument("--min-images", type=int, default=MIN_IMAGES)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        paths = fetch_landscapes(args.out, args.size, args.work_dir, min_images=args.min_images)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} images ({total / 1e6:.1f} MB) and CREDITS.md to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
