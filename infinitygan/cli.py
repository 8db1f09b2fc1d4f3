"""`infinitygan` command line: parse and validate flags, then make one library call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def _int_in(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse type: a decimal integer within [lo, hi)."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if lo is not None and value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        if hi is not None and value >= hi:
            raise argparse.ArgumentTypeError(f"must be < {hi}, got {value}")
        return value

    return parse


def _cmd_render(args: argparse.Namespace) -> int:
    from PIL import Image

    from .model.canvas import Rect, render_region
    from .model.checkpoint import load_generator

    rect = Rect(args.x, args.y, args.width, args.height)
    ckpt = load_generator(args.checkpoint, device=args.device)
    img = render_region(ckpt.generator, args.seed, rect, max_chunk=args.chunk, progress=True)
    Image.fromarray(img).save(args.output)
    print(f"wrote {args.output} ({rect.width}x{rect.height}, checkpoint {ckpt.version})")
    return 0


def _add_render(sub: argparse._SubParsersAction) -> None:
    from .model.canvas import MAX_COORD
    from .model.checkpoint import DEFAULT_CHECKPOINT
    from .model.latents import MAX_SEED

    p = sub.add_parser(
        "render",
        help="render a canvas rectangle (native scale) to a PNG",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), required=True)
    p.add_argument("--x", type=_int_in(-MAX_COORD, MAX_COORD), default=0, help="left canvas px")
    p.add_argument(
        "--y",
        type=_int_in(-MAX_COORD, MAX_COORD),
        default=-256,
        help="top canvas px (0 is the horizon)",
    )
    p.add_argument("--width", type=_int_in(1, 2**20), default=1024)
    p.add_argument("--height", type=_int_in(1, 2**20), default=512)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--chunk",
        type=_int_in(1),
        default=None,
        help="max chunk side in px (default: from a memory budget)",
    )
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=_cmd_render)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infinitygan",
        description="InfinityGAN: an endless, seamless generated landscape as XYZ tiles.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_render(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .model.checkpoint import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CheckpointError, ValueError, TypeError) as e:
        print(f"infinitygan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"infinitygan {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
