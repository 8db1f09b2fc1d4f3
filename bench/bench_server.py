"""Tile server benchmarks, printed side by side in one run.

1-2. Cached tiles, two servers side by side, wrk rounds alternating between four endpoints, each
   cycling over the same 16 tiles (one metatile around the horizon): the full stack
   (`GET /tiles/...`) with tiles held in process, vs a minimal ASGI endpoint in the same server
   returning the same bytes (target >= 0.8); the full stack of a server whose in-process cache is
   off, reading every tile from Redis, vs the in-process full stack (target >= 0.5), and vs a
   minimal endpoint doing one redis-py GET per request.
3. Bytes per tile of each format (PNG, WebP, JPEG) and the server's encode time per tile.
4. Cold tiles/s through HTTP (render + encode + cache) vs the renderer's raw metatile throughput
   (`render_batch` in a loop, same metatile size and batch) (target >= 0.8).
5. The cold cost of one tile per zoom level, and what a screenful would cost at each.
6. A pan-and-zoom replay of viewer sessions by many concurrent clients: zero failed requests.

Tiles are requested in `--format` (default WebP, the format TileJSON advertises).

Throughput is measured with `wrk` (apt-get install wrk); the server runs in a subprocess with
the uvicorn configuration `infinitygan serve` uses (`server/uvicorn_config.py`). Usage:

    python bench/bench_server.py [--checkpoint PATH] [--format webp] [--phases tiers,formats]

Without --checkpoint the shipped checkpoint is used if present, else the test suite's `tiny` one.
Redis, the tiny checkpoint and metric readings come from the test suite's harness
(`tests/server/harness.py`), and Redis keys from the server's own key functions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test suite's harness, shared with the benchmark

from tests.server.harness import (  # noqa: E402
    RedisProcess,
    free_port,
    metric_value,
    wait_ready,
    write_tiny_checkpoint,
)

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


# ---------------------------------------------------------------- server side (subprocess)


def serve(settings_json: str, port: int, bodies: str, redis_keys: str) -> None:
    """Run create_app under the server's own uvicorn config, behind a dispatcher that answers
    /bench/raw/{i} (the bytes of file {i} in the folder `bodies`, each read once) and
    /bench/redis-raw/{i} (a redis-py GET of line {i} of the file `redis_keys`, per request)
    without touching the app: the minimal endpoints of the comparison."""
    import redis.asyncio as aioredis
    import uvicorn

    from infinitygan.server.app import create_app
    from infinitygan.server.settings import Settings
    from infinitygan.server.uvicorn_config import uvicorn_config

    settings = Settings(**json.loads(settings_json))
    app = create_app(settings)
    client = aioredis.Redis.from_url(settings.redis_url) if settings.redis_url else None
    cached: dict[str, bytes] = {}
    keys: list[str] = []
    headers = [(b"content-type", b"application/octet-stream")]

    async def send_bytes(send: Any, data: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*headers, (b"content-length", b"%d" % len(data))],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def dispatcher(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if path.startswith("/bench/raw/"):
            name = path.removeprefix("/bench/raw/")
            if name not in cached:
                cached[name] = (Path(bodies) / name).read_bytes()
            await send_bytes(send, cached[name])
        elif path.startswith("/bench/redis-raw/") and client is not None:
            if not keys:
                keys.extend(Path(redis_keys).read_text().split())
            value = await client.get(keys[int(path.removeprefix("/bench/redis-raw/"))])
            await send_bytes(send, value or b"")
        else:
            await app(scope, receive, send)

    config = uvicorn_config(dispatcher, settings, port=port, log_level="warning")
    uvicorn.Server(config).run()


class Server:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bodies = Path(tempfile.mkdtemp(prefix="bench-bodies-"))  # /bench/raw/{i}
        self.redis_keys = self.bodies / "redis-keys"  # /bench/redis-raw/{i}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                json.dumps(settings),
                "--port",
                str(self.port),
                "--bodies",
                str(self.bodies),
                "--redis-keys",
                str(self.redis_keys),
            ],
            cwd=ROOT,
        )
        wait_ready(self.url, self.proc, timeout_s=300)
        self.pid = self.proc.pid
        self.minzoom = settings["minzoom"]

    def metric(self, name: str) -> float:
        return metric_value(httpx.get(f"{self.url}/metrics").text, name)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        shutil.rmtree(self.bodies, ignore_errors=True)


# ---------------------------------------------------------------- measurements


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cycling_script(paths: list[str]) -> str:
    """A wrk Lua script whose requests cycle over `paths` (each wrk thread from its own start)."""
    quoted = ", ".join(json.dumps(p) for p in paths)
    return (
        f"local paths = {{{quoted}}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\n'
        "end\n"
    )


def wrk(
    url: str, duration: int, connections: int, pid: int, paths: list[str] | None = None
) -> dict[str, float]:
    """Throughput and latency from wrk, plus the server's CPU time per request: on a machine
    shared with other work, CPU per request is the stable basis for a ratio. With `paths`, the
    requests cycle over them (on `url`'s host) instead of repeating `url`."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if paths:
            script.write(cycling_script(paths))
            script.flush()
            command[1:1] = ["-s", script.name]
        cpu0 = cpu_seconds(pid)
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu0
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "cpu_us_per_request": 1e6 * cpu / max(requests, 1),
    }
    for pct in ("50", "99"):
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        result[f"p{pct}_ms"] = float(value) * _UNITS[unit] * 1000
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = float(errors.group(1)) if errors else 0.0
    return result


class Endpoint(NamedTuple):
    """One thing wrk loads: `paths` on `server`, cycled over."""

    label: str
    server: Server
    paths: list[str]


def compare(endpoints: list[Endpoint], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Alternate wrk rounds over the endpoints (so background load hits them alike); keep each
    one's best throughput and its lowest server CPU per request."""
    runs: dict[str, list[dict[str, float]]] = {e.label: [] for e in endpoints}
    for _ in range(args.rounds):
        for e in endpoints:
            runs[e.label].append(
                wrk(
                    e.server.url + e.paths[0],
                    args.duration,
                    args.connections,
                    e.server.pid,
                    e.paths,
                )
            )
    best = {}
    for e in endpoints:
        top = max(runs[e.label], key=lambda r: r["rps"])
        cpu = min(r["cpu_us_per_request"] for r in runs[e.label])
        best[e.label] = {**top, "cpu_us_per_request": cpu}
        print(
            f"  {e.label:>22}: {top['rps']:8.0f} req/s   p50 {top['p50_ms']:6.2f} ms   "
            f"p99 {top['p99_ms']:7.2f} ms   non-2xx {top['non2xx']:.0f}   "
            f"server CPU {cpu:6.1f} us/request"
        )
    return best


def raw_render_rate(gen: Any, metatile: int, batch: int, n: int) -> float:
    """Tiles per second of render_batch alone, same sizes and batching as the server."""
    from infinitygan.model.canvas import Rect, render_batch

    size = 256 * metatile
    render_batch(gen, [(0, Rect(0, 0, size, size))] * batch)  # warm-up
    start = time.perf_counter()
    for i in range(0, n, batch):
        jobs = [(1000 + i + j, Rect(size * (i + j), 0, size, size)) for j in range(batch)]
        render_batch(gen, jobs)
    return n * metatile**2 / (time.perf_counter() - start)


async def cold_rate(url: str, metatile: int, n: int, in_flight: int, seed0: int, fmt: str) -> float:
    """Tiles per second for n uncached metatiles, all tiles of each requested at once."""
    sem = asyncio.Semaphore(in_flight)

    async def one(client: httpx.AsyncClient, k: int) -> None:
        async with sem:
            seed = seed0 + k
            paths = [
                f"/tiles/{seed}/8/{x}/{y}.{fmt}" for x in range(metatile) for y in range(metatile)
            ]
            responses = await asyncio.gather(*(client.get(p) for p in paths))
            assert all(r.status_code == 200 for r in responses), [r.status_code for r in responses]

    limits = httpx.Limits(max_connections=in_flight * metatile**2)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one(client, k) for k in range(n)))
        return n * metatile**2 / (time.perf_counter() - start)


async def replay(
    url: str, clients: int, steps: int, minzoom: int, maxzoom: int, fmt: str
) -> dict[str, Any]:
    """Viewer sessions on one shared map: each client opens near the horizon at x = 0, then pans
    (60 %) or zooms (40 %) between minzoom and maxzoom, loading the whole 1280x800 viewport plus
    one tile of buffer over 6 connections (as a browser does) before its next move."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def session(i: int) -> None:
        rng = random.Random(i)
        z = maxzoom
        cx, cy = rng.randrange(-1500, 1500), rng.randrange(-400, 400)  # canvas px at zoom N
        limits = httpx.Limits(max_connections=6)
        async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

            async def get(path: str) -> None:
                t = time.perf_counter()
                try:
                    status = (await client.get(path)).status_code
                except httpx.TransportError:
                    status = 0  # connection-level failure: counted, not retried
                latencies.append(time.perf_counter() - t)
                statuses[status] = statuses.get(status, 0) + 1

            for _ in range(steps):
                span = 256 << (maxzoom - z)  # canvas px per tile at zoom z
                half_w, half_h = 640 * span // 256, 400 * span // 256
                xs = range((cx - half_w) // span - 1, (cx + half_w) // span + 2)
                ys = range((cy - half_h) // span - 1, (cy + half_h) // span + 2)
                await asyncio.gather(*(get(f"/tiles/0/{z}/{x}/{y}.{fmt}") for y in ys for x in xs))
                if rng.random() < 0.6:
                    cx += rng.choice((-1, 1)) * rng.randrange(200, 700) * span // 256
                    cy += rng.choice((-1, 1)) * rng.randrange(0, 300) * span // 256
                else:
                    z = max(minzoom, min(maxzoom, z + rng.choice((-1, 1))))

    start = time.perf_counter()
    await asyncio.gather(*(session(i) for i in range(clients)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    ok = statuses.get(200, 0)
    return {
        "requests": len(latencies),
        "ok": ok,
        "failed": len(latencies) - ok,
        "statuses": statuses,
        "seconds": elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


# ---------------------------------------------------------------- driver


def bench_tiles(fmt: str, metatile: int) -> list[str]:
    """One metatile of tiles centred on the horizon (sky, the band, ground: sizes vary)."""
    rows = range(-(metatile // 2), metatile - metatile // 2)
    return [f"/tiles/7/8/{x}/{y}.{fmt}" for y in rows for x in range(metatile)]


def phase_tiers(base: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Cached tiles from process memory and from Redis alone, side by side in one run."""
    from infinitygan.server.cache import redis_tile_key

    redis_proc = RedisProcess("--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru")
    redis_proc.start()
    prefix = "bench"
    paths = bench_tiles(args.format, args.metatile)
    raw = [f"/bench/raw/{i}" for i in range(len(paths))]
    redis_raw = [f"/bench/redis-raw/{i}" for i in range(len(paths))]
    memory = Server(base)
    shared = Server({**base, "redis_url": redis_proc.url, "cache_bytes": 0, "redis_prefix": prefix})
    try:
        keys = []
        for i, path in enumerate(paths):
            tile = httpx.get(memory.url + path, timeout=600)
            again = httpx.get(shared.url + path, timeout=600)  # rendered, stored in Redis
            assert tile.status_code == again.status_code == 200, path
            assert tile.content == again.content, path
            (memory.bodies / str(i)).write_bytes(tile.content)
            keys.append(redis_tile_key(prefix, tile.headers["etag"].strip('"')))  # ETag = key
        shared.redis_keys.write_text("\n".join(keys))
        for i in range(len(paths)):  # the baselines must return the very bytes of the tiles
            body = (memory.bodies / str(i)).read_bytes()
            assert httpx.get(memory.url + raw[i]).content == body
            assert httpx.get(shared.url + redis_raw[i]).content == body
        sizes = [len((memory.bodies / str(i)).read_bytes()) for i in range(len(paths))]
        print(
            f"\n1-2. cached tiles ({len(paths)} tiles cycled, {statistics.mean(sizes):.0f} B "
            f"mean body): process memory vs Redis alone"
        )
        best = compare(
            [
                Endpoint("memory: minimal", memory, raw),
                Endpoint("memory: full stack", memory, paths),
                Endpoint("redis: minimal (GET)", shared, redis_raw),
                Endpoint("redis: full stack", shared, paths),
            ],
            args,
        )
    finally:
        memory.stop()
        shared.stop()
        redis_proc.kill()
    rps = {label: r["rps"] for label, r in best.items()}
    ratios = {
        "memory full / memory minimal (target >= 0.8)": (
            rps["memory: full stack"] / rps["memory: minimal"]
        ),
        "redis full / memory full (target >= 0.5)": (
            rps["redis: full stack"] / rps["memory: full stack"]
        ),
        "redis full / memory minimal": rps["redis: full stack"] / rps["memory: minimal"],
        "redis full / redis minimal": rps["redis: full stack"] / rps["redis: minimal (GET)"],
    }
    for what, ratio in ratios.items():
        print(f"  {what}: {ratio:.2f}")
    return {"endpoints": best, "ratios": ratios, "mean_bytes": statistics.mean(sizes)}


def phase_cold(server: Server, checkpoint: str, args: argparse.Namespace) -> dict[str, Any]:
    """Alternating rounds (as in `compare`), fresh seeds each round; the best of each kept."""
    from infinitygan.model.checkpoint import load_generator

    generator = load_generator(checkpoint, "cpu").generator
    raws, https = [], []
    for r in range(args.rounds):
        raws.append(raw_render_rate(generator, args.metatile, args.batch, args.cold_metatiles))
        renders = server.metric("infinitygan_rendered_metatiles_total")
        seed0 = 5_000_000 + 1000 * r
        https.append(
            asyncio.run(
                cold_rate(
                    server.url,
                    args.metatile,
                    args.cold_metatiles,
                    2 * args.batch,
                    seed0,
                    args.format,
                )
            )
        )
        rendered = server.metric("infinitygan_rendered_metatiles_total") - renders
        assert rendered == args.cold_metatiles, rendered
    raw, http = max(raws), max(https)
    print("\n4. cold tiles (render + encode + cache) vs raw render_batch (target >= 0.8)")
    print(f"  raw : {raw:8.1f} tiles/s\n  http: {http:8.1f} tiles/s\n  ratio = {http / raw:.2f}")
    return {"http_tiles_per_s": http, "raw_tiles_per_s": raw, "ratio": http / raw}


def phase_formats(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """Bytes per tile in each format over an M x M block of tiles centred on the horizon (where
    the viewer opens: sky, the band and ground), and the encoder's time per tile from the
    server's own histogram (PNG and WebP at render, JPEG on first request)."""
    m = args.metatile
    rows = range(-(m // 2), m - m // 2)
    paths = [f"/tiles/9/8/{x}/{y}" for y in rows for x in range(m)]
    sizes: dict[str, float] = {}
    encode_ms: dict[str, float] = {}
    for fmt in ("png", "webp", "jpg"):
        bodies = [httpx.get(f"{server.url}{p}.{fmt}", timeout=600).content for p in paths]
        sizes[fmt] = statistics.mean(len(b) for b in bodies)
    text = httpx.get(f"{server.url}/metrics").text
    for fmt in sizes:
        total = metric_value(text, "infinitygan_encode_seconds_sum", format=fmt)
        count = metric_value(text, "infinitygan_encode_seconds_count", format=fmt)
        encode_ms[fmt] = 1000 * total / count if count else float("nan")
    print("\nformats: mean bytes per tile over one metatile, encoder ms per tile (server)")
    for fmt in sizes:
        print(
            f"  {fmt:>4}: {sizes[fmt]:9.0f} B  {sizes[fmt] / sizes['png']:5.2f} of PNG   "
            f"encode {encode_ms[fmt]:5.1f} ms"
        )
    return {"bytes": sizes, "encode_ms": encode_ms}


def phase_zoom(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """Cold cost of one tile per zoom level (each on a fresh seed, so nothing below it is
    cached): seconds and metatile renders; and what a 1280x800 screen (6x5 tiles incl. the
    buffer a viewer loads) would cost cold at that zoom, from the measured seconds/metatile."""
    out = {}
    print("\ncold cost of one tile per zoom (fresh seed each), and of a 1280x800 screen")
    for k, z in enumerate(range(8, server.minzoom - 1, -1)):
        renders = server.metric("infinitygan_rendered_metatiles_total")
        start = time.perf_counter()
        r = httpx.get(f"{server.url}/tiles/{7_000_000 + k}/{z}/0/0.{args.format}", timeout=3600)
        seconds = time.perf_counter() - start
        assert r.status_code == 200, r.status_code
        metas = server.metric("infinitygan_rendered_metatiles_total") - renders
        span = 1 << (8 - z)  # native tiles per side
        screen = math.ceil(6 * span / args.metatile) * math.ceil(5 * span / args.metatile)
        screen_s = seconds / metas * screen
        out[z] = {
            "seconds": seconds,
            "metatiles": metas,
            "screen_metatiles": screen,
            "screen_seconds": screen_s,
        }
        print(
            f"  z{z}: {seconds:7.2f} s  {metas:4.0f} metatiles   screen ~{screen:4d} "
            f"metatiles ~{screen_s:6.0f} s"
        )
    return out


def phase_replay(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    rep = asyncio.run(
        replay(
            server.url, args.replay_clients, args.replay_steps, args.replay_minzoom, 8, args.format
        )
    )
    print(
        f"\n6. pan-and-zoom replay: {args.replay_clients} clients x {args.replay_steps} views: "
        f"{rep['requests']} requests in {rep['seconds']:.1f}s, {rep['failed']} failed "
        f"(statuses {rep['statuses']}), p50 {rep['p50_ms']:.1f} ms, p99 {rep['p99_ms']:.1f} ms"
    )
    return rep


def tiny_checkpoint(directory: Path) -> str:
    path = directory / "tiny.safetensors"
    write_tiny_checkpoint(path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", help="checkpoint to serve (default: shipped, else tiny)")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating wrk rounds (best kept)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--metatile", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2, help="metatiles per forward pass")
    parser.add_argument("--cold-metatiles", type=int, default=8)
    parser.add_argument("--replay-clients", type=int, default=16)
    parser.add_argument("--replay-steps", type=int, default=6)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--redis-keys", help=argparse.SUPPRESS)
    parser.add_argument("--replay-minzoom", type=int, default=7)
    parser.add_argument("--phases", default="tiers,formats,cold,zoom,replay", help="comma list")
    parser.add_argument("--minzoom", type=int, default=6, help="lowest zoom served and timed")
    parser.add_argument("--format", default="webp", choices=("webp", "png", "jpg"))
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    if args.serve:
        serve(args.serve, args.port, args.bodies, args.redis_keys)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is required: apt-get install wrk")

    from infinitygan.model.checkpoint import DEFAULT_CHECKPOINT

    tmp = Path(tempfile.mkdtemp(prefix="bench-server-"))
    checkpoint = args.checkpoint or (
        str(DEFAULT_CHECKPOINT) if Path(DEFAULT_CHECKPOINT).exists() else tiny_checkpoint(tmp)
    )
    base = {
        "checkpoint": checkpoint,
        "device": "cpu",
        "metatile": args.metatile,
        "batch_max": args.batch,
        "minzoom": args.minzoom,
        "maxzoom": 8,
        "render_timeout_s": 600,
        "queue_interactive": 4096,
        # one style, like the raw render_batch it is compared with (bench_biomes.py: biomes)
        "biome_px": 0,
    }
    print(
        f"checkpoint {checkpoint}; format {args.format}; metatile {args.metatile}; "
        f"batch {args.batch}; "
        f"wrk -c{args.connections} {args.duration}s x {args.rounds} rounds"
    )
    phases = set(args.phases.split(","))
    results: dict[str, Any] = {}
    if "tiers" in phases:
        results["tiers"] = phase_tiers(base, args)
    if phases & {"formats", "cold", "zoom", "replay"}:
        server = Server(base)
        try:
            if "formats" in phases:
                results["formats"] = phase_formats(server, args)
            if "cold" in phases:
                results["cold"] = phase_cold(server, checkpoint, args)
            if "zoom" in phases:
                results["zoom"] = phase_zoom(server, args)
            if "replay" in phases:
                results["replay"] = phase_replay(server, args)
        finally:
            server.stop()
    (tmp / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {tmp / 'results.json'}")


if __name__ == "__main__":
    main()
