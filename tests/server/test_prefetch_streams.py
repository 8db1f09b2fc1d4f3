"""Prefetch jobs shared by replicas on one Redis of the test's own (set up before the servers,
so it outlives them): readable and cancellable on every replica, worked by several, finished by
the others when one is SIGKILLed mid-job, a unit that always fails counted failed after its
attempts, and never worked by a replica that serves another version (checkpoint or world)."""

from __future__ import annotations

import copy
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import torch

from infinitygan.model.checkpoint import LoadedCheckpoint
from infinitygan.model.latents import global_latent
from infinitygan.server.settings import Settings

from .conftest import LiveServer, TinyCheckpoint, settings_for
from .harness import RedisProcess, free_port, metric_value, start_serve, wait_ready
from .test_prefetch import wait_for

RENDERED = "infinitygan_rendered_metatiles_total"
ITEMS = "infinitygan_prefetch_items_total"


@dataclass
class Replica:
    """An `infinitygan serve` process (what `wait_for` needs of a server: a client)."""

    proc: subprocess.Popen[str]
    client: httpx.Client

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.client.get("/metrics").text, name, **labels)


@pytest.fixture
def serve_replicas(tiny_checkpoint: TinyCheckpoint) -> Iterator[Any]:
    """Factory: `n` `infinitygan serve` processes with `env`, started together; all killed
    after the test."""
    replicas: list[Replica] = []

    def start(n: int, **env: str) -> list[Replica]:
        started = []
        for port in [free_port() for _ in range(n)]:
            proc = start_serve(tiny_checkpoint.path, port, stderr=subprocess.DEVNULL, **env)
            url = f"http://127.0.0.1:{port}"
            started.append(Replica(proc, httpx.Client(base_url=url, timeout=30)))
        replicas.extend(started)
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(lambda r: wait_ready(str(r.client.base_url), r.proc, 120), started))
        return started

    yield start
    for replica in replicas:
        replica.proc.kill()
        replica.proc.wait(30)
        replica.client.close()


def items_key(replica: Replica | LiveServer) -> str:
    """The stream of prefetch work of the version `replica` serves."""
    version = replica.client.get("/readyz").json()["version"]
    return f"infinitygan:prefetch:{version}:items"


def failing_for_seed(tiny: TinyCheckpoint, seed: int) -> tuple[LoadedCheckpoint, list[int]]:
    """The tiny checkpoint with a generator that raises whenever it renders `seed` (whose
    global latent is its first input), like a model failing on one input; and the list that
    records each failed call."""
    generator = copy.deepcopy(tiny.generator)
    poison = global_latent(seed, generator.cfg.z_dim)
    failures: list[int] = []

    def fail_on_seed(_: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if torch.equal(args[0][0].cpu(), poison):
            failures.append(seed)
            raise RuntimeError(f"the model fails on seed {seed}")

    generator.register_forward_pre_hook(fail_on_seed)
    return LoadedCheckpoint(generator, generator.cfg, tiny.version, tiny.path), failures


def test_a_job_is_shared_and_worked_by_every_replica(
    own_redis: RedisProcess, live_server: Any, tiny_checkpoint: TinyCheckpoint
) -> None:
    settings = settings_for(tiny_checkpoint, redis_url=own_redis.url, metatile=1)
    replicas = [live_server(settings) for _ in range(3)]
    a, b, c = replicas
    renders = [r.metric(RENDERED) for r in replicas]
    job = {"seed": 61, "minzoom": 6, "maxzoom": 8, "bbox": [0, 0, 7, 7]}
    created = a.client.post("/prefetch", json=job)
    assert created.status_code == 202
    job_id = created.json()["id"]
    seen = b.client.get(f"/prefetch/{job_id}").json()
    assert seen["id"] == job_id and seen["total"] == 64 + 16 + 4 and seen["seed"] == 61
    done = wait_for(c, job_id, {"done"})
    assert done["done"] == done["total"] and done["failed"] == 0 and done["remaining"] == 0
    rendered = [r.metric(RENDERED) - before for r, before in zip(replicas, renders, strict=True)]
    assert sum(rendered) == 64, rendered  # each metatile once, by whichever replica
    assert sum(n > 0 for n in rendered) >= 2, rendered
    assert sum(r.metric(ITEMS, event="acked") for r in replicas) == 84
    for path in ("/tiles/61/8/7/7.png", "/tiles/61/7/3/3.png", "/tiles/61/6/0/0.png"):
        assert c.client.get(path).status_code == 200
    assert sum(r.metric(RENDERED) for r in replicas) == sum(renders) + 64  # all were cached


def test_a_job_is_cancelled_from_any_replica(
    own_redis: RedisProcess, live_server: Any, tiny_checkpoint: TinyCheckpoint
) -> None:
    settings = settings_for(tiny_checkpoint, redis_url=own_redis.url, metatile=1)
    a, b, c = (live_server(settings) for _ in range(3))
    job = {"seed": 62, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, 63, 63]}
    job_id = a.client.post("/prefetch", json=job).json()["id"]
    cancelled = b.client.delete(f"/prefetch/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    final = c.client.get(f"/prefetch/{job_id}").json()
    assert final["state"] == "cancelled" and final["done"] + final["skipped"] < final["total"]
    assert c.client.delete("/prefetch/nope").json()["error"]["code"] == "job_not_found"
    # Every replica acks the rest unworked: the stream empties.
    deadline = time.monotonic() + 30
    while (
        c.metric("infinitygan_prefetch_stream_length") > 0
        or c.metric("infinitygan_prefetch_pending") > 0
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert wait_for(a, job_id, {"cancelled"})["done"] < final["total"]


def test_a_unit_that_always_fails_counts_failed_after_its_attempts(
    own_redis: RedisProcess, live_server: Any, tiny_checkpoint: TinyCheckpoint
) -> None:
    checkpoint, failures = failing_for_seed(tiny_checkpoint, 66)
    settings = settings_for(
        tiny_checkpoint,
        redis_url=own_redis.url,
        metatile=1,
        prefetch_claim_timeout_s=0.3,
        prefetch_max_attempts=2,
    )
    server = live_server(settings, checkpoint=checkpoint)
    job = {"seed": 66, "minzoom": 7, "maxzoom": 8, "bbox": [0, 0, 1, 1]}
    job_id = server.client.post("/prefetch", json=job).json()["id"]
    final = wait_for(server, job_id, {"done"}, timeout=20)
    # Four native tiles fail twice each; their parent then fails too (its children are
    # missing), and the job still finishes.
    assert final["failed"] == final["total"] == 5 and final["done"] == 0
    tried = len(failures)
    time.sleep(5 * settings.prefetch_claim_timeout_s)
    assert len(failures) == tried > 0  # never retried again
    assert server.metric(ITEMS, event="failed") == 5
    assert server.metric(ITEMS, event="reclaimed") >= 4
    error = own_redis.client().hget(f"infinitygan:prefetch:job:{job_id}", "last_error")
    assert error is not None and b"seed 66" in error


def test_a_replica_killed_mid_job_loses_nothing(
    own_redis: RedisProcess, serve_replicas: Any
) -> None:
    replicas = serve_replicas(
        3,
        REDIS_URL=own_redis.url,
        INFINITYGAN_METATILE="1",
        INFINITYGAN_MINZOOM="6",
        INFINITYGAN_MAXZOOM="8",
        INFINITYGAN_PREFETCH_CONCURRENCY="2",
        INFINITYGAN_PREFETCH_CLAIM_TIMEOUT_S="1.5",
        # The render lock the victim held expires after this; the others then render.
        INFINITYGAN_RENDER_TIMEOUT_S="4",
    )
    a, b, victim = replicas
    warmups = [r.metric(RENDERED) for r in replicas]  # each renders one metatile to warm up
    job = {"seed": 67, "minzoom": 6, "maxzoom": 8, "bbox": [0, 0, 7, 7]}
    job_id = a.client.post("/prefetch", json=job).json()["id"]
    deadline = time.monotonic() + 20
    while victim.metric(ITEMS, event="claimed") - victim.metric(ITEMS, event="acked") < 1:
        assert time.monotonic() < deadline, "the victim never held work"
        time.sleep(0.01)
    rendered_by_victim = victim.metric(RENDERED) - warmups[2]  # cached unless in flight
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    redis = own_redis.client()
    held = {
        c["name"].decode(): c["pending"] for c in redis.xinfo_consumers(items_key(a), "prefetch")
    }
    assert any(f"-{victim.proc.pid}-" in name and n > 0 for name, n in held.items()), held

    done = wait_for(b, job_id, {"done"}, timeout=60)
    assert done["failed"] == 0 and done["done"] + done["skipped"] == done["total"] == 84
    assert a.metric(ITEMS, event="reclaimed") + b.metric(ITEMS, event="reclaimed") >= 1
    renders = a.metric(RENDERED) + b.metric(RENDERED) - warmups[0] - warmups[1]
    # No metatile rendered twice, but those the victim held in flight when it died (at most
    # the units it had in hand).
    in_hand = Settings().prefetch_in_hand
    assert 64 - rendered_by_victim - in_hand <= renders <= 64 - rendered_by_victim + in_hand
    for z, side in ((8, 8), (7, 4), (6, 2)):
        for y in range(side):
            for x in range(side):
                assert a.client.get(f"/tiles/67/{z}/{x}/{y}.png").status_code == 200
    after = a.metric(RENDERED) + b.metric(RENDERED) - warmups[0] - warmups[1]
    assert after == renders  # every tile was cached


def test_a_restarted_replica_resumes_queued_work(
    own_redis: RedisProcess, serve_replicas: Any
) -> None:
    """The only replica stops mid-job (SIGTERM, as an orchestrator restarts it); the job stays
    in Redis, and the replica started in its place on the same Redis finishes it."""
    env = {
        "REDIS_URL": own_redis.url,
        "INFINITYGAN_METATILE": "1",
        "INFINITYGAN_MINZOOM": "7",
        "INFINITYGAN_MAXZOOM": "8",
        "INFINITYGAN_PREFETCH_CLAIM_TIMEOUT_S": "1.5",
    }
    (first,) = serve_replicas(1, **env)
    items = items_key(first)
    job = {"seed": 69, "minzoom": 7, "maxzoom": 8, "bbox": [0, 0, 15, 7]}
    job_id = first.client.post("/prefetch", json=job).json()["id"]
    deadline = time.monotonic() + 20
    while first.metric(ITEMS, event="acked") < 1:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.01)
    first.proc.terminate()
    # uvicorn shuts down, then ends by the signal it caught
    assert first.proc.wait(30) in (0, -signal.SIGTERM)
    redis = own_redis.client()
    assert redis.hget(f"infinitygan:prefetch:job:{job_id}", "state") == b"running"
    assert redis.xlen(items) > 0  # work left, queued in Redis

    (second,) = serve_replicas(1, **env)
    done = wait_for(second, job_id, {"done"}, timeout=90)
    assert done["failed"] == 0 and done["done"] + done["skipped"] == done["total"] == 128 + 32
    assert second.metric(ITEMS, event="acked") > 0


def test_a_replica_of_another_world_never_works_a_job(
    own_redis: RedisProcess, live_server: Any, tiny_checkpoint: TinyCheckpoint
) -> None:
    """Two worlds on one Redis: a job caches the tiles of the version it was submitted to, only
    that version's replicas work it (the other's would cache its own tiles and call the job
    done), each version counts its own running jobs, and any replica reads or cancels any job."""
    shared = {"redis_url": own_redis.url, "metatile": 1, "prefetch_max_jobs": 1}
    biomes = live_server(settings_for(tiny_checkpoint, **shared))
    plain = live_server(settings_for(tiny_checkpoint, biome_px=0, **shared))
    assert biomes.version != plain.version
    before = {r: r.metric(RENDERED) for r in (biomes, plain)}
    job = {"seed": 63, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, 3, 1]}
    created = plain.client.post("/prefetch", json=job).json()
    assert created["version"] == plain.version
    done = wait_for(biomes, created["id"], {"done"})  # read from the other world's replica
    assert done["done"] == done["total"] == 8 and done["version"] == plain.version
    assert biomes.metric(RENDERED) == before[biomes]
    assert plain.metric(RENDERED) - before[plain] == 8
    for x in range(4):
        for y in range(2):
            assert plain.client.get(f"/tiles/63/8/{x}/{y}.png").status_code == 200
    assert plain.metric(RENDERED) - before[plain] == 8  # all were the job's, cached
    assert biomes.metric(ITEMS, event="claimed") == 0
    assert own_redis.client().xlen(items_key(biomes)) == 0  # no work of its version queued

    long = {"seed": 64, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, 15, 15]}
    ids = []
    for replica in (biomes, plain):  # one running job each: the other's does not count
        response = replica.client.post("/prefetch", json=long)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    assert plain.client.post("/prefetch", json=long).status_code == 429
    # cancelled from the other world's replica, the job frees its own version's slot
    assert biomes.client.delete(f"/prefetch/{ids[1]}").json()["state"] == "cancelled"
    again = plain.client.post("/prefetch", json=long)
    assert again.status_code == 202, again.text
    for replica, job_id in ((biomes, ids[0]), (plain, again.json()["id"])):
        assert replica.client.delete(f"/prefetch/{job_id}").json()["state"] == "cancelled"


def test_without_redis_jobs_live_in_the_process(
    live_server: Any, tiny_checkpoint: TinyCheckpoint
) -> None:
    """The same API on one replica without Redis (`PrefetchManager`)."""
    server = live_server(settings_for(tiny_checkpoint, metatile=1))
    job = {"seed": 68, "minzoom": 7, "maxzoom": 8, "bbox": [0, 0, 1, 1]}
    created = server.client.post("/prefetch", json=job)
    assert created.status_code == 202 and created.json()["total"] == 5
    done = wait_for(server, created.json()["id"], {"done"})
    assert done["done"] == 5 and done["failed"] == 0
    assert server.metric(ITEMS) == 0  # no stream consumer here
    assert server.client.get("/prefetch/nope").status_code == 404
