"""Fixtures: a tiny checkpoint with every term non-trivial, real uvicorn servers on free ports,
real Redis.

The shared Redis on 127.0.0.1:6379 is used under a per-run key prefix (deleted afterwards);
tests that kill Redis start their own `redis-server` on another port.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn

from infinitygan.model.checkpoint import LoadedCheckpoint, load_generator
from infinitygan.model.networks import Generator
from infinitygan.server.app import create_app
from infinitygan.server.settings import Settings
from infinitygan.server.uvicorn_config import uvicorn_config

from .harness import RedisProcess, free_socket, metric_value, write_tiny_checkpoint

SHARED_REDIS = "redis://127.0.0.1:6379/0"
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class TinyCheckpoint:
    path: Path
    version: str
    generator: Generator


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> TinyCheckpoint:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    version = write_tiny_checkpoint(path)
    return TinyCheckpoint(path, version, load_generator(path, "cpu").generator)


class LiveServer:
    """`create_app(settings)` under a real uvicorn (`serve`'s configuration) in a thread."""

    def __init__(self, settings: Settings, checkpoint: LoadedCheckpoint | None = None) -> None:
        self.settings = settings
        self.app = create_app(settings, checkpoint)
        self._sock = free_socket()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        # The same configuration as `infinitygan serve`: its limits and timeouts included.
        self._server = uvicorn.Server(uvicorn_config(self.app, settings, log_level="warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self.client = httpx.Client(base_url=self.url, timeout=30.0)

    def start(self, wait_ready: bool = True) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        path = "/readyz" if wait_ready else "/healthz"
        while time.monotonic() < deadline:
            try:
                if self.client.get(path).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server at {self.url} not answering {path}")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)
        self.client.close()
        self._sock.close()
        assert not self._thread.is_alive(), "uvicorn did not shut down"

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` (e.g. `infinitygan_rendered_metatiles_total`)."""
        return metric_value(self.client.get("/metrics").text, name, **labels)

    @property
    def version(self) -> str:
        """The served version (checkpoint and world): the `?v=` of tile URLs, in cache keys."""
        return self.client.get("/readyz").json()["version"]


def settings_for(tiny: TinyCheckpoint, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "checkpoint": tiny.path,
        "device": "cpu",
        "redis_url": None,
        "metatile": 2,  # small renders keep the suite fast on a busy 2-core machine
        "maxzoom": 8,
        "minzoom": 5,
        "encode_threads": 2,
        "render_timeout_s": 60.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def live_server() -> Iterator[Any]:
    """Factory: start servers with given settings; all are stopped after the test."""
    servers: list[LiveServer] = []

    def start(
        settings: Settings, wait_ready: bool = True, checkpoint: LoadedCheckpoint | None = None
    ) -> LiveServer:
        server = LiveServer(settings, checkpoint)
        servers.append(server)
        return server.start(wait_ready)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    prefix = f"infinitygan-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(SHARED_REDIS, socket_timeout=5)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def server(tiny_checkpoint: TinyCheckpoint, redis_prefix: str) -> Iterator[LiveServer]:
    """The main test server: tiny model, shared Redis under a per-run prefix."""
    live = LiveServer(
        settings_for(tiny_checkpoint, redis_url=SHARED_REDIS, redis_prefix=redis_prefix)
    ).start()
    yield live
    live.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    proc = RedisProcess()
    proc.start()
    yield proc
    proc.kill()
