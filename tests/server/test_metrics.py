"""The loop-owned metrics export what prometheus_client's own would: counters by label set,
cumulative histogram buckets (a value on a bound counts in that bucket), sums and counts."""

from __future__ import annotations

from prometheus_client import generate_latest

from infinitygan.server.metrics import Metrics

from .harness import metric_value


def test_loop_counters_and_histograms_export_like_prometheus_client() -> None:
    m = Metrics()
    m.requests.inc(("/t", 200))
    m.requests.inc(("/t", 200))
    m.requests.inc(("/t", 404))
    m.cache.inc(("memory", "hit"), 5)
    for seconds in (0.003, 0.5, 0.5, 99.0):
        m.request_seconds.observe(("/t",), seconds)
    text = generate_latest(m.registry).decode()
    assert metric_value(text, "infinitygan_http_requests_total", status="200") == 2
    assert metric_value(text, "infinitygan_http_requests_total", status="404") == 1
    assert metric_value(text, "infinitygan_cache_requests_total", tier="memory") == 5
    bucket = "infinitygan_http_request_seconds_bucket"
    assert metric_value(text, bucket, le="0.0025") == 0
    assert metric_value(text, bucket, le="0.005") == 1
    assert metric_value(text, bucket, le="0.5") == 3
    assert metric_value(text, bucket, le="30.0") == 3
    assert metric_value(text, bucket, le="+Inf") == 4
    assert metric_value(text, "infinitygan_http_request_seconds_count") == 4
    assert metric_value(text, "infinitygan_http_request_seconds_sum") == 0.003 + 1.0 + 99.0
