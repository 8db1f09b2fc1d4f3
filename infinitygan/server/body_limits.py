"""A bound on each route's request body and a deadline for each of its reads, in pure ASGI
(nginx's `client_max_body_size` and `client_body_timeout`).

Only `POST /prefetch` takes a body (a few hundred bytes of JSON); every other route takes none.
A `Content-Length` over the route's bound gets 413 before a byte of the body is read (so no
`100 Continue` goes out); a chunked body is counted as it is read and gets 413 once it passes the
bound; a body whose next chunk does not arrive within `body_timeout_s` gets 408. These answers
say `Connection: close`, so uvicorn neither reads on nor waits for the rest, and the app, which
then hears `http.disconnect`, has its own answer dropped. Requests without a body (nearly all)
pass through untouched.

Starlette's `RequestBodyLimitMiddleware` (FastAPI's `max_body_size`) bounds the size only, and
answers text/plain in place of the app's JSON errors while keeping the connection open.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .error_handlers import api_error_response
from .errors import ApiError, ContentTooLarge, RequestTimeout
from .settings import Settings

_DISCONNECT: Message = {"type": "http.disconnect"}


async def _no_receive() -> Message:
    return _DISCONNECT


async def send_error(exc: ApiError, scope: Scope, send: Send) -> None:
    response = api_error_response(exc)
    response.headers["connection"] = "close"
    await response(scope, _no_receive, send)


class RequestBodyLimits:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.route_limits = {("POST", "/prefetch"): settings.prefetch_max_body_bytes}
        self.timeout_s = settings.body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.strip().isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked and not length:  # no body (httptools has checked the framing)
            await self.app(scope, receive, send)
            return
        limit = self.route_limits.get((scope["method"], scope["path"]), 0)
        if limit == 0 or (length is not None and length > limit):
            what = f"{scope['method']} {scope['path']}"
            if limit == 0:
                message = f"{what} takes no request body"
            else:
                message = f"request body of {length} bytes is over {limit} for {what}"
            await send_error(ContentTooLarge(message), scope, send)
            return
        await _GuardedBody(self.app, limit, self.timeout_s)(scope, receive, send)


class _GuardedBody:
    """One request with a body: counts it, times each read, answers 408/413 itself."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s
        self.received = 0
        self.complete = False  # the whole body was delivered: reads now only await a disconnect
        self.started = False  # the app started its response
        self.answered = False  # we answered in the app's place

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def guarded_receive() -> Message:
            if self.complete:
                return await receive()
            if self.answered:
                return _DISCONNECT
            try:
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                timeout = f"{self.timeout_s:g}"
                return await answer(RequestTimeout(f"request body stalled for {timeout} s"))
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    exc = ContentTooLarge(f"request body over {self.limit} bytes")
                    return await answer(exc)
                self.complete = not message.get("more_body", False)
            return message

        async def answer(exc: ApiError) -> Message:
            if not self.started:
                self.answered = True
                await send_error(exc, scope, send)
            return _DISCONNECT

        async def guarded_send(message: Message) -> None:
            if self.answered:
                return
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        await self.app(scope, guarded_receive, guarded_send)
