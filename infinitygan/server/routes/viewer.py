"""GET /: the Leaflet viewer page (Leaflet itself is vendored under /static/leaflet)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ..state import STATIC_DIR

router = APIRouter(tags=["viewer"])


@router.get("/", include_in_schema=False)
async def viewer() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
