"""Tiles over real HTTP: equal to the canvas renderer, zoom-out = average of children, ETag/304,
single-flight, TileJSON, HEAD and CORS."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

from infinitygan.model.canvas import Rect, downsample_2x, render_region
from infinitygan.model.config import PRESETS
from infinitygan.server.encode import PNG
from infinitygan.server.fastpath import TileServerApp
from infinitygan.server.tiling import TILE_ROUTE, TileAddress, content_key, etag
from tests.conftest import assert_informative

from .conftest import LiveServer, TinyCheckpoint, settings_for

IMMUTABLE = "public, max-age=31536000, immutable"


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def get_tile(server: LiveServer, seed: int, z: int, x: int, y: int) -> np.ndarray:
    response = server.client.get(f"/tiles/{seed}/{z}/{x}/{y}.png")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return decode(response.content)


def assemble(server: LiveServer, seed: int, z: int, xs: range, ys: range) -> np.ndarray:
    rows = [np.concatenate([get_tile(server, seed, z, x, y) for x in xs], axis=1) for y in ys]
    return np.concatenate(rows, axis=0)


@pytest.mark.parametrize(
    ("x0", "y0"),
    [(-1, -1), (2**31 - 2, 2**31 - 2), (-(2**31), 3)],
    ids=["around-origin-across-metatiles", "max-corner", "min-x"],
)
def test_tiles_equal_canvas_render(
    server: LiveServer, tiny_checkpoint: TinyCheckpoint, x0: int, y0: int
) -> None:
    """A 2x2 block of native tiles (from (-1, -1): it straddles metatile edges) equals the
    same region rendered in one pass by the canvas renderer in the served world, within 1 uint8
    level. The served generator has noise, biases and styles switched on, so a misplaced term
    would show."""
    seed = 13  # its styles at these places do not saturate the tiny model (assert_informative)
    tiles = assemble(server, seed, 8, range(x0, x0 + 2), range(y0, y0 + 2))
    region = render_region(
        tiny_checkpoint.generator,
        seed,
        Rect(256 * x0, 256 * y0, 512, 512),
        world=server.settings.world,
    )
    diff = np.abs(tiles.astype(np.int16) - region.astype(np.int16))
    assert diff.max() <= 1
    assert_informative(tiles)  # real content, not a flat or clipped image


def test_zoomed_out_tile_is_average_of_children(server: LiveServer) -> None:
    seed = 12
    parent = get_tile(server, seed, 7, -1, 0)
    children = assemble(server, seed, 8, range(-2, 0), range(0, 2))
    assert np.array_equal(parent, downsample_2x(children))
    # Two levels down: the 16 native grandchildren, averaged twice.
    grand = get_tile(server, seed, 6, 0, -1)
    native = assemble(server, seed, 8, range(0, 4), range(-4, 0))
    assert np.array_equal(grand, downsample_2x(downsample_2x(native)))


def test_etag_and_304_without_render(server: LiveServer) -> None:
    first = server.client.get("/tiles/13/8/5/5.png")
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"')
    assert first.headers["cache-control"] == IMMUTABLE
    again = server.client.get("/tiles/13/8/5/5.png", headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    # A tile never rendered: its ETag is known from the content key alone, so 304 costs nothing.
    renders = server.metric("infinitygan_rendered_metatiles_total")
    misses = server.metric("infinitygan_cache_requests_total", result="miss")
    unseen = etag(content_key(server.version, TileAddress(13, 8, 1000, -1000), PNG.tag))
    response = server.client.get(
        "/tiles/13/8/1000/-1000.png", headers={"If-None-Match": f'W/"x", {unseen}'}
    )
    assert response.status_code == 304
    assert server.metric("infinitygan_rendered_metatiles_total") == renders
    assert server.metric("infinitygan_cache_requests_total", result="miss") == misses
    stale = server.client.get("/tiles/13/8/5/5.png", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.content == first.content


def test_fifty_concurrent_requests_render_one_metatile(server: LiveServer) -> None:
    seed = 424242
    m = server.settings.metatile
    paths = [f"/tiles/{seed}/8/{2 * m + i % m}/{4 * m + (i // m) % m}.png" for i in range(50)]
    renders = server.metric("infinitygan_rendered_metatiles_total")
    coalesced = server.metric("infinitygan_coalesced_waiters_total")

    async def fetch_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            return await asyncio.gather(*(client.get(p) for p in paths))

    responses = asyncio.run(fetch_all())
    assert [r.status_code for r in responses] == [200] * 50
    assert server.metric("infinitygan_rendered_metatiles_total") - renders == 1
    assert server.metric("infinitygan_coalesced_waiters_total") > coalesced
    by_path: dict[str, bytes] = {}
    for path, r in zip(paths, responses, strict=True):
        assert by_path.setdefault(path, r.content) == r.content


def test_tile_bytes_do_not_depend_on_metatile_size(
    server: LiveServer, live_server, tiny_checkpoint: TinyCheckpoint
) -> None:
    """Another metatile size (and batch size) renders the same tiles: windows are aligned to
    global positions, so only float rounding may differ (at most 1 level)."""
    other = live_server(settings_for(tiny_checkpoint, metatile=4, batch_max=3))
    for path in ("/tiles/14/8/-3/7.png", "/tiles/14/7/1/-1.png"):
        a = decode(other.client.get(path).content).astype(np.int16)
        b = decode(server.client.get(path).content).astype(np.int16)
        assert np.abs(a - b).max() <= 1


def test_head_tilejson_cors_and_version(server: LiveServer) -> None:
    head = server.client.head("/tiles/15/8/0/0.png")
    assert head.status_code == 200
    assert head.headers["content-type"] == "image/png" and head.content == b""
    tj = server.client.get("/tiles/15/tilejson.json").json()
    assert tj["tilejson"] == "3.0.0"
    assert (tj["minzoom"], tj["maxzoom"], tj["tileSize"]) == (5, 8, 256)
    tiny = PRESETS["tiny"].generator  # the served model: the viewer opens on its band
    half = tiny.train_full_cells * tiny.pixels_per_cell // 2
    assert tj["band"] == [-half, half]
    template = tj["tiles"][0]
    # root-relative, in the default format
    assert template == f"/tiles/15/{{z}}/{{x}}/{{y}}.webp?v={server.version}"
    assert tj["format"] == "webp"
    versioned = server.client.get(template.format(z=8, x=0, y=0))
    assert versioned.status_code == 200
    cors = server.client.get("/tiles/15/8/0/0.png", headers={"Origin": "https://map.example"})
    assert cors.headers["access-control-allow-origin"] == "*"
    assert "etag" in cors.headers["access-control-expose-headers"].lower()


def test_tilejson_never_takes_its_url_from_the_request(server: LiveServer) -> None:
    """A hostile Host (or X-Forwarded-Host) never reaches the cacheable TileJSON: the tile URL
    is root-relative, and resolved against the TileJSON URL it is a tile of this server."""
    hostile = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    response = server.client.get("/tiles/18/tilejson.json", headers=hostile)
    assert response.status_code == 200
    assert "evil" not in response.text
    template = response.json()["tiles"][0]
    assert template.startswith("/tiles/18/")
    url = httpx.URL(str(response.url)).join(template.format(z=8, x=1, y=-1))
    assert url.host == "127.0.0.1" and server.client.get(url).status_code == 200


def test_tilejson_with_a_configured_public_url(
    live_server, tiny_checkpoint: TinyCheckpoint
) -> None:
    other = live_server(settings_for(tiny_checkpoint, public_url="https://tiles.example/map/"))
    tj = other.client.get("/tiles/19/tilejson.json", headers={"Host": "evil.example"}).json()
    assert tj["tiles"] == [
        f"https://tiles.example/map/tiles/19/{{z}}/{{x}}/{{y}}.webp?v={other.version}"
    ]


@contextmanager
def route_only(server: LiveServer) -> Iterator[None]:
    """Canonical tile URLs reach the FastAPI route instead of the fast path: the fast path falls
    through while it sees no loaded model, so it is shown a state without one (the routes read
    theirs from `app.state`)."""
    app = server.app
    assert isinstance(app, TileServerApp)
    real = app.server
    app.server = SimpleNamespace(loaded=None)  # type: ignore[assignment]
    try:
        yield
    finally:
        app.server = real


def test_fast_path_answers_like_the_route(server: LiveServer) -> None:
    """Canonical URLs are answered by the pure-ASGI fast path; with it switched off they reach
    the FastAPI route. Both call the same answer function, so clients cannot tell them apart:
    misses, hits, 304s and errors alike, whichever of the two saw the tile first, with the same
    CORS headers, and both are counted in /metrics."""
    keys = (
        "etag",
        "cache-control",
        "content-type",
        "content-length",
        "retry-after",
        "access-control-allow-origin",
        "access-control-expose-headers",
        "vary",
    )

    def same(path: str, *headers: tuple[str, str]) -> httpx.Response:
        fast = server.client.get(path, headers=list(headers))
        with route_only(server):
            route = server.client.get(path, headers=list(headers))
        assert fast.status_code == route.status_code
        assert fast.content == route.content
        assert {k: fast.headers.get(k) for k in keys} == {k: route.headers.get(k) for k in keys}
        return fast

    assert same("/tiles/16/8/-7/3.png").status_code == 200  # the fast path renders, route hits
    with route_only(server):
        route_miss = server.client.get("/tiles/16/8/-6/3.png")  # the route renders
    fast_hit = same("/tiles/16/8/-6/3.png")  # ... and the fast path hits
    assert fast_hit.content == route_miss.content
    assert {k: fast_hit.headers.get(k) for k in keys} == {
        k: route_miss.headers.get(k) for k in keys
    }
    tag = route_miss.headers["etag"]
    before = server.metric("infinitygan_http_requests_total", route=TILE_ROUTE, status="304")
    assert same("/tiles/16/8/-6/3.png", ("If-None-Match", tag)).status_code == 304
    after = server.metric("infinitygan_http_requests_total", route=TILE_ROUTE, status="304")
    assert after == before + 2  # counted once by the fast path, once by the middleware
    # Two If-None-Match headers: both read the first, like any Starlette app.
    twice = same("/tiles/16/8/-6/3.png", ("If-None-Match", '"x"'), ("If-None-Match", tag))
    assert twice.status_code == 200
    assert same(f"/tiles/16/8/-6/3.png?v={server.version}").status_code == 200
    assert same("/tiles/16/8/-6/3.png?v=").status_code == 404  # an empty version is not ours
    assert same("/tiles/16/8/-6/3.png?v=0000").json()["error"]["code"] == "unknown_version"
    assert same("/tiles/16/9/0/0.png").json()["error"]["code"] == "zoom_out_of_range"
    assert same("/tiles/16/99999/0/0.png").json()["error"]["code"] == "zoom_out_of_range"
    assert same(f"/tiles/16/8/{2**31}/0.png").json()["error"]["code"] == "tile_out_of_bounds"
    assert same(f"/tiles/{2**63}/8/0/0.png").json()["error"]["code"] == "invalid_seed"
    cors = same("/tiles/16/8/-6/3.png", ("Origin", "https://maps.example"))
    assert cors.headers["access-control-allow-origin"] == "*"
    assert "ETag" in cors.headers["access-control-expose-headers"]
    assert same("/tiles/16/9/0/0.png", ("Origin", "https://x.example")).status_code == 404
    head = server.client.head("/tiles/16/8/-6/3.png")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == route_miss.headers["content-length"]


@pytest.mark.parametrize(
    "path",
    [
        "/tiles/16/8/-6/3.PNG",
        "/tiles/16/8/-0/0.png",
        "/tiles/16/8/0/-0.png",
        "/tiles/016/8/-6/3.png",
        "/tiles/16/08/-6/3.png",
        "/tiles/16/8/-06/3.png",
        "/tiles/16/8/+1/3.png",
        "/tiles/16/8/%201/3.png",
        "/tiles/16/8/1%20/3.png",
        "/tiles/16/8/1/%093.png",
        "/tiles/%2B16/8/1/3.png",
    ],
)
def test_only_the_canonical_spelling_is_a_tile(server: LiveServer, path: str) -> None:
    """Every other spelling of a tile is a 404 (never a second `immutable` copy in caches),
    from the fast path's side and the route's alike."""
    for route in (False, True):
        with route_only(server) if route else nullcontext():
            response = server.client.get(path)
        assert response.status_code == 404, (route, response.text)
        assert response.headers["cache-control"] == "no-store"
        assert "etag" not in response.headers
        message = response.json()["error"]["message"]
        assert "canonical" in message or "format 'PNG'" in message, message


def test_cors_with_an_explicit_origin_list(live_server, tiny_checkpoint: TinyCheckpoint) -> None:
    other = live_server(settings_for(tiny_checkpoint, cors_origins=["https://a.example"]))
    ok = other.client.get("/tiles/17/8/0/0.png", headers={"Origin": "https://a.example"})
    assert ok.headers["access-control-allow-origin"] == "https://a.example"
    assert ok.headers["vary"] == "Origin"
    hit = other.client.get("/tiles/17/8/0/0.png", headers={"Origin": "https://a.example"})
    assert hit.headers["access-control-allow-origin"] == "https://a.example"  # fast path too
    foreign = other.client.get("/tiles/17/8/0/0.png", headers={"Origin": "https://b.example"})
    assert "access-control-allow-origin" not in foreign.headers
    assert foreign.headers["vary"] == "Origin"
    preflight = other.client.options(
        "/tiles/17/8/0/0.png",
        headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 204
    assert "GET" in preflight.headers["access-control-allow-methods"]
    denied = other.client.options(
        "/tiles/17/8/0/0.png",
        headers={"Origin": "https://b.example", "Access-Control-Request-Method": "GET"},
    )
    assert denied.status_code == 403


def test_work_for_a_client_that_left_is_dropped(
    live_server, tiny_checkpoint: TinyCheckpoint
) -> None:
    """A client gives up while its metatile waits behind another render: the queued work is
    dropped (not rendered), and the server keeps serving."""
    slow = live_server(settings_for(tiny_checkpoint, metatile=8, batch_max=1, warmup=False))
    first: list[int] = []
    busy = threading.Thread(
        target=lambda: first.append(slow.client.get("/tiles/41/8/0/0.png").status_code)
    )
    busy.start()
    time.sleep(0.3)  # metatile (0, 0) is rendering (2048 px: seconds on this CPU)
    with pytest.raises(httpx.TimeoutException):
        httpx.get(f"{slow.url}/tiles/41/8/8/0.png", timeout=0.3)  # queued, then abandoned
    busy.join(60)
    assert first == [200]
    deadline = time.monotonic() + 10
    while slow.metric("infinitygan_dropped_jobs_total", reason="no_waiters") < 1:
        assert time.monotonic() < deadline, "the abandoned metatile was not dropped"
        time.sleep(0.05)
    assert slow.metric("infinitygan_rendered_metatiles_total") == 1
    assert slow.metric("infinitygan_http_requests_total", status="499") == 1


def test_remembered_addresses_stay_bounded(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path remembers checked addresses by path, never more than its bound, and never
    an address it refused."""
    monkeypatch.setattr("infinitygan.server.fastpath._REMEMBERED_PATHS", 2)
    app = server.app
    assert isinstance(app, TileServerApp)
    for x in range(5):
        assert server.client.get(f"/tiles/16/8/{x}/40.png").status_code == 200
        assert len(app._known) <= 2
    far = f"/tiles/16/8/{2**31}/0.png"
    for _ in range(2):
        assert server.client.get(far).json()["error"]["code"] == "tile_out_of_bounds"
    assert far not in app._known
