"""Prefetch jobs over HTTP (run, progress, idempotent re-run, cancel) and the prefetch client,
against both backends: jobs on a Redis stream (REDIS_URL set) and jobs in the process."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from infinitygan.prefetch_client import add_prefetch_parser, parse_bbox, parse_zoom, prefetch
from infinitygan.server.errors import InvalidPrefetch

from .conftest import SHARED_REDIS, LiveServer, TinyCheckpoint, settings_for


@pytest.fixture(scope="module", params=["redis-stream", "in-process"])
def server(
    request: pytest.FixtureRequest, tiny_checkpoint: TinyCheckpoint, redis_prefix: str
) -> Iterator[LiveServer]:
    """The tiny server with each prefetch backend: the same API and semantics either way."""
    if request.param == "redis-stream":
        redis: dict[str, Any] = {"redis_url": SHARED_REDIS, "redis_prefix": redis_prefix}
    else:
        redis = {"redis_url": None}
    live = LiveServer(settings_for(tiny_checkpoint, **redis)).start()
    yield live
    live.stop()


def wait_for(server: LiveServer, job_id: str, states: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = server.client.get(f"/prefetch/{job_id}").json()
        if body["state"] in states:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_prefetch_job_runs_reports_and_skips_cached(server: LiveServer) -> None:
    # Aligned to a zoom-6 tile: every parent's children lie inside the bbox (a parent needs all
    # four children, so an unaligned bbox renders beyond itself at lower zooms).
    job = {"seed": 51, "minzoom": 6, "maxzoom": 8, "bbox": [-4, 0, -1, 3]}
    created = server.client.post("/prefetch", json=job)
    assert created.status_code == 202
    body = created.json()
    assert created.headers["location"] == f"/prefetch/{body['id']}"
    assert body["total"] == 16 + 4 + 1
    assert body["state"] == "running"
    assert body["version"] == server.version  # the tiles it caches: this checkpoint and world
    done = wait_for(server, body["id"], {"done"})
    assert done["done"] + done["skipped"] == done["total"] and done["failed"] == 0
    assert done["tiles_per_second"] > 0 and done["remaining"] == 0 and done["eta_seconds"] is None

    renders = server.metric("infinitygan_rendered_metatiles_total")
    again = server.client.post("/prefetch", json=job).json()
    rerun = wait_for(server, again["id"], {"done"})
    assert rerun["skipped"] == rerun["total"] and rerun["done"] == 0
    for path in ("/tiles/51/8/-4/3.png", "/tiles/51/7/-1/1.png", "/tiles/51/6/-1/0.png"):
        assert server.client.get(path).status_code == 200
    assert server.metric("infinitygan_rendered_metatiles_total") == renders  # all were cached


def test_prefetch_job_cancels(server: LiveServer) -> None:
    job = {"seed": 52, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, 127, 127]}
    body = server.client.post("/prefetch", json=job).json()
    assert body["total"] == 128 * 128
    running = server.client.get(f"/prefetch/{body['id']}").json()
    assert running["state"] == "running"
    cancelled = server.client.delete(f"/prefetch/{body['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    final = wait_for(server, body["id"], {"cancelled"})
    assert final["done"] + final["skipped"] < final["total"]
    # The queued prefetch work nobody waits for any more is dropped: the queue drains fast.
    deadline = time.monotonic() + 30
    while server.metric("infinitygan_queue_depth", priority="prefetch") > 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert server.client.get("/tiles/52/8/100/100.png").status_code == 200  # still serving


def test_prefetch_client_warms_the_cache(server: LiveServer, capsys: Any) -> None:
    parser = argparse.ArgumentParser(prog="infinitygan")
    add_prefetch_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "prefetch",
            server.url,
            "--seed",
            "53",
            "--bbox=0,0,1,1",
            "--zoom",
            "7-8",
            "--concurrency",
            "4",
            "--quiet",
        ]
    )
    assert args.func(args) == 0
    assert "prefetched 5/5 tiles" in capsys.readouterr().out
    renders = server.metric("infinitygan_rendered_metatiles_total")
    assert server.client.get("/tiles/53/7/0/0.png").status_code == 200
    assert server.client.get("/tiles/53/8/1/1.png").status_code == 200
    assert server.metric("infinitygan_rendered_metatiles_total") == renders


def test_prefetch_client_rejects_bad_arguments(server: LiveServer) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_zoom("8-5")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_bbox("1,2,3")
    with pytest.raises(InvalidPrefetch, match=r"must lie within 5\.\.8"):
        asyncio.run(prefetch(server.url, 0, (0, 0, 0, 0), (2, 8), progress=False))
