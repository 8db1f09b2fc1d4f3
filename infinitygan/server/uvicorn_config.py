"""The one uvicorn configuration: `infinitygan serve` runs it, and the test servers are built
from it, so the tests exercise the limits and timeouts a deployment gets."""

from __future__ import annotations

import logging
import resource
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from .http_limits import HttpLimits, limited_protocol
from .settings import Settings

log = logging.getLogger(__name__)
_SPARE_FDS = 64  # the checkpoint, Redis, the listening socket, logs, ...


def uvicorn_config(
    app: Any,
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    keep_alive_s: int = 75,
    forwarded_allow_ips: str = "127.0.0.1",
    access_log: bool = False,
    log_level: str | None = None,
    log_config: dict[str, Any] | None = LOGGING_CONFIG,
) -> uvicorn.Config:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        # httptools, with header limits, a head deadline and the connection bound
        http=limited_protocol(HttpLimits.from_settings(settings)),
        lifespan="on",
        log_config=log_config,
        log_level=log_level,
        access_log=access_log,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        timeout_graceful_shutdown=30,
        # Map clients hold idle keep-alive connections while slow tiles render; uvicorn's 5 s
        # default closes them under the client's next request (a race browsers retry, but
        # plain HTTP clients report as a failure).
        timeout_keep_alive=keep_alive_s,
    )
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and settings.max_connections + _SPARE_FDS > soft:
        log.warning(
            "max_connections %d is near the open-file limit %d (ulimit -n): accepts may fail",
            settings.max_connections,
            soft,
        )
    return config
