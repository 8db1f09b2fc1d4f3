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


Headers = list[tuple[bytes, bytes]]


class CorsPolicy:
    """Which CORS headers a response gets, by the request's `Origin`; shared by the middleware
    and the tile fast path, which answers in front of it."""

    def __init__(self, origins: list[str]) -> None:
        self.allow_all = "*" in origins
        self.origins = {o.encode("latin-1") for o in origins}
        self._any_origin: Headers = [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-expose-headers", _EXPOSE),
        ]

    def allowed(self, origin: bytes | None) -> bool:
        return origin is not None and (self.allow_all or origin in self.origins)

    def base_headers(self, origin: bytes | None) -> Headers:
        """Allow-Origin (when allowed) and Vary (for an explicit list): every answer's."""
        cors: Headers = []
        if self.allowed(origin):
            cors.append((b"access-control-allow-origin", b"*" if self.allow_all else origin))
        if not self.allow_all:
            cors.append((b"vary", b"Origin"))
        return cors

    def response_headers(self, origin: bytes | None) -> Headers:
        """What an answer other than a preflight adds (the list is the caller's to extend)."""
        if self.allow_all:
            return [] if origin is None else [*self._any_origin]
        cors = self.base_headers(origin)
        if self.allowed(origin):
            cors.append((b"access-control-expose-headers", _EXPOSE))
        return cors


class CorsMiddleware:
    def __init__(self, app: ASGIApp, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

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
        if origin is None and self.policy.allow_all:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and preflight is not None:
            allowed = self.policy.allowed(origin)
            cors = self.policy.base_headers(origin)
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
        cors = self.policy.response_headers(origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors)
