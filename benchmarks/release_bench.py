"""A release end to end, after the release path moved in-process (issue 10, items 1 and 3).

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/release_bench.py --minutes 10 --cameras 2 --runs 3
    .venv/bin/python benchmarks/release_bench.py --minutes 1 --cameras 2 --runs 3 --redacted

Set-up (not timed): a fresh instance with ``--cameras`` cameras, each with
``--minutes`` of real 10-second H.264 segments (640x360, 15 frames a second,
made by ffmpeg from its test pattern), logged and archived as an agent would;
one investigator and one approver.  Per run, a new request for the whole
window is approved and released with :meth:`AccessService.release`: every
segment is checked against its logged digest and container, decoded with its
format fixed, its decoded length checked against the log, cut and joined
in-process by PyAV, (with ``--redacted``) redacted and scanned again by the
face detector, and only then is ``access.released`` logged.

Baselines, in the same process on the same files:

* unredacted: ``ffmpeg -f concat -safe 0 -c copy`` of the same segments (the
  old command line, which copied packets without decoding anything: fast, but
  it is what let a playlist pull in another camera's footage);
* redacted: :func:`redact_file` alone on the joined clip (what redaction costs
  with no check of its output).

The figure is seconds per release and seconds of footage released per
second; the ratio is against the baseline of the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from custodes.access.identity import Identities, Scope
from custodes.access.service import AccessService, RequestInput
from custodes.access.users import add_user
from custodes.fleet.model import Camera, format_time, now_ms
from custodes.fleet.ops import FleetSettings, import_cameras, ingest_segments
from custodes.fleet.registry import FleetDB
from custodes.ledger.instance import Instance
from custodes.web.service import LedgerService

SEGMENT_S = 10


def _segment(n: int, out: Path) -> bytes:
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=15:duration={SEGMENT_S}",
            "-c:v", "libx264", "-preset", "veryfast", "-g", "15", "-pix_fmt", "yuv420p",
            "-metadata", f"comment=segment {n}", "-movflags", "+faststart", str(out),
        ],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


Setup = tuple[LedgerService, FleetDB, Identities, AccessService, dict, int, int, list]


def _setup(root: Path, cameras: int, minutes: int) -> Setup:
    inst = Instance.init(root / "data", origin="bench.custodes.example/log")
    ledger = LedgerService(inst, interval=0.2)
    fleet = FleetDB.for_instance(inst.path)
    ids = Identities(inst.path)
    cams = [Camera(id=f"cam-{i}", lat=55.76 + i / 1000, lon=37.61, district="north")
            for i in range(cameras)]  # fmt: skip
    ledger.write(lambda log: import_cameras(log, fleet, cams))
    per_cam = minutes * 60 // SEGMENT_S
    start = (now_ms() // 1000 - per_cam * SEGMENT_S - 120) * 1000
    items, files = [], []
    scratch = root / "made"
    scratch.mkdir()
    n = 0
    for cam in cams:
        for i in range(per_cam):
            body = _segment(n, scratch / f"{n}.mp4")
            n += 1
            t = start + i * SEGMENT_S * 1000
            stamp = format_time(t)
            folder = inst.path / "archive" / cam.id / stamp[:10]
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / (stamp.replace(":", "-") + ".mp4")
            path.write_bytes(body)
            files.append(path)
            digest = hashlib.sha256(body).hexdigest()
            items.append(
                {"camera": cam.id, "start": stamp, "duration": SEGMENT_S, "bytes": len(body),
                 "sha256": digest}
            )  # fmt: skip
    settings = FleetSettings.load(inst.path)
    rep = ledger.write(lambda log: ingest_segments(log, fleet, items, settings))
    assert rep["accepted"] == len(items), rep
    users = {}
    for name, role in (("ivan", "investigator"), ("anna", "approver")):
        users[name], _tok = ledger.write(
            lambda log, n=name, r=role: add_user(log, ids, n, r, Scope.parse(""))
        )
    access = AccessService(ledger, fleet, ids, inst.path)
    end = start + per_cam * SEGMENT_S * 1000
    return ledger, fleet, ids, access, users, start, end, files


def _baseline_copy(files: list[Path], out: Path) -> None:
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{f}'\n" for f in files))
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "concat",
         "-safe", "0", "-i", str(listing), "-c", "copy", str(out)],
        check=True,
    )  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=10, help="footage per camera")
    ap.add_argument("--cameras", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--redacted", action="store_true", help="release redacted (runs the detector)")
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}")
    with tempfile.TemporaryDirectory(prefix="release-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        ledger, fleet, ids, access, users, start, end, files = _setup(
            root, args.cameras, args.minutes
        )
        print(f"set-up: {len(files)} segments in {time.perf_counter() - t0:.1f} s", flush=True)
        footage_s = args.cameras * args.minutes * 60
        ours, base = [], []
        try:
            for run in range(args.runs):
                inp = RequestInput(
                    from_ms=start, to_ms=end, purpose="investigation", case="CASE-2026-0001",
                    justification="Benchmark of the release path.",
                    cameras=tuple(f"cam-{i}" for i in range(args.cameras)),
                )  # fmt: skip
                rid = access.request(users["ivan"], inp)
                access.approve(users["anna"], rid, unredacted=not args.redacted)
                out = root / f"clip-{run}.mp4"
                t = time.perf_counter()
                info = access.release(users["ivan"], rid, out)
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                if args.redacted:
                    from custodes.redact.options import RedactOptions
                    from custodes.redact.pipeline import redact_file

                    joined = root / f"joined-{run}.mp4"
                    _baseline_copy(files, joined)
                    t = time.perf_counter()
                    redact_file(joined, root / f"base-{run}.mp4", RedactOptions())
                else:
                    _baseline_copy(files, root / f"base-{run}.mp4")
                base.append(time.perf_counter() - t)
                print(
                    f"run {run + 1}: release {ours[-1]:.2f} s ({info['segments']} segments,"
                    f" {info['bytes']:,} bytes), baseline {base[-1]:.2f} s",
                    flush=True,
                )
        finally:
            access.close()
            ids.close()
            fleet.close()
            ledger.close()
    med, bmed = statistics.median(ours), statistics.median(base)
    kind = "redacted" if args.redacted else "unredacted"
    print(f"{kind} release of {args.cameras} x {args.minutes} min: median {med:.2f} s"
          f" ({footage_s / med:.1f} s of footage a second); baseline median {bmed:.2f} s;"
          f" ratio {med / bmed:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
