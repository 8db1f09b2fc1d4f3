"""Cached tiles and 304s answered in pure ASGI, in front of FastAPI (like nginx's proxy_cache in
front of an app server).

Most tile requests are cache hits, and FastAPI's per-request work (routing, parameter parsing,
dependency and response machinery) costs several times what a hit itself costs. This middleware
answers exactly two cases with the same headers and bytes as `routes/tiles.py`: an ETag match
(304) and a cache hit (200). Everything else (a malformed address, a miss to render, a stale
`?v=`) falls through unchanged to the route, which owns errors and rendering.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from infinitygan.bounds import MAX_SEED

from .errors import ApiError
from .metrics import ROUTE_KEY
from .state import ServerState
from .tiling import TILE_CACHE_CONTROL, TILE_ROUTE, TileAddress, etag, etag_matches

_CACHE_CONTROL = TILE_CACHE_CONTROL.encode()
MISSED_KEY = "infinitygan.cache_missed"  # scope key: the cache was just asked, don't ask again
# The canonical spelling only (a subset of what TileGrid.parse accepts); anything else, valid
# or not, takes the route, which parses fully and owns the error answers.
_TILE_PATH = re.compile(r"/tiles/([0-9]{1,19})/([0-9]{1,4})/(-?[0-9]{1,19})/(-?[0-9]{1,19})\.png")


class CachedTileMiddleware:
    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and scope["path"].startswith("/tiles/")
            and await self._answer(scope, send)
        ):
            return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, send: Send) -> bool:
        """Send a 304 or a cached 200 and return True, or return False without sending."""
        loaded = self.state.loaded
        match = _TILE_PATH.fullmatch(scope["path"])
        if loaded is None or match is None:
            return False
        service = loaded.service
        seed, z, x, y = map(int, match.groups())
        if seed >= MAX_SEED:
            return False
        try:
            addr = service.grid.check(TileAddress(seed, z, x, y))
        except ApiError:
            return False
        if scope["query_string"]:
            versions = parse_qs(scope["query_string"].decode("latin-1")).get("v")
            if versions and versions[-1] != service.version:
                return False
        tag = etag(service.key(addr))
        if_none_match = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        headers = [(b"etag", tag.encode()), (b"cache-control", _CACHE_CONTROL)]
        scope[ROUTE_KEY] = TILE_ROUTE
        if etag_matches(if_none_match, tag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        png = await service.cached(addr)
        if png is None:
            del scope[ROUTE_KEY]
            scope[MISSED_KEY] = True
            return False
        headers += [(b"content-type", b"image/png"), (b"content-length", b"%d" % len(png))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": png})
        return True
