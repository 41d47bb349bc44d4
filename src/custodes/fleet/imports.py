"""Reading camera lists from GeoJSON and from OpenStreetMap (Overpass JSON).

Every import returns an :class:`ImportResult`: the cameras it understood, the
elements it skipped with the reason, and warnings about values it could not
use (a camera is still imported without them).

OpenStreetMap cameras are ``man_made=surveillance`` objects.  Tags used::

    surveillance:type   "camera", or "ALPR" (a camera with the capability
                        plate_reading_capable); others (guard, outpost...)
                        are skipped; absent is taken as a camera
    surveillance        public / outdoor / indoor
    surveillance:zone   town / traffic / parking / ...
    camera:type         fixed / dome / panning
    camera:mount        wall / pole / ceiling / ...
    camera:direction    degrees or cardinal letters ("NE"); the older
    direction           key is read when camera:direction is absent
    operator, ref, name

A camera's id is its ``ref`` tag (OSM) or ``id`` (GeoJSON) when that is a
valid id, else a stable one derived from the source (``osm-node-123``).

GeoJSON cameras are Point features; :data:`GEOJSON_PROPERTIES` lists every
property read (the feature's ``id`` is used when ``properties.id`` is absent).
A feature whose properties hold ``man_made`` is read as OSM tags instead (an
overpass-turbo export), its ``@id`` naming the element.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from custodes.errors import FormatError
from custodes.fleet.model import (
    CAMERA_TYPES,
    Camera,
    Capabilities,
    parse_direction,
    valid_camera_id,
)

__all__ = [
    "ALPR_TYPES",
    "GEOJSON_PROPERTIES",
    "IMPORT_HELP",
    "OVERPASS_QUERY",
    "ImportResult",
    "Skipped",
    "parse_cameras",
    "parse_geojson",
    "parse_overpass",
    "to_geojson",
]

MAX_IMPORT_BYTES = 512 << 20
ALPR_TYPES = ("alpr", "anpr")
"""surveillance:type values of cameras that read number plates (case aside)."""

GEOJSON_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("id", "the camera id (1-128 of letters, digits, . _ : -); else the feature's id,"
     " else one derived from the position and name"),
    ("name", "a name or address, shown on the map"),
    ("direction", "degrees clockwise from north (a number)"),
    ("field_of_view", "degrees (a number)"),
    ("type", "fixed, dome or panning"),
    ("mount", "wall, pole, ceiling, ..."),
    ("capabilities", "an object of true/false: recording, audio, ptz,"
     " face_recognition_capable, plate_reading_capable"),
    ("operator", "who runs the camera"),
    ("legal_basis", "the law or order it is installed under"),
    ("district", "the district id it belongs to"),
    ("zone", "the camera group (a scope may name it as group:ZONE)"),
    ("surveillance", "public, outdoor or indoor"),
    ("source", "where the record came from"),
)  # fmt: skip
"""Every GeoJSON property the importer reads, with what it means."""

OVERPASS_QUERY = (
    '[out:json][timeout:120]; area["name:en"="Moscow"]["admin_level"="4"]->.city;'
    ' nwr(area.city)["man_made"="surveillance"]; out center;'
)
"""An Overpass API query for a city's cameras (Moscow here; change the area's name)."""

IMPORT_HELP = (
    """Register cameras from GeoJSON or OpenStreetMap Overpass JSON.

    New cameras are registered, known ones whose data changed are logged with
    the fields that changed, and identical ones are left alone.  The report
    lists every element skipped and why (not a camera, no position, ...).  If
    every element is skipped, nothing is written and the exit status is 1.

    OpenStreetMap: man_made=surveillance nodes and ways (ways need 'out
    center').  surveillance:type=camera (or absent) is a camera;
    surveillance:type=ALPR (or ANPR) is a camera with the capability
    plate_reading_capable; other types (guard, ...) are skipped.  Tags read:
    ref (the id), name, operator, surveillance, surveillance:zone (the zone),
    camera:type, camera:mount, camera:direction (or direction).  A city's
    cameras from Overpass (https://overpass-api.de/api/interpreter, the query
    as the form field data):

    \b
      """
    + OVERPASS_QUERY
    + """

    GeoJSON: Point features ([lon, lat]); every property read:

    \b
"""
    + "\n".join(f"      {k}: {v}" for k, v in GEOJSON_PROPERTIES)
    + """

    Properties holding man_made are read as OSM tags (an overpass-turbo export).
    """
)
"""``custodes cameras import --help``: every OSM tag and GeoJSON property read."""


@dataclass(frozen=True)
class Skipped:
    element: str
    reason: str


@dataclass
class ImportResult:
    cameras: list[Camera] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)

    def add(self, cam: Camera, element: str, seen: dict[str, str]) -> None:
        if cam.id in seen:
            self.skipped.append(Skipped(element, f"its id {cam.id} repeats {seen[cam.id]}"))
            return
        seen[cam.id] = element
        self.cameras.append(cam)


def parse_cameras(data: bytes) -> ImportResult:
    """Camera list from GeoJSON or Overpass JSON, told apart by their shape."""
    if len(data) > MAX_IMPORT_BYTES:
        raise FormatError("the import file is larger than 512 MiB; split it")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise FormatError(f"the import file is not JSON ({err})") from None
    if isinstance(doc, dict) and isinstance(doc.get("elements"), list):
        return parse_overpass(doc)
    if isinstance(doc, dict) and doc.get("type") in ("FeatureCollection", "Feature"):
        return parse_geojson(doc)
    raise FormatError(
        "the import file is neither GeoJSON (a FeatureCollection) nor Overpass JSON (elements)"
    )


# -- OpenStreetMap ---------------------------------------------------------------


def _osm_camera(
    tags: dict[str, str], lat: float, lon: float, element: str, result: ImportResult
) -> Camera | None:
    if tags.get("man_made") != "surveillance":
        result.skipped.append(Skipped(element, "not man_made=surveillance"))
        return None
    stype = tags.get("surveillance:type")
    alpr = stype is not None and stype.strip().lower() in ALPR_TYPES
    if stype is not None and stype != "camera" and not alpr:
        result.skipped.append(Skipped(element, f"surveillance:type={stype} is not a camera"))
        return None
    if stype is None:
        result.warnings.append(
            Skipped(element, "no surveillance:type; taken to be a camera, as OSM's default")
        )
    ref = tags.get("ref", "").strip()
    derived = "osm-" + element.replace("/", "-")
    if ref and not valid_camera_id(ref):
        result.warnings.append(Skipped(element, f"ref {ref!r} is not a usable id; id {derived}"))
        ref = ""
    raw_dir = tags.get("camera:direction", tags.get("direction"))
    direction = None
    if raw_dir is not None:
        direction = parse_direction(raw_dir)
        if direction is None:
            result.warnings.append(Skipped(element, f"direction {raw_dir!r} is not a bearing"))
    ctype = tags.get("camera:type")
    if ctype is not None and ctype not in CAMERA_TYPES:
        result.warnings.append(Skipped(element, f"camera:type={ctype} is not one we know"))
        ctype = None
    try:
        return Camera(
            id=ref or derived,
            lat=lat,
            lon=lon,
            direction=direction,
            mount=tags.get("camera:mount"),
            type=ctype,
            capabilities=Capabilities(plate_reading_capable=alpr),
            operator=tags.get("operator"),
            name=tags.get("name"),
            zone=tags.get("surveillance:zone"),
            surveillance=tags.get("surveillance"),
            source=f"osm:{element}",
        )
    except FormatError as err:
        result.skipped.append(Skipped(element, str(err)))
        return None


def _number(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def parse_overpass(doc: dict[str, Any]) -> ImportResult:
    """Cameras from an Overpass API JSON answer (``[out:json]``; ways need ``out center``)."""
    result = ImportResult()
    seen: dict[str, str] = {}
    for el in doc["elements"]:
        if not isinstance(el, dict):
            result.skipped.append(Skipped("?", "an element that is not an object"))
            continue
        kind, osm_id = el.get("type"), el.get("id")
        element = f"{kind}/{osm_id}"
        tags = el.get("tags")
        if not isinstance(tags, dict) or not tags:
            result.skipped.append(Skipped(element, "no tags (a geometry node, not a camera)"))
            continue
        tags = {str(k): str(v) for k, v in tags.items()}
        if kind == "node":
            lat, lon = _number(el.get("lat")), _number(el.get("lon"))
        elif kind == "way":
            lat, lon = _way_position(el)
        else:
            if tags.get("man_made") == "surveillance":
                result.skipped.append(Skipped(element, f"a {kind} has no single position"))
            else:
                result.skipped.append(Skipped(element, "not man_made=surveillance"))
            continue
        if lat is None or lon is None:
            if tags.get("man_made") != "surveillance":
                result.skipped.append(Skipped(element, "not man_made=surveillance"))
            else:
                result.skipped.append(
                    Skipped(element, "no position (ask Overpass for 'out center' for ways)")
                )
            continue
        cam = _osm_camera(tags, lat, lon, element, result)
        if cam is not None:
            result.add(cam, element, seen)
    return result


def _way_position(el: dict[str, Any]) -> tuple[float | None, float | None]:
    center = el.get("center")
    if isinstance(center, dict):
        return _number(center.get("lat")), _number(center.get("lon"))
    geometry = el.get("geometry")
    if isinstance(geometry, list) and geometry:
        pts = [
            (_number(p.get("lat")), _number(p.get("lon"))) for p in geometry if isinstance(p, dict)
        ]
        good = [(a, b) for a, b in pts if a is not None and b is not None]
        if good:
            return sum(a for a, _ in good) / len(good), sum(b for _, b in good) / len(good)
    return None, None


# -- GeoJSON -----------------------------------------------------------------------


def parse_geojson(doc: dict[str, Any]) -> ImportResult:
    """Cameras from Point features; properties as :meth:`to_geojson` writes them, or OSM tags."""
    result = ImportResult()
    seen: dict[str, str] = {}
    features = [doc] if doc.get("type") == "Feature" else doc.get("features")
    if not isinstance(features, list):
        raise FormatError("the GeoJSON FeatureCollection has no features list")
    for n, feat in enumerate(features):
        element = f"feature {n}"
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            result.skipped.append(Skipped(element, "not a GeoJSON Feature"))
            continue
        geom = feat.get("geometry")
        if not isinstance(geom, dict) or geom.get("type") != "Point":
            gtype = geom.get("type") if isinstance(geom, dict) else None
            result.skipped.append(
                Skipped(element, f"its geometry is {gtype or 'missing'}, not a Point")
            )
            continue
        coords = geom.get("coordinates")
        if not (isinstance(coords, list) and len(coords) >= 2):
            result.skipped.append(Skipped(element, "its Point has no coordinates"))
            continue
        lon, lat = _number(coords[0]), _number(coords[1])
        if lat is None or lon is None:
            result.skipped.append(Skipped(element, "its coordinates are not numbers"))
            continue
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            result.skipped.append(Skipped(element, "its properties are not an object"))
            continue
        if "man_made" in props:  # an overpass-turbo export: properties are OSM tags
            osm = str(props.get("@id", "")) or element.replace(" ", "-")
            cam = _osm_camera({str(k): str(v) for k, v in props.items()}, lat, lon, osm, result)
            if cam is not None:
                result.add(cam, element, seen)
            continue
        rec = dict(props)
        given = rec.get("id", feat.get("id"))
        if given is not None and not isinstance(given, str):
            given = str(given)
        rec["id"] = given or _derived_id(lat, lon, rec)
        rec["lat"], rec["lon"] = lat, lon
        try:
            cam = Camera.from_record(rec)
        except (FormatError, TypeError) as err:
            result.skipped.append(Skipped(element, str(err)))
            continue
        result.add(cam, element, seen)
    return result


def _derived_id(lat: float, lon: float, props: dict[str, Any]) -> str:
    key = f"{lat:.7f},{lon:.7f},{props.get('name', '')}".encode()
    return "geo-" + hashlib.sha256(key).hexdigest()[:12]


def to_geojson(cameras: list[Camera]) -> dict[str, Any]:
    """A FeatureCollection of Points that :func:`parse_geojson` reads back unchanged."""
    features = []
    for cam in cameras:
        props = cam.to_record()
        lat, lon = props.pop("lat"), props.pop("lon")
        features.append(
            {
                "type": "Feature",
                "id": cam.id,
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": props,
            }
        )
    return {"type": "FeatureCollection", "features": features}
