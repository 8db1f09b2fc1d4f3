"""Request limits and timeouts against a real uvicorn (`serve`'s configuration), over raw sockets:
oversize or overlong heads get 431 and are not read on, oversize bodies 413 without being read,
stalled heads and bodies 408, connections past the bound 503, while `/healthz` stays fast."""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from infinitygan.server.http_limits import HttpLimits, LimitedHttpToolsProtocol

from .conftest import LiveServer, TinyCheckpoint, settings_for

TIMEOUT_S = 1.0  # head and body deadlines of the test server
GENEROUS_S = 8.0  # "within the timeout", on a busy 2-core machine
HEAD_MAX = 16 << 10
BODY_MAX = 16 << 10
PREFETCH = {"seed": 3, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, 0, 0]}


@pytest.fixture(scope="module")
def server(tiny_checkpoint: TinyCheckpoint) -> Iterator[LiveServer]:
    settings = settings_for(
        tiny_checkpoint,
        warmup=False,
        header_timeout_s=TIMEOUT_S,
        body_timeout_s=TIMEOUT_S,
        header_max_bytes=HEAD_MAX,
        header_max_fields=100,
        prefetch_max_body_bytes=BODY_MAX,
    )
    live = LiveServer(settings).start()
    yield live
    live.stop()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error_code(self) -> str:
        return json.loads(self.body)["error"]["code"]


def connect(server: LiveServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_until_closed(sock: socket.socket, timeout: float = GENEROUS_S) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def parse(raw: bytes) -> Answer:
    """The last response in `raw` (after any `100 Continue`)."""
    while raw.startswith(b"HTTP/1.1 100"):
        raw = raw.split(b"\r\n\r\n", 1)[1]
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return Answer(int(lines[0].split()[1]), headers, body)


def read_response(sock: socket.socket) -> Answer:
    """One response on a connection that may stay open (its Content-Length delimits it)."""
    raw = b""
    while True:
        while raw.startswith(b"HTTP/1.1 100") and b"\r\n\r\n" in raw:
            raw = raw.split(b"\r\n\r\n", 1)[1]
        if b"\r\n\r\n" in raw:
            answer = parse(raw)
            if len(answer.body) >= int(answer.headers.get("content-length", 0)):
                return answer
        chunk = sock.recv(1 << 16)
        assert chunk, f"closed after {raw!r}"
        raw += chunk


def assert_error(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status, answer
    assert answer.error_code() == code
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"


def assert_healthz_fast(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=GENEROUS_S) as client:
        start = time.monotonic()
        assert client.get("/healthz").status_code == 200
        assert time.monotonic() - start < 2.0


def rss_bytes() -> int:
    """This process's resident set: the server runs in a thread of it."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) << 10
    raise AssertionError("no VmRSS")


def request(path: str, *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def test_serve_and_tests_share_the_limited_protocol(server: LiveServer) -> None:
    config = server._server.config
    assert issubclass(config.http_protocol_class, LimitedHttpToolsProtocol)
    assert config.http_protocol_class.limits == HttpLimits.from_settings(server.settings)
    assert config.limit_concurrency is None  # it would 503 every connection once over


def test_serve_runs_the_same_config(
    tiny_checkpoint: TinyCheckpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infinitygan.server import cli_commands

    ran: list[uvicorn.Config] = []

    def run(self: uvicorn.Server, sockets: object = None) -> None:
        ran.append(self.config)
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setattr(cli_commands, "log_config", lambda level: None)  # leave logging alone
    monkeypatch.setenv("INFINITYGAN_CHECKPOINT", str(tiny_checkpoint.path))
    monkeypatch.setenv("INFINITYGAN_HEADER_TIMEOUT_S", "3")
    monkeypatch.setenv("INFINITYGAN_MAX_CONNECTIONS", "77")
    parser = argparse.ArgumentParser()
    cli_commands.add_serve_parser(parser.add_subparsers())
    args = parser.parse_args(["serve", "--port", "8123", "--keep-alive", "9"])
    assert args.func(args) == 0
    (config,) = ran
    limits = config.http.limits  # the protocol class itself (uvicorn loads the config later)
    assert (limits.header_timeout_s, limits.max_connections) == (3.0, 77)
    assert (config.port, config.timeout_keep_alive, config.loop) == (8123, 9, "uvloop")


# Heads


def test_pipelined_requests_are_all_answered(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(request("/healthz") + request("/readyz") + request("/healthz"))
        raw = b""
        while raw.count(b"HTTP/1.1 ") < 3:
            chunk = sock.recv(1 << 16)
            assert chunk, f"closed after {raw!r}"
            raw += chunk
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 3


def test_head_within_limits_is_served(server: LiveServer) -> None:
    with connect(server) as sock:
        # 100 fields (Host included) and a 12 KiB cookie: at the bounds, not past them
        fields = [f"X-Field-{i}: {i}" for i in range(98)]
        sock.sendall(request("/healthz", *fields, "Cookie: " + "c" * (12 << 10)))
        assert read_response(sock).status == 200


def test_too_many_header_fields_431(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(request("/healthz", *(f"X-Field-{i}: {i}" for i in range(100))))
        answer = parse(read_until_closed(sock))
    assert_error(answer, 431, "header_fields_too_large")
    assert "100 header fields" in json.loads(answer.body)["error"]["message"]


@pytest.mark.parametrize("size", [20 << 10, 1 << 20])
def test_oversize_header_431(server: LiveServer, size: int) -> None:
    with connect(server) as sock:
        start = time.monotonic()
        with contextlib.suppress(OSError):  # reset: the server closed without reading on
            sock.sendall(request("/healthz", "X-Big: " + "a" * size))
        try:
            raw = read_until_closed(sock)
        except OSError:
            raw = b""
        answer = parse(raw) if raw else None
        assert time.monotonic() - start < GENEROUS_S
    if size < 256 << 10:  # read whole by the server: no reset, the answer arrives
        assert answer is not None
    if answer is not None:
        assert_error(answer, 431, "header_fields_too_large")
    assert_healthz_fast(server)


def test_huge_header_is_not_read_on(server: LiveServer) -> None:
    """64 MiB of one header, sent in chunks: the server stops reading and closes long before it
    is all sent, and does not grow by the size (uvicorn alone reads it all, buffering it)."""
    total = 64 << 20
    chunk = b"a" * (64 << 10)
    before = rss_bytes()
    sent = 0
    with connect(server) as sock:
        sock.settimeout(GENEROUS_S)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: ")
            while sent < total:
                sent += sock.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except TimeoutError:
            pytest.fail(f"the server neither read nor closed after {sent} bytes")
    assert sent < total // 4, f"{sent} of {total} bytes went out before the server closed"
    assert rss_bytes() - before < 32 << 20
    assert_healthz_fast(server)


# Bodies


def prefetch_head(*headers: str) -> bytes:
    return request("/prefetch", "Content-Type: application/json", *headers, method="POST")


@pytest.mark.parametrize("expect", [False, True])
def test_oversize_content_length_413_before_the_body(server: LiveServer, expect: bool) -> None:
    extra = ["Expect: 100-continue"] if expect else []
    with connect(server) as sock:
        sock.sendall(prefetch_head(f"Content-Length: {400 << 20}", *extra))  # no body follows
        raw = read_until_closed(sock)
    assert not raw.startswith(b"HTTP/1.1 100"), "told the client to send the body"
    answer = parse(raw)
    assert_error(answer, 413, "content_too_large")
    assert str(BODY_MAX) in json.loads(answer.body)["error"]["message"]


@pytest.mark.parametrize("path", ["/healthz", "/tiles/3/8/0/0.png"])  # a route; the fast path
def test_body_on_a_route_that_takes_none_413(server: LiveServer, path: str) -> None:
    for headers in (["Content-Length: 10"], ["Transfer-Encoding: chunked"]):
        with connect(server) as sock:
            sock.sendall(request(path, *headers))
            assert_error(parse(read_until_closed(sock)), 413, "content_too_large")
    assert server.client.get(path, headers={"Content-Length": "0"}).status_code == 200


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_chunked_oversize_413(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(prefetch_head("Transfer-Encoding: chunked"))
        for _ in range(6):  # 24 KiB, over the 16 KiB bound; the body never ends
            sock.sendall(chunk(b" " * (4 << 10)))
        assert_error(parse(read_until_closed(sock)), 413, "content_too_large")


def test_bodies_within_the_bound_reach_the_route(server: LiveServer) -> None:
    body = json.dumps(PREFETCH).encode()
    assert server.client.post("/prefetch", json=PREFETCH).status_code == 202
    with connect(server) as sock:  # chunked, after 100 Continue
        sock.sendall(prefetch_head("Transfer-Encoding: chunked", "Expect: 100-continue"))
        sock.sendall(chunk(body[:10]) + chunk(body[10:]) + b"0\r\n\r\n")
        assert read_response(sock).status == 202
    padded = b" " * (BODY_MAX - 1) + b"{"  # exactly at the bound: the route parses (and rejects) it
    answer = server.client.post(
        "/prefetch", content=padded, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request"


def test_stalled_body_408(server: LiveServer) -> None:
    with connect(server) as sock:
        start = time.monotonic()
        sock.sendall(prefetch_head("Content-Length: 100") + b'{"seed": 1')  # 90 bytes short
        assert_healthz_fast(server)
        answer = parse(read_until_closed(sock))
        elapsed = time.monotonic() - start
    assert_error(answer, 408, "request_timeout")
    assert TIMEOUT_S * 0.9 < elapsed < GENEROUS_S


# Head deadline


def test_stalled_head_408(server: LiveServer) -> None:
    with connect(server) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        answer = parse(read_until_closed(sock))
        elapsed = time.monotonic() - start
    assert_error(answer, 408, "request_timeout")
    assert TIMEOUT_S * 0.9 < elapsed < GENEROUS_S


def test_silent_connection_closed(server: LiveServer) -> None:
    with connect(server) as sock:
        start = time.monotonic()
        assert read_until_closed(sock) == b""  # nothing asked, nothing answered: just closed
        assert time.monotonic() - start < GENEROUS_S


def test_idle_keep_alive_then_slow_head_408(server: LiveServer) -> None:
    """The deadline covers each request's head, not just the connection's first."""
    with connect(server) as sock:
        sock.sendall(request("/healthz"))
        assert read_response(sock).status == 200
        time.sleep(TIMEOUT_S * 1.5)  # idle between requests: keep-alive's business, not ours
        sock.sendall(request("/healthz"))
        assert read_response(sock).status == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert_error(parse(read_until_closed(sock)), 408, "request_timeout")


def test_slowloris_connections_are_closed(server: LiveServer) -> None:
    """50 connections sending one head byte every 0.2 s: each gets 408 and is closed within the
    deadline, while /healthz answers at once."""
    head = request("/healthz")
    socks = {connect(server): 0 for _ in range(50)}
    start = time.monotonic()
    answers: list[Answer] = []
    checked_health = False
    while socks and time.monotonic() - start < GENEROUS_S:
        for sock in list(socks):
            try:
                sock.send(head[socks[sock] : socks[sock] + 1])
                socks[sock] += 1
            except OSError:
                pass
        readable, _, _ = select.select(list(socks), [], [], 0.2)
        for sock in readable:
            del socks[sock]
            answers.append(parse(read_until_closed(sock)))
            sock.close()
        if not checked_health and time.monotonic() - start > TIMEOUT_S / 2:
            assert_healthz_fast(server)
            checked_health = True
    for sock in socks:
        sock.close()
    assert not socks, f"{len(socks)} slow connections still open after {GENEROUS_S} s"
    for answer in answers:
        assert_error(answer, 408, "request_timeout")


# Connection bound


def open_connections(server: LiveServer) -> int:
    return sum(not c.transport.is_closing() for c in server._server.server_state.connections)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GENEROUS_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_connections_past_the_bound_503(
    tiny_checkpoint: TinyCheckpoint, live_server: Callable[..., LiveServer]
) -> None:
    limit = 8
    settings = settings_for(
        tiny_checkpoint, warmup=False, max_connections=limit, header_timeout_s=30.0
    )
    server = live_server(settings, wait_ready=False)
    busy = []
    for _ in range(limit):  # each mid-head: not idle, not reclaimable
        sock = connect(server)
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        busy.append(sock)
    wait_for(lambda: open_connections(server) == limit, f"{limit} connections held")

    with connect(server) as extra:
        answer = parse(read_until_closed(extra))
    assert_error(answer, 503, "too_many_connections")
    assert answer.headers["retry-after"] == str(settings.retry_after_s)

    # the held connections still work, and one left idle is closed to make room for a new one
    busy[0].sendall(b"Host: test\r\n\r\n")
    assert read_response(busy[0]).status == 200
    with connect(server) as newcomer:
        newcomer.sendall(request("/healthz"))
        assert read_response(newcomer).status == 200
    assert read_until_closed(busy[0]) == b"", "the idle connection was not the one reclaimed"
    for sock in busy[1:]:
        sock.sendall(b"Host: test\r\n\r\n")
        assert read_response(sock).status == 200
        sock.close()
    busy[0].close()
    assert_healthz_fast(server)


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT A REQUEST LINE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"POST /prefetch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["request-line", "header", "chunked"],
)
def test_unparseable_requests_get_the_json_error(server: LiveServer, raw: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(raw)
        answer = parse(read_until_closed(sock))
    assert_error(answer, 400, "bad_request")
    assert_healthz_fast(server)
