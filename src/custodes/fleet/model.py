"""What one camera is: the registry's record, and the small parsers it needs.

A :class:`Camera` holds only facts about hardware and its use: where it is,
where it points, what it can do, who runs it and on what legal basis.
``face_recognition_capable`` records whether the *hardware* is sold as able to
recognise faces; custodes itself never identifies anyone.

Times are UTC, written as RFC 3339 with a ``Z`` (:func:`format_time`), and
parsed strictly (:func:`parse_time`): a time without a zone is refused rather
than guessed.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from custodes.errors import FormatError

__all__ = [
    "CAMERA_TYPES",
    "MOUNTS",
    "Camera",
    "Capabilities",
    "format_time",
    "now_ms",
    "parse_direction",
    "parse_time",
    "valid_camera_id",
]

CAMERA_TYPES = ("fixed", "dome", "panning")
MOUNTS = ("wall", "pole", "ceiling", "street_lamp", "roof", "other")

_CARDINALS = {
    name: i * 22.5
    for i, name in enumerate("N NNE NE ENE E ESE SE SSE S SSW SW WSW W WNW NW NNW".split())
}
_TEXT_FIELDS = (
    "id",
    "mount",
    "type",
    "operator",
    "legal_basis",
    "district",
    "name",
    "zone",
    "surveillance",
    "source",
)
_CAPS_V1 = ("recording", "audio", "ptz", "face_recognition_capable")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def valid_camera_id(text: str) -> bool:
    """Ids are 1-128 of letters, digits and ``. _ : -``, starting with a letter or digit."""
    return bool(_ID.fullmatch(text))


def parse_direction(text: str) -> float | None:
    """A compass bearing in degrees [0, 360) from an OSM direction value, or None.

    Accepts degrees (``"90"``, ``"292.5"``, ``"-45"``, ``"360"``) and the 16
    cardinal letters (``"NE"``, ``"wsw"``).  A range such as ``"0-90"`` or a list
    ``"90;270"`` gives its first bearing.  Anything else gives None.
    """
    value = text.strip()
    if not value:
        return None
    for sep in (";", ","):
        value = value.split(sep, 1)[0].strip()
    upper = value.upper()
    if upper in _CARDINALS:
        return _CARDINALS[upper]
    match = re.fullmatch(r"(-?\d{1,4}(?:\.\d{1,6})?)(?:\s*-\s*\d{1,4}(?:\.\d{1,6})?)?", value)
    if match is None:
        return None
    degrees = float(match.group(1))
    if not -360 <= degrees <= 360:
        return None
    bearing = degrees % 360.0
    return 0.0 if bearing == 360.0 else bearing


_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|z|[+-]\d{2}:\d{2})"
)


def parse_time(text: object, what: str = "time") -> int:
    """Milliseconds since the epoch from an RFC 3339 time with a zone."""
    if not isinstance(text, str) or len(text) > 40:
        raise FormatError(f"the {what} must be an RFC 3339 string such as 2026-01-02T03:04:05Z")
    m = _TIME.fullmatch(text.strip())
    if m is None:
        raise FormatError(
            f"the {what} {text!r} is not an RFC 3339 time with a zone, such as 2026-01-02T03:04:05Z"
        )
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    try:
        dt = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except ValueError:
        raise FormatError(f"the {what} {text!r} is not a real date and time") from None
    zone = m.group(8).upper()
    offset = 0
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 60 + int(zone[4:6]))
    frac = m.group(7)
    ms = int(float(frac) * 1000) if frac else 0
    return (int(dt.timestamp()) - offset * 60) * 1000 + ms


def format_time(ms: int) -> str:
    """RFC 3339 UTC with a ``Z``; milliseconds only when there are some."""
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    rest = ms % 1000
    return f"{base}.{rest:03d}Z" if rest else f"{base}Z"


def now_ms() -> int:
    import time

    return int(time.time() * 1000)


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    recording: bool = True
    audio: bool = False
    ptz: bool = False
    face_recognition_capable: bool = False
    """A recorded fact about the hardware; custodes never recognises faces."""
    plate_reading_capable: bool = False
    """An ALPR camera: a recorded fact; custodes never reads plates.  Left out of a
    record when false, so that records from before it are unchanged."""


@dataclass(frozen=True, kw_only=True)
class Camera:
    """One camera in the registry.  ``lat``/``lon`` are WGS84 degrees."""

    id: str
    lat: float
    lon: float
    direction: float | None = None
    field_of_view: float | None = None
    mount: str | None = None
    type: str | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    operator: str | None = None
    legal_basis: str | None = None
    district: str | None = None
    name: str | None = None
    zone: str | None = None
    surveillance: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if not valid_camera_id(self.id):
            raise FormatError(f"the camera id {self.id!r} must be 1-128 letters, digits or . _ : -")
        for value, lo, hi, what in (
            (self.lat, -90.0, 90.0, "latitude"),
            (self.lon, -180.0, 180.0, "longitude"),
        ):
            if not (isinstance(value, int | float) and math.isfinite(value) and lo <= value <= hi):
                raise FormatError(f"camera {self.id}: the {what} {value!r} is out of range")
        if self.direction is not None and not 0 <= self.direction < 360:
            raise FormatError(f"camera {self.id}: the direction must be in [0, 360) degrees")
        if self.field_of_view is not None and not 0 < self.field_of_view <= 360:
            raise FormatError(f"camera {self.id}: the field of view must be in (0, 360] degrees")
        if self.type is not None and self.type not in CAMERA_TYPES:
            raise FormatError(
                f"camera {self.id}: the type {self.type!r} is not one of {', '.join(CAMERA_TYPES)}"
            )

    # -- the record that goes into the log and the registry ---------------------

    def to_record(self) -> dict[str, Any]:
        """The camera as a JSON object; None fields are left out."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "capabilities":
                caps = asdict(value)  # records from before plate_reading_capable stay the same
                out["capabilities"] = {k: v for k, v in caps.items() if v or k in _CAPS_V1}
            elif value is not None:
                out[f.name] = value
        return out

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Camera:
        known = {f.name for f in fields(cls)}
        unknown = set(rec) - known
        if unknown:
            raise FormatError(f"unknown camera fields: {', '.join(sorted(unknown))}")
        caps = rec.get("capabilities") or {}
        if not isinstance(caps, dict):
            raise FormatError("a camera's capabilities must be an object")
        cap_names = {f.name for f in fields(Capabilities)}
        if set(caps) - cap_names or not all(isinstance(v, bool) for v in caps.values()):
            raise FormatError(
                f"capabilities are true/false values among: {', '.join(sorted(cap_names))}"
            )
        kwargs = {k: v for k, v in rec.items() if k != "capabilities"}
        for key in ("lat", "lon", "direction", "field_of_view"):
            if key in kwargs and kwargs[key] is not None:
                v = kwargs[key]
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise FormatError(f"the camera field {key} must be a number")
                kwargs[key] = float(v)
        for key in _TEXT_FIELDS:
            if key in kwargs and kwargs[key] is not None and not isinstance(kwargs[key], str):
                raise FormatError(f"the camera field {key} must be a string")
        if "id" not in kwargs or "lat" not in kwargs or "lon" not in kwargs:
            raise FormatError("a camera needs at least id, lat and lon")
        return cls(capabilities=Capabilities(**caps), **kwargs)

    def changes_from(self, old: Camera) -> dict[str, Any]:
        """The fields that differ from ``old``, with their new values (None = removed)."""
        new_rec, old_rec = self.to_record(), old.to_record()
        new_rec.pop("source", None)
        old_rec.pop("source", None)
        keys = sorted(set(new_rec) | set(old_rec))
        return {k: new_rec.get(k) for k in keys if new_rec.get(k) != old_rec.get(k)}
