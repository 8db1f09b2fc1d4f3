"""Request-head limits, a head deadline and a connection bound for uvicorn's httptools protocol,
as nginx has them (`large_client_header_buffers`, `client_header_timeout`, `worker_connections`).

uvicorn reads a request head without a bound (httptools buffers a 128 MiB header whole) and
without a deadline (`timeout_keep_alive` covers only the idle time between requests; a fresh
connection that sends nothing, or one header byte a second, stays open for ever). This subclass:

- counts the head's bytes and fields as they arrive: past `header_max_bytes` or
  `header_max_fields` it answers 431 and closes, reading no further (what it holds meanwhile is
  the bound plus one socket read);
- gives a head `header_timeout_s` to arrive whole, counted from the connection's opening or from
  the request's first byte: then 408 and close (a connection that sent nothing is just closed);
- keeps at most `max_connections` open: past it a new connection closes an idle keep-alive one
  to make room, else it is answered 503 + `Retry-After` at once and closed.

uvicorn's own `limit_concurrency` is not used: it counts connections and tasks, and once over it
answers 503 to every request on every connection, so a flood of idle sockets starves everyone.
The answers carry the app's one JSON error body. What this relies on in uvicorn (the parser
callbacks, `connections`, `cycle`, `timeout_keep_alive_task`, `STATUS_LINE`) is pinned by
`tests/server/test_limits.py`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .error_handlers import api_error_response
from .errors import ApiError, BadRequest, HeaderFieldsTooLarge, RequestTimeout, TooManyConnections
from .settings import Settings

_LINE_OVERHEAD = 4  # ": " and CRLF around each header field


@dataclass(frozen=True)
class HttpLimits:
    header_max_bytes: int
    header_max_fields: int
    header_timeout_s: float
    max_connections: int
    retry_after_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            settings.header_max_bytes,
            settings.header_max_fields,
            settings.header_timeout_s,
            settings.max_connections,
            settings.retry_after_s,
        )


def limited_protocol(limits: HttpLimits) -> type[LimitedHttpToolsProtocol]:
    """The class for `uvicorn.Config(http=...)`; uvicorn builds it with fixed arguments, so the
    limits ride on a subclass of their own."""
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


def error_bytes(exc: ApiError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP/1.1 response for `exc` (the app's JSON error body), closing the connection."""
    response = api_error_response(exc)
    out = [STATUS_LINE[response.status_code]]
    for name, value in [*default_headers, *response.raw_headers, (b"connection", b"close")]:
        out += [name, b": ", value, b"\r\n"]
    out += [b"\r\n", bytes(response.body)]
    return b"".join(out)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # a request's first byte has arrived, its head is not complete
        self._heads = 0  # heads begun on this connection, to tell the next one from the last
        self._head_bytes = 0  # exact: request target and complete header fields
        self._head_raw = 0  # whole socket reads during which the head stayed incomplete
        self._head_fields = 0
        self._refused = False

    # Connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            exc = TooManyConnections(
                "too many open connections; retry later", retry_after=self.limits.retry_after_s
            )
            self._refuse(exc)
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self.cycle is None or self.cycle.response_complete:
            self._arm_head_timer()  # bytes of the next request: its head has a deadline
        in_head, heads = self._in_head, self._heads
        super().data_received(data)
        if self._in_head and not self._refused:
            if in_head and heads == self._heads:  # this whole read belongs to the head
                self._head_raw += len(data)
            self._check_head()

    def _make_room(self) -> bool:
        """Past the bound: close an idle keep-alive connection, if any (nginx reuses those)."""
        open_ = [c for c in self.connections if not c.transport.is_closing()]
        if len(open_) <= self.limits.max_connections:
            return True  # the excess is already closing
        for other in open_:
            if other is not self and getattr(other, "timeout_keep_alive_task", None) is not None:
                other.transport.close()
                return True
        return False

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes it cannot parse (request line, headers, chunked encoding):
        the JSON body and `no-store` of every other error, instead of plain text."""
        self._refuse(BadRequest(msg))

    def _refuse(self, exc: ApiError, answer: bool = True) -> None:
        """Answer `exc` (unless a response has begun on this connection) and close."""
        self._refused = True
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if answer and (cycle is None or not cycle.response_started or cycle.response_complete):
            self.transport.write(error_bytes(exc, self.server_state.default_headers))
        self.transport.close()

    # Head deadline

    def _arm_head_timer(self) -> None:
        if self._head_timer is None and not self._refused:
            self._head_timer = self.loop.call_later(
                self.limits.header_timeout_s, self._head_timed_out
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._refused or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # we are still answering the last request: not the client's time
            return
        exc = RequestTimeout(f"request head not received within {self.limits.header_timeout_s:g} s")
        self._refuse(exc, answer=self._in_head)  # a connection that sent nothing is just closed

    # Head size: parser callbacks

    def _check_head(self) -> None:
        fields, size = self.limits.header_max_fields, self.limits.header_max_bytes
        if self._head_fields > fields:
            self._refuse(HeaderFieldsTooLarge(f"more than {fields} header fields"))
        elif max(self._head_bytes, self._head_raw) > size:
            self._refuse(HeaderFieldsTooLarge(f"request head over {size} bytes"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._heads += 1
        self._head_bytes = self._head_raw = self._head_fields = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        super().on_url(url)
        self._head_bytes += len(url)
        self._check_head()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        super().on_header(name, value)
        self._head_bytes += len(name) + len(value) + _LINE_OVERHEAD
        self._head_fields += 1
        self._check_head()

    def on_headers_complete(self) -> None:
        if self._refused:  # the rest of a refused read is parsed; nothing of it runs
            return
        self._in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()
