"""`infinitygan` command line: parse and validate flags, then make one library call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model.world import World


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


def _zero_or_in(lo: int, hi: int) -> Callable[[str], int]:
    """argparse type: 0 (off) or a decimal integer within [lo, hi)."""
    number = _int_in()

    def parse(text: str) -> int:
        value = number(text)
        if value != 0 and not lo <= value < hi:
            raise argparse.ArgumentTypeError(f"must be 0 or {lo}..{hi - 1}, got {value}")
        return value

    return parse


def _world_name(world: World) -> str:
    if not world.biomes:
        return "one style"
    return f"biomes every {world.biome_px} px, {world.transition_px}-px transitions"


def _cmd_render(args: argparse.Namespace) -> int:
    from PIL import Image

    from .malloc_tuning import keep_render_memory
    from .model.canvas import Rect, render_region
    from .model.checkpoint import load_generator
    from .model.world import World

    try:  # the pair, before the checkpoint loads (argparse checked each flag alone)
        world = World(args.biome_px, args.transition_px)
    except ValueError as exc:
        args.parser.error(f"--biome-px {args.biome_px} --transition-px {args.transition_px}: {exc}")
    keep_render_memory()
    rect = Rect(args.x, args.y, args.width, args.height)
    ckpt = load_generator(args.checkpoint, device=args.device)
    img = render_region(
        ckpt.generator, args.seed, rect, max_chunk=args.chunk, progress=True, world=world
    )
    Image.fromarray(img).save(args.output)
    print(
        f"wrote {args.output} ({rect.width}x{rect.height}, checkpoint {ckpt.version}, "
        f"{_world_name(world)})"
    )
    return 0


def _add_render(sub: argparse._SubParsersAction) -> None:
    from .model.canvas import MAX_COORD
    from .model.checkpoint import DEFAULT_CHECKPOINT
    from .model.latents import MAX_SEED
    from .model.world import DEFAULT_WORLD, MAX_BIOME_PX, MIN_BIOME_PX

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
    p.add_argument(
        "--biome-px",
        type=_zero_or_in(MIN_BIOME_PX, MAX_BIOME_PX + 1),
        default=DEFAULT_WORLD.biome_px,
        help="a new biome (global style) about every this many px along x; 0: one style",
    )
    p.add_argument(
        "--transition-px",
        type=_int_in(1),
        default=DEFAULT_WORLD.transition_px,
        help="width of the blend between two biomes, at most --biome-px / 2",
    )
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=_cmd_render, parser=p)


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from .model.config import TrainConfig
    from .training.loop import train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields and v is not None})
    if args.dry_run:
        print(json.dumps(cfg.resolved().to_dict(), indent=2))
        return 0
    state = train(cfg, resume=not args.fresh)
    print(f"stopped at iteration {state.step}; state in {cfg.run_dir}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    import dataclasses

    from .model.config import PRESETS, TrainConfig

    p = sub.add_parser(
        "train",
        help="train a model (resumes from RUN_DIR/state.safetensors)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = TrainConfig()
    p.add_argument("--preset", choices=sorted(PRESETS), default=defaults.preset)
    p.add_argument("--data", default=defaults.data, help="folder of training images")
    p.add_argument("--run-dir", dest="run_dir", default=defaults.run_dir)
    for f in dataclasses.fields(TrainConfig):
        if f.name in {"preset", "data", "run_dir"}:
            continue
        flag = "--" + f.name.replace("_", "-")
        value = f.default  # r1_gamma's None means "the preset's" (TrainConfig.resolved)
        if isinstance(value, bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=value)
        elif isinstance(value, int):
            p.add_argument(flag, dest=f.name, type=_int_in(0), default=value)
        elif isinstance(value, float) or value is None:
            p.add_argument(flag, dest=f.name, type=float, default=value)
        else:
            p.add_argument(flag, dest=f.name, default=value)
    p.add_argument("--fresh", action="store_true", help="ignore an existing state and start over")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=_cmd_train)


def _add_server_commands(sub: argparse._SubParsersAction) -> None:
    """`serve` and `prefetch` live with the server and its HTTP client."""
    from .prefetch_client import add_prefetch_parser
    from .server.cli_commands import add_serve_parser

    add_serve_parser(sub)
    add_prefetch_parser(sub)


def _cmd_eval(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from .eval.evaluate import EvalConfig, evaluate_checkpoint
    from .eval.fid import MetricsUnavailable
    from .eval.report import format_table

    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    ecfg = EvalConfig(**{k: v for k, v in vars(args).items() if k in fields})
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        report = evaluate_checkpoint(args.checkpoint, args.data, ecfg)
    except MetricsUnavailable as e:
        print(f"infinitygan eval: error: {e}", file=sys.stderr)
        return 2
    print(format_table(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    from .eval.evaluate import EvalConfig
    from .eval.fid import EXTRACTORS
    from .model.checkpoint import DEFAULT_CHECKPOINT
    from .model.config import TrainConfig

    p = sub.add_parser(
        "eval",
        help="patch, ScaleInv and band FID, seams, repetition, diversity vs floor and ceiling",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = EvalConfig()
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="generator file")
    p.add_argument("--data", default=TrainConfig().data, help="folder of real images")
    p.add_argument("--samples", type=_int_in(4), default=d.samples, help="patches per set")
    p.add_argument(
        "--scaleinv-samples",
        dest="scaleinv_samples",
        type=_int_in(4),
        default=d.scaleinv_samples,
        help="images per set for ScaleInv FID",
    )
    p.add_argument(
        "--scaleinv-scale",
        dest="scaleinv_scale",
        type=_int_in(1, 65),
        default=d.scaleinv_scale,
        help="field of view multiple for ScaleInv FID",
    )
    p.add_argument(
        "--band-samples",
        dest="band_samples",
        type=_int_in(4),
        default=d.band_samples,
        help="training-image-high squares per set for band FID",
    )
    p.add_argument(
        "--seam-blocks",
        dest="seam_blocks",
        type=_int_in(1),
        default=d.seam_blocks,
        help="2x2-tile blocks rendered in one pass and tile by tile",
    )
    p.add_argument(
        "--strip-width",
        dest="strip_width",
        type=_int_in(256, 2**17),
        default=d.strip_width,
        help="px of the horizon strip for the repetition score",
    )
    p.add_argument(
        "--strip-seeds", dest="strip_seeds", type=_int_in(1), default=d.strip_seeds, help="strips"
    )
    p.add_argument("--seed", type=_int_in(0, 2**31), default=d.seed, help="sampling seed")
    p.add_argument(
        "--extractor",
        choices=sorted(EXTRACTORS),
        default=d.extractor,
        help="features for FID/KID (pixels: a cheap smoke test, not FID)",
    )
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--threads",
        type=_int_in(0, 1025),
        default=0,
        help="CPU threads (0: torch's default; 1 is fastest on a machine busy with training)",
    )
    p.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    p.set_defaults(func=_cmd_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infinitygan",
        description="InfinityGAN: an endless, seamless generated landscape as XYZ tiles.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_render(sub)
    _add_train(sub)
    _add_server_commands(sub)
    _add_eval(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .data.patches import DataError
    from .model.checkpoint import CheckpointError
    from .training.state import StateError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CheckpointError, DataError, StateError, ValueError, TypeError) as e:
        print(f"infinitygan {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"infinitygan {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
