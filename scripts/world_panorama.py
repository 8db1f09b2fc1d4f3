"""Render a long strip of a world along the horizon and lay it out as rows for the docs: e.g.
16384 x 256 px over the model's band, folded into four rows of 4096 px and halved, so several
biomes and their transitions fit one README-width picture. Row r continues row r - 1.

    .venv/bin/python scripts/world_panorama.py --seed 1 -o docs/world-panorama.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from infinitygan.malloc_tuning import keep_render_memory
from infinitygan.model.canvas import Rect, render_region
from infinitygan.model.checkpoint import DEFAULT_CHECKPOINT, load_generator
from infinitygan.model.world import DEFAULT_WORLD, World


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=Path(DEFAULT_CHECKPOINT))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--x", type=int, default=0, help="left canvas px of the strip")
    ap.add_argument("--width", type=int, default=16384)
    ap.add_argument("--rows", type=int, default=4, help="rows the strip is folded into")
    ap.add_argument("--scale", type=int, default=2, help="area downscale factor")
    ap.add_argument("--biome-px", type=int, default=DEFAULT_WORLD.biome_px)
    ap.add_argument("--transition-px", type=int, default=DEFAULT_WORLD.transition_px)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    if args.width % (args.rows * args.scale):
        ap.error("--width must be a multiple of --rows x --scale")

    keep_render_memory()
    g = load_generator(args.checkpoint, "auto").generator
    y0, y1 = g.cfg.band
    margin = (y1 - y0) // 2  # half a band of sky above and of ground below
    rect = Rect(args.x, y0 - margin, args.width, y1 - y0 + 2 * margin)
    world = World(args.biome_px, args.transition_px)
    strip = render_region(g, args.seed, rect, progress=True, world=world)
    step = args.width // args.rows
    rows = np.concatenate([strip[:, i * step : (i + 1) * step] for i in range(args.rows)])
    img = Image.fromarray(rows)
    img = img.resize((img.width // args.scale, img.height // args.scale), Image.Resampling.BOX)
    img.save(args.output, quality=90)
    print(f"wrote {args.output}: seed {args.seed}, x {args.x}..{args.x + args.width}, {world.tag}")


if __name__ == "__main__":
    main()
