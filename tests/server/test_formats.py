"""WebP, JPEG and PNG tiles: one URL, ETag and cache entry per format; lossy formats encoded
from the lossless pixels, never from each other; a metatile render caches the zoomed-out tiles
that lie inside it, equal to the ones the pyramid builds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from infinitygan.model.canvas import downsample_2x
from infinitygan.server.cache import redis_tile_key
from infinitygan.server.encode import decode, served_encodings
from infinitygan.server.tiling import TileAddress, content_key
from tests.conftest import assert_informative

from .conftest import SHARED_REDIS, LiveServer, TinyCheckpoint, settings_for

ENCODINGS = served_encodings(85, 85)
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff"}
MEDIA = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg"}


def fetch(server: LiveServer, path: str, fmt: str) -> bytes:
    response = server.client.get(f"{path}.{fmt}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA[fmt]
    assert int(response.headers["content-length"]) == len(response.content)
    return response.content


def pixels_of(
    server: LiveServer, seed: int, z: int, xs: range, ys: range, fmt: str = "png"
) -> np.ndarray:
    """The pixels of a block of tiles, decoded from `fmt` (lossless from PNG)."""
    rows = [
        np.concatenate([decode(fetch(server, f"/tiles/{seed}/{z}/{x}/{y}", fmt)) for x in xs], 1)
        for y in ys
    ]
    return np.concatenate(rows, axis=0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


@pytest.fixture(scope="module")
def shared(tiny_checkpoint: TinyCheckpoint) -> Iterator[LiveServer]:
    """One server on the shared Redis, in-process cache on, 4x4 metatiles, its own prefix."""
    prefix = f"infinitygan-formats-{uuid.uuid4().hex[:12]}"
    live = LiveServer(
        settings_for(tiny_checkpoint, redis_url=SHARED_REDIS, redis_prefix=prefix, metatile=4)
    ).start()
    yield live
    live.stop()
    client = redis.Redis.from_url(SHARED_REDIS)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_every_format_decodes_to_the_same_tile(shared: LiveServer) -> None:
    """Each format has its media type, decodes to the 256x256 tile, and the lossy ones are
    close to the lossless pixels (the tiny model's near-noise at quality 85: about 29 dB; the
    shipped model's tiles: 37-38 dB)."""
    path = "/tiles/31/8/3/-2"
    lossless = decode(fetch(shared, path, "png"))
    assert lossless.shape == (256, 256, 3)
    assert_informative(lossless)
    for fmt in ("webp", "jpg"):
        body = fetch(shared, path, fmt)
        if fmt in MAGIC:
            assert body.startswith(MAGIC[fmt])
        else:
            assert body[:4] == b"RIFF" and body[8:12] == b"WEBP"
        assert len(body) < len(fetch(shared, path, "png")) / 3  # what lossy formats are for
        pixels = decode(body)
        assert pixels.shape == lossless.shape and psnr(pixels, lossless) > 25
        # Bytes are a pure function of the content key: the encoder's output for the pixels.
        assert body == ENCODINGS[fmt].encode(lossless)


def test_each_format_has_its_own_etag_and_304(shared: LiveServer) -> None:
    path = "/tiles/32/8/0/0"
    tags = {}
    for fmt in MEDIA:
        first = shared.client.get(f"{path}.{fmt}")
        tag = tags[fmt] = first.headers["etag"]
        assert (
            tag == f'"{content_key(shared.version, TileAddress(32, 8, 0, 0), ENCODINGS[fmt].tag)}"'
        )
        again = shared.client.get(f"{path}.{fmt}", headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == tag
    assert len(set(tags.values())) == 3
    # Another format's tag is not this one's: a full answer, not a 304.
    cross = shared.client.get(f"{path}.webp", headers={"If-None-Match": tags["png"]})
    assert cross.status_code == 200 and cross.headers["content-type"] == "image/webp"


def test_formats_are_cached_apart_and_rendered_once(shared: LiveServer) -> None:
    """A render stores PNG and the advertised WebP; JPEG is encoded from the PNG on first
    request, under its own key; no format costs another render."""
    seed = 33
    renders = shared.metric("infinitygan_rendered_metatiles_total")
    webp = fetch(shared, f"/tiles/{seed}/8/1/1", "webp")
    assert shared.metric("infinitygan_rendered_metatiles_total") == renders + 1
    key = {
        f: content_key(shared.version, TileAddress(seed, 8, 1, 1), e.tag)
        for f, e in ENCODINGS.items()
    }
    client = redis.Redis.from_url(SHARED_REDIS)
    prefix = shared.settings.redis_prefix
    try:
        stored = {f: client.get(redis_tile_key(prefix, k)) for f, k in key.items()}
        assert stored["webp"] == webp and stored["png"] is not None and stored["jpg"] is None
        jpg = fetch(shared, f"/tiles/{seed}/8/1/1", "jpg")
        assert client.get(redis_tile_key(prefix, key["jpg"])) == jpg
    finally:
        client.close()
    assert jpg == ENCODINGS["jpg"].encode(decode(stored["png"]))
    assert shared.metric("infinitygan_rendered_metatiles_total") == renders + 1


def test_zoomed_out_tiles_are_built_from_pixels_not_from_lossy_bytes(shared: LiveServer) -> None:
    """A zoomed-out WebP (or JPEG) tile is the encoding of the exact average of its children's
    lossless pixels; averaging decoded WebP children would give other bytes."""
    seed = 34
    for fmt in ("webp", "jpg"):
        parent = fetch(shared, f"/tiles/{seed}/5/0/0", fmt)  # 8x8 native metatiles below it
        children = pixels_of(shared, seed, 6, range(0, 2), range(0, 2))
        assert parent == ENCODINGS[fmt].encode(downsample_2x(children))
        lossy = pixels_of(shared, seed, 6, range(0, 2), range(0, 2), fmt)
        assert parent != ENCODINGS[fmt].encode(downsample_2x(lossy))


def test_a_metatile_render_caches_the_zoomed_out_tiles_inside_it(shared: LiveServer) -> None:
    """One native request renders a 4x4 metatile; its 2x2 tiles at N-1 and its tile at N-2 are
    then cache hits (no render, no zoom-out build), in PNG and WebP, and equal what the pyramid
    computes from the native tiles: the 2x2 average, twice."""
    seed = 35
    fetch(shared, f"/tiles/{seed}/8/-5/6", "webp")  # metatile (-2, 1): x -8..-5, y 4..7
    renders = shared.metric("infinitygan_rendered_metatiles_total")
    misses = shared.metric("infinitygan_cache_requests_total", result="miss")
    native = pixels_of(shared, seed, 8, range(-8, -4), range(4, 8))
    half = pixels_of(shared, seed, 7, range(-4, -2), range(2, 4))
    assert np.array_equal(half, downsample_2x(native))
    top = downsample_2x(half)
    assert np.array_equal(decode(fetch(shared, f"/tiles/{seed}/6/-2/1", "png")), top)
    assert fetch(shared, f"/tiles/{seed}/6/-2/1", "webp") == ENCODINGS["webp"].encode(top)
    assert fetch(shared, f"/tiles/{seed}/7/-3/3", "webp") == ENCODINGS["webp"].encode(
        half[256:, 256:]
    )
    assert shared.metric("infinitygan_rendered_metatiles_total") == renders
    assert shared.metric("infinitygan_cache_requests_total", result="miss") == misses
