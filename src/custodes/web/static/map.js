// The public maps: cameras with their view cones, and the coverage choropleth.
// Everything is fetched from this server, except tiles when a tile source is configured
// (custodes serve --tiles URL).  The demo city, whose streets are made up, draws its own.
//
// Keyboard: the cameras are one Tab stop; the arrow keys move to the nearest camera in that
// direction (Home and End: the first and last), Enter or Space opens its record, and Escape
// closes the record and returns to the camera.  Each status has its own shape and name as
// well as its colour.  When many cameras are in view they are grouped into numbered clusters.
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || typeof L === "undefined") return;

  var COLOURS = { recording: "#1b7f3b", silent: "#b3261e", unknown: "#6b5b00", retired: "#5f6368" };
  var SHAPES = { recording: "circle", silent: "triangle", unknown: "diamond", retired: "square" };
  var TOUCH = (window.matchMedia && window.matchMedia("(pointer: coarse)").matches) ||
    navigator.maxTouchPoints > 0;
  var RADIUS = TOUCH ? 12 : 7; // a 24-px target on touch screens
  var CLUSTER_ABOVE = 400; // more cameras than this in view are grouped
  var CLUSTER_PX = 56;
  var TABLE_ROWS = 1000;

  var map = L.map(el, { keyboard: true, zoomSnap: 0.25, attributionControl: true });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  var tileUrl = el.dataset.tileUrl;
  if (tileUrl) {
    L.tileLayer(tileUrl, { maxZoom: 19, attribution: el.dataset.tileAttribution || "" }).addTo(map);
  }
  map.createPane("basemap").style.zIndex = 250;
  map.setView([0, 0], 2);
  var bounds = L.latLngBounds([]);

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error(url + " answered " + r.status);
      return r.json();
    });
  }

  function text(value) {
    var span = document.createElement("span");
    span.textContent = value === null || value === undefined ? "" : String(value);
    return span.innerHTML;
  }

  function plural(n, one) {
    return Number(n).toLocaleString("en") + " " + (n === 1 ? one : one + "s");
  }

  function recordTable(rec) {
    var rows = [];
    Object.keys(rec).sort().forEach(function (k) {
      var v = rec[k];
      if (v === null || v === undefined) return;
      if (typeof v === "object") {
        v = Object.keys(v).filter(function (c) { return v[c] === true; }).join(", ") || "none";
      }
      rows.push("<tr><th scope=\"row\">" + text(k) + "</th><td>" + text(v) + "</td></tr>");
    });
    return "<table>" + rows.join("") + "</table>";
  }

  function fit() {
    if (bounds.isValid()) map.fitBounds(bounds.pad(0.05));
  }

  // The demo city's own streets and blocks, under everything else.
  function drawBasemap() {
    var url = el.dataset.basemap;
    if (!url) return Promise.resolve(null);
    var STYLE = {
      block: { stroke: false, fillColor: "#e4e0d8", fillOpacity: 1 },
      park: { stroke: false, fillColor: "#cfe5c6", fillOpacity: 1 },
      street: { color: "#ffffff", weight: 3, opacity: 1 },
      avenue: { color: "#fbfaf7", weight: 7, opacity: 1 },
    };
    return getJSON(url).then(function (doc) {
      return L.geoJSON(doc, {
        pane: "basemap",
        interactive: false,
        style: function (f) { return STYLE[f.properties.kind] || STYLE.block; },
        attribution: "Streets: synthetic, drawn from the demo city's districts",
      }).addTo(map);
    });
  }

  function drawDistricts(doc, style) {
    var layer = L.geoJSON(doc, {
      style: style || function () {
        return { color: "#1f4e9c", weight: 1.5, fillColor: "#1f4e9c", fillOpacity: 0.04 };
      },
      onEachFeature: function (f, lyr) {
        var p = f.properties;
        lyr.bindTooltip(text(p.name) + ": " + plural(p.cameras, "camera") + ", " +
          (p.per_km2 === null ? "—" : p.per_km2) + " per km²");
      },
    }).addTo(map);
    // Leaflet makes a shape with a tooltip a Tab stop; the districts' figures are in the
    // table under the map, so the keyboard goes from the map to the cameras directly.
    layer.eachLayer(function (l) {
      var node = l.getElement && l.getElement();
      if (node) { node.setAttribute("tabindex", "-1"); node.setAttribute("aria-hidden", "true"); }
    });
    if (layer.getBounds().isValid()) bounds.extend(layer.getBounds());
    return layer;
  }

  // A circle marker drawn as the shape of its status (SVG).
  var ShapeMarker = L.CircleMarker.extend({
    _updatePath: function () {
      var r = this._radius, x = this._point.x, y = this._point.y, d;
      switch (this.options.shape) {
        case "triangle":
          d = "M" + x + "," + (y - r) + "L" + (x + r * 1.1) + "," + (y + r) +
            "L" + (x - r * 1.1) + "," + (y + r) + "z";
          break;
        case "diamond":
          d = "M" + x + "," + (y - r) + "L" + (x + r) + "," + y + "L" + x + "," + (y + r) +
            "L" + (x - r) + "," + y + "z";
          break;
        case "square":
          d = "M" + (x - r) + "," + (y - r) + "h" + 2 * r + "v" + 2 * r + "h" + -2 * r + "z";
          break;
        default:
          d = "M" + (x - r) + "," + y + "a" + r + "," + r + " 0 1,0 " + 2 * r + ",0" +
            "a" + r + "," + r + " 0 1,0 " + -2 * r + ",0";
      }
      if (this._renderer._setPath) this._renderer._setPath(this, d);
    },
  });

  // -- one Tab stop for all the cameras, arrows between them -------------------------
  var stops = []; // {el, open, id} for each camera or cluster drawn, in the map's order
  var current = null; // the id of the stop that takes Tab
  var opener = null; // the element whose popup is open

  function setStops(list) {
    stops = list;
    var keep = stops.some(function (s) { return s.id === current; });
    if (!keep) current = stops.length ? stops[0].id : null;
    stops.forEach(function (s) {
      s.el.setAttribute("tabindex", s.id === current ? "0" : "-1");
    });
  }

  function focusStop(s) {
    stops.forEach(function (o) { o.el.setAttribute("tabindex", o === s ? "0" : "-1"); });
    current = s.id;
    s.el.focus();
  }

  function nearest(from, key) {
    var a = from.el.getBoundingClientRect();
    var ax = a.left + a.width / 2, ay = a.top + a.height / 2;
    var best = null, bestScore = Infinity;
    stops.forEach(function (s) {
      if (s === from) return;
      var b = s.el.getBoundingClientRect();
      var dx = b.left + b.width / 2 - ax, dy = b.top + b.height / 2 - ay;
      var along = { ArrowRight: dx, ArrowLeft: -dx, ArrowDown: dy, ArrowUp: -dy }[key];
      var across = key === "ArrowRight" || key === "ArrowLeft" ? Math.abs(dy) : Math.abs(dx);
      if (along <= 0 || across > along * 2) return;
      var score = along + 2 * across;
      if (score < bestScore) { bestScore = score; best = s; }
    });
    return best;
  }

  function onStopKey(e, s) {
    var next = null;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      e.stopPropagation();
      s.open();
      return;
    }
    if (e.key in { ArrowRight: 1, ArrowLeft: 1, ArrowUp: 1, ArrowDown: 1 }) next = nearest(s, e.key);
    else if (e.key === "Home") next = stops[0];
    else if (e.key === "End") next = stops[stops.length - 1];
    else return;
    e.preventDefault();
    e.stopPropagation(); // not a pan of the map
    if (next) focusStop(next);
  }

  function wire(node, s) {
    node.setAttribute("role", "button");
    node.addEventListener("keydown", function (e) { onStopKey(e, s); });
    node.addEventListener("focus", function () { current = s.id; });
  }

  // Escape closes an open record and returns to the camera it belongs to.
  map.on("popupopen", function (e) {
    var wrap = e.popup.getElement();
    if (!wrap) return;
    var content = wrap.querySelector(".leaflet-popup-content");
    if (content && opener) {
      content.setAttribute("tabindex", "-1");
      content.focus({ preventScroll: true });
    }
  });
  map.on("popupclose", function () {
    var back = opener;
    opener = null;
    if (back && document.body.contains(back)) back.focus({ preventScroll: true });
  });
  el.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && map.hasLayer && document.querySelector(".leaflet-popup")) {
      e.preventDefault();
      e.stopPropagation();
      map.closePopup();
    }
  }, true);

  // -- the camera map ---------------------------------------------------------------
  function cameraMap() {
    var form = document.getElementById("filters");
    var shown = document.getElementById("shown");
    var list = document.getElementById("camera-list");
    var listBody = document.querySelector("#camera-list tbody");
    var listNote = document.getElementById("camera-list-note");
    var cones = L.layerGroup().addTo(map);
    var markers = L.layerGroup().addTo(map);
    var cameras = [];
    var vis = [];

    var capNames = [];
    var operators = [];
    var records = {}; // camera id -> its GeoJSON feature, fetched when its popup first opens

    function filter() {
      var statuses = {};
      Array.prototype.forEach.call(
        form.querySelectorAll("input[name=status]:checked"), function (i) { statuses[i.value] = 1; });
      var cap = form.querySelector("#capability").value;
      var bit = cap ? capNames.indexOf(cap) : -1;
      var mask = bit < 0 ? 0 : Math.pow(2, bit);
      return function (c) {
        if (!statuses[c.status]) return false;
        return !cap || (mask !== 0 && Math.floor(c.caps / mask) % 2 === 1);
      };
    }

    // The map's data: compact columns (built once per registry change) and one status digit
    // a camera (GET /public/map/cameras.json and /public/map/status.json).
    function unpack(doc, st) {
      var col = doc.columns, out = new Array(doc.count);
      var codes = st.codes, statuses = st.statuses, labels = doc.status_labels;
      for (var i = 0; i < doc.count; i++) {
        var code = +codes.charAt(i);
        out[i] = {
          id: col.id[i], lon: col.lon[i], lat: col.lat[i], dir: col.direction[i], fov: col.fov[i],
          caps: col.caps[i], op: col.operator[i], index: col.index[i],
          status: statuses[code] || "unknown", status_label: labels[code] || "not heard yet",
        };
      }
      capNames = doc.capabilities;
      operators = doc.operators;
      return out;
    }

    function loadCameras(again) {
      return Promise.all([getJSON("/public/map/cameras.json"), getJSON("/public/map/status.json")])
        .then(function (docs) {
          // The registry changed between the two answers: ask once more.
          if (docs[0].version !== docs[1].version && !again) return loadCameras(true);
          return unpack(docs[0], docs[1]);
        });
    }

    // What the camera sees: its apex and an arc 40 m out (as the GeoJSON download's cone).
    function cone(c) {
      if (c.dir === null || c.dir === undefined) return null;
      var fov = Math.min(Math.max(c.fov === null || c.fov === undefined ? 60 : c.fov, 1), 360);
      var R = 6371008.8, d = 40 / R, p1 = c.lat * Math.PI / 180, l1 = c.lon * Math.PI / 180;
      var steps = fov >= 360 ? 32 : 8, pts = fov >= 360 ? [] : [[c.lat, c.lon]];
      for (var i = 0; i <= steps; i++) {
        var b = (c.dir - fov / 2 + fov * i / steps) * Math.PI / 180;
        var p2 = Math.asin(Math.sin(p1) * Math.cos(d) + Math.cos(p1) * Math.sin(d) * Math.cos(b));
        var l2 = l1 + Math.atan2(Math.sin(b) * Math.sin(d) * Math.cos(p1),
          Math.cos(d) - Math.sin(p1) * Math.sin(p2));
        pts.push([p2 * 180 / Math.PI, l2 * 180 / Math.PI]);
      }
      return pts;
    }

    function popupHtml(p) {
      return "<div class=\"popup\"><strong>" + text(p.id) + "</strong> (" +
        text(p.status_label) + ")" + recordTable(p.record) +
        (p.retired_reason ? "<p>Retired: " + text(p.retired_reason) + "</p>" : "") +
        "<p><a href=\"/cameras/" + encodeURIComponent(p.id) + "\">Its page: history, recording, outages</a>" +
        " · <a href=\"/log/entries/" + encodeURIComponent(p.index) + "\">log entry " + text(p.index) +
        "</a></p></div>";
    }

    // A camera's record is fetched when its popup first opens; the popup opens once it is here.
    function openRecord(m, p) {
      var shown = function (feature) {
        if (!m.getPopup()) m.bindPopup(popupHtml(feature.properties));
        m.openPopup();
      };
      if (records[p.id]) { shown(records[p.id]); return; }
      getJSON("/public/cameras/" + encodeURIComponent(p.id) + ".json").then(function (feature) {
        records[p.id] = feature;
        shown(feature);
      }).catch(function (err) {
        m.bindPopup("<div class=\"popup\">The record of " + text(p.id) + " could not be loaded: " +
          text(err.message) + "</div>").openPopup();
      });
    }

    function cameraMarker(p, withCone) {
      var ll = [p.lat, p.lon];
      var colour = COLOURS[p.status] || "#333";
      var ring = withCone ? cone(p) : null;
      if (ring) {
        L.polygon(ring, {
          color: colour, weight: 1, fillOpacity: 0.15, interactive: false, className: "cam-cone",
        }).addTo(cones);
      }
      var m = new ShapeMarker(ll, {
        radius: RADIUS, shape: SHAPES[p.status] || "circle", color: "#ffffff", weight: 2,
        fillColor: colour, fillOpacity: 1, className: "cam-marker cam-" + p.status,
      });
      m.bindTooltip(text(p.id) + " · " + text(p.status_label), { direction: "top" });
      m.addTo(markers);
      var node = m.getElement();
      if (node) {
        node.setAttribute("aria-label", "Camera " + p.id + ", " + p.status_label);
        var s = { el: node, id: p.id, ll: ll };
        s.open = function () { opener = node; openRecord(m, p); };
        wire(node, s);
        node.addEventListener("focus", function () { m.openTooltip(); });
        node.addEventListener("blur", function () { m.closeTooltip(); });
        m.on("click", function () { opener = node; openRecord(m, p); });
        return s;
      }
      return null;
    }

    function clusterMarker(group, key) {
      var counts = {};
      var sumLat = 0, sumLon = 0;
      group.forEach(function (c) {
        counts[c.status_label] = (counts[c.status_label] || 0) + 1;
        sumLat += c.lat;
        sumLon += c.lon;
      });
      var ll = [sumLat / group.length, sumLon / group.length];
      var words = Object.keys(counts).sort().map(function (k) { return counts[k] + " " + k; });
      var n = group.length;
      var size = n < 100 ? 34 : n < 1000 ? 40 : 46;
      var m = L.marker(ll, {
        icon: L.divIcon({
          className: "cam-cluster", iconSize: [size, size],
          html: "<span aria-hidden=\"true\">" + (n >= 10000 ? Math.round(n / 1000) + "k" : n) + "</span>",
        }),
        keyboard: false,
        title: "",
      }).addTo(markers);
      var node = m.getElement();
      var label = n + " cameras here (" + words.join(", ") + "); Enter zooms in";
      node.setAttribute("aria-label", label);
      node.setAttribute("title", label);
      var s = { el: node, id: "cluster:" + key, ll: ll };
      s.open = function () {
        var b = L.latLngBounds(group.map(function (c) { return [c.lat, c.lon]; }));
        map.fitBounds(b.pad(0.1), { maxZoom: Math.max(map.getZoom() + 2, 15) });
        setTimeout(function () { if (stops.length) focusStop(stops[0]); }, 400);
      };
      m.on("click", s.open);
      wire(node, s);
      return s;
    }

    function layout() {
      var hadFocus = el.contains(document.activeElement) &&
        document.activeElement.classList.contains("cam-marker");
      cones.clearLayers();
      markers.clearLayers();
      var made = [];
      if (vis.length <= CLUSTER_ABOVE) {
        vis.forEach(function (f) { var s = cameraMarker(f, true); if (s) made.push(s); });
      } else {
        var view = map.getBounds().pad(0.2);
        var zoom = map.getZoom();
        var cells = {};
        var order = [];
        vis.forEach(function (c) {
          if (!view.contains([c.lat, c.lon])) return;
          var pt = map.project([c.lat, c.lon], zoom);
          var key = Math.floor(pt.x / CLUSTER_PX) + ":" + Math.floor(pt.y / CLUSTER_PX);
          if (!cells[key]) { cells[key] = []; order.push(key); }
          cells[key].push(c);
        });
        var drawn = 0;
        order.forEach(function (key) { drawn += cells[key].length === 1 ? 1 : 0; });
        order.forEach(function (key) {
          var g = cells[key];
          var s = g.length === 1 ? cameraMarker(g[0], drawn <= CLUSTER_ABOVE) : clusterMarker(g, key);
          if (s) made.push(s);
        });
      }
      // The map's reading order: north to south, then west to east.
      made.sort(function (a, b) { return b.ll[0] - a.ll[0] || a.ll[1] - b.ll[1]; });
      setStops(made);
      el.dataset.markers = String(made.length);
      if (hadFocus && stops.length) focusStop(stops.filter(function (s) { return s.id === current; })[0] || stops[0]);
    }

    function fillTable() {
      if (!listBody || !list.open) return;
      var rows = [];
      var face = capNames.indexOf("face_recognition_capable");
      var faceMask = face < 0 ? 0 : Math.pow(2, face);
      vis.slice(0, TABLE_ROWS).forEach(function (c) {
        rows.push("<tr><th scope=\"row\"><a href=\"/cameras/" + encodeURIComponent(c.id) + "\">" +
          text(c.id) + "</a></th><td>" + text(c.status_label) +
          "</td><td>" + text(c.op >= 0 ? operators[c.op] : "") + "</td><td>" +
          text(c.dir === null || c.dir === undefined ? "" : c.dir + "°") + "</td><td>" +
          (faceMask && Math.floor(c.caps / faceMask) % 2 === 1 ? "yes" : "no") + "</td></tr>");
      });
      listBody.innerHTML = rows.join("");
      if (listNote) {
        listNote.textContent = vis.length > TABLE_ROWS
          ? "The first " + TABLE_ROWS.toLocaleString("en") + " of " + vis.length.toLocaleString("en") +
            " cameras; all of them are in the GeoJSON download."
          : "";
      }
    }

    function render() {
      var visible = filter(); // the form is read once, not once a camera
      vis = cameras.filter(visible);
      layout();
      fillTable();
      if (shown) {
        shown.textContent = "Showing " + vis.length.toLocaleString("en") + " of " +
          cameras.length.toLocaleString("en") + " cameras.";
      }
    }

    // The filters are kept in the address bar (?status=recording,silent&capability=ptz), so a
    // filtered map is a link; ?camera=ID opens that camera's record.
    function readUrl() {
      var q = new URLSearchParams(window.location.search);
      var st = q.get("status");
      if (st !== null) {
        var want = {};
        st.split(",").forEach(function (v) { want[v] = 1; });
        Array.prototype.forEach.call(form.querySelectorAll("input[name=status]"), function (i) {
          i.checked = !!want[i.value];
        });
      }
      var cap = q.get("capability");
      var sel = form.querySelector("#capability");
      if (cap !== null && sel.querySelector("option[value='" + cap.replace(/[^a-z_]/g, "") + "']")) sel.value = cap;
      return q.get("camera");
    }
    function writeUrl() {
      var q = new URLSearchParams(window.location.search);
      var boxes = form.querySelectorAll("input[name=status]");
      var on = Array.prototype.filter.call(boxes, function (i) { return i.checked; })
        .map(function (i) { return i.value; });
      if (on.length === boxes.length) q.delete("status"); else q.set("status", on.join(","));
      var cap = form.querySelector("#capability").value;
      if (cap) q.set("capability", cap); else q.delete("capability");
      var s = q.toString();
      window.history.replaceState(null, "", window.location.pathname + (s ? "?" + s : ""));
    }
    function showCamera(id) {
      var c = cameras.filter(function (x) { return x.id === id; })[0];
      if (!c) { if (shown) shown.textContent = "No camera " + id + " on this map."; return; }
      map.setView([c.lat, c.lon], Math.max(map.getZoom(), 17));
      getJSON("/public/cameras/" + encodeURIComponent(id) + ".json").then(function (feature) {
        L.popup().setLatLng([c.lat, c.lon]).setContent(popupHtml(feature.properties)).openOn(map);
      });
    }
    var wanted = readUrl();
    form.addEventListener("change", function () { writeUrl(); render(); });
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    if (list) list.addEventListener("toggle", fillTable);
    map.on("moveend", function () { if (vis.length > CLUSTER_ABOVE) layout(); });
    Promise.all([
      getJSON("/public/districts.geojson"),
      loadCameras(false),
      getJSON("/public/places.geojson"),
      drawBasemap(),
    ])
      .then(function (docs) {
        drawDistricts(docs[0]);
        docs[2].features.forEach(function (f) {
          var p = f.properties;
          L.circleMarker([f.geometry.coordinates[1], f.geometry.coordinates[0]], {
            radius: 9, color: "#5b2a86", weight: 2.5, fill: false, className: "place-marker",
          }).bindPopup("<div class=\"popup\"><strong>" + text(p.name) + "</strong> (" +
            text(p.category) + ")<br>" + plural(p.cameras, "camera") + " within 100 m</div>").addTo(map);
        });
        cameras = docs[1];
        if (cameras.length) {
          var s = 90, w = 180, n = -90, e = -180;
          cameras.forEach(function (c) {
            if (c.lat < s) s = c.lat; if (c.lat > n) n = c.lat;
            if (c.lon < w) w = c.lon; if (c.lon > e) e = c.lon;
          });
          bounds.extend([[s, w], [n, e]]);
        }
        fit();
        render();
        if (wanted) showCamera(wanted);
        el.dataset.ready = "true";
      })
      .catch(function (err) {
        if (shown) shown.textContent = "The map data could not be loaded: " + err.message;
      });
  }

  // -- the coverage choropleth ------------------------------------------------------
  var RAMP = ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"];

  function coverageMap() {
    Promise.all([getJSON("/public/districts.geojson"), drawBasemap()]).then(function (docs) {
      var doc = docs[0];
      var values = doc.features
        .map(function (f) { return f.properties.per_km2; })
        .filter(function (v) { return v !== null; });
      var lo = values.length ? Math.min.apply(null, values) : 0;
      var hi = values.length ? Math.max.apply(null, values) : 0;
      var classes = hi > lo ? RAMP.length : 1;
      var width = (hi - lo) / classes;
      function classOf(v) {
        return classes === 1 ? RAMP.length - 1 : Math.min(classes - 1, Math.floor((v - lo) / width));
      }
      function colour(v) {
        return v === null ? "#ffffff" : RAMP[classOf(v)];
      }
      drawDistricts(doc, function (f) {
        return {
          color: "#333", weight: 1, fillColor: colour(f.properties.per_km2),
          fillOpacity: el.dataset.basemap ? 0.7 : 0.8, className: "district-area",
        };
      });
      fit();
      var legend = document.getElementById("legend");
      if (legend) {
        var parts = ["<span>Cameras per km² (equal intervals):</span>"];
        for (var j = 0; j < classes; j++) {
          var a = lo + j * width;
          var b = j === classes - 1 ? hi : lo + (j + 1) * width;
          var c = classes === 1 ? RAMP[RAMP.length - 1] : RAMP[j];
          parts.push("<span><span class=\"box\" style=\"background:" + c + "\"></span>" +
            a.toFixed(2) + (classes === 1 ? "" : "–" + b.toFixed(2)) + "</span>");
        }
        legend.innerHTML = parts.join(" ");
      }
      el.dataset.ready = "true";
    });
  }

  if (el.dataset.mode === "coverage") coverageMap(); else cameraMap();
})();
