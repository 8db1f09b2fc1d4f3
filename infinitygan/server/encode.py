"""Tile encodings (PNG, WebP, JPEG) and the thread pool that runs them outside the model worker.

Compression takes about as long as rendering on CPU (tileserver-gl#9: 16 s render + 9 s PNG for
960 tiles), so the model thread hands raw pixels over and moves on to the next batch. zlib,
libwebp and libjpeg run inside Pillow without the GIL, so the pool runs in parallel with the
event loop and the model.

A tile's bytes must be a pure function of its content key, so every encoder setting is either
fixed here or part of the encoding's `tag`, which the content key (and so the ETag and the
cache keys) carries: another quality is another tile name, never other bytes under one name.

PNG is the lossless master: every rendered or zoomed-out tile is stored as PNG beside the
advertised format, and pixels are only ever recovered from PNG (a zoomed-out tile averages
its children's decoded PNGs; a format nobody has asked for yet is encoded from the PNG's
pixels), never from another format's lossy bytes, so no format loses a generation per zoom.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .metrics import Metrics

# zlib level 1: GAN textures barely compress losslessly (level 6 saves 0.6 % for 2.5x the time).
PNG_COMPRESS_LEVEL = 1
# libwebp's effort 0..6: 1 gives the size and PSNR of 4 (its default) within 1 % in half the time.
WEBP_METHOD = 1


@dataclass(frozen=True)
class Encoding:
    """One of the served formats with its fixed settings; `quality` only for the lossy ones."""

    fmt: str  # the URL extension: png, webp, jpg
    quality: int | None = None

    @property
    def tag(self) -> str:
        """The format as the content key spells it: png-z1, webp-q85, jpg-q85."""
        if self.fmt == "png":
            return f"png-z{PNG_COMPRESS_LEVEL}"
        return f"{self.fmt}-q{self.quality}"

    def encode(self, tile: np.ndarray) -> bytes:
        """uint8 [H, W, 3] -> bytes (deterministic for a given Pillow and codec library)."""
        assert tile.dtype == np.uint8 and tile.ndim == 3 and tile.shape[2] == 3, tile.shape
        image = Image.fromarray(np.ascontiguousarray(tile), "RGB")
        buf = io.BytesIO()
        if self.fmt == "png":
            image.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
        elif self.fmt == "webp":
            image.save(buf, "WEBP", quality=self.quality, method=WEBP_METHOD)
        else:
            image.save(buf, "JPEG", quality=self.quality, optimize=True)
        return buf.getvalue()


PNG = Encoding("png")


def served_encodings(webp_quality: int, jpeg_quality: int) -> dict[str, Encoding]:
    """Every format the server answers, by URL extension, with the configured qualities."""
    return {
        "png": PNG,
        "webp": Encoding("webp", webp_quality),
        "jpg": Encoding("jpg", jpeg_quality),
    }


def decode(data: bytes) -> np.ndarray:
    """Encoded bytes -> uint8 [H, W, 3]; exact for PNG: a cached child equals the rendered one."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


class TileCodec:
    """Encodes and decodes in a thread pool; encode times are observed per format."""

    def __init__(self, threads: int, metrics: Metrics) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="encode")
        self._metrics = metrics

    def _timed_encode(self, encoding: Encoding, tile: np.ndarray) -> bytes:
        start = time.perf_counter()
        data = encoding.encode(tile)
        self._metrics.encode_seconds.labels(encoding.fmt).observe(time.perf_counter() - start)
        return data

    async def encode_many(self, jobs: Sequence[tuple[Encoding, np.ndarray]]) -> list[bytes]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(
                *(loop.run_in_executor(self._pool, self._timed_encode, e, t) for e, t in jobs)
            )
        )

    async def decode(self, data: bytes) -> np.ndarray:
        return await asyncio.get_running_loop().run_in_executor(self._pool, decode, data)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
