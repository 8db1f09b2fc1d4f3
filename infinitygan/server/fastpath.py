"""Tile requests in their canonical spelling, answered in pure ASGI in front of FastAPI (like
nginx's proxy_cache in front of an app server).

Most tile requests are cache hits, and FastAPI's per-request work (routing, parameter parsing,
dependency and response machinery) costs several times what a hit itself costs. This middleware
recognises `/tiles/{seed}/{z}/{x}/{y}.{fmt}` with one regular expression, checks the address
with the same functions as `TileGrid.parse`, and answers through the same `answer_tile` as the
route, errors included. Anything else (a non-canonical spelling, a malformed address) and
requests before the model is loaded fall through unchanged to the route, which answers the 404s."""

from __future__ import annotations

import re

from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .error_handlers import api_error_response
from .errors import ApiError
from .metrics import ROUTE_KEY
from .service import TileService
from .settings import Settings
from .state import ServerState
from .tile_answer import answer_tile
from .tiling import (
    COORD_PATTERN,
    FORMATS,
    SEED_PATTERN,
    TILE_ROUTE,
    ZOOM_PATTERN,
    TileAddress,
    parse_seed,
)

# The canonical spelling only, from the same digit patterns and formats as `TileGrid.parse`:
# every match is one it accepts; whether the numbers are in range is checked after matching.
_TILE_PATH = re.compile(
    rf"/tiles/({SEED_PATTERN})/({ZOOM_PATTERN})/({COORD_PATTERN})/({COORD_PATTERN})"
    rf"\.({'|'.join(FORMATS)})"
)


class TileFastPath:
    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            loaded = self.state.loaded
            match = _TILE_PATH.fullmatch(scope["path"])
            if loaded is not None and match is not None:
                scope[ROUTE_KEY] = TILE_ROUTE
                response: Response
                try:
                    response = await _answer(
                        loaded.service, self.state.settings, match, scope, receive
                    )
                except ApiError as exc:
                    response = api_error_response(exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _answer(
    service: TileService, settings: Settings, match: re.Match[str], scope: Scope, receive: Receive
) -> Response:
    seed, z, x, y, fmt = match.groups()
    addr = service.grid.check(TileAddress(parse_seed(seed), int(z), int(x), int(y)))
    query = scope["query_string"]
    return await answer_tile(
        service,
        settings,
        addr,
        fmt,
        QueryParams(query).get("v") if query else None,
        _if_none_match(scope),
        receive,
    )


def _if_none_match(scope: Scope) -> str | None:
    """The first If-None-Match, as the route reads it (Starlette's `Headers.get`); a plain loop,
    because building a `Headers` costs a tenth of answering a cached tile here."""
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            return value.decode("latin-1")
    return None
