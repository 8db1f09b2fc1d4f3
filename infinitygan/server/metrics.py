"""Prometheus metrics (one registry per app, so several apps can live in one test process),
the pure-ASGI middleware that counts requests by route and status, and JSON log lines.

The per-request metrics (requests, their latency, cache lookups) are updated on every cached
tile, the server's hottest path, so they are `LoopCounter`s and `LoopHistogram`s: plain ints
that only the event loop's thread touches, read by `/metrics` (a coroutine on the same loop)
through a collector. prometheus_client's own metrics take a lock per update, and four such
updates cost a cached tile about a tenth of its time. Metrics updated from other threads (the
render worker, the encoders) stay prometheus_client's.
"""

from __future__ import annotations

import json
import logging
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class LoopCounter:
    """A labelled counter incremented only on the event loop's thread: no lock, no child
    objects, one dict update per increment."""

    def __init__(
        self, name: str, doc: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name, self.doc, self.labelnames = name, doc, list(labelnames)
        self._values: dict[tuple[object, ...], float] = {}
        registry.register(self)

    def inc(self, labels: tuple[object, ...], amount: float = 1) -> None:
        """`labels` in `labelnames` order, each anything `str` spells right (a status code)."""
        self._values[labels] = self._values.get(labels, 0) + amount

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.doc, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, value in dict(self._values).items():
            family.add_metric([str(label) for label in labels], value)
        yield family


class _Series:
    """One label set's observations: a count per bucket (not cumulative) and their sum."""

    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total = 0.0


class LoopHistogram:
    """A labelled histogram observed only on the event loop's thread (see `LoopCounter`)."""

    def __init__(
        self,
        name: str,
        doc: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name, self.doc, self.labelnames = name, doc, list(labelnames)
        self.bounds = tuple(buckets)
        self._les = [*map(floatToGoString, self.bounds), "+Inf"]
        self._series: dict[tuple[str, ...], _Series] = {}
        registry.register(self)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = _Series(len(self.bounds) + 1)
        series.counts[bisect_left(self.bounds, value)] += 1  # the first bucket with le >= value
        series.total += value

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, series in dict(self._series).items():
            cumulative, running = [], 0
            for le, count in zip(self._les, series.counts, strict=True):
                running += count
                cumulative.append((le, running))
            family.add_metric(labels, cumulative, series.total)
        yield family


class Metrics:
    """Everything an operator needs to see why a tile was slow or missing."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = LoopCounter(
            "infinitygan_http_requests", "HTTP responses", ["route", "status"], r
        )
        self.request_seconds = LoopHistogram(
            "infinitygan_http_request_seconds",
            "Time to the response start",
            ["route"],
            _LATENCY_BUCKETS,
            r,
        )
        self.cache = LoopCounter(
            "infinitygan_cache_requests", "Tile cache lookups", ["tier", "result"], r
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
        self.prefetch_items = Counter(
            "infinitygan_prefetch_items",
            "Shared prefetch work items this replica claimed (new or reclaimed from a replica "
            "that stopped), acked, or counted failed after its attempts",
            ["event"],
            registry=r,
        )
        self.prefetch_stream_length = Gauge(
            "infinitygan_prefetch_stream_length",
            "Shared prefetch work items of this replica's version not yet acked, by any replica",
            registry=r,
        )
        self.prefetch_pending = Gauge(
            "infinitygan_prefetch_pending",
            "Shared prefetch work items of this replica's version claimed by some replica and "
            "not yet acked",
            registry=r,
        )


def _route_label(scope: Scope) -> str:
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class MetricsMiddleware:
    """Counts every response by route template (bounded label set) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

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
                self.metrics.request_seconds.observe(
                    (_route_label(scope),), time.perf_counter() - start
                )
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.inc((_route_label(scope), status))


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
