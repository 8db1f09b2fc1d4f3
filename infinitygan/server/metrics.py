"""Prometheus metrics (one registry per app, so several apps can live in one test process),
the pure-ASGI middleware that counts requests by route and status, and JSON log lines."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROUTE_KEY = "infinitygan.route"  # scope key: route label set by middleware that answers early
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Everything an operator needs to see why a tile was slow or missing."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "infinitygan_http_requests", "HTTP responses", ["route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "infinitygan_http_request_seconds",
            "Time to the response start",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "infinitygan_cache_requests", "Tile cache lookups", ["tier", "result"], registry=r
        )
        self.cache_bytes = Gauge(
            "infinitygan_cache_memory_bytes", "PNG bytes held in process", registry=r
        )
        self.redis_errors = Counter(
            "infinitygan_redis_errors", "Failed or slow Redis calls", ["op"], registry=r
        )
        self.render_seconds = Histogram(
            "infinitygan_render_seconds",
            "One batched forward pass",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rendered_metatiles = Counter(
            "infinitygan_rendered_metatiles", "Metatiles rendered by the model", registry=r
        )
        self.delivered_metatiles = Counter(
            "infinitygan_delivered_metatiles",
            "Rendered metatiles that a request or prefetch job still waited for (goodput)",
            registry=r,
        )
        self.encode_seconds = Histogram(
            "infinitygan_encode_seconds",
            "Encoding of one tile, by format",
            ["format"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "infinitygan_queue_depth",
            "Metatiles waiting for the model",
            ["priority"],
            registry=r,
        )
        self.coalesced = Counter(
            "infinitygan_coalesced_waiters",
            "Requests that joined work already in flight",
            registry=r,
        )
        self.drops = Counter(
            "infinitygan_dropped_jobs",
            "Metatile renders refused or discarded before they ran",
            ["reason"],
            registry=r,
        )
        self.lock_waits = Counter(
            "infinitygan_redis_lock_waits", "Metatiles another replica was rendering", registry=r
        )
        self.prefetch_tiles = Counter(
            "infinitygan_prefetch_tiles", "Prefetch outcomes", ["result"], registry=r
        )


def _route_label(scope: Scope) -> str:
    route: Any = scope.get("route")
    return getattr(route, "path", None) or scope.get(ROUTE_KEY) or "unmatched"


class MetricsMiddleware:
    """Counts every response by route template (bounded label set) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # Labelled children cached: `labels()` takes a lock and builds a key on every call.
        self._counters: dict[tuple[str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    def _count(self, route: str, status: int) -> None:
        counter = self._counters.get((route, status))
        if counter is None:
            counter = self._counters[route, status] = self.metrics.requests.labels(
                route, str(status)
            )
        counter.inc()

    def _time(self, route: str, seconds: float) -> None:
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers[route] = self.metrics.request_seconds.labels(route)
        timer.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self._time(_route_label(scope), time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._count(_route_label(scope), status)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so log shippers need no parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_config(level: str) -> dict[str, Any]:
    """`logging.config.dictConfig` for uvicorn and our loggers: JSON lines on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "loggers": {
            name: {"handlers": ["json"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.access", "infinitygan")
        },
    }
