// Maps on the staff pages (Leaflet, from this server).  Every map has a text
// equivalent on the same page: the list it draws, or the camera-id field it fills.
//   data-staff-map="points": one circle per element matching data-points, from
//     its data-lat, data-lon and data-label; bigger for a higher data-count.
//   data-staff-map="pick": the registry's cameras (/public/cameras.geojson); a click
//     adds the camera to the #cameras field, a second click takes it out.
(function () {
  "use strict";
  if (typeof L === "undefined") return;

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
    return map;
  }

  function fit(map, pts) {
    if (pts.length === 1) map.setView(pts[0], 15);
    else if (pts.length) map.fitBounds(pts, { padding: [24, 24] });
    else map.setView([0, 0], 1);
  }

  function points(el) {
    var map = base(el);
    var pts = [];
    Array.prototype.forEach.call(document.querySelectorAll(el.getAttribute("data-points")), function (item) {
      var lat = parseFloat(item.getAttribute("data-lat"));
      var lon = parseFloat(item.getAttribute("data-lon"));
      if (isNaN(lat) || isNaN(lon)) return;
      var n = parseInt(item.getAttribute("data-count") || "1", 10);
      L.circleMarker([lat, lon], { radius: 8 + Math.min(16, 3 * n), color: "#7a1f00", weight: 2 })
        .addTo(map)
        .bindTooltip(item.getAttribute("data-label") || "");
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
    function chosen() {
      return field.value.split(/[\s,]+/).filter(function (c) { return c; });
    }
    fetch("/public/cameras.geojson").then(function (r) { return r.json(); }).then(function (doc) {
      var pts = [];
      var markers = {};
      function paint(id) {
        var on = chosen().indexOf(id) >= 0;
        markers[id].setStyle({ fillOpacity: on ? 0.9 : 0.2, weight: on ? 4 : 2 });
      }
      (doc.features || []).forEach(function (f) {
        if (!f.geometry || f.geometry.type !== "Point") return;
        var id = String(f.id || (f.properties && f.properties.id) || "");
        var c = f.geometry.coordinates;
        if (!id || (f.properties && f.properties.status === "retired")) return;
        var m = L.circleMarker([c[1], c[0]], { radius: 9, color: "#0b4f8a", fillOpacity: 0.2 })
          .addTo(map).bindTooltip(id);
        markers[id] = m;
        m.on("click", function () {
          var list = chosen();
          var at = list.indexOf(id);
          if (at >= 0) list.splice(at, 1); else list.push(id);
          field.value = list.join(", ");
          var radio = document.getElementById("scope-cameras");
          if (radio) radio.checked = true;
          paint(id);
          if (said) said.textContent = (at >= 0 ? "Took out " : "Added ") + id + ". Cameras: " +
            (list.length ? list.join(", ") : "none");
        });
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
