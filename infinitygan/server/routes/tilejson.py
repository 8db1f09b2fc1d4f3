"""GET /tiles/{seed}/tilejson.json: TileJSON 3.0.0 with a versioned tile URL.

The tile URL never comes from the request (its `Host` is whatever the client says, and the
answer is cacheable): it is `INFINITYGAN_PUBLIC_URL` + `/tiles/...` when that is set, else the
root-relative `/tiles/...`, which our viewer and prefetch client resolve against the TileJSON
URL. TileJSON 3.0.0 asks for absolute URLs, and MapLibre GL does not resolve relative ones: set
the public URL when such clients use the server.

The tile URL's `?v=` is the served version: the checkpoint's version with the world's tag
(`World.version`), since both decide the pixels; a URL of another checkpoint or world is a 404.

Beside the standard fields: `checkpoint_version`, the checkpoint's own version; `world`, how the
global style changes along x (`INFINITYGAN_BIOME_PX`, `INFINITYGAN_BIOME_TRANSITION_PX`):
`biomes` (false: one style everywhere, as in the paper), `biome_px`, `transition_px` (both 0
with one style) and `version`, the served version of the tile URL; `band`, the canvas rows
[y0, y1) the model was trained on (native-zoom pixels), which the viewer opens on; `format` (as
in MBTiles metadata), the extension of the tile URL: `INFINITYGAN_TILE_FORMAT`, WebP by
default."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..state import server_state
from ..tiling import TILE_SIZE, parse_seed

router = APIRouter(tags=["tiles"])


@router.get("/tiles/{seed}/tilejson.json", summary="TileJSON 3.0.0 for one seed")
async def get_tilejson(request: Request, seed: str) -> JSONResponse:
    state = server_state(request)
    loaded = state.require()
    service = loaded.service
    s = parse_seed(seed)
    base = state.settings.public_url or ""
    fmt = state.settings.tile_format
    doc = {
        "tilejson": "3.0.0",
        "name": f"infinitygan seed {s}",
        "description": "An infinite, seamless GAN-generated landscape; y = 0 is the horizon.",
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [f"{base}/tiles/{s}/{{z}}/{{x}}/{{y}}.{fmt}?v={service.version}"],
        "format": fmt,
        "minzoom": state.settings.minzoom,
        "maxzoom": state.settings.maxzoom,
        "tileSize": TILE_SIZE,
        "checkpoint_version": loaded.checkpoint.version,
        "world": {**state.settings.world.describe(), "version": service.version},
        "band": list(loaded.checkpoint.config.band),
    }
    # Short-lived: a new checkpoint or world changes the tile URL, and clients must see it.
    return JSONResponse(doc, headers={"Cache-Control": "public, max-age=60"})
