"""The synthetic city's geography: districts, places and cameras, from a seed.

The city is a 3 x 3 grid of districts around ``centre``.  Cameras are placed
*unequally*, as analysts found in real networks: dense around protest sites,
metro stations and the city centre; almost none near official residences
(the leafy north-east).  Everything is made up; nothing names a real place.

Positions are worked out in metres east and north of the centre and turned
into WGS84 degrees with a local flat-earth approximation, which is exact
enough for a city a few kilometres across.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from custodes.fleet.model import Camera, Capabilities
from custodes.geo.imports import District, Place

__all__ = ["City", "make_city", "summary"]

CELL_M = 2200.0
"""Side of one district, in metres."""

_DISTRICTS = (
    # (id, name, population, weight of random cameras), row by row from the north-west
    ("northwest", "Northwest", 118_000, 0.8),
    ("north", "North", 142_000, 1.0),
    ("northeast", "Northeast", 36_000, 0.12),
    ("west", "West", 131_000, 1.3),
    ("centre", "Centre", 58_000, 3.0),
    ("east", "East", 124_000, 1.3),
    ("southwest", "Southwest", 155_000, 1.0),
    ("south", "South", 149_000, 1.2),
    ("southeast", "Southeast", 97_000, 1.0),
)
_CODES = {
    "northwest": "NW",
    "north": "N",
    "northeast": "NE",
    "west": "W",
    "centre": "C",
    "east": "E",
    "southwest": "SW",
    "south": "S",
    "southeast": "SE",
}

# (id, category, name, metres east, metres north of the centre)
_PLACES = (
    ("theatre-opera", "theatre", "Opera Theatre", 420.0, -310.0),
    ("protest-freedom-sq", "protest-site", "Freedom Square", -260.0, 240.0),
    ("protest-city-hall", "protest-site", "City Hall Steps", 2650.0, 180.0),
    ("residence-mayor", "official-residence", "Mayor's residence", 2500.0, 2450.0),
    ("residence-governor", "official-residence", "Governor's residence", 2950.0, 1900.0),
    ("residence-police-chief", "official-residence", "Police chief's residence", 1900.0, 2950.0),
    ("worship-cathedral", "worship", "Cathedral of the Assumption", -150.0, -700.0),
    ("worship-mosque", "worship", "Central Mosque", -2400.0, 1700.0),
    ("worship-synagogue", "worship", "Synagogue on Garden Street", 1500.0, -1900.0),
    ("worship-chapel", "worship", "River Chapel", -1800.0, -2500.0),
    ("school-1", "school", "School No. 1", -2000.0, 2600.0),
    ("school-7", "school", "School No. 7", 300.0, 2000.0),
    ("school-12", "school", "School No. 12", -2600.0, -300.0),
    ("school-23", "school", "School No. 23", 2300.0, -700.0),
    ("school-31", "school", "School No. 31", -400.0, -2400.0),
    ("school-44", "school", "School No. 44", 2700.0, -2600.0),
)

HOME = (-1480.0, -1620.0)
"""A private block of flats (not a published place): the insider's target."""


@dataclass
class City:
    centre: tuple[float, float]
    districts: list[District]
    places: list[Place]
    cameras: list[Camera]
    later: list[Camera] = field(default_factory=list)
    """Cameras registered in the middle of the week."""
    theatre: Place | None = None
    theatre_cameras: list[str] = field(default_factory=list)
    home: tuple[float, float] = (0.0, 0.0)
    """(lat, lon) of the insider's target: a private address, never a published place."""
    home_cameras: list[str] = field(default_factory=list)

    def to_lat_lon(self, east_m: float, north_m: float) -> tuple[float, float]:
        return offset(self.centre, east_m, north_m)


def offset(centre: tuple[float, float], east_m: float, north_m: float) -> tuple[float, float]:
    lat0, lon0 = centre
    lat = lat0 + north_m / 111_320.0
    lon = lon0 + east_m / (111_320.0 * math.cos(math.radians(lat0)))
    return round(lat, 6), round(lon, 6)


def district_at(east_m: float, north_m: float) -> str:
    col = min(2, max(0, int((east_m + 1.5 * CELL_M) // CELL_M)))
    row = min(2, max(0, int((1.5 * CELL_M - north_m) // CELL_M)))
    return _DISTRICTS[row * 3 + col][0]


def _districts(centre: tuple[float, float]) -> list[District]:
    out = []
    for i, (did, name, population, _) in enumerate(_DISTRICTS):
        row, col = divmod(i, 3)
        west = (col - 1.5) * CELL_M
        north = (1.5 - row) * CELL_M
        corners = [
            (west, north),
            (west + CELL_M, north),
            (west + CELL_M, north - CELL_M),
            (west, north - CELL_M),
        ]
        ring = [[offset(centre, e, n)[1], offset(centre, e, n)[0]] for e, n in corners]
        ring.append(ring[0])
        out.append(District(did, name, population, {"type": "Polygon", "coordinates": [ring]}))
    return out


class _Placer:
    """Hands out camera ids per district and builds varied camera records."""

    def __init__(self, city: City, rng: random.Random) -> None:
        self.city = city
        self.rng = rng
        self.counts: dict[str, int] = {}

    def camera(
        self,
        east: float,
        north: float,
        *,
        name: str,
        operator: str = "City Safety Department",
        zone: str | None = None,
        face_rate: float = 0.1,
        mount: str | None = None,
        indoor: bool = False,
    ) -> Camera:
        rng = self.rng
        district = district_at(east, north)
        n = self.counts.get(district, 0) + 1
        self.counts[district] = n
        lat, lon = self.city.to_lat_lon(east, north)
        kind = rng.choices(("fixed", "dome", "panning"), weights=(6, 3, 1))[0]
        return Camera(
            id=f"{_CODES[district]}-{n:04d}",
            lat=lat,
            lon=lon,
            direction=None if kind == "dome" else float(rng.randrange(0, 360, 15)),
            field_of_view=360.0 if kind == "dome" else float(rng.choice((60, 75, 90, 110))),
            mount=mount or rng.choice(("wall", "pole", "street_lamp", "roof")),
            type=kind,
            capabilities=Capabilities(
                audio=rng.random() < 0.08,
                ptz=kind == "panning",
                face_recognition_capable=rng.random() < face_rate,
            ),
            operator=operator,
            legal_basis="City Video Surveillance Ordinance No. 12 (synthetic)",
            district=district,
            name=name,
            zone=zone,
            surveillance="indoor" if indoor else "public",
            source="demo",
        )

    def around(
        self, east: float, north: float, radius: float, inner: float = 0.0
    ) -> tuple[float, float]:
        a = self.rng.uniform(0, 2 * math.pi)
        r = self.rng.uniform(inner, radius)
        return east + r * math.cos(a), north + r * math.sin(a)


def make_city(
    cameras: int, *, seed: int = 7, centre: tuple[float, float] = (55.7558, 37.6173)
) -> City:
    """A city with ``cameras`` cameras (at least 40), deterministic for a seed."""
    rng = random.Random(seed)
    city = City(centre=centre, districts=_districts(centre), places=[], cameras=[])
    for pid, cat, name, e, n in _PLACES:
        lat, lon = city.to_lat_lon(e, n)
        city.places.append(Place(pid, cat, name, lat, lon))
    city.theatre = city.places[0]
    city.home = city.to_lat_lon(*HOME)
    p = _Placer(city, rng)
    cams = city.cameras
    total = max(40, cameras)
    places = {pid: (e, n) for pid, _, _, e, n in _PLACES}
    names = {pid: name for pid, _, name, _, _ in _PLACES}

    # (1) The theatre: a handful of cameras on its street, the ones that go dark one night.
    te, tn = places["theatre-opera"]
    for k in range(6 if total >= 100 else 5):
        cam = p.camera(*p.around(te, tn, 170, 30), name=f"Opera Theatre street {k + 1}")
        cams.append(cam)
        city.theatre_cameras.append(cam.id)
    # (2) Protest sites: watched closely, often with recognition-capable hardware.
    per_site = max(3, round(total * 0.06))
    for pid in ("protest-freedom-sq", "protest-city-hall"):
        e, n = places[pid]
        for k in range(per_site):
            cams.append(p.camera(*p.around(e, n, 260), name=f"{names[pid]} {k + 1}", face_rate=0.5))
    # (3) Metro stations along a line through the centre.
    stations = max(2, total // 60)
    for s in range(stations):
        e = -2800 + 5600 * (s + 0.5) / stations
        n = 0.35 * e + 150
        for k in range(4):
            cams.append(
                p.camera(
                    *p.around(e, n, 30),
                    name=f"Metro station {s + 1} camera {k + 1}",
                    operator="Synthetic Metro",
                    zone="metro",
                    face_rate=0.6,
                    mount="ceiling",
                    indoor=True,
                )
            )
    # (4) A camera or two at each school and place of worship.
    for _pid, cat, name, e, n in _PLACES:
        if cat in ("school", "worship"):
            for _ in range(2 if cat == "school" and total >= 100 else 1):
                cams.append(p.camera(*p.around(e, n, 80, 10), name=f"{name} entrance"))
    # (5) Two cameras in the courtyard of a block of flats: the insider's target.
    for k in range(2):
        cams.append(p.camera(*p.around(*HOME, 35), name=f"Birch Street 14 courtyard {k + 1}"))
        city.home_cameras.append(cams[-1].id)
    # (6) One camera near one official residence; none near the other two.
    e, n = places["residence-governor"]
    cams.append(p.camera(*p.around(e, n, 240, 200), name="Embankment road"))
    # (7) The rest at random, by district weight, away from official residences.
    homes = [places[k] for k in places if k.startswith("residence-")]
    weights = [w for *_, w in _DISTRICTS]
    while len(cams) < total:
        i = rng.choices(range(9), weights=weights)[0]
        row, col = divmod(i, 3)
        e = (col - 1.5) * CELL_M + rng.uniform(50, CELL_M - 50)
        n = (1.5 - row) * CELL_M - rng.uniform(50, CELL_M - 50)
        if any(math.hypot(e - he, n - hn) < 400 for he, hn in homes):
            continue
        if math.hypot(e - HOME[0], n - HOME[1]) < 150:
            continue
        cams.append(p.camera(e, n, name="Street camera"))
    # Registered in the middle of the week: a new cluster on a shopping street.
    for k in range(3):
        city.later.append(p.camera(*p.around(-1200, 900, 120), name=f"Market Street {k + 1}"))
    return city


def summary(city: City) -> dict[str, Any]:
    return {
        "districts": len(city.districts),
        "places": len(city.places),
        "cameras": len(city.cameras) + len(city.later),
        "face_recognition_capable": sum(
            c.capabilities.face_recognition_capable for c in city.cameras + city.later
        ),
    }
