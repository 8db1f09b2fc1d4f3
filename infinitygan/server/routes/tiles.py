"""GET/HEAD /tiles/{seed}/{z}/{x}/{y}.{fmt}: every spelling of a tile address.

The canonical spelling (`.png`, with the model loaded) is usually answered by the fast path in
front of FastAPI; both parse the address and then call the same `answer_tile`. This route parses
every other spelling and owns the errors of malformed addresses.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ..state import server_state
from ..tile_answer import answer_tile
from ..tiling import TILE_ROUTE

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
    return await answer_tile(
        service,
        state.settings,
        addr,
        fmt,
        v,
        request.headers.get("if-none-match"),
        request.receive,
    )
