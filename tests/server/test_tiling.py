"""Tile addressing: parsing, bounds per zoom, metatiles, children, content keys, settings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from infinitygan.server.errors import (
    InvalidSeed,
    MalformedTile,
    TileOutOfBounds,
    UnknownFormat,
    ZoomOutOfRange,
)
from infinitygan.server.settings import Settings
from infinitygan.server.tiling import (
    Metatile,
    TileAddress,
    TileGrid,
    content_key,
    etag,
    etag_matches,
)

GRID = TileGrid(minzoom=5, maxzoom=8, metatile=4)


def test_parse_and_bounds() -> None:
    assert GRID.parse("7", "8", "-3", "12.png") == (TileAddress(7, 8, -3, 12), "png")
    assert GRID.parse("0", "8", "0", "0.png")[0] == TileAddress(0, 8, 0, 0)
    assert GRID.parse("0", "6", str(2**29 - 1), str(-(2**29)) + ".png")[0].x == 2**29 - 1
    with pytest.raises(TileOutOfBounds):
        GRID.parse("0", "6", str(2**29), "0.png")
    with pytest.raises(ZoomOutOfRange):
        GRID.parse("0", "4", "0", "0.png")
    assert GRID.parse("7", "8", "-3", "12.webp")[1] == "webp"
    assert GRID.parse("7", "8", "-3", "12.jpg")[1] == "jpg"
    for other in ("0.jpeg", "0.WEBP", "0.gif"):  # one URL per tile and format
        with pytest.raises(UnknownFormat):
            GRID.parse("0", "8", "0", other)
    with pytest.raises(ZoomOutOfRange):
        GRID.parse("0", "99999", "0", "0.png")  # well-formed, outside the pyramid: like zoom 9
    with pytest.raises(TileOutOfBounds):
        GRID.parse("0", "8", "1" * 40, "0.png")
    with pytest.raises(InvalidSeed):
        GRID.parse(str(2**63), "8", "0", "0.png")


@pytest.mark.parametrize(
    ("seed", "z", "x", "name", "error", "hint"),
    [
        ("7", "8", "-0", "0.png", MalformedTile, "spelling is 0"),
        ("7", "8", "0", "-0.png", MalformedTile, "spelling is 0"),
        ("7", "8", "+1", "0.png", MalformedTile, "spelling is 1"),
        ("7", "8", " 1", "0.png", MalformedTile, "spelling is 1"),
        ("7", "8", "1", "0 .png", MalformedTile, "spelling is 0"),
        ("7", "08", "1", "0.png", MalformedTile, "spelling is 8"),
        ("7", "-8", "1", "0.png", MalformedTile, "spelling is -8"),
        ("7", "8", "-012", "0.png", MalformedTile, "spelling is -12"),
        ("05", "8", "0", "0.png", InvalidSeed, "spelling is 5"),
        ("+5", "8", "0", "0.png", InvalidSeed, "spelling is 5"),
        ("7", "8", "1e3", "0.png", MalformedTile, "canonical decimal integer, got '1e3'"),
        ("7", "8", "\u0663", "0.png", MalformedTile, "canonical decimal integer"),
        ("7", "8", "0", "0.PNG", UnknownFormat, "format 'PNG'"),
    ],
)
def test_only_canonical_spellings_parse(
    seed: str, z: str, x: str, name: str, error: type[Exception], hint: str
) -> None:
    """One URL per tile: every other spelling is refused (a 404), saying the canonical one."""
    with pytest.raises(error, match=hint):
        GRID.parse(seed, z, x, name)


def test_geometry() -> None:
    assert GRID.canvas_box(TileAddress(1, 8, -1, 2)) == (-256, 512, 256)
    assert GRID.canvas_box(TileAddress(1, 6, -1, 2)) == (-1024, 2048, 1024)
    assert GRID.metatile_of(TileAddress(1, 8, -1, 4)) == Metatile(1, -1, 1)
    tiles = GRID.metatile_tiles(Metatile(1, -1, 1))
    assert tiles[0] == TileAddress(1, 8, -4, 4) and tiles[-1] == TileAddress(1, 8, -1, 7)
    assert tiles[1] == TileAddress(1, 8, -3, 4)  # row-major
    assert GRID.metatile_box(Metatile(1, -1, 1)) == (-1024, 1024, 1024)
    assert GRID.children(TileAddress(1, 7, -1, 0)) == [
        TileAddress(1, 8, -2, 0),
        TileAddress(1, 8, -1, 0),
        TileAddress(1, 8, -2, 1),
        TileAddress(1, 8, -1, 1),
    ]


def test_content_key_names_etag_and_lock() -> None:
    key = content_key("abc", TileAddress(1, 8, -1, 2), "webp-q85")
    assert key == "abc.1.8.-1.2.webp-q85"
    assert etag(key) == f'"{key}"'
    # The lock of the metatile holding tile (-1, 2): named after its top-left tile, (-4, 0).
    lock = GRID.lock_name("abc", GRID.metatile_of(TileAddress(1, 8, -1, 2)))
    assert lock == "abc.1.8.-4.0/4"  # one render makes every format: one lock
    assert TileGrid(5, 8, metatile=2).lock_name("abc", Metatile(1, -2, 0)) != lock


def test_etag_matching() -> None:
    tag = etag(content_key("abc", TileAddress(1, 8, -1, 2), "png-z1"))
    assert etag_matches(tag, tag) and etag_matches(f'"x", W/{tag}', tag) and etag_matches("*", tag)
    assert not etag_matches(None, tag) and not etag_matches('"abc.1.8.-1.3.png-z1"', tag)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("INFINITYGAN_METATILE", "2")
    monkeypatch.setenv("INFINITYGAN_CORS_ORIGINS", '["https://a.example"]')
    settings = Settings()
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.metatile == 2 and settings.cors_origins == ["https://a.example"]
    assert Settings(redis_url=None).redis_url is None  # tests pass keyword arguments
    monkeypatch.setenv("INFINITYGAN_MINZOOM", "9")
    with pytest.raises(ValueError, match="minzoom"):
        Settings()


def test_public_url_setting() -> None:
    assert Settings(public_url="https://tiles.example/").public_url == "https://tiles.example"
    assert Settings(public_url="http://10.0.0.1:8080/map").public_url == "http://10.0.0.1:8080/map"
    assert Settings(public_url="").public_url is None
    for bad in [
        "tiles.example",
        "/tiles",
        "ftp://tiles.example",
        "https://",
        "https://user:pw@tiles.example",
        "https://tiles.example/?a=1",
        "https://tiles.example/#x",
        "https://tiles.example:99999",
        "https://tiles.example/{z}",
        "https://tiles.example/a b",
        "https://tïles.example",
    ]:
        with pytest.raises(ValueError, match="public_url"):
            Settings(public_url=bad)


def test_addressing_imports_neither_torch_nor_fastapi() -> None:
    """The prefetch client reuses tile addressing; it must stay a light HTTP client."""
    code = (
        "import sys, infinitygan.server.tiling, infinitygan.prefetch_client; "
        "loaded = sorted({'torch', 'fastapi', 'starlette'} & set(sys.modules)); "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_zoomed_out_tiles_inside_a_metatile() -> None:
    """4x4 at maxzoom 8: 2x2 tiles at 7 and one at 6, children before parents; negative
    metatiles too; a 3x3 metatile wholly holds a parent only where it is aligned; minzoom cuts."""
    inside = GRID.zoomed_out_inside(Metatile(1, -1, 2))  # native tiles x -4..-1, y 8..11
    assert inside == [
        TileAddress(1, 7, -2, 4),
        TileAddress(1, 7, -1, 4),
        TileAddress(1, 7, -2, 5),
        TileAddress(1, 7, -1, 5),
        TileAddress(1, 6, -1, 2),
    ]
    for parent in inside:  # each is built from tiles the metatile holds or built before it
        done = set(GRID.metatile_tiles(Metatile(1, -1, 2))) | set(inside[: inside.index(parent)])
        assert set(GRID.children(parent)) <= done
    three = TileGrid(minzoom=5, maxzoom=8, metatile=3)
    assert three.zoomed_out_inside(Metatile(0, 0, 0)) == [TileAddress(0, 7, 0, 0)]  # x 0..2
    assert three.zoomed_out_inside(Metatile(0, 1, 0)) == [TileAddress(0, 7, 2, 0)]  # x 3..5
    assert TileGrid(7, 8, 4).zoomed_out_inside(Metatile(0, 0, 0))[-1].z == 7
    assert TileGrid(5, 8, 1).zoomed_out_inside(Metatile(0, 0, 0)) == []
