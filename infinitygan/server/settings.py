"""Every server setting, read from the environment once, in one place.

`cli serve` builds `Settings()` from `INFINITYGAN_*` variables (plus the conventional
`REDIS_URL`); tests pass keyword arguments. Nothing else in the server reads `os.environ`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infinitygan.model.checkpoint import DEFAULT_CHECKPOINT, MAX_CHECKPOINT_BYTES
from infinitygan.model.world import DEFAULT_WORLD, World

MAX_NATIVE_ZOOM = 30  # zoom numbers are labels; this only keeps 2**zoom arithmetic sane
MAX_ZOOM_DEPTH = 8  # a tile at maxzoom - 8 averages 4**8 = 65,536 native tiles


class Settings(BaseSettings):
    """Validated server configuration; see docs in the field descriptions."""

    model_config = SettingsConfigDict(
        env_prefix="INFINITYGAN_", populate_by_name=True, frozen=True, extra="forbid"
    )

    checkpoint: Path = Field(Path(DEFAULT_CHECKPOINT), description="generator checkpoint to serve")
    checkpoint_max_bytes: int = Field(
        MAX_CHECKPOINT_BYTES, ge=1, description="a larger checkpoint file is refused unread"
    )
    device: str = Field("auto", description="torch device: auto, cpu, cuda, cuda:1, ...")
    # The world is part of every tile's pixels, so it names the served version (`world`) with
    # the checkpoint; World validates the pair (`_world`).
    biome_px: int = Field(
        DEFAULT_WORLD.biome_px,
        description="a new biome (global style) about every this many px along x; 0 = one style",
    )
    biome_transition_px: int = Field(
        DEFAULT_WORLD.transition_px,
        description="width of the blend between two biomes, 1..biome_px / 2 (ignored with 0)",
    )
    redis_url: str | None = Field(
        None,
        validation_alias="REDIS_URL",
        description="shared tile cache; unset = the in-process cache serves alone",
    )
    redis_prefix: str = Field("infinitygan", min_length=1, description="namespace of Redis keys")
    redis_timeout_s: float = Field(0.5, gt=0, description="a slower Redis call counts as an error")
    redis_max_connections: int = Field(
        64, ge=1, description="Redis connections per process; more requests wait for one"
    )
    redis_pool_wait_s: float = Field(
        2.0, gt=0, description="longest wait for a free Redis connection in a burst"
    )
    redis_retry_s: float = Field(
        2.0, ge=0, description="after a Redis error, skip Redis this long, then reconnect"
    )
    cache_bytes: int = Field(256 << 20, ge=0, description="in-process LRU bound (tile bytes)")
    metatile: int = Field(4, ge=1, le=16, description="M: tiles per metatile side at maxzoom")
    maxzoom: int = Field(8, ge=0, le=MAX_NATIVE_ZOOM, description="native zoom N (1 px = 1 px)")
    # 6 = N-2 by default: a cold screen at N-2 is one metatile render per tile (about a minute
    # for a 1280x800 window on a 2-core CPU); each level lower costs 4x that.
    minzoom: int = Field(
        6, ge=0, description="lowest zoom; a tile at N-d costs 4**d native tiles to build"
    )
    batch_max: int = Field(4, ge=1, le=64, description="metatiles per forward pass")
    queue_interactive: int = Field(64, ge=1, description="queued interactive metatiles")
    queue_prefetch: int = Field(256, ge=1, description="queued prefetch metatiles")
    retry_after_s: int = Field(1, ge=1, description="Retry-After on 503 answers")
    render_timeout_s: float = Field(60.0, gt=0, description="longest wait for one tile")
    encode_threads: int = Field(2, ge=1, description="tile encoder threads")
    tile_format: Literal["webp", "png", "jpg"] = Field(
        "webp", description="the format TileJSON and the viewer use (every format is served)"
    )
    webp_quality: int = Field(85, ge=1, le=100, description="WebP quality (part of the ETag)")
    jpeg_quality: int = Field(85, ge=1, le=100, description="JPEG quality (part of the ETag)")
    cors_origins: list[str] = Field(["*"], description='JSON list, e.g. ["https://a.example"]')
    public_url: str | None = Field(
        None,
        description="base of TileJSON tile URLs, e.g. https://tiles.example; unset = /tiles/...",
    )
    prefetch_max_tiles: int = Field(100_000, ge=1, description="largest prefetch job (tiles)")
    prefetch_concurrency: int = Field(8, ge=1, description="metatiles in flight per job")
    prefetch_max_jobs: int = Field(4, ge=1, description="prefetch jobs running at once")
    prefetch_keep_jobs: int = Field(
        256, ge=1, description="finished jobs kept for GET (in process, without Redis)"
    )
    prefetch_retention_s: int = Field(
        86_400, ge=1, description="with Redis: a finished job stays readable this long"
    )
    # Small on purpose: at the end of a job the replica holding the last entries works alone,
    # so each entry in hand beyond what keeps the model busy idles another replica (with 8, a
    # second replica made a 12-metatile job 1.4x faster instead of 2x).
    prefetch_in_hand: int = Field(
        2,
        ge=1,
        description="with Redis: units of work a replica holds at once (one rendering, one "
        "ready); raise it to batch_max where batching pays (a GPU)",
    )
    prefetch_claim_timeout_s: float = Field(
        60.0,
        gt=0,
        description="with Redis: work a replica claimed and stopped renewing (it died) is "
        "taken over by another after this long",
    )
    prefetch_max_attempts: int = Field(
        3, ge=1, description="with Redis: deliveries of one unit of work before it counts failed"
    )
    warmup: bool = Field(True, description="render one metatile before answering ready")
    max_connections: int = Field(
        1024,
        ge=1,
        description="open connections per process; past it an idle keep-alive one is closed, "
        "else the new one gets 503 and is closed",
    )
    header_max_bytes: int = Field(
        16 << 10, ge=1024, description="request line + headers; larger -> 431 and close"
    )
    header_max_fields: int = Field(100, ge=1, description="header fields; more -> 431 and close")
    header_timeout_s: float = Field(
        10.0, gt=0, le=300, description="a request head must arrive whole within this -> 408"
    )
    body_timeout_s: float = Field(
        10.0, gt=0, le=300, description="longest wait for the next chunk of a request body -> 408"
    )
    prefetch_max_body_bytes: int = Field(
        16 << 10, ge=256, description="POST /prefetch body bound (other routes take none) -> 413"
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        """An absolute http(s) URL, perhaps with a path prefix; nothing a client would misread."""
        if not value:
            return None
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or parts.query
            or parts.fragment
            or not value.isascii()
            or any(c.isspace() or c in '{}"<>\\^`|' for c in value)
        ):
            raise ValueError(
                "public_url must be an absolute http(s) URL without user, query or fragment, "
                f"e.g. https://tiles.example or https://example.org/map; got {value!r}"
            )
        _ = parts.port  # ValueError for a port that is not a number in 0..65535
        return value.rstrip("/")

    @model_validator(mode="after")
    def _world(self) -> Settings:
        try:
            _ = self.world
        except ValueError as exc:
            raise ValueError(
                f"biome_px {self.biome_px} with biome_transition_px {self.biome_transition_px}: "
                f"{exc}"
            ) from None
        return self

    @property
    def world(self) -> World:
        """The world every tile is rendered in (a valid one: `_world` checked the pair)."""
        return World(self.biome_px, self.biome_transition_px)

    @model_validator(mode="after")
    def _zoom_range(self) -> Settings:
        if self.minzoom > self.maxzoom:
            raise ValueError(f"minzoom {self.minzoom} > maxzoom {self.maxzoom}")
        if self.maxzoom - self.minzoom > MAX_ZOOM_DEPTH:
            raise ValueError(f"maxzoom - minzoom must be <= {MAX_ZOOM_DEPTH} (cost is 4**depth)")
        return self
