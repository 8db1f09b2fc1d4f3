"""GET/HEAD /tiles/{seed}/{z}/{x}/{y}.{fmt}: parse, 304 by ETag, cache, render.

Cache hits and 304s usually never get here: `fastpath.CachedTileMiddleware` answers them first
with the same headers; this route owns errors, misses and rendering.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.types import Receive

from ..demand import Priority
from ..errors import ClientClosed, RenderTimeout, UnknownVersion
from ..fastpath import MISSED_KEY
from ..service import TileService
from ..settings import Settings
from ..state import server_state
from ..tiling import TILE_CACHE_CONTROL, TILE_ROUTE, TileAddress, etag, etag_matches

router = APIRouter(tags=["tiles"])


@router.get(
    TILE_ROUTE,
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 304: {"description": "Not Modified"}},
    summary="One 256x256 tile (HEAD works too); y_fmt is '{y}.png'; x and y are signed.",
)
@router.head(TILE_ROUTE, include_in_schema=False)
async def get_tile(
    request: Request,
    seed: str,
    z: str,
    x: str,
    y_fmt: str,
    v: Annotated[str | None, Query(description="checkpoint version (from TileJSON)")] = None,
) -> Response:
    state = server_state(request)
    service = state.require().service
    addr, fmt = service.grid.parse(seed, z, x, y_fmt)
    if v is not None and v != service.version:
        raise UnknownVersion(f"this server serves checkpoint version {service.version}, not {v}")
    tag = etag(service.key(addr, fmt))
    headers = {"ETag": tag, "Cache-Control": TILE_CACHE_CONTROL}
    if etag_matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    png = None if request.scope.get(MISSED_KEY) else await service.cached(addr)
    if png is None:
        png = await _render_while_connected(service, addr, request.receive, state.settings)
    return Response(png, media_type="image/png", headers=headers)


async def _render_while_connected(
    service: TileService, addr: TileAddress, receive: Receive, settings: Settings
) -> bytes:
    """Wait for the render, but give up (and stop waiting) when the client goes away or the
    timeout passes; the render queue then drops the work if nobody else wants it."""
    render = asyncio.ensure_future(service.produce(addr, Priority.INTERACTIVE))
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
