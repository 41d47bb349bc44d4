// The public maps: cameras with their view cones, and the coverage choropleth.
// Everything is fetched from this server; no tile layer unless one is configured.
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || typeof L === "undefined") return;

  var COLOURS = { recording: "#1b7f3b", silent: "#b3261e", unknown: "#6b5b00", retired: "#5f6368" };
  var map = L.map(el, { keyboard: true, zoomSnap: 0.25, attributionControl: true });
  var tileUrl = el.dataset.tileUrl;
  if (tileUrl) {
    L.tileLayer(tileUrl, { maxZoom: 19, attribution: el.dataset.tileAttribution || "" }).addTo(map);
  }
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

  function drawDistricts(doc, style) {
    var layer = L.geoJSON(doc, {
      style: style || function () {
        return { color: "#1f4e9c", weight: 1.5, fillColor: "#1f4e9c", fillOpacity: 0.05 };
      },
      onEachFeature: function (f, lyr) {
        var p = f.properties;
        lyr.bindTooltip(text(p.name) + ": " + p.cameras + " cameras, " +
          (p.per_km2 === null ? "—" : p.per_km2) + " per km²");
      },
    }).addTo(map);
    if (layer.getBounds().isValid()) bounds.extend(layer.getBounds());
    return layer;
  }

  // -- the camera map ---------------------------------------------------------------
  function cameraMap() {
    var form = document.getElementById("filters");
    var shown = document.getElementById("shown");
    var listBody = document.querySelector("#camera-list tbody");
    var cones = L.layerGroup().addTo(map);
    var markers = L.layerGroup().addTo(map);
    var cameras = [];

    function visible(props) {
      var statuses = Array.prototype.map.call(
        form.querySelectorAll("input[name=status]:checked"), function (i) { return i.value; });
      var cap = form.querySelector("#capability").value;
      if (statuses.indexOf(props.status) < 0) return false;
      return !cap || (props.capabilities && props.capabilities[cap] === true);
    }

    function render() {
      cones.clearLayers();
      markers.clearLayers();
      var rows = [];
      var n = 0;
      cameras.forEach(function (f) {
        var p = f.properties;
        if (!visible(p)) return;
        n += 1;
        var ll = [f.geometry.coordinates[1], f.geometry.coordinates[0]];
        var colour = COLOURS[p.status] || "#333";
        if (p.cone) {
          L.polygon(p.cone.map(function (c) { return [c[1], c[0]]; }), {
            color: colour, weight: 1, fillOpacity: 0.15, interactive: false, className: "cam-cone",
          }).addTo(cones);
        }
        var m = L.circleMarker(ll, {
          radius: 5, color: "#fff", weight: 1.5, fillColor: colour, fillOpacity: 1,
          className: "cam-marker cam-" + p.status,
        });
        m.bindPopup("<div class=\"popup\"><strong>" + text(p.id) + "</strong> (" +
          text(p.status_label) + ")" + recordTable(p.record) +
          (p.retired_reason ? "<p>Retired: " + text(p.retired_reason) + "</p>" : "") +
          "<p>Log entry " + text(p.index) + "</p></div>");
        m.addTo(markers);
        // Keyboard users reach each camera with Tab and open its record with Enter or Space.
        var node = m.getElement();
        if (node) {
          node.setAttribute("tabindex", "0");
          node.setAttribute("role", "button");
          node.setAttribute("aria-label", "Camera " + p.id + ", " + p.status_label);
          node.addEventListener("keydown", function (e) {
            if (e.key === "Enter" || e.key === " ") { e.preventDefault(); m.openPopup(); }
          });
        }
        var rec = p.record;
        rows.push("<tr><th scope=\"row\">" + text(p.id) + "</th><td>" + text(p.status_label) +
          "</td><td>" + text(rec.operator || "") + "</td><td>" +
          text(rec.direction === undefined ? "" : rec.direction + "°") + "</td><td>" +
          (p.capabilities && p.capabilities.face_recognition_capable ? "yes" : "no") + "</td></tr>");
      });
      if (listBody) listBody.innerHTML = rows.join("");
      el.dataset.markers = String(n);
      if (shown) shown.textContent = "Showing " + n + " of " + cameras.length + " cameras.";
    }

    form.addEventListener("change", render);
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    Promise.all([
      getJSON("/public/districts.geojson"),
      getJSON("/public/cameras.geojson"),
      getJSON("/public/places.geojson"),
    ])
      .then(function (docs) {
        drawDistricts(docs[0]);
        docs[2].features.forEach(function (f) {
          var p = f.properties;
          L.circleMarker([f.geometry.coordinates[1], f.geometry.coordinates[0]], {
            radius: 7, color: "#5b2a86", weight: 2, fill: false, className: "place-marker",
          }).bindPopup("<div class=\"popup\"><strong>" + text(p.name) + "</strong> (" +
            text(p.category) + ")<br>" + p.cameras + " cameras within 100 m</div>").addTo(map);
        });
        cameras = docs[1].features;
        cameras.forEach(function (f) {
          bounds.extend([f.geometry.coordinates[1], f.geometry.coordinates[0]]);
        });
        render();
        fit();
        el.dataset.ready = "true";
      })
      .catch(function (err) {
        if (shown) shown.textContent = "The map data could not be loaded: " + err.message;
      });
  }

  // -- the coverage choropleth ------------------------------------------------------
  var RAMP = ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"];

  function coverageMap() {
    getJSON("/public/districts.geojson").then(function (doc) {
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
          color: "#333", weight: 1, fillColor: colour(f.properties.per_km2), fillOpacity: 0.8,
          className: "district-area",
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
