"""`infinitygan serve`: build `Settings` from the environment once, then run uvicorn.

One process serves one model copy; scale out with more replicas sharing Redis behind a load
balancer rather than uvicorn workers (each worker would load its own model).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

import uvicorn
from pydantic import ValidationError

from infinitygan.model.checkpoint import CheckpointError

from .app import create_app, load_checkpoint
from .metrics import log_config
from .settings import Settings
from .uvicorn_config import uvicorn_config


def _port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 1..65535, got {port}")
    return port


def _env_name(field: str) -> str:
    return "REDIS_URL" if field == "redis_url" else f"INFINITYGAN_{field.upper()}"


def _settings_error(exc: ValidationError) -> str:
    """Every problem in one line, each named by its environment variable where it has one (a
    check of several settings, like the zoom range or the world, names them itself)."""
    problems = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        loc = error["loc"]
        if loc:
            message = f"{_env_name(str(loc[0]))}={error['input']!r}: {message}"
        problems.append(message)
    return "invalid server settings: " + "; ".join(problems)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:  # like a bad checkpoint: one line, before anything loads
        print(f"infinitygan serve: error: {_settings_error(exc)}", file=sys.stderr)
        return 2
    try:  # verified and loaded once, before binding: a bad checkpoint exits here, like nginx -t
        checkpoint = load_checkpoint(settings)
    except CheckpointError as exc:
        print(f"infinitygan serve: error: {exc}", file=sys.stderr)
        return 2
    config = uvicorn_config(
        create_app(settings, checkpoint),
        settings,
        host=args.host,
        port=args.port,
        keep_alive_s=args.keep_alive,
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=args.access_log,
        log_config=log_config(args.log_level),
    )
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, re-raised after the shutdown
        server.run()
    if not server.started:
        return 3  # uvicorn's STARTUP_FAILURE
    return 0


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    env = ", ".join(_env_name(name) for name in Settings.model_fields)
    parser = subparsers.add_parser(
        "serve",
        help="run the tile server (settings from environment variables)",
        description=f"{__doc__}\nSettings (environment): {env}.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0: all)")
    parser.add_argument("--port", type=_port, default=8000, help="TCP port")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--keep-alive", type=int, default=75, help="seconds an idle connection stays open"
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies trusted for X-Forwarded-For/-Proto (comma list or *): client addresses",
    )
    parser.set_defaults(func=_serve)
    return parser
