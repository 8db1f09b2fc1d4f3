"""GET/HEAD /tiles/{seed}/{z}/{x}/{y}.{png,webp,jpg}: one tile per format, under exactly one URL.

Only the canonical decimal spelling names a tile (`/tiles/1/8/-3/0.webp`); any other spelling
(`-0`, `05`, `+1`, whitespace, `.PNG`, `.jpeg`) is a 404, as is an address outside the served
pyramid. With the model loaded, the fast path in front of FastAPI usually answers the canonical
spelling; both parse the address and then call the same `answer_tile`. This route answers the
rest, chiefly the 404s of every other path under /tiles/{seed}/{z}/{x}/."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ..state import server_state
from ..tile_answer import answer_tile
from ..tiling import MEDIA_TYPES, TILE_ROUTE

router = APIRouter(tags=["tiles"])


@router.get(
    TILE_ROUTE,
    response_class=Response,
    responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}},
        304: {"description": "Not Modified"},
    },
    summary="One 256x256 tile (HEAD too); y_fmt is '{y}.webp', '{y}.png' or '{y}.jpg'; "
    "canonical decimals, x, y signed.",
)
@router.head(TILE_ROUTE, include_in_schema=False)
async def get_tile(
    request: Request,
    seed: str,
    z: str,
    x: str,
    y_fmt: str,
    v: Annotated[
        str | None, Query(description="checkpoint and world version (from TileJSON)")
    ] = None,
) -> Response:
    state = server_state(request)
    service = state.require().service
    addr, fmt = service.grid.parse(seed, z, x, y_fmt)
    return await answer_tile(
        service,
        state.settings,
        addr,
        fmt,
        v,
        request.headers.get("if-none-match"),
        request.receive,
    )
