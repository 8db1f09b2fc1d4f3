"""Bad input: each case's status and error body; never a 500, never cacheable; readiness."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import LiveServer, TinyCheckpoint, settings_for

BIG = 2**31
CASES: list[tuple[str, str, Any, int, str]] = [
    # (method, path, json body, status, error code)
    # A path that names no served tile is a 404, whatever is wrong with it; the code says what.
    ("GET", "/tiles/abc/8/0/0.png", None, 404, "invalid_seed"),
    ("GET", "/tiles/-1/8/0/0.png", None, 404, "invalid_seed"),
    ("GET", "/tiles/1.5/8/0/0.png", None, 404, "invalid_seed"),
    ("GET", f"/tiles/{2**63}/8/0/0.png", None, 404, "invalid_seed"),
    ("GET", "/tiles/" + "9" * 30 + "/8/0/0.png", None, 404, "invalid_seed"),
    ("GET", "/tiles/\u0663/8/0/0.png", None, 404, "invalid_seed"),  # Arabic-Indic digit 3
    ("GET", "/tiles/05/8/0/0.png", None, 404, "invalid_seed"),
    ("GET", "/tiles/1/x/0/0.png", None, 404, "malformed_tile"),
    ("GET", "/tiles/1/-8/0/0.png", None, 404, "malformed_tile"),
    ("GET", "/tiles/1/08/0/0.png", None, 404, "malformed_tile"),
    ("GET", "/tiles/1/8/1e3/0.png", None, 404, "malformed_tile"),
    ("GET", "/tiles/1/8/+1/0.png", None, 404, "malformed_tile"),
    ("GET", "/tiles/1/8/-0/0.png", None, 404, "malformed_tile"),
    ("GET", "/tiles/1/8/%200/0.png", None, 404, "malformed_tile"),
    ("GET", "/tiles/1/8/0/0", None, 404, "malformed_tile"),
    ("GET", "/tiles/1/8/0/.png", None, 404, "malformed_tile"),
    ("GET", "/tiles/1/8/0/0.5.png", None, 404, "malformed_tile"),
    ("GET", "/tiles/1/8/" + "1" * 101 + "/0.png", None, 404, "malformed_tile"),
    ("GET", "/tiles/1/9/0/0.png", None, 404, "zoom_out_of_range"),
    ("GET", "/tiles/1/4/0/0.png", None, 404, "zoom_out_of_range"),
    ("GET", "/tiles/1/9999/0/0.png", None, 404, "zoom_out_of_range"),
    ("GET", "/tiles/1/99999/0/0.png", None, 404, "zoom_out_of_range"),
    ("GET", f"/tiles/1/8/{BIG}/0.png", None, 404, "tile_out_of_bounds"),
    ("GET", f"/tiles/1/8/0/{-BIG - 1}.png", None, 404, "tile_out_of_bounds"),
    ("GET", f"/tiles/1/7/{BIG // 2}/0.png", None, 404, "tile_out_of_bounds"),
    ("GET", f"/tiles/1/5/0/{-BIG // 8 - 1}.png", None, 404, "tile_out_of_bounds"),
    ("GET", "/tiles/1/8/99999999999/0.png", None, 404, "tile_out_of_bounds"),
    ("GET", "/tiles/1/8/" + "1" * 40 + "/0.png", None, 404, "tile_out_of_bounds"),
    ("GET", "/tiles/1/8/0/0.jpeg", None, 404, "unknown_format"),
    ("GET", "/tiles/1/8/0/0.gif", None, 404, "unknown_format"),
    ("GET", "/tiles/1/8/0/0.PNG", None, 404, "unknown_format"),
    ("GET", "/tiles/1/8/0/0.png?v=0000000000000000", None, 404, "unknown_version"),
    ("GET", "/tiles/x/tilejson.json", None, 404, "invalid_seed"),
    ("GET", "/tiles/07/tilejson.json", None, 404, "invalid_seed"),
    ("GET", "/tiles/1/8/0", None, 404, "not_found"),
    ("GET", "/nowhere", None, 404, "not_found"),
    ("POST", "/tiles/1/8/0/0.png", None, 405, "method_not_allowed"),
    ("GET", "/prefetch/nope", None, 404, "job_not_found"),
    ("DELETE", "/prefetch/nope", None, 404, "job_not_found"),
    ("POST", "/prefetch", None, 400, "invalid_request"),
    ("POST", "/prefetch", {"seed": 1}, 400, "invalid_request"),
    (
        "POST",
        "/prefetch",
        {"seed": -1, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, 0, 0]},
        400,
        "invalid_request",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, 0]},
        400,
        "invalid_request",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, 0, 0], "x": 1},
        400,
        "invalid_request",
    ),
    # Strict types: a bool, float or string is never coerced to an integer.
    (
        "POST",
        "/prefetch",
        {"seed": True, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, 0, 0]},
        400,
        "invalid_request",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1.0, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, 0, 0]},
        400,
        "invalid_request",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": "1", "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, 0, 0]},
        400,
        "invalid_request",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": False, "maxzoom": 8, "bbox": [0, 0, 0, 0]},
        400,
        "invalid_request",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 8, "maxzoom": "8", "bbox": [0, 0, 0, 0]},
        400,
        "invalid_request",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, True, 0]},
        400,
        "invalid_request",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0.0, 0, 0]},
        400,
        "invalid_request",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 8, "maxzoom": 8, "bbox": "0000"},
        400,
        "invalid_request",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 8, "maxzoom": 8, "bbox": {"0": 0, "1": 0, "2": 0, "3": 0}},
        400,
        "invalid_request",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 8, "maxzoom": 9, "bbox": [0, 0, 0, 0]},
        400,
        "invalid_prefetch",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 8, "maxzoom": 7, "bbox": [0, 0, 0, 0]},
        400,
        "invalid_prefetch",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 8, "maxzoom": 8, "bbox": [5, 0, 4, 0]},
        400,
        "invalid_prefetch",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 8, "maxzoom": 8, "bbox": [0, 0, BIG, 0]},
        400,
        "invalid_prefetch",
    ),
    (
        "POST",
        "/prefetch",
        {"seed": 1, "minzoom": 5, "maxzoom": 8, "bbox": [0, 0, 999, 999]},
        400,
        "prefetch_too_large",
    ),
]


def _errors_served(server: LiveServer) -> float:
    return server.metric("infinitygan_http_requests_total", status="500")


@pytest.fixture(autouse=True)
def no_500s(server: LiveServer) -> Iterator[None]:
    """Checked around every test here, so the guarantee holds for any test run alone or in any
    order: whatever a test sent, the server answered it without a 500."""
    before = _errors_served(server)
    yield
    assert _errors_served(server) == before


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), CASES)
def test_bad_input(
    server: LiveServer, method: str, path: str, body: Any, status: int, code: str
) -> None:
    response = server.client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert set(response.json()["error"]) == {"code", "message"}
    assert response.json()["error"]["message"]
    assert response.headers["cache-control"] == "no-store"


def test_malformed_json_body(server: LiveServer) -> None:
    response = server.client.post(
        "/prefetch", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_not_ready_until_loaded(live_server, tiny_checkpoint: TinyCheckpoint, tmp_path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    server = live_server(settings_for(tiny_checkpoint, checkpoint=broken), wait_ready=False)
    assert server.client.get("/healthz").status_code == 200
    for path in ("/readyz", "/tiles/1/8/0/0.png", "/tiles/1/tilejson.json"):
        response = server.client.get(path)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "not_ready"
        assert "Retry-After" in response.headers
    assert "checkpoint" in server.client.get("/readyz").json()["error"]["message"]
    assert _errors_served(server) == 0
