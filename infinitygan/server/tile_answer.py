"""The answer to GET/HEAD of one tile, shared by the tile route and the fast path in front of it.

`routes/tiles.py` (FastAPI: every spelling of the address, the OpenAPI schema) and `fastpath.py`
(pure ASGI: the canonical spelling, without FastAPI's per-request work) only parse the address;
then both call `answer_tile`: the `?v=` check, the ETag and 304, the cache, the render. Errors
are raised as `ApiError`s, which both entry points answer with `error_handlers`' one body.
"""

from __future__ import annotations

import asyncio
import time

from starlette.responses import Response
from starlette.types import Receive

from .demand import Priority
from .errors import ClientClosed, RenderTimeout, UnknownVersion
from .service import TileService
from .settings import Settings
from .tiling import MEDIA_TYPES, TILE_CACHE_CONTROL, TileAddress, etag, etag_matches

_CACHE_CONTROL = TILE_CACHE_CONTROL.encode()
_CONTENT_TYPES = {fmt: media.encode() for fmt, media in MEDIA_TYPES.items()}


class TileResponse(Response):
    """A tile's 200 (with its bytes) or 304 (empty), sendable by FastAPI and as a plain ASGI app.

    The header block is built directly instead of through `Response.__init__`, which derives it
    from a mapping on every request: a tile's headers are always these few, and cached tiles are
    the server's hottest path.
    """

    def __init__(self, tag: str, fmt: str, body: bytes | None) -> None:
        self.background = None
        self.raw_headers = [(b"etag", tag.encode()), (b"cache-control", _CACHE_CONTROL)]
        if body is None:
            self.status_code = 304
            self.body = b""
        else:
            self.status_code = 200
            self.body = body
            self.raw_headers += [
                (b"content-type", _CONTENT_TYPES[fmt]),
                (b"content-length", b"%d" % len(body)),
            ]


async def answer_tile(
    service: TileService,
    settings: Settings,
    addr: TileAddress,
    fmt: str,
    version: str | None,
    if_none_match: str | None,
    receive: Receive,
) -> TileResponse:
    """Answer a parsed, in-range address; `version` is the `?v=` the client sent, if any: a
    URL of another checkpoint or world (another server's TileJSON) names other pixels."""
    if version is not None and version != service.version:
        raise UnknownVersion(
            f"this server serves version {service.version} (checkpoint and world), not {version}"
        )
    key = service.key(addr, fmt)
    tag = etag(key)
    if etag_matches(if_none_match, tag):
        return TileResponse(tag, fmt, None)
    body = await service.cache.get(key)
    if body is None:
        body = await _render_while_connected(service, addr, fmt, receive, settings)
    return TileResponse(tag, fmt, body)


async def _render_while_connected(
    service: TileService, addr: TileAddress, fmt: str, receive: Receive, settings: Settings
) -> bytes:
    """Wait for the render, but give up (and stop waiting) when the client goes away or the
    timeout passes; the render queue then drops the work if nobody else wants it."""
    deadline = time.monotonic() + settings.render_timeout_s
    render = asyncio.ensure_future(service.produce(addr, fmt, Priority.INTERACTIVE, deadline))
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        done, _ = await asyncio.wait(
            {render, gone}, timeout=settings.render_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        gone.cancel()
        if not render.done():
            render.cancel()
            render.add_done_callback(_consume)
    if render in done:
        return render.result()
    if gone in done:
        raise ClientClosed("the client closed the connection")
    raise RenderTimeout(
        f"the tile was not rendered within {settings.render_timeout_s:g}s",
        retry_after=settings.retry_after_s,
    )


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _consume(task: asyncio.Future[bytes]) -> None:
    if not task.cancelled():
        task.exception()
