"""Typed domain errors, one status table, one error body (STYLE rule 9).

Every error the server answers is `{"error": {"code", "message"}}` with `Cache-Control: no-store`
(an error must never be cached as if it were an immutable tile). Malformed input is a 400, a
well-formed address outside what we serve is a 404, overload is a 503 with `Retry-After`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base of every error with a public code; the status comes from `STATUS_CODES`."""

    code = "error"

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadRequest(ApiError):
    code = "bad_request"


class MalformedTile(BadRequest):
    code = "malformed_tile"


class InvalidSeed(BadRequest):
    code = "invalid_seed"


class InvalidPrefetch(BadRequest):
    code = "invalid_prefetch"


class PrefetchTooLarge(BadRequest):
    code = "prefetch_too_large"


class NotFound(ApiError):
    code = "not_found"


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


class TooManyJobs(ApiError):
    code = "too_many_jobs"


class Unavailable(ApiError):
    code = "unavailable"


class QueueFull(Unavailable):
    code = "queue_full"


class RenderTimeout(Unavailable):
    code = "render_timeout"


class NotReady(Unavailable):
    code = "not_ready"


class Dropped(Unavailable):
    """Queued work that nobody waited for any more was discarded before it ran."""

    code = "dropped"


STATUS_CODES: dict[type[ApiError], int] = {
    BadRequest: 400,
    NotFound: 404,
    TooManyJobs: 429,
    ClientClosed: 499,
    Unavailable: 503,
}

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def status_of(exc: ApiError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


def error_response(
    status: int, code: str, message: str, retry_after: int | None = None
) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(status_of(exc), exc.code, exc.message, exc.retry_after)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return error_response(400, "invalid_request", "; ".join(parts) or "invalid request")


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
