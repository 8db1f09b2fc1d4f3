"""`infinitygan prefetch URL --seed S --bbox X0,Y0,X1,Y1 --zoom ZMIN-ZMAX`: warm a running
server's cache over plain HTTP, with bounded concurrency and a progress bar.

The bbox is inclusive tile coordinates at the highest requested zoom (as in `POST /prefetch`);
lower zooms fetch the parent tiles. Zooms run from the highest down, each finished before the
next starts, so the server builds every zoomed-out tile from children already cached. The tile
URL template comes from the server's TileJSON, so requests carry the version it serves (its
checkpoint and world). The zoom levels come from the server's own `TileGrid.pyramid` (pure
Python: no FastAPI, no torch).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx
from tqdm import tqdm

from .server.errors import InvalidPrefetch
from .server.tiling import TileGrid, range_count

_RETRY_STATUS = {429, 502, 503, 504}
_MAX_BACKOFF_S = 10.0


@dataclass(frozen=True)
class PrefetchSummary:
    total: int
    ok: int
    failed: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0


def parse_bbox(text: str) -> tuple[int, int, int, int]:
    try:
        x0, y0, x1, y1 = (int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bbox must be X0,Y0,X1,Y1 integers, got {text!r}"
        ) from None
    if x0 > x1 or y0 > y1:
        raise argparse.ArgumentTypeError("bbox must have X0 <= X1 and Y0 <= Y1")
    return x0, y0, x1, y1


def parse_zoom(text: str) -> tuple[int, int]:
    """`8` or `5-8` -> (zmin, zmax)."""
    try:
        parts = [int(p) for p in text.split("-")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"zoom must be Z or ZMIN-ZMAX, got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 0 or parts[0] > parts[-1]:
        raise argparse.ArgumentTypeError(
            f"zoom must be Z or ZMIN-ZMAX (ZMIN <= ZMAX), got {text!r}"
        )
    return parts[0], parts[-1]


async def _fetch(client: httpx.AsyncClient, url: str, retries: int) -> bool:
    """GET one tile, honouring Retry-After on overload; True when it ends in a 200."""
    for attempt in range(retries + 1):
        try:
            response = await client.get(url)
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 200:
            return True
        if response is not None and response.status_code not in _RETRY_STATUS:
            return False
        if attempt < retries:
            header = response.headers.get("retry-after", "") if response is not None else ""
            delay = float(header) if header.isdigit() else 0.2 * 2**attempt
            await asyncio.sleep(min(delay, _MAX_BACKOFF_S))
    return False


async def prefetch(
    url: str,
    seed: int,
    bbox: tuple[int, int, int, int],
    zooms: tuple[int, int],
    concurrency: int = 8,
    timeout_s: float = 120.0,
    retries: int = 5,
    progress: bool = True,
) -> PrefetchSummary:
    base = url.rstrip("/")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        response = await client.get(f"{base}/tiles/{seed}/tilejson.json")
        response.raise_for_status()
        tilejson = response.json()
        # Only the zoom range matters to the client; the metatile side is the server's affair.
        grid = TileGrid(tilejson["minzoom"], tilejson["maxzoom"], metatile=1)
        levels = grid.pyramid(bbox, *zooms)
        # The server's tile URL may be root-relative: resolved against the TileJSON URL.
        template: str = urljoin(str(response.url), tilejson["tiles"][0])
        total = sum(range_count(r) for r in levels.values())
        ok = failed = 0
        start = time.perf_counter()
        with tqdm(total=total, unit="tile", disable=not progress, desc="prefetch") as bar:
            for z, (x0, y0, x1, y1) in levels.items():
                todo = ((x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1))

                async def worker(z: int = z, todo: Iterator[tuple[int, int]] = todo) -> None:
                    nonlocal ok, failed
                    for x, y in todo:
                        tile_url = template.format(z=z, x=x, y=y)
                        if await _fetch(client, tile_url, retries):
                            ok += 1
                        else:
                            failed += 1
                        bar.update(1)

                await asyncio.gather(*(worker() for _ in range(concurrency)))
        return PrefetchSummary(total, ok, failed, time.perf_counter() - start)


def _run(args: argparse.Namespace) -> int:
    try:
        summary = asyncio.run(
            prefetch(
                args.url,
                args.seed,
                args.bbox,
                args.zoom,
                args.concurrency,
                args.timeout,
                args.retries,
                progress=not args.quiet,
            )
        )
    except (httpx.HTTPError, InvalidPrefetch, ValueError, KeyError) as exc:
        print(f"prefetch failed: {exc}", file=sys.stderr)
        return 2
    print(
        f"prefetched {summary.ok}/{summary.total} tiles in {summary.seconds:.1f}s "
        f"({summary.rate:.1f} tiles/s), {summary.failed} failed"
    )
    return 1 if summary.failed else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_prefetch_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "prefetch",
        help="warm a running tile server's cache over HTTP",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("url", help="server base URL, e.g. http://localhost:8000")
    parser.add_argument("--seed", type=int, required=True, help="canvas seed, 0 <= seed < 2**63")
    parser.add_argument(
        "--bbox",
        type=parse_bbox,
        required=True,
        help="X0,Y0,X1,Y1: inclusive tile coordinates at the highest zoom (negative allowed)",
    )
    parser.add_argument("--zoom", type=parse_zoom, required=True, help="Z or ZMIN-ZMAX")
    parser.add_argument("--concurrency", type=_positive, default=8, help="requests in flight")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--retries", type=int, default=5, help="retries on 429/503 or errors")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)
    return parser
