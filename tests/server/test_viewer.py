"""The viewer page loads Leaflet (and everything else) from the server itself."""

from __future__ import annotations

import re

from .conftest import LiveServer


def test_viewer_loads_leaflet_from_the_server(server: LiveServer) -> None:
    page = server.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/leaflet/leaflet.js" in refs and "/static/leaflet/leaflet.css" in refs
    for ref in refs:
        assert ref.startswith("/static/"), f"{ref} is not served by us"
        asset = server.client.get(ref)
        assert asset.status_code == 200, ref
        assert asset.content
    assert "L.CRS.Simple" in server.client.get("/static/viewer.js").text
    leaflet = server.client.get("/static/leaflet/leaflet.js").text
    assert "Leaflet 1.9.4" in leaflet[:200]
    assert server.client.get("/static/leaflet/images/layers.png").status_code == 200


def test_openapi_docs(server: LiveServer) -> None:
    assert server.client.get("/docs").status_code == 200
    paths = server.client.get("/openapi.json").json()["paths"]
    assert {"/tiles/{seed}/{z}/{x}/{y_fmt}", "/tiles/{seed}/tilejson.json", "/prefetch"} <= set(
        paths
    )
