// Maps on the staff pages (Leaflet, from this server).  Every map has a text
// equivalent on the same page: the list it draws, or the camera-id field it fills.
//   data-staff-map="points": one circle per element matching data-points, from
//     its data-lat, data-lon and data-label; bigger for a higher data-count.
//   data-staff-map="pick": the registry's cameras (/public/cameras.geojson); a click
//     adds the camera to the #cameras field, a second click takes it out.
//
// Keyboard, as on the public map: a "Skip the map" link comes first; the markers are one
// Tab stop, the arrow keys move to the nearest marker in that direction (Home and End: the
// first and last); Enter or Space picks a camera (or opens a place's note), Escape closes
// the note and returns to its marker.  A picked camera differs by shape (a square, not a
// ring) and by its name ("picked"), not by colour alone.
(function () {
  "use strict";
  if (typeof L === "undefined") return;

  var TOUCH = (window.matchMedia && window.matchMedia("(pointer: coarse)").matches) ||
    navigator.maxTouchPoints > 0;
  var RADIUS = TOUCH ? 12 : 9; // a 24-px target on touch screens

  // A circle marker drawn as a circle or a square (SVG).
  var ShapeMarker = L.CircleMarker.extend({
    _updatePath: function () {
      var r = this._radius, x = this._point.x, y = this._point.y, d;
      if (this.options.shape === "square") {
        d = "M" + (x - r) + "," + (y - r) + "h" + 2 * r + "v" + 2 * r + "h" + -2 * r + "z";
      } else {
        d = "M" + (x - r) + "," + y + "a" + r + "," + r + " 0 1,0 " + 2 * r + ",0" +
          "a" + r + "," + r + " 0 1,0 " + -2 * r + ",0";
      }
      if (this._renderer._setPath) this._renderer._setPath(this, d);
    },
  });

  function base(el) {
    var map = L.map(el, { keyboard: true, attributionControl: true }).setView([0, 0], 1);
    var tiles = el.getAttribute("data-tile-url");
    if (tiles) {
      L.tileLayer(tiles, { maxZoom: 19, attribution: el.getAttribute("data-tile-attribution") || "" })
        .addTo(map);
    }
    var plan = el.getAttribute("data-basemap");
    if (plan) { // the demo city's own streets and blocks, under the markers
      var STYLE = {
        block: { stroke: false, fillColor: "#e4e0d8", fillOpacity: 1 },
        park: { stroke: false, fillColor: "#cfe5c6", fillOpacity: 1 },
        street: { color: "#ffffff", weight: 3, opacity: 1 },
        avenue: { color: "#fbfaf7", weight: 7, opacity: 1 },
      };
      map.createPane("basemap").style.zIndex = 250;
      fetch(plan).then(function (r) { return r.json(); }).then(function (doc) {
        L.geoJSON(doc, {
          pane: "basemap", interactive: false,
          style: function (f) { return STYLE[f.properties.kind] || STYLE.block; },
          attribution: "Streets: synthetic, drawn from the demo city's districts",
        }).addTo(map);
      });
    }
    skip(el);
    return map;
  }

  // "Skip the map": a link before the map to what follows it.
  var skips = 0;
  function skip(el) {
    var after = el.nextElementSibling;
    if (!after) return;
    if (!after.id) after.id = "after-map-" + (++skips);
    if (!after.hasAttribute("tabindex")) after.setAttribute("tabindex", "-1");
    var p = document.createElement("p");
    p.className = "skip-map-line";
    var a = document.createElement("a");
    a.className = "skip-map";
    a.href = "#" + after.id;
    a.textContent = "Skip the map";
    a.addEventListener("click", function (e) {
      e.preventDefault();
      after.focus();
    });
    p.appendChild(a);
    el.parentNode.insertBefore(p, el);
  }

  function fit(map, pts) {
    if (pts.length === 1) map.setView(pts[0], 15);
    else if (pts.length) map.fitBounds(pts, { padding: [24, 24] });
    else map.setView([0, 0], 1);
  }

  // One Tab stop for all the markers of a map, arrows between them.
  function Stops(map, el) {
    var self = this;
    this.list = []; // {el, id, open} in the map's order
    this.current = null;
    this.opener = null; // the marker whose note is open
    map.on("popupopen", function (e) {
      var content = e.popup.getElement() && e.popup.getElement().querySelector(".leaflet-popup-content");
      if (content && self.opener) {
        content.setAttribute("tabindex", "-1");
        content.focus({ preventScroll: true });
      }
    });
    map.on("popupclose", function () {
      var back = self.opener;
      self.opener = null;
      if (back && document.body.contains(back)) back.focus({ preventScroll: true });
    });
    el.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && el.querySelector(".leaflet-popup")) {
        e.preventDefault();
        e.stopPropagation();
        map.closePopup();
      }
    }, true);
  }

  Stops.prototype.add = function (node, id, open) {
    var self = this;
    var s = { el: node, id: id, open: open };
    this.list.push(s);
    if (this.current === null) this.current = id;
    node.setAttribute("tabindex", id === this.current ? "0" : "-1");
    node.setAttribute("role", "button");
    node.addEventListener("focus", function () { self.current = id; });
    node.addEventListener("keydown", function (e) { self.key(e, s); });
    return s;
  };

  Stops.prototype.focus = function (s) {
    this.list.forEach(function (o) { o.el.setAttribute("tabindex", o === s ? "0" : "-1"); });
    this.current = s.id;
    s.el.focus();
  };

  Stops.prototype.nearest = function (from, key) {
    var a = from.el.getBoundingClientRect();
    var ax = a.left + a.width / 2, ay = a.top + a.height / 2;
    var best = null, bestScore = Infinity;
    this.list.forEach(function (s) {
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
  };

  Stops.prototype.key = function (e, s) {
    var next = null;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      e.stopPropagation();
      s.open();
      return;
    }
    if (e.key in { ArrowRight: 1, ArrowLeft: 1, ArrowUp: 1, ArrowDown: 1 }) next = this.nearest(s, e.key);
    else if (e.key === "Home") next = this.list[0];
    else if (e.key === "End") next = this.list[this.list.length - 1];
    else return;
    e.preventDefault();
    e.stopPropagation(); // not a pan of the map
    if (next) this.focus(next);
  };

  function words(text) { // a tooltip or note as text, never as HTML
    var span = document.createElement("span");
    span.textContent = text;
    return span;
  }

  function tooltipOnFocus(m, node) {
    node.addEventListener("focus", function () { m.openTooltip(); });
    node.addEventListener("blur", function () { m.closeTooltip(); });
  }

  function points(el) {
    var map = base(el);
    var stops = new Stops(map, el);
    var pts = [];
    Array.prototype.forEach.call(document.querySelectorAll(el.getAttribute("data-points")), function (item, i) {
      var lat = parseFloat(item.getAttribute("data-lat"));
      var lon = parseFloat(item.getAttribute("data-lon"));
      if (isNaN(lat) || isNaN(lon)) return;
      var n = parseInt(item.getAttribute("data-count") || "1", 10);
      var label = item.getAttribute("data-label") || "";
      var m = L.circleMarker([lat, lon], {
        radius: 8 + Math.min(16, 3 * n), color: "#7a1f00", weight: 2, className: "staff-marker",
      }).addTo(map).bindTooltip(words(label)).bindPopup(function () { return words(label); });
      var node = m.getElement();
      if (node) {
        node.setAttribute("aria-label", "Place " + label);
        stops.add(node, "p" + i, function () { stops.opener = node; m.openPopup(); });
        tooltipOnFocus(m, node);
        m.on("click", function () { stops.opener = node; });
      }
      pts.push([lat, lon]);
    });
    fit(map, pts);
    el.setAttribute("data-ready", "true");
  }

  function pick(el) {
    var field = document.getElementById("cameras");
    var said = document.getElementById("picked");
    if (!field) return;
    var map = base(el);
    var stops = new Stops(map, el);
    function chosen() {
      return field.value.split(/[\s,]+/).filter(function (c) { return c; });
    }
    fetch("/public/cameras.geojson").then(function (r) { return r.json(); }).then(function (doc) {
      var pts = [];
      var markers = {};
      function paint(id) {
        var on = chosen().indexOf(id) >= 0;
        var m = markers[id];
        m.options.shape = on ? "square" : "circle";
        m.setStyle({ fillOpacity: on ? 0.9 : 0.15, weight: on ? 4 : 2, fillColor: on ? "#0b4f8a" : "#ffffff" });
        m.redraw();
        m.setTooltipContent(words(id + (on ? " · picked" : " · not picked")));
        var node = m.getElement();
        if (node) {
          node.setAttribute("aria-pressed", on ? "true" : "false");
          node.setAttribute("aria-label", "Camera " + id + (on ? ", picked" : ", not picked"));
          node.classList.toggle("picked", on);
        }
      }
      function toggle(id) {
        var list = chosen();
        var at = list.indexOf(id);
        if (at >= 0) list.splice(at, 1); else list.push(id);
        field.value = list.join(", ");
        var radio = document.getElementById("scope-cameras");
        if (radio) radio.checked = true;
        paint(id);
        if (said) said.textContent = (at >= 0 ? "Took out " : "Added ") + id + ". Cameras: " +
          (list.length ? list.join(", ") : "none");
      }
      (doc.features || []).forEach(function (f) {
        if (!f.geometry || f.geometry.type !== "Point") return;
        var id = String(f.id || (f.properties && f.properties.id) || "");
        var c = f.geometry.coordinates;
        if (!id || (f.properties && f.properties.status === "retired")) return;
        var m = new ShapeMarker([c[1], c[0]], {
          radius: RADIUS, color: "#0b4f8a", fillOpacity: 0.15, className: "staff-marker",
        }).addTo(map).bindTooltip(words(id));
        markers[id] = m;
        var node = m.getElement();
        if (node) {
          stops.add(node, id, function () { toggle(id); });
          tooltipOnFocus(m, node);
        }
        m.on("click", function () { toggle(id); });
        pts.push([c[1], c[0]]);
        paint(id);
      });
      fit(map, pts);
      field.addEventListener("input", function () { Object.keys(markers).forEach(paint); });
      el.setAttribute("data-ready", "true");
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-staff-map]"), function (el) {
    if (el.getAttribute("data-staff-map") === "pick") pick(el); else points(el);
  });
})();
