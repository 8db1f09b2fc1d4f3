"""Per-app server state: built by `create_app`, completed by the lifespan once the model is
loaded, and reached by routes through `request.app.state.server`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Request

from infinitygan.model.checkpoint import LoadedCheckpoint

from .cache import TileCache
from .encode import TileCodec
from .errors import NotReady
from .metrics import Metrics
from .prefetch import PrefetchJobs
from .render_queue import RenderQueue
from .service import TileService
from .settings import Settings
from .tiling import TileGrid

STATIC_DIR = Path(__file__).parent / "static"


@dataclass(eq=False)
class Loaded:
    """What exists only once the checkpoint is loaded and warmed."""

    checkpoint: LoadedCheckpoint
    queue: RenderQueue
    service: TileService
    prefetch: PrefetchJobs


class ServerState:
    """Everything the routes reach through `request.app.state.server`."""

    def __init__(self, settings: Settings, checkpoint: LoadedCheckpoint | None = None) -> None:
        self.settings = settings
        self.preloaded = checkpoint  # handed over by `serve`, which verified it before binding
        self.metrics = Metrics()
        self.grid = TileGrid(settings.minzoom, settings.maxzoom, settings.metatile)
        self.cache = TileCache(settings, self.metrics)
        self.codec = TileCodec(settings.encode_threads, self.metrics)
        self.loaded: Loaded | None = None
        self.load_error: str | None = None

    def require(self) -> Loaded:
        if self.loaded is None:
            raise NotReady(
                self.load_error or "the model is loading", retry_after=self.settings.retry_after_s
            )
        return self.loaded


def server_state(request: Request) -> ServerState:
    return request.app.state.server
