"""Tile requests in their canonical spelling, answered in pure ASGI in front of everything else
(like nginx's proxy_cache in front of an app server).

Most tile requests are cache hits, and each ASGI layer between the server and the answer (FastAPI
and Starlette's entry points, their error middleware, our metrics, CORS and body-limit
middlewares) costs a cached tile more than the answer itself. `TileServerApp` is the FastAPI app
with this fast path in front: a tile request it recognises (`/tiles/{seed}/{z}/{x}/{y}.{fmt}`,
one regular expression, the address checked with the same functions as `TileGrid.parse`) is
answered through the same `answer_tile` as the route, errors included, and gets from the shared
`CorsPolicy` and `Metrics` what the middlewares would have added. Anything else (another path,
a non-canonical spelling, a request with a body, requests before the model is loaded) goes
through FastAPI unchanged, where the route and the middlewares answer it.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .cors import CorsPolicy
from .error_handlers import api_error_response, internal_error_response
from .errors import ApiError
from .service import TileService
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
_READS = ("GET", "HEAD")
_ROUTE_LABEL = (TILE_ROUTE,)
_REMEMBERED_PATHS = 1 << 14


class TileServerApp(FastAPI):
    """The FastAPI app, with the tile fast path in front of its middleware stack."""

    server: ServerState
    cors: CorsPolicy

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Checked addresses of canonical tile paths, by path: a map viewer asks for the same few
        # hundred tiles over and over, and parsing and range-checking an address costs a cached
        # tile a tenth of its time. Forgotten all at once when full (no per-hit bookkeeping).
        self._known: dict[str, tuple[TileAddress, str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _READS:
            loaded = self.server.loaded
            path = scope["path"]
            known = self._known.get(path) or _TILE_PATH.fullmatch(path)
            if (
                loaded is not None
                and known is not None
                and await self._answer(loaded.service, known, scope, receive, send)
            ):
                return
        await super().__call__(scope, receive, send)

    def _address(self, path: str, match: re.Match[str]) -> tuple[TileAddress, str]:
        """The checked address and format of the canonical tile path `path` (raises a
        `NotFound` for an address out of range), remembered."""
        seed, z, x, y, fmt = match.groups()
        addr = self.server.grid.check(TileAddress(parse_seed(seed), int(z), int(x), int(y)))
        if len(self._known) >= _REMEMBERED_PATHS:
            self._known.clear()
        self._known[path] = addr, fmt
        return addr, fmt

    async def _answer(
        self,
        service: TileService,
        known: tuple[TileAddress, str] | re.Match[str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> bool:
        """Answer a tile request, `known` (its remembered address) or a fresh path match;
        False (nothing sent) for one with a body, which the body limits answer."""
        if_none_match = origin = None
        for name, value in scope["headers"]:  # one pass, instead of a `Headers` per lookup
            if name == b"if-none-match":
                if if_none_match is None:  # the first, as the route's `Headers.get` reads it
                    if_none_match = value.decode("latin-1")
            elif name == b"origin":
                origin = value
            elif name == b"transfer-encoding" or (
                name == b"content-length" and value.strip().lstrip(b"0")
            ):
                return False
        start = time.perf_counter()
        response: Response
        try:
            addr, fmt = (
                self._address(scope["path"], known) if isinstance(known, re.Match) else known
            )
            query = scope["query_string"]
            response = await answer_tile(
                service,
                self.server.settings,
                addr,
                fmt,
                QueryParams(query).get("v") if query else None,
                if_none_match,
                receive,
            )
        except ApiError as exc:
            response = api_error_response(exc)
        except Exception as exc:
            response = internal_error_response(scope["method"], scope["path"], exc)
        cors = self.cors.response_headers(origin)
        if cors:
            response.raw_headers = [*response.raw_headers, *cors]
        metrics = self.server.metrics
        metrics.request_seconds.observe(_ROUTE_LABEL, time.perf_counter() - start)
        metrics.requests.inc((TILE_ROUTE, response.status_code))
        await response(scope, receive, send)
        return True
