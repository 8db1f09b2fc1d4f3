"""Tile addressing on the infinite canvas: the contract between URLs and canvas pixels.

At the native zoom N, tile (x, y) is canvas pixels [256x, 256x+256) x [256y, 256y+256); at
N-d it covers 256 * 2**d pixels per side, area-averaged. Metatiles are aligned M x M blocks of
native tiles: metatile (floor(x/M), floor(y/M)). A tile's bytes are a pure function of its
content key (served version, seed, z, x, y, format with its encoder settings); its ETag and
its cache keys are spelled from that key, the lock that guards its metatile's render from the
same key without the format. The served version is the checkpoint's and the world's
(`World.version`): both decide the pixels.

Pure Python on purpose: the HTTP prefetch client reuses this module without torch or FastAPI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from infinitygan.bounds import MAX_SEED

from .errors import (
    InvalidPrefetch,
    InvalidSeed,
    MalformedTile,
    TileOutOfBounds,
    UnknownFormat,
    ZoomOutOfRange,
)

TILE_SIZE = 256
COORD_BITS = 31  # at zoom N: -2**31 <= x, y < 2**31
# URL extension -> media type. Lower case only: `.PNG` would be a second URL of the same tile.
MEDIA_TYPES = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg"}
FORMATS = tuple(MEDIA_TYPES)
TILE_ROUTE = "/tiles/{seed}/{z}/{x}/{y_fmt}"
# The tile URL carries the served version (TileJSON `?v=`): a tile never changes.
TILE_CACHE_CONTROL = "public, max-age=31536000, immutable"

# One spelling per tile: canonical decimal, ASCII digits only (`\d` would accept other scripts'
# digits), no sign '+', no leading zeros, no '-0', no whitespace; other spellings are 404s, so
# no two URLs (each `immutable` in caches) are the same tile. The lengths only bound parsing:
# a canonical number beyond the served range is a 404 too, checked after parsing.
SEED_PATTERN = r"0|[1-9][0-9]{0,18}"
ZOOM_PATTERN = r"0|[1-9][0-9]{0,99}"
COORD_PATTERN = r"0|-?[1-9][0-9]{0,99}"
_SEED = re.compile(SEED_PATTERN)
_ZOOM = re.compile(ZOOM_PATTERN)
_COORD = re.compile(COORD_PATTERN)
_NAME = re.compile(r"(?P<y>[^.]*)\.(?P<fmt>[A-Za-z0-9]{1,8})")
_NUMBER = re.compile(r"\s*[-+]?[0-9]{1,100}\s*", re.ASCII)  # int() reads it: a non-canonical one


class PixelBox(NamedTuple):
    """A square of canvas pixels at the native resolution: [x, x+size) x [y, y+size)."""

    x: int
    y: int
    size: int


class TileAddress(NamedTuple):
    """One tile of one seed's pyramid. A tuple rather than a frozen dataclass: one is built for
    every tile request, and a tuple costs half as much to build and to hash."""

    seed: int
    z: int
    x: int
    y: int


@dataclass(frozen=True)
class Metatile:
    """M x M native tiles rendered in one forward pass; (mx, my) = (floor(x/M), floor(y/M))."""

    seed: int
    mx: int
    my: int


def _canonical_hint(text: str) -> str:
    if _NUMBER.fullmatch(text):
        return f" (the canonical spelling is {int(text)})"
    return ""


def parse_seed(text: str) -> int:
    if not _SEED.fullmatch(text):
        raise InvalidSeed(
            "seed must be a canonical decimal integer 0 <= seed < 2**63, "
            f"got {text!r}{_canonical_hint(text)}"
        )
    seed = int(text)
    if seed >= MAX_SEED:
        raise InvalidSeed(f"seed must be < 2**63, got {text}")
    return seed


def _parse_int(pattern: re.Pattern[str], what: str, text: str) -> int:
    if not pattern.fullmatch(text):
        raise MalformedTile(
            f"{what} must be a canonical decimal integer, got {text!r}{_canonical_hint(text)}"
        )
    return int(text)


def tile_name(version: str, addr: TileAddress) -> str:
    """A tile's pixels, whatever their encoding: the served version and the address."""
    return f"{version}.{addr.seed}.{addr.z}.{addr.x}.{addr.y}"


def content_key(version: str, addr: TileAddress, encoding: str) -> str:
    """The name of a tile's bytes; everything that names a tile is derived from it.
    `encoding` is the format with its settings (`Encoding.tag`: png-z1, webp-q85)."""
    return f"{tile_name(version, addr)}.{encoding}"


def etag(key: str) -> str:
    """Strong ETag: the content key quoted, so a 304 needs neither a render nor a cache read."""
    return f'"{key}"'


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison, a list of tags, or `*`."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False


@dataclass(frozen=True)
class TileGrid:
    """The served pyramid: zooms [minzoom, maxzoom], maxzoom native, metatile side M."""

    minzoom: int
    maxzoom: int
    metatile: int

    def bound(self, z: int) -> int:
        """Valid x, y at zoom z satisfy -bound <= x, y < bound."""
        return 1 << (COORD_BITS - (self.maxzoom - z))

    def check(self, addr: TileAddress) -> TileAddress:
        if not self.minzoom <= addr.z <= self.maxzoom:
            raise ZoomOutOfRange(
                f"zoom {addr.z} is outside the served range {self.minzoom}..{self.maxzoom}"
            )
        b = self.bound(addr.z)
        if not (-b <= addr.x < b and -b <= addr.y < b):
            raise TileOutOfBounds(f"at zoom {addr.z} tiles satisfy {-b} <= x, y < {b}")
        return addr

    def parse(self, seed: str, z: str, x: str, name: str) -> tuple[TileAddress, str]:
        """Path parts of /tiles/{seed}/{z}/{x}/{y}.{fmt} -> (address, format); any other
        spelling, and any address outside the pyramid, raises a `NotFound`."""
        match = _NAME.fullmatch(name)
        if match is None:
            raise MalformedTile(f"tile name must look like '{{y}}.webp', got {name!r}")
        addr = TileAddress(
            parse_seed(seed),
            _parse_int(_ZOOM, "zoom", z),
            _parse_int(_COORD, "x", x),
            _parse_int(_COORD, "y", match["y"]),
        )
        fmt = match["fmt"]
        if fmt not in FORMATS:
            raise UnknownFormat(f"format {fmt!r} is not served; use one of {list(FORMATS)}")
        return self.check(addr), fmt

    def canvas_box(self, addr: TileAddress) -> PixelBox:
        size = TILE_SIZE << (self.maxzoom - addr.z)
        return PixelBox(addr.x * size, addr.y * size, size)

    def children(self, addr: TileAddress) -> list[TileAddress]:
        """The four tiles at z+1 that average to `addr`, row-major: TL, TR, BL, BR."""
        assert addr.z < self.maxzoom, addr
        x, y = 2 * addr.x, 2 * addr.y
        return [TileAddress(addr.seed, addr.z + 1, x + i, y + j) for j in (0, 1) for i in (0, 1)]

    def metatile_of(self, addr: TileAddress) -> Metatile:
        assert addr.z == self.maxzoom, addr
        return Metatile(addr.seed, addr.x // self.metatile, addr.y // self.metatile)

    def metatiles_under(self, addr: TileAddress) -> int:
        """How many metatiles hold the native tiles that a tile at any zoom covers: the most
        renders building it can cost (fewer where some are cached)."""
        span = 1 << (self.maxzoom - addr.z)  # native tiles per side

        def across(c: int) -> int:  # metatile columns (or rows) from native c*span to c*span+span-1
            return (c * span + span - 1) // self.metatile - (c * span) // self.metatile + 1

        return across(addr.x) * across(addr.y)

    def metatile_tiles(self, meta: Metatile) -> list[TileAddress]:
        """Row-major: index j * M + i is the tile in row j, column i of the metatile image."""
        m = self.metatile
        return [
            TileAddress(meta.seed, self.maxzoom, meta.mx * m + i, meta.my * m + j)
            for j in range(m)
            for i in range(m)
        ]

    def zoomed_out_inside(self, meta: Metatile) -> list[TileAddress]:
        """The tiles below the native zoom (down to minzoom) whose native tiles all lie in
        `meta`, highest zoom first: a 4x4 metatile holds 2x2 tiles at N-1 and one at N-2. Each
        one's children come before it, so one pass over the list can build them all."""
        m, out = self.metatile, []
        x0, y0 = meta.mx * m, meta.my * m
        for d in range(1, self.maxzoom - self.minzoom + 1):
            s = 1 << d  # native tiles per side of a tile at N-d
            if s > m:
                break
            out += [
                TileAddress(meta.seed, self.maxzoom - d, ax, ay)
                for ay in range(-(-y0 // s), (y0 + m) // s)
                for ax in range(-(-x0 // s), (x0 + m) // s)
            ]
        return out

    def metatile_box(self, meta: Metatile) -> PixelBox:
        size = TILE_SIZE * self.metatile
        return PixelBox(meta.mx * size, meta.my * size, size)

    def lock_name(self, version: str, meta: Metatile) -> str:
        """The render lock of a metatile: its top-left tile's name (one render makes every
        encoding) and the side M (grids with another M cut other metatiles, so they must not
        share locks)."""
        return f"{tile_name(version, self.metatile_tiles(meta)[0])}/{self.metatile}"

    def pyramid(
        self, bbox: tuple[int, int, int, int], zmin: int, zmax: int
    ) -> dict[int, tuple[int, int, int, int]]:
        """Inclusive tile ranges per zoom, highest zoom first, for a tile bbox given at zmax.

        Lower zooms take the parents of the bbox (floor division), so a prefetch that runs
        from zmax down builds every zoomed-out tile from children it has just cached.
        """
        x0, y0, x1, y1 = bbox
        if not self.minzoom <= zmin <= zmax <= self.maxzoom:
            raise InvalidPrefetch(
                f"zoom range {zmin}..{zmax} must lie within {self.minzoom}..{self.maxzoom}"
            )
        if x0 > x1 or y0 > y1:
            raise InvalidPrefetch("bbox must be [min_x, min_y, max_x, max_y] with min <= max")
        b = self.bound(zmax)
        if not (-b <= x0 and x1 < b and -b <= y0 and y1 < b):
            raise InvalidPrefetch(f"bbox at zoom {zmax} must satisfy {-b} <= x, y < {b}")
        return {
            z: (x0 >> (zmax - z), y0 >> (zmax - z), x1 >> (zmax - z), y1 >> (zmax - z))
            for z in range(zmax, zmin - 1, -1)
        }


def range_count(r: tuple[int, int, int, int]) -> int:
    return (r[2] - r[0] + 1) * (r[3] - r[1] + 1)
