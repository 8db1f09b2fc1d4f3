"""Typed domain errors and the one table that maps them to HTTP statuses.

A path that names nothing we serve is a 404, whatever is wrong with it: malformed, not the
canonical spelling, or outside the served pyramid (the code says which). A malformed request
body is a 400; overload is a 503 with `Retry-After`; a request past the server's size or time
limits gets 408, 413 or 431. Plain exceptions, importing nothing: tile addressing and the
prefetch client raise them without loading FastAPI; `error_handlers` turns them into responses.
"""

from __future__ import annotations


class ApiError(Exception):
    """Base of every error with a public code; the status comes from `STATUS_CODES`."""

    code = "error"

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadRequest(ApiError):
    code = "bad_request"


class InvalidPrefetch(BadRequest):
    code = "invalid_prefetch"


class PrefetchTooLarge(BadRequest):
    code = "prefetch_too_large"


class NotFound(ApiError):
    code = "not_found"


class MalformedTile(NotFound):
    """Not a tile address in its canonical spelling (`/tiles/1/8/-0/0.png`, `05`, `+1`)."""

    code = "malformed_tile"


class InvalidSeed(NotFound):
    code = "invalid_seed"


class ZoomOutOfRange(NotFound):
    code = "zoom_out_of_range"


class TileOutOfBounds(NotFound):
    code = "tile_out_of_bounds"


class UnknownFormat(NotFound):
    code = "unknown_format"


class UnknownVersion(NotFound):
    code = "unknown_version"


class JobNotFound(NotFound):
    code = "job_not_found"


class ClientClosed(ApiError):
    """The client went away while its tile was rendering (nginx's 499); nobody reads this."""

    code = "client_closed_request"


class RequestTimeout(ApiError):
    """The request head or body did not arrive within its deadline."""

    code = "request_timeout"


class ContentTooLarge(ApiError):
    code = "content_too_large"


class HeaderFieldsTooLarge(ApiError):
    code = "header_fields_too_large"


class TooManyJobs(ApiError):
    code = "too_many_jobs"


class Unavailable(ApiError):
    code = "unavailable"


class QueueFull(Unavailable):
    code = "queue_full"


class Overloaded(Unavailable):
    """The work ahead would not let this render finish before the request's deadline."""

    code = "overloaded"


class RenderTimeout(Unavailable):
    code = "render_timeout"


class NotReady(Unavailable):
    code = "not_ready"


class TooManyConnections(Unavailable):
    code = "too_many_connections"


class Dropped(Unavailable):
    """Queued work that nobody waited for any more was discarded before it ran."""

    code = "dropped"


STATUS_CODES: dict[type[ApiError], int] = {
    BadRequest: 400,
    NotFound: 404,
    RequestTimeout: 408,
    ContentTooLarge: 413,
    TooManyJobs: 429,
    HeaderFieldsTooLarge: 431,
    ClientClosed: 499,
    Unavailable: 503,
}


def status_of(exc: ApiError) -> int:
    """The status of the nearest class in `STATUS_CODES`; 500 for none (a bug, not an input)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500
