"""`infinitygan serve` with a bad checkpoint: a real process exits non-zero within seconds, with
one clear line on stderr, and never listens; a good one is loaded once, before binding."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from infinitygan.model.config import PRESETS
from infinitygan.server.app import load_checkpoint

from .conftest import TinyCheckpoint, settings_for
from .harness import free_port, start_serve, wait_ready

# Typically 5 s on a 2-core machine busy with training, nearly all of it importing torch; the
# bound is generous so that a loaded CI machine does not fail it, and far below "never".
EXIT_WITHIN_S = 30.0


@dataclass(frozen=True)
class ServeRun:
    returncode: int | None  # None: still running when we gave up (and killed it)
    stderr: str
    seconds: float
    connected: bool  # did anything ever accept a connection on its port


def serve(checkpoint: Path, **env: str) -> ServeRun:
    """Run `infinitygan serve` on a free port; poll that port the whole time it runs."""
    port = free_port()
    start = time.monotonic()
    proc = start_serve(checkpoint, port, **env)
    connected = threading.Event()

    def probe() -> None:
        while proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                connected.set()
            except OSError:
                pass
            time.sleep(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        _, stderr = proc.communicate(timeout=2 * EXIT_WITHIN_S)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        code = None
    seconds = time.monotonic() - start
    prober.join(5)
    return ServeRun(code, stderr, seconds, connected.is_set())


def _rewrite(src: Path, dst: Path, edit: Callable[[dict, dict], None]) -> Path:
    data = src.read_bytes()
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + n])["__metadata__"]
    tensors = load_file(src)
    edit(meta, tensors)
    save_file(tensors, dst, metadata=meta)
    return dst


def _small_config(meta: dict, _: dict) -> None:
    meta["config"] = json.dumps(PRESETS["small"].generator.to_dict())


def _nan_weight(_: dict, tensors: dict) -> None:
    name = "texture.convs.0.weight"
    tensors[name] = tensors[name].clone()
    tensors[name][0, 0, 1, 1] = float("nan")


# (case id, how to make the file from the good one and a folder, env, phrase on stderr)
Maker = Callable[[Path, Path], Path]
CASES: list[tuple[str, Maker, dict[str, str], str]] = [
    (
        "truncated",
        lambda good, d: _write(d / "t.safetensors", good.read_bytes()[:5000]),
        {},
        "truncated or corrupt",
    ),
    (
        "random-bytes",
        lambda good, d: _write(d / "r.safetensors", random.Random(0).randbytes(4096)),
        {},
        "not a valid safetensors file",
    ),
    ("missing", lambda good, d: d / "missing.safetensors", {}, "no such checkpoint file"),
    ("directory", lambda good, d: d, {}, "a directory, not a regular file"),
    ("dev-zero", lambda good, d: Path("/dev/zero"), {}, "a character device, not a regular"),
    ("fifo", lambda good, d: _fifo(d / "c.fifo"), {}, "a FIFO, not a regular file"),
    (
        "config-mismatch",
        lambda good, d: _rewrite(good, d / "m.safetensors", _small_config),
        {},
        "weights do not match the config",
    ),
    (
        "nan-weights",
        lambda good, d: _rewrite(good, d / "n.safetensors", _nan_weight),
        {},
        "non-finite values in texture.convs.0.weight",
    ),
    (
        "too-large",
        lambda good, d: good,
        {"INFINITYGAN_CHECKPOINT_MAX_BYTES": "1000"},
        "larger than the limit of 1000 bytes",
    ),
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)  # nobody ever writes to it: opening it for reading would block forever
    return path


@pytest.fixture(scope="module")
def bad_runs(
    tiny_checkpoint: TinyCheckpoint, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, ServeRun]]:
    """Every case's process, two at a time (the test machine has two cores)."""

    def run(case: tuple[str, Maker, dict[str, str], str]) -> tuple[str, tuple[Path, ServeRun]]:
        name, make, env, _ = case
        path = make(tiny_checkpoint.path, tmp_path_factory.mktemp(name))
        return name, (path, serve(path, **env))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, CASES))


@pytest.mark.parametrize(
    ("name", "phrase"), [(c[0], c[3]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_checkpoint_exits_at_once(
    bad_runs: dict[str, tuple[Path, ServeRun]], name: str, phrase: str
) -> None:
    path, run = bad_runs[name]
    assert run.returncode is not None, f"still running after {run.seconds:.0f}s: {run.stderr}"
    assert run.returncode == 2, run.stderr
    assert run.seconds < EXIT_WITHIN_S, run.seconds
    assert not run.connected, "it accepted a connection before exiting"
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr  # one clear line, no traceback, no uvicorn banner
    assert lines[0].startswith("infinitygan serve: error: "), lines
    assert str(path) in lines[0] and phrase in lines[0], lines


def test_good_checkpoint_serves(tiny_checkpoint: TinyCheckpoint) -> None:
    """The positive control: the same command with a good file becomes ready, then shuts down
    cleanly on SIGTERM (uvicorn drains, then re-raises the signal it caught: status -SIGTERM)."""
    port = free_port()
    proc = start_serve(tiny_checkpoint.path, port, INFINITYGAN_METATILE="1")
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}", proc, timeout_s=120)
        assert ready.json()["checkpoint_version"] == tiny_checkpoint.version
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr, stderr


def test_a_preloaded_checkpoint_is_not_read_again(
    live_server, tiny_checkpoint: TinyCheckpoint, tmp_path: Path
) -> None:
    """`serve` hands the checkpoint it verified to the app: the app never opens the file."""
    path = tmp_path / "once.safetensors"
    path.write_bytes(tiny_checkpoint.path.read_bytes())
    settings = settings_for(tiny_checkpoint, checkpoint=path, metatile=1)
    checkpoint = load_checkpoint(settings)
    path.unlink()  # a second load would fail, and /readyz would say so
    server = live_server(settings, checkpoint=checkpoint)
    assert server.client.get("/readyz").json()["checkpoint_version"] == tiny_checkpoint.version
    assert server.client.get("/tiles/1/8/0/0.png").status_code == 200


def test_create_app_alone_still_reports_a_bad_checkpoint_in_readyz(
    live_server, tiny_checkpoint: TinyCheckpoint
) -> None:
    server = live_server(
        settings_for(tiny_checkpoint, checkpoint=Path("/dev/zero")), wait_ready=False
    )
    deadline = time.monotonic() + 30
    while "not a regular file" not in server.client.get("/readyz").text:
        assert time.monotonic() < deadline, server.client.get("/readyz").text
        time.sleep(0.05)
    assert server.client.get("/readyz").status_code == 503
    assert server.client.get("/healthz").status_code == 200
