"""PNG encoding and decoding in a thread pool, outside the model worker.

Compression takes about as long as rendering on CPU (tileserver-gl#9: 16 s render + 9 s PNG for
960 tiles), so the model thread hands raw pixels over and moves on to the next batch. zlib and
Pillow release the GIL, so the pool runs in parallel with the event loop and the model.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from .metrics import Metrics

# Fixed, because a tile's bytes must be a pure function of its content key.
PNG_COMPRESS_LEVEL = 6


def encode_png(tile: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes (deterministic for a given Pillow/zlib)."""
    assert tile.dtype == np.uint8 and tile.ndim == 3 and tile.shape[2] == 3, tile.shape
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(tile), "RGB").save(
        buf, "PNG", compress_level=PNG_COMPRESS_LEVEL
    )
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8 [H, W, 3]; lossless, so a cached child equals the rendered one."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


class PngCodec:
    def __init__(self, threads: int, metrics: Metrics) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="png")
        self._metrics = metrics

    def _timed_encode(self, tile: np.ndarray) -> bytes:
        start = time.perf_counter()
        data = encode_png(tile)
        self._metrics.encode_seconds.observe(time.perf_counter() - start)
        return data

    async def encode_many(self, tiles: Sequence[np.ndarray]) -> list[bytes]:
        loop = asyncio.get_running_loop()
        return list(
            await asyncio.gather(
                *(loop.run_in_executor(self._pool, self._timed_encode, t) for t in tiles)
            )
        )

    async def decode(self, data: bytes) -> np.ndarray:
        return await asyncio.get_running_loop().run_in_executor(self._pool, decode_png, data)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
