"""The map benchmark: the camera map of a 189,000-camera city, served and drawn in Chromium.

    .venv/bin/python benchmarks/map_bench.py --cameras 189000 --runs 3

Builds a city of that many cameras (the demo city's generator, registered in a
real log and fleet database), starts ``custodes serve`` on it, and measures:

1. the server: the first ``/public/map/cameras.json`` (the map's compact columns;
   it replays the log into the public state and builds them), then the median of
   ``--runs`` more (kept until the registry changes) sent gzip-compressed; the
   bytes, as built and as sent; a conditional GET with the ETag (304); and
   ``/public/map/status.json`` (one status digit a camera);
2. Chromium (``/usr/bin/chromium``, headless): from navigation to the map being
   drawn (``#map[data-ready=true]``: every request answered, every camera placed,
   clusters drawn), median of ``--runs`` page loads; then, on the drawn map, the
   time to redraw after a filter changes and after a pan, median of ``--runs``;
   and how many marker elements the page holds.

It prints one JSON object.  Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHUNK = 10_000


def build(data: Path, cameras: int) -> dict[str, Any]:
    """A city of ``cameras`` cameras, districts and places, in a new data directory."""
    from custodes.demo.city import make_city
    from custodes.fleet import entries as E
    from custodes.fleet.model import now_ms
    from custodes.fleet.ops import catch_up
    from custodes.fleet.registry import FleetDB
    from custodes.geo.ops import import_districts, import_places
    from custodes.ledger.instance import Instance
    from custodes.web.service import LedgerService

    began = time.perf_counter()
    city = make_city(cameras, seed=7)
    inst = Instance.init(data, origin="map-bench.custodes.example/log")
    svc = LedgerService(inst, interval=1.0)
    db = FleetDB.for_instance(inst.path)
    try:
        at = now_ms() - 3600_000
        import_districts(svc.log, city.districts, now_ms=at)
        import_places(svc.log, city.places, now_ms=at)
        cams = city.cameras[:cameras]
        for start in range(0, len(cams), CHUNK):
            objs = [
                E.camera_registered(c, seq, at)
                for seq, c in enumerate(cams[start : start + CHUNK], start)
            ]
            svc.log.append([E.encode(o) for o in objs])
            catch_up(svc.log, db)
        svc.log.integrate()
        size = svc.log.size()
    finally:
        db.close()
        svc.close()
    return {"cameras": len(cams), "entries": size, "build_s": round(time.perf_counter() - began, 1)}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(
    url: str, gzip_ok: bool = False, etag: str | None = None
) -> tuple[float, bytes, dict[str, str], int]:
    headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
    if etag:
        headers["If-None-Match"] = etag
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=600) as r:
            body = r.read()
            hdrs = {k.lower(): v for k, v in r.headers.items()}
            return time.perf_counter() - t, body, hdrs, r.status
    except urllib.error.HTTPError as err:  # 304 Not Modified
        if err.code != 304:
            raise
        return time.perf_counter() - t, b"", {k.lower(): v for k, v in err.headers.items()}, 304


def serve(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "CUSTODES_TILE_URL"):
        env.pop(var, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "custodes", "--data", str(data), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            _get(url + "/healthz")
            return proc, url
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.2)


def server_figures(url: str, runs: int) -> dict[str, Any]:
    cams = url + "/public/map/cameras.json"
    first, body, _, _ = _get(cams)  # replays the log, builds the compact columns once
    times = [_get(cams, gzip_ok=True)[0] for _ in range(runs)]
    _, sent, headers, _ = _get(cams, gzip_ok=True)
    again, _, _, code = _get(cams, gzip_ok=True, etag=headers.get("etag"))
    status_t, status_sent, _, _ = _get(url + "/public/map/status.json", gzip_ok=True)
    # The districts' coverage and the places' camera counts, built once per registry change.
    districts_t = _get(url + "/public/districts.geojson", gzip_ok=True)[0]
    places_t = _get(url + "/public/places.geojson", gzip_ok=True)[0]
    return {
        "first_s": round(first, 2),
        "median_s": round(statistics.median(times), 3),
        "runs_s": [round(t, 3) for t in times],
        "bytes": len(body),
        "bytes_sent_with_accept_gzip": len(sent),
        "content_encoding": headers.get("content-encoding", "identity"),
        "conditional_get": {"status": code, "s": round(again, 3)},
        "status_s": round(status_t, 3),
        "status_bytes_sent_with_accept_gzip": len(status_sent),
        "first_districts_s": round(districts_t, 2),
        "first_places_s": round(places_t, 2),
        "cameras": json.loads(body)["count"],
    }


def browser_figures(url: str, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    loads, filters, pans = [], [], []
    drawn = 0
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        version = b.version
        try:
            for _ in range(runs):
                ctx = b.new_context(viewport={"width": 1366, "height": 900})
                pg = ctx.new_page()
                t = time.perf_counter()
                pg.goto(url + "/")
                pg.wait_for_selector("#map[data-ready=true]", timeout=600_000)
                loads.append(time.perf_counter() - t)
                drawn = int(pg.locator("#map").get_attribute("data-markers") or 0)
                # A filter change redraws synchronously: time it inside the page.
                filters.append(
                    pg.evaluate(
                        """() => { const box = document.querySelector(
                             "input[name=status][value=unknown]");
                           const t = performance.now(); box.click(); box.click();
                           return (performance.now() - t) / 2; }"""
                    )
                    / 1000
                )
                # A pan by keyboard: from the key to the redraw after the map stopped moving.
                pg.focus("#map")
                pg.evaluate(
                    """() => { const el = document.getElementById("map");
                       window.__pan = new Promise(done => {
                         const obs = new MutationObserver(() => {
                           obs.disconnect(); done(performance.now()); });
                         obs.observe(el, {attributes: true, attributeFilter: ["data-markers"]});
                         setTimeout(() => { obs.disconnect(); done(null); }, 20000);
                       });
                       window.__t0 = performance.now(); }"""
                )
                pg.keyboard.press("ArrowRight")
                end = pg.evaluate(
                    "async () => { const t = await window.__pan;"
                    " return t === null ? null : (t - window.__t0) / 1000; }"
                )
                pans.append(end)
                ctx.close()
        finally:
            b.close()
    pans_ok = [x for x in pans if x is not None]
    return {
        "chromium": version,
        "load_to_drawn_median_s": round(statistics.median(loads), 2),
        "load_runs_s": [round(t, 2) for t in loads],
        "filter_redraw_median_s": round(statistics.median(filters), 3),
        "pan_redraw_median_s": round(statistics.median(pans_ok), 3) if pans_ok else None,
        "marker_elements_drawn": drawn,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=189_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--keep", type=Path, help="Build the city in this folder, or reuse the one built there."
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.keep or Path(tmp) / "city"
        if args.keep and (data / "custodes.json").exists():
            built = {"cameras": args.cameras, "reused": str(data)}
        else:
            built = build(data, args.cameras)
        proc, url = serve(data)
        try:
            server = server_figures(url, args.runs)
            browser = browser_figures(url, args.runs)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    machine = {
        "cpus": os.cpu_count(),
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        ),
        "python": platform.python_version(),
    }
    out = {"built": built, "server": server, "browser": browser, "machine": machine}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
