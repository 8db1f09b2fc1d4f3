/* infinitygan viewer: an infinite canvas in Leaflet's L.CRS.Simple.
 *
 * At the native zoom N (TileJSON maxzoom) one map unit is one canvas pixel, with
 * lat = canvas y (downwards, 0 = the horizon) and lng = canvas x, so Leaflet's tile (x, y) at
 * zoom z is exactly the server's tile (x, y) at zoom z. The permalink lives in the URL hash:
 * #seed=S&z=Z&x=X&y=Y (X, Y in canvas pixels of the view centre).
 *
 * The model was trained on photos that span TileJSON's `band` (canvas rows y0..y1 around the
 * horizon); above and below it only extends sky and ground. So the first view is centred on the
 * band, over-zoomed until the band and as much again above and below fill the window, and the
 * centre cannot be panned further than one band height beyond it.
 *
 * Travel pans steadily east at the current zoom and height, through the world's biomes
 * (TileJSON's `world`), and requests the tiles just ahead of the view so they are rendered by
 * the time they come into it. The permalink follows once a second (replaceState: no history
 * entry per frame).
 */
(function () {
  "use strict";

  var SEED_RE = /^[0-9]{1,19}$/;
  var MAX_X = 549755813888; // 2^39 canvas px: native tiles x are valid in [-2^31, 2^31)
  // Travel speeds in canvas px per second at the native zoom and above; the server must render
  // what comes into view. A 2-core CPU renders a metatile (4 x 256 = 1024 px square) in about
  // 1.3 s, and a window on the horizon band spans two metatile rows (y = 0 is a metatile edge):
  // each 1024 px travelled costs ~2.6 s of rendering, so ~390 px/s at most. The default, 256,
  // leaves a third of that for the tiles ahead, other requests and other viewers; the faster
  // speeds are for a GPU. Over-zoomed (the opening view) the same speed moves the screen faster
  // at the same cost; below the native zoom a screen spans 2x more canvas rows per level, so
  // the speed in canvas px halves per level and the metatiles rendered per second stay the same.
  var TRAVEL_SPEEDS = [128, 256, 512, 1024];
  var TRAVEL_DEFAULT = 256;
  var TRAVEL_UPDATE_MS = 1000; // permalink, status and tiles ahead, while travelling
  var AHEAD_S = 4; // request tiles this many seconds of travel east of the view
  var AHEAD_MAX = 4; // of them in flight at once: the map's own tiles keep connections
  var form = document.getElementById("seed-form");
  var seedInput = document.getElementById("seed");
  var statusBox = document.getElementById("status");
  var travelButton = document.getElementById("travel");
  var speedSelect = document.getElementById("travel-speed");
  var map = null;
  var layer = null;
  var grid = null; // TileJSON's tile URL, zoom range and tile size
  var seed = "0";
  var pointer = null;
  var travel = { on: false, zooming: false, frame: 0, last: 0, carry: 0, updated: 0 };
  var ahead = { queue: [], inFlight: 0, seen: {}, count: 0 };

  function readHash() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var kv = part.split("=");
      if (kv.length === 2) { out[decodeURIComponent(kv[0])] = decodeURIComponent(kv[1]); }
    });
    return out;
  }

  function num(value, fallback) {
    var n = Number(value);
    return value !== undefined && value !== "" && isFinite(n) ? n : fallback;
  }

  function writeHash() {
    if (!map) { return; }
    var c = map.getCenter();
    var hash = "#seed=" + seed + "&z=" + map.getZoom() +
      "&x=" + Math.round(c.lng) + "&y=" + Math.round(c.lat);
    if (location.hash !== hash) { history.replaceState(null, "", hash); }
  }

  function showStatus() {
    if (!map) { return; }
    var c = map.getCenter();
    var text = "seed " + seed + " · zoom " + map.getZoom() +
      " · centre x " + Math.round(c.lng) + ", y " + Math.round(c.lat);
    if (travel.on) { text += " · travelling east at " + canvasSpeed() + " px/s"; }
    if (pointer) {
      text += " · pointer x " + Math.floor(pointer.lng) + ", y " + Math.floor(pointer.lat);
    }
    statusBox.className = "panel";
    statusBox.textContent = text;
  }

  function fail(message) {
    statusBox.className = "panel error";
    statusBox.textContent = message;
  }

  // "biomes every 4096 px" or "one style" (TileJSON's `world`; absent from older servers).
  function worldText(world) {
    if (!world) { return ""; }
    return world.biomes ? "biomes every " + world.biome_px + " px" : "one style";
  }

  function fetchTileJSON(s) {
    return fetch("/tiles/" + s + "/tilejson.json").then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error(body.error ? body.error.message : r.statusText); }
        return body;
      });
    });
  }

  // The zoom (native + 0..2) at which the band and one band height above and below best fill
  // the window's height.
  function openingZoom(tj) {
    var height = document.getElementById("map").clientHeight;
    var span = 3 * (tj.band[1] - tj.band[0]);
    var extra = Math.round(Math.log(height / span) / Math.LN2);
    return tj.maxzoom + Math.max(0, Math.min(2, extra));
  }

  function createMap(tj, view) {
    var native = tj.maxzoom;
    var bandHeight = tj.band[1] - tj.band[0];
    // y grows downwards (transformation 1, 0, 1, 0) and zoom N is 1 map unit per pixel.
    var crs = L.extend({}, L.CRS.Simple, {
      transformation: new L.Transformation(1, 0, 1, 0),
      scale: function (zoom) { return Math.pow(2, zoom - native); },
      zoom: function (scale) { return Math.log(scale) / Math.LN2 + native; },
    });
    map = L.map("map", {
      crs: crs,
      minZoom: tj.minzoom,
      maxZoom: native + 2,
      zoomControl: true,
      attributionControl: true,
      // Leaflet's latitude is canvas y: pan freely along x, up to one band height past the band.
      maxBounds: [[tj.band[0] - bandHeight, -MAX_X], [tj.band[1] + bandHeight, MAX_X]],
      maxBoundsViscosity: 1.0,
    });
    map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
    var world = worldText(tj.world);
    layer = L.tileLayer(tj.tiles[0], {
      tileSize: tj.tileSize,
      minZoom: tj.minzoom,
      maxNativeZoom: native,
      maxZoom: native + 2,
      noWrap: true,
      keepBuffer: 2,
      attribution: "InfinityGAN (Lin et al., ICLR 2022) · checkpoint " + tj.checkpoint_version +
        (world ? " · " + world : ""),
    }).addTo(map);
    layer.on("tileerror", function () { fail("some tiles failed to load; retrying on pan"); });
    map.setView([view.y, view.x], view.z === null ? openingZoom(tj) : view.z);
    // While travelling, the frame loop refreshes these once a second instead of every frame.
    map.on("moveend zoomend", function () { if (!travel.on) { writeHash(); showStatus(); } });
    map.on("zoomstart", function () { travel.zooming = true; });
    map.on("zoomend", function () { travel.zooming = false; });
    map.on("dragstart", function () { setTravel(false); });
    map.on("mousemove", function (e) { pointer = e.latlng; showStatus(); });
    map.on("mouseout", function () { pointer = null; showStatus(); });
    showStatus();
  }

  function setSeed(s, view) {
    if (!SEED_RE.test(s)) { fail("seed must be a decimal integer 0 <= seed < 2^63"); return; }
    fetchTileJSON(s).then(function (tj) {
      seed = s;
      seedInput.value = s;
      grid = { url: tj.tiles[0], minzoom: tj.minzoom, native: tj.maxzoom, size: tj.tileSize };
      if (!map) {
        createMap(tj, view || { x: 0, y: (tj.band[0] + tj.band[1]) / 2, z: null });
      } else {
        layer.setUrl(tj.tiles[0]);
        if (view) { map.setView([view.y, view.x], view.z === null ? map.getZoom() : view.z); }
      }
      writeHash();
      showStatus();
    }).catch(function (err) { fail(String(err.message || err)); });
  }

  // Canvas px per second: the chosen speed, halved per zoom level below the native zoom.
  function canvasSpeed() {
    return Number(speedSelect.value) * Math.min(1, map.getZoomScale(map.getZoom(), grid.native));
  }

  function travelFrame(now) {
    var dt = Math.min(now - travel.last, 100) / 1000; // back from a hidden tab: no leap
    travel.last = now;
    if (!travel.zooming) {
      travel.carry += canvasSpeed() * map.getZoomScale(map.getZoom(), grid.native) * dt;
      var step = Math.floor(travel.carry); // panBy moves whole screen pixels
      if (step > 0) {
        travel.carry -= step;
        map.panBy([step, 0], { animate: false });
      }
      if (map.getBounds().getEast() >= MAX_X) { setTravel(false); return; } // the canvas's end
    }
    if (now - travel.updated >= TRAVEL_UPDATE_MS) {
      travel.updated = now;
      writeHash();
      showStatus();
      requestAhead();
    }
    travel.frame = requestAnimationFrame(travelFrame);
  }

  function setTravel(on) {
    if (!map || on === travel.on) { return; }
    travel.on = on;
    travelButton.setAttribute("aria-pressed", String(on));
    if (on) {
      travel.last = travel.updated = performance.now();
      travel.carry = 0;
      requestAhead();
      travel.frame = requestAnimationFrame(travelFrame);
    } else {
      cancelAnimationFrame(travel.frame);
      ahead.queue = [];
      writeHash();
    }
    showStatus();
  }

  // The tiles of the next AHEAD_S seconds of travel east of the view, nearest first, at the
  // zoom the tile layer loads; the map's own requests for them then find them rendered (tile
  // URLs are versioned and immutable, so the browser keeps them).
  function requestAhead() {
    var tileZoom = Math.max(grid.minzoom, Math.min(grid.native, Math.round(map.getZoom())));
    var span = grid.size * Math.pow(2, grid.native - tileZoom); // canvas px per tile
    var b = map.getBounds();
    var first = Math.floor(b.getEast() / span) + 1; // the column in view is the map's own
    var last = Math.floor((b.getEast() + AHEAD_S * canvasSpeed()) / span);
    var top = Math.floor(Math.min(b.getNorth(), b.getSouth()) / span);
    var bottom = Math.floor(Math.max(b.getNorth(), b.getSouth()) / span);
    ahead.queue = [];
    for (var x = first; x <= last; x++) {
      for (var y = top; y <= bottom; y++) {
        var url = L.Util.template(grid.url, { z: tileZoom, x: x, y: y });
        if (!ahead.seen[url]) { ahead.queue.push(url); }
      }
    }
    pumpAhead();
  }

  function pumpAhead() {
    while (ahead.inFlight < AHEAD_MAX && ahead.queue.length) {
      var url = ahead.queue.shift();
      if (ahead.count > 4096) { ahead.seen = {}; ahead.count = 0; }
      ahead.seen[url] = true;
      ahead.count++;
      ahead.inFlight++;
      var img = new Image();
      img.onload = img.onerror = function () { ahead.inFlight--; pumpAhead(); };
      img.src = url;
    }
  }

  function viewFromHash(h) {
    var z = num(h.z, null);
    return { x: num(h.x, 0), y: num(h.y, 0), z: z === null ? null : Math.round(z) };
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    setSeed(seedInput.value.trim(), null);
  });
  document.getElementById("random-seed").addEventListener("click", function () {
    setSeed(String(Math.floor(Math.random() * 1e15)), null);
  });
  document.getElementById("home").addEventListener("click", function () {
    if (map) { map.setView([0, 0], map.getZoom()); }
  });
  TRAVEL_SPEEDS.forEach(function (speed) {
    speedSelect.add(new Option(speed + " px/s", String(speed), false, speed === TRAVEL_DEFAULT));
  });
  travelButton.addEventListener("click", function () { setTravel(!travel.on); });
  speedSelect.addEventListener("change", function () { if (travel.on) { showStatus(); } });
  // T toggles travel from anywhere but a text field (the button itself takes Enter and Space).
  document.addEventListener("keydown", function (e) {
    if ((e.key !== "t" && e.key !== "T") || e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (/^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName)) { return; }
    setTravel(!travel.on);
  });
  window.addEventListener("hashchange", function () {
    var h = readHash();
    var view = viewFromHash(h);
    if (h.seed && h.seed !== seed) { setSeed(h.seed, view); }
    else if (map) { map.setView([view.y, view.x], view.z === null ? map.getZoom() : view.z); }
  });

  var initial = readHash();
  setSeed(initial.seed && SEED_RE.test(initial.seed) ? initial.seed : "0", viewFromHash(initial));
}());
