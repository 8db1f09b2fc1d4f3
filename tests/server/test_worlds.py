"""Worlds on the server: `INFINITYGAN_BIOME_PX` / `_BIOME_TRANSITION_PX` choose the world, which
is validated at start (a bad pair stops `serve` at once), rendered, reported in TileJSON and
`/readyz`, and part of the served version: two worlds never share a tile's cache key, ETag or
`?v=`, while a one-style world keeps the bare checkpoint version (its tiles are those cached
before worlds existed)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from infinitygan.model.canvas import Rect, render_region
from infinitygan.model.world import DEFAULT_WORLD, ONE_STYLE, World
from infinitygan.server.settings import Settings

from .conftest import SHARED_REDIS, LiveServer, TinyCheckpoint, settings_for
from .test_serve_checkpoint import EXIT_WITHIN_S, serve

SEED = 71  # its anchor 0 alone covers x in [-512, 1024) (checked in `plain_tile_x`)


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def transition_tile_x(world: World, seed: int) -> int:
    """The first native tile column east of the origin whose centre blends two biomes."""
    lefts = np.arange(0, 2 * world.biome_px, 256)
    _, weights = world.weights(seed, lefts + 128)
    return int(lefts[np.flatnonzero(weights.max(axis=0) < 0.8)[0]] // 256)


@pytest.fixture(scope="module")
def one_style(tiny_checkpoint: TinyCheckpoint, redis_prefix: str) -> Iterator[LiveServer]:
    """A one-style server on the same Redis, under the same prefix, as the default `server`."""
    live = LiveServer(
        settings_for(tiny_checkpoint, biome_px=0, redis_url=SHARED_REDIS, redis_prefix=redis_prefix)
    ).start()
    yield live
    live.stop()


@pytest.mark.parametrize(
    ("biome_px", "transition_px", "phrase"),
    [
        (4096, 3000, "transition_px must be 1..biome_px // 2 = 2048, got 3000"),
        (4096, 0, "transition_px must be 1..biome_px // 2 = 2048, got 0"),
        (8, 4, "biome_px must be 0 (one style) or 16.."),
        (-1, 4, "biome_px must be 0 (one style) or 16.."),
    ],
)
def test_a_bad_world_is_a_settings_error(biome_px: int, transition_px: int, phrase: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(biome_px=biome_px, biome_transition_px=transition_px)
    assert f"biome_px {biome_px} with biome_transition_px {transition_px}: {phrase}" in str(
        info.value
    )


def test_settings_world() -> None:
    assert Settings().world == DEFAULT_WORLD
    for transition in (-5, 0, 10**9):  # ignored with one style
        assert Settings(biome_px=0, biome_transition_px=transition).world == ONE_STYLE
    assert Settings(biome_px=64, biome_transition_px=32).world == World(64, 32)


def test_serve_exits_at_once_on_a_bad_world(tiny_checkpoint: TinyCheckpoint) -> None:
    """Like a bad checkpoint: status 2, one line on stderr, before anything listens."""
    run = serve(
        tiny_checkpoint.path,
        INFINITYGAN_BIOME_PX="4096",
        INFINITYGAN_BIOME_TRANSITION_PX="3000",
    )
    assert run.returncode == 2, run.stderr
    assert run.seconds < EXIT_WITHIN_S and not run.connected
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("infinitygan serve: error: invalid server settings: "), lines
    assert "transition_px must be 1..biome_px // 2 = 2048, got 3000" in lines[0]


def test_tilejson_and_readyz_name_the_world_and_its_version(
    server: LiveServer, one_style: LiveServer, tiny_checkpoint: TinyCheckpoint
) -> None:
    ckpt = tiny_checkpoint.version
    versions = {server: DEFAULT_WORLD.version(ckpt), one_style: ckpt}  # one style: bare
    assert versions[server].startswith(f"{ckpt}-w")
    for live, world in ((server, DEFAULT_WORLD), (one_style, ONE_STYLE)):
        version = versions[live]
        tj = live.client.get(f"/tiles/{SEED}/tilejson.json").json()
        assert tj["checkpoint_version"] == ckpt
        assert tj["world"] == {**world.describe(), "version": version}
        assert tj["tiles"][0].endswith(f".webp?v={version}")
        ready = live.client.get("/readyz").json()
        assert (ready["checkpoint_version"], ready["version"]) == (ckpt, version)
    assert one_style.client.get("/tiles/1/tilejson.json").json()["world"] == {
        "biomes": False,
        "biome_px": 0,
        "transition_px": 0,
        "version": ckpt,
    }


def test_two_worlds_never_share_a_tile(
    server: LiveServer, one_style: LiveServer, tiny_checkpoint: TinyCheckpoint
) -> None:
    """On one Redis, under one prefix: in a transition the worlds' pixels differ, and each
    server serves its own; in anchor 0's biome they are the same pixels (anchor 0 keeps the
    seed's own style), still under separate keys and ETags."""
    _, weights = DEFAULT_WORLD.weights(SEED, np.arange(-512, 1024))
    assert weights.shape[0] == 1  # anchor 0 alone around tile (0, 0) and its render window
    tx = transition_tile_x(DEFAULT_WORLD, SEED)
    for x, differ in ((tx, True), (0, False)):
        path = f"/tiles/{SEED}/8/{x}/0.png"
        biomes, plain = server.client.get(path), one_style.client.get(path)
        assert biomes.status_code == plain.status_code == 200
        assert biomes.headers["etag"] != plain.headers["etag"]
        diff = np.abs(decode(biomes.content).astype(np.int16) - decode(plain.content))
        assert (diff.mean() > 5) if differ else (diff.max() == 0), (x, diff.mean())
        # each ETag is its own server's, however the tiles were cached
        for live, tag in ((server, biomes.headers["etag"]), (one_style, plain.headers["etag"])):
            assert live.client.get(path, headers={"If-None-Match": tag}).status_code == 304


def test_tiles_across_a_transition_equal_the_canvas_render(
    server: LiveServer, tiny_checkpoint: TinyCheckpoint
) -> None:
    """A 3x2 block around the first transition (across metatile edges) equals the region
    rendered in one pass in the default world."""
    x0 = transition_tile_x(DEFAULT_WORLD, SEED) - 1
    rows = [
        np.concatenate(
            [
                decode(server.client.get(f"/tiles/{SEED}/8/{x}/{y}.png").content)
                for x in range(x0, x0 + 3)
            ],
            axis=1,
        )
        for y in (-1, 0)
    ]
    tiles = np.concatenate(rows, axis=0)
    region = render_region(
        tiny_checkpoint.generator, SEED, Rect(256 * x0, -256, 768, 512), world=DEFAULT_WORLD
    )
    assert np.abs(tiles.astype(np.int16) - region).max() <= 1


def test_a_url_of_another_world_is_an_unknown_version(
    server: LiveServer, one_style: LiveServer
) -> None:
    for live, other in ((server, one_style), (one_style, server)):
        response = live.client.get(f"/tiles/{SEED}/8/0/0.png?v={other.version}")
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "unknown_version"
        assert error["message"] == (
            f"this server serves version {live.version} (checkpoint and world), not {other.version}"
        )
