"""What the server tests and the server benchmark both need: free ports, a Redis of their own,
metric readings and the tiny checkpoint they serve.

`tests/server/conftest.py` builds its fixtures from these, and `bench/bench_server.py` imports
them (with the repository root on `sys.path`), so a benchmark measures the same setup the tests
check rather than a copy that may drift.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]


def free_socket() -> socket.socket:
    """A listening-ready socket on a free port (hand it to uvicorn: no race for the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with free_socket() as sock:
        return sock.getsockname()[1]


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` (e.g. `infinitygan_rendered_metatiles_total`) whose labels
    include `labels`, in a Prometheus text exposition (a server's `/metrics`)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def write_tiny_checkpoint(path: Path) -> str:
    """Save a `tiny` generator whose noise strengths, biases and styles are all non-trivial
    (`tests/conftest.py`: a freshly initialised one has zero noise strengths, so tiles with
    misplaced noise would still match a one-pass render); returns its version."""
    import torch

    from infinitygan.model.checkpoint import save_checkpoint

    threads = torch.get_num_threads()
    from tests.conftest import nontrivial_generator

    torch.set_num_threads(threads)  # that import pins the test suite to one thread; not us
    return save_checkpoint(path, nontrivial_generator("tiny", 0))


def start_serve(
    checkpoint: Path, port: int, stderr: int = subprocess.PIPE, **env: str
) -> subprocess.Popen[str]:
    """`infinitygan serve` of `checkpoint` on `port`, on the CPU with one thread, configured by
    `env` alone (without Redis unless it names a REDIS_URL); stderr piped unless told."""
    environ = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("INFINITYGAN_") and k != "REDIS_URL"
        },
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "INFINITYGAN_CHECKPOINT": str(checkpoint),
        "INFINITYGAN_DEVICE": "cpu",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "infinitygan.cli", "serve", "--port", str(port)],
        env=environ,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float) -> httpx.Response:
    """Poll `url`/readyz of the server `proc` runs until it answers 200 (that answer); raise if
    the process exits first or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with status {proc.returncode}")
        try:
            ready = httpx.get(f"{url}/readyz", timeout=2)
            if ready.status_code == 200:
                return ready
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server at {url} was not ready within {timeout_s:g}s")
        time.sleep(0.1)


class RedisProcess:
    """A redis-server of our own on a free port, which tests may kill and restart."""

    def __init__(self, *extra_args: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client()
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)
