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
 */
(function () {
  "use strict";

  var SEED_RE = /^[0-9]{1,19}$/;
  var MAX_X = 549755813888; // 2^39 canvas px: native tiles x are valid in [-2^31, 2^31)
  var form = document.getElementById("seed-form");
  var seedInput = document.getElementById("seed");
  var statusBox = document.getElementById("status");
  var map = null;
  var layer = null;
  var seed = "0";
  var pointer = null;

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
    layer = L.tileLayer(tj.tiles[0], {
      tileSize: tj.tileSize,
      minZoom: tj.minzoom,
      maxNativeZoom: native,
      maxZoom: native + 2,
      noWrap: true,
      keepBuffer: 2,
      attribution: "InfinityGAN (Lin et al., ICLR 2022) · checkpoint " + tj.checkpoint_version,
    }).addTo(map);
    layer.on("tileerror", function () { fail("some tiles failed to load; retrying on pan"); });
    map.setView([view.y, view.x], view.z === null ? openingZoom(tj) : view.z);
    map.on("moveend zoomend", function () { writeHash(); showStatus(); });
    map.on("mousemove", function (e) { pointer = e.latlng; showStatus(); });
    map.on("mouseout", function () { pointer = null; showStatus(); });
    showStatus();
  }

  function setSeed(s, view) {
    if (!SEED_RE.test(s)) { fail("seed must be a decimal integer 0 <= seed < 2^63"); return; }
    fetchTileJSON(s).then(function (tj) {
      seed = s;
      seedInput.value = s;
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
  window.addEventListener("hashchange", function () {
    var h = readHash();
    var view = viewFromHash(h);
    if (h.seed && h.seed !== seed) { setSeed(h.seed, view); }
    else if (map) { map.setView([view.y, view.x], view.z === null ? map.getZoom() : view.z); }
  });

  var initial = readHash();
  setSeed(initial.seed && SEED_RE.test(initial.seed) ? initial.seed : "0", viewFromHash(initial));
}());
