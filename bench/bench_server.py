"""Tile server benchmarks, printed side by side in one run.

1. Cached tiles held in process: the full stack (`GET /tiles/...`) vs a minimal ASGI endpoint in
   the same server process returning the same bytes (target ratio >= 0.8).
2. Tiles from Redis (in-process cache off): full stack vs a minimal endpoint that reads the same
   key from the same Redis per request (target >= 0.5 of the in-process minimal endpoint).
3. Bytes per tile of each format (PNG, WebP, JPEG) and the server's encode time per tile.
4. Cold tiles/s through HTTP (render + encode + cache) vs the renderer's raw metatile throughput
   (`render_batch` in a loop, same metatile size and batch) (target >= 0.8).
5. The cold cost of one tile per zoom level, and what a screenful would cost at each.
6. A pan-and-zoom replay of viewer sessions by many concurrent clients: zero failed requests.

Tiles are requested in `--format` (default WebP, the format TileJSON advertises).

Throughput is measured with `wrk` (apt-get install wrk); the server runs in a subprocess with
uvloop + httptools, exactly as `infinitygan serve` runs it. Usage:

    python bench/bench_server.py [--checkpoint PATH] [--format webp] [--phases memory,redis]

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
from typing import Any

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


def serve(settings_json: str, port: int, body_file: str, redis_key: str | None) -> None:
    """Run create_app under uvicorn, wrapped by a dispatcher that answers /bench/raw (the bytes
    in body_file, read once) and /bench/redis-raw (redis GET of redis_key per request) without
    touching the app: the minimal endpoints of the comparison."""
    import redis.asyncio as aioredis
    import uvicorn

    from infinitygan.server.app import create_app
    from infinitygan.server.settings import Settings

    settings = Settings(**json.loads(settings_json))
    app = create_app(settings)
    client = aioredis.Redis.from_url(settings.redis_url) if settings.redis_url else None
    body: dict[str, bytes] = {}
    headers = [(b"content-type", b"application/octet-stream")]

    async def send_bytes(send: Any, data: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*headers, (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def dispatcher(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path")
        if path == "/bench/raw":
            if "raw" not in body:
                body["raw"] = Path(body_file).read_bytes()
            await send_bytes(send, body["raw"])
        elif path == "/bench/redis-raw" and client is not None and redis_key:
            await send_bytes(send, await client.get(redis_key) or b"")
        else:
            await app(scope, receive, send)

    uvicorn.run(
        dispatcher,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=75,  # as `infinitygan serve`
    )


class Server:
    def __init__(self, settings: dict[str, Any], redis_key: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        fd, self.body_file = tempfile.mkstemp(suffix=".tile")
        os.close(fd)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                json.dumps(settings),
                "--port",
                str(self.port),
                "--body-file",
                self.body_file,
                "--redis-key",
                redis_key or "",
            ],
            cwd=ROOT,
        )
        self.version = wait_ready(self.url, self.proc, timeout_s=300).json()["checkpoint_version"]
        self.pid = self.proc.pid
        self.minzoom = settings["minzoom"]

    def metric(self, name: str) -> float:
        return metric_value(httpx.get(f"{self.url}/metrics").text, name)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        Path(self.body_file).unlink(missing_ok=True)


# ---------------------------------------------------------------- measurements


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, duration: int, connections: int, pid: int) -> dict[str, float]:
    """Throughput and latency from wrk, plus the server's CPU time per request: on a machine
    shared with other work, CPU per request is the stable basis for a ratio."""
    cpu0 = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
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


def compare(
    label: str, server: Server, full_path: str, raw_path: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Alternate the two endpoints (rounds) so background load hits both alike; keep the best."""
    runs: dict[str, list[dict[str, float]]] = {"full": [], "raw": []}
    for _ in range(args.rounds):
        for name, path in (("raw", raw_path), ("full", full_path)):
            runs[name].append(wrk(server.url + path, args.duration, args.connections, server.pid))
    best = {k: max(v, key=lambda r: r["rps"]) for k, v in runs.items()}
    ratio = best["full"]["rps"] / best["raw"]["rps"]
    cpu = {k: min(r["cpu_us_per_request"] for r in v) for k, v in runs.items()}
    cpu_ratio = cpu["raw"] / cpu["full"]
    print(f"\n{label}")
    for name in ("raw", "full"):
        r = best[name]
        print(
            f"  {name:>4}: {r['rps']:8.0f} req/s   p50 {r['p50_ms']:7.2f} ms   "
            f"p99 {r['p99_ms']:7.2f} ms   non-2xx {r['non2xx']:.0f}   "
            f"server CPU {cpu[name]:6.1f} us/request"
        )
    print(f"  ratio full/raw = {ratio:.2f} (throughput), {cpu_ratio:.2f} (CPU per request)")
    return {"label": label, **best, "ratio": ratio, "cpu_us": cpu, "cpu_ratio": cpu_ratio}


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


def phase_memory(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    tile = httpx.get(f"{server.url}/tiles/7/8/0/0.{args.format}", timeout=600)
    assert tile.status_code == 200, tile.status_code
    Path(server.body_file).write_bytes(tile.content)
    assert httpx.get(f"{server.url}/bench/raw").content == tile.content
    print(f"tile body: {len(tile.content)} bytes")
    return compare(
        "1. cached tile, in-process LRU: full stack vs minimal endpoint (target >= 0.8)",
        server,
        f"/tiles/7/8/0/0.{args.format}",
        "/bench/raw",
        args,
    )


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


def phase_redis(base: dict[str, Any], checkpoint: str, args: argparse.Namespace) -> dict[str, Any]:
    from infinitygan.model.checkpoint import content_version
    from infinitygan.server.cache import redis_tile_key
    from infinitygan.server.encode import served_encodings
    from infinitygan.server.tiling import TileAddress, content_key

    redis_proc = RedisProcess("--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru")
    redis_proc.start()
    prefix = "bench"
    settings = {
        **base,
        "redis_url": redis_proc.url,
        "cache_bytes": 0,  # every request reads Redis
        "redis_prefix": prefix,
    }
    version = content_version(Path(checkpoint).read_bytes())
    tag = served_encodings(85, 85)[args.format].tag
    key = redis_tile_key(prefix, content_key(version, TileAddress(7, 8, 0, 0), tag))
    try:
        server = Server(settings, redis_key=key)
        try:
            tile = httpx.get(f"{server.url}/tiles/7/8/0/0.{args.format}", timeout=600)
            assert tile.status_code == 200, tile.status_code
            # The baseline must read the very bytes the server cached, or it measures nothing.
            assert httpx.get(f"{server.url}/bench/redis-raw").content == tile.content
            return compare(
                "2. cached tile, from Redis: full stack vs minimal Redis-reading endpoint",
                server,
                f"/tiles/7/8/0/0.{args.format}",
                "/bench/redis-raw",
                args,
            )
        finally:
            server.stop()
    finally:
        redis_proc.kill()


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
    parser.add_argument("--body-file", help=argparse.SUPPRESS)
    parser.add_argument("--redis-key", help=argparse.SUPPRESS)
    parser.add_argument("--replay-minzoom", type=int, default=7)
    parser.add_argument(
        "--phases", default="memory,redis,formats,cold,zoom,replay", help="comma list"
    )
    parser.add_argument("--minzoom", type=int, default=5, help="lowest zoom served and timed")
    parser.add_argument("--format", default="webp", choices=("webp", "png", "jpg"))
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    if args.serve:
        serve(args.serve, args.port, args.body_file, args.redis_key or None)
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
    }
    print(
        f"checkpoint {checkpoint}; format {args.format}; metatile {args.metatile}; "
        f"batch {args.batch}; "
        f"wrk -c{args.connections} {args.duration}s x {args.rounds} rounds"
    )
    phases = set(args.phases.split(","))
    results: dict[str, Any] = {}
    if phases & {"memory", "formats", "cold", "zoom", "replay"}:
        server = Server(base)
        try:
            if "memory" in phases:
                results["memory"] = phase_memory(server, args)
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
    if "redis" in phases:
        results["redis"] = phase_redis(base, checkpoint, args)
        if "memory" in results:
            ratio = results["redis"]["full"]["rps"] / results["memory"]["raw"]["rps"]
            print(f"  ratio full-from-Redis / in-process minimal = {ratio:.2f} (target >= 0.5)")
            results["redis"]["ratio_vs_memory_raw"] = ratio
    (tmp / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {tmp / 'results.json'}")


if __name__ == "__main__":
    main()
