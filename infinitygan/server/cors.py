"""CORS for a read-only tile API, in pure ASGI.

Requests without an `Origin` header (most tile traffic: curl, prefetchers, same-origin pages)
pass through untouched. With `*` configured, responses do not vary by origin, so no `Vary`; with
an explicit list, every response says `Vary: Origin` so shared caches keep them apart.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_METHODS = b"GET, HEAD, OPTIONS"
_EXPOSE = b"ETag, Retry-After, Content-Length"
_MAX_AGE = b"86400"


class CorsMiddleware:
    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.allow_all = "*" in origins
        self.origins = {o.encode("latin-1") for o in origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = preflight = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = value
        if origin is None and self.allow_all:
            await self.app(scope, receive, send)
            return
        allowed = origin is not None and (self.allow_all or origin in self.origins)
        cors: list[tuple[bytes, bytes]] = []
        if allowed:
            cors.append((b"access-control-allow-origin", b"*" if self.allow_all else origin))
        if not self.allow_all:
            cors.append((b"vary", b"Origin"))
        if scope["method"] == "OPTIONS" and preflight is not None:
            if allowed:
                cors += [
                    (b"access-control-allow-methods", _METHODS),
                    (b"access-control-allow-headers", b"If-None-Match"),
                    (b"access-control-max-age", _MAX_AGE),
                ]
            await send(
                {"type": "http.response.start", "status": 204 if allowed else 403, "headers": cors}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if allowed:
            cors.append((b"access-control-expose-headers", _EXPOSE))

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors)
