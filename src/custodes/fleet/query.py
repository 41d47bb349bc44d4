"""Questions anyone can ask of the fleet, answered with proofs against a signed checkpoint.

A segment's proof has two parts (a log entry holds a batch of segments):

1. the segment record's inclusion in its batch's Merkle tree, whose root is
   the ``root`` of a ``segments.batch`` entry;
2. that entry's inclusion in the log, at the latest signed checkpoint.

Both are checked here before an answer says ``verified``; the proofs are
returned too, so anyone holding the checkpoint can check them again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from custodes.errors import FormatError, NotFoundError, ProofError
from custodes.fleet.model import format_time, parse_time
from custodes.fleet.ops import FleetSettings
from custodes.fleet.registry import FleetDB, SegmentRow
from custodes.ledger.instance import Instance
from custodes.ledger.reader import LogReader
from custodes.tlog import MemoryTree, Verifier, check_inclusion, leaf_hash, open_checkpoint

__all__ = [
    "Prover",
    "camera_status",
    "file_sha256",
    "incident",
    "parse_radius",
    "verify_digest",
    "verify_footage",
]


def file_sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class Prover:
    """Proofs for segments and log entries against one signed checkpoint."""

    def __init__(self, inst: Instance, reader: LogReader) -> None:
        self.reader = reader
        note = reader.checkpoint()
        self.checkpoint = note
        self.cp = open_checkpoint(note, Verifier.from_key(inst.verifier_key)).checkpoint
        self._entries: dict[int, dict[str, Any]] = {}
        self._trees: dict[int, tuple[MemoryTree, list[bytes]]] = {}

    def entry(self, index: int) -> dict[str, Any]:
        """Entry ``index`` with its inclusion proof, checked; raises if not yet covered."""
        if index in self._entries:
            return self._entries[index]
        if index >= self.cp.size:
            raise NotFoundError(
                f"entry {index} is not yet covered by the latest signed checkpoint"
                f" (size {self.cp.size}); try again in a moment"
            )
        data = self.reader.store.read_entries(index, index + 1)[0]
        proof = self.reader.inclusion_proof(index, self.cp.size)
        check_inclusion(
            proof, index=index, size=self.cp.size, leaf=leaf_hash(data), root=self.cp.root_hash
        )
        out = {
            "index": index,
            "entry": json.loads(data),
            "proof": [base64.b64encode(p).decode() for p in proof],
        }
        self._entries[index] = out
        return out

    def segment(self, db: FleetDB, row: SegmentRow) -> dict[str, Any]:
        """The segment, its batch proof and the batch entry's log proof, all checked."""
        out: dict[str, Any] = {
            "camera": row.camera,
            "start": format_time(row.start_ms),
            "end": format_time(row.end_ms),
            "bytes": row.size,
            "sha256": row.sha256,
        }
        if row.encrypted:
            out.update(
                epoch=row.epoch,
                ephemeral=row.ephemeral,
                ciphertext={"sha256": row.ciphertext_sha256, "bytes": row.ciphertext_size},
            )
        if row.log_index is None:
            return {**out, "verified": False, "why": "its batch is not logged yet"}
        if row.batch not in self._trees:
            recs = db.batch_records(row.batch)
            self._trees[row.batch] = (MemoryTree(leaf_hash(r) for r in recs), recs)
        tree, records = self._trees[row.batch]
        batch_proof = tree.prove_inclusion(row.pos)
        try:
            logged = self.entry(row.log_index)
        except NotFoundError as err:
            return {**out, "verified": False, "why": str(err)}
        root = bytes.fromhex(logged["entry"]["root"])
        check_inclusion(
            batch_proof, index=row.pos, size=len(records), leaf=leaf_hash(row.record), root=root
        )
        return {
            **out,
            "verified": True,
            "record": row.record.decode(),
            "batch": {
                "index": row.pos,
                "size": len(records),
                "root": root.hex(),
                "proof": [p.hex() for p in batch_proof],
            },
            "log": {"index": row.log_index, "proof": logged["proof"]},
        }


def _open(data: Path) -> tuple[Instance, LogReader, FleetDB]:
    inst = Instance.load(data)
    db = FleetDB.for_instance(data, readonly=True)
    return inst, inst.reader(), db


def verify_footage(
    data: Path, file: Path, camera: str, *, start_ms: int | None = None
) -> tuple[bool, dict[str, Any]]:
    """Is ``file``'s digest the one logged for ``camera`` (at ``start_ms``, if given)?

    ``file`` may be the recorded plaintext or the custody ciphertext the archive holds
    (told apart by its content): a ciphertext is checked against the logged ciphertext
    digest, and the report says for which epoch it is encrypted.
    """
    from custodes.fleet.containers import sealed_header

    digest, size = file_sha256(file)
    header = sealed_header(file)
    ok, report = verify_digest(data, digest, size, camera, start_ms=start_ms)
    out = {"file": str(file), **report}
    if header is not None:
        out["encrypted"] = {"epoch": header.epoch}
        if not ok and "segment" not in report:
            out["result"] = f"the file is a ciphertext for epoch {header.epoch}; {report['result']}"
    return ok, out


def verify_digest(
    data: Path, digest: str, size: int, camera: str, *, start_ms: int | None = None
) -> tuple[bool, dict[str, Any]]:
    """Is ``digest`` (of ``size`` bytes) logged for ``camera``?  The report says what differs."""
    inst, reader, db = _open(data)
    try:
        if db.camera(camera) is None:
            raise NotFoundError(f"camera {camera} is not in the registry")
        report: dict[str, Any] = {
            "sha256": digest,
            "bytes": size,
            "camera": camera,
        }
        rows = [r for r in db.segments_by_digest(digest) if r.camera == camera]
        sealed = False
        if not rows:  # the archive's ciphertext of an encrypted segment?
            rows = [r for r in db.segments_by_ciphertext(digest) if r.camera == camera]
            sealed = bool(rows)
        if start_ms is not None:
            rows = [r for r in rows if r.start_ms == start_ms]
        if rows:
            prover = Prover(inst, reader)
            proved = prover.segment(db, rows[0])
            report.update(segment=proved, checkpoint=prover.checkpoint.decode())
            if sealed:
                report["encrypted"] = {"epoch": rows[0].epoch}
            if proved["verified"]:
                what = (
                    f"the ciphertext (encrypted for epoch {rows[0].epoch}) of the segment"
                    if sealed
                    else "the segment"
                )
                report["result"] = (
                    f"the file is {what} of camera {camera} that started at {proved['start']},"
                    f" logged at index {proved['log']['index']}"
                )
                return True, report
            report["result"] = f"the digest is known but not yet provable: {proved['why']}"
            return False, report
        others = db.segments_by_digest(digest) or db.segments_by_ciphertext(digest)
        if others:
            report["result"] = (
                f"the digest is logged for camera {others[0].camera}"
                f" at {format_time(others[0].start_ms)}, not for camera {camera}"
            )
            return False, report
        if start_ms is not None:
            same = db.segments_for(camera, start_ms, start_ms + 1)
        else:
            starts = db.starts_of_size(camera, size)
            same = [x for s in starts for x in db.segments_for(camera, s, s + 1)]
        if same:
            r = same[0]
            logged_sha, logged_size = r.sha256, r.size
            if r.encrypted and (r.ciphertext_size == size or r.size != size):
                logged_sha, logged_size = str(r.ciphertext_sha256), int(r.ciphertext_size or 0)
            report["closest"] = {
                "start": format_time(r.start_ms),
                "sha256": logged_sha,
                "bytes": logged_size,
            }
            kind = f" (its ciphertext, epoch {r.epoch})" if logged_sha != r.sha256 else ""
            report["result"] = (
                f"the file differs from the segment camera {camera} logged at"
                f" {format_time(r.start_ms)}{kind}: logged sha256 {logged_sha},"
                f" {logged_size} bytes; this file sha256 {digest}, {size} bytes"
            )
        else:
            report["result"] = f"no segment with this digest was logged for camera {camera}"
        return False, report
    finally:
        db.close()
        reader.store.close()


def camera_status(data: Path, camera: str, from_ms: int, to_ms: int) -> dict[str, Any]:
    """Heard-from intervals, segments and declarations for one camera over a window."""
    settings = FleetSettings.load(data)
    inst, reader, db = _open(data)
    try:
        if db.camera(camera) is None:
            raise NotFoundError(f"camera {camera} is not in the registry")
        return _status(Prover(inst, reader), db, settings, camera, from_ms, to_ms)
    finally:
        db.close()
        reader.store.close()


def _status(
    prover: Prover, db: FleetDB, settings: FleetSettings, camera: str, from_ms: int, to_ms: int
) -> dict[str, Any]:
    found = db.camera(camera)
    assert found is not None
    cam, seq, retired = found
    shard = seq // settings.shard_size
    step = settings.interval_s * 1000
    start = from_ms - from_ms % step
    rows = db.heard_rows(shard, start, to_ms)
    heard: list[int] = []
    silent: list[int] = []
    proved_heard = 0
    for interval, first, bits, index in rows:
        i = seq - first
        on = i < len(bits) * 8 and bits[i >> 3] >> (i & 7) & 1
        (heard if on else silent).append(interval)
        if index < prover.cp.size:
            proved_heard += 1
    segments = [prover.segment(db, r) for r in db.segments_for(camera, from_ms, to_ms)]
    events = []
    for ev in db.events_for(camera, from_ms, to_ms):
        item: dict[str, Any] = {"kind": ev["kind"], "logged_at": format_time(ev["at_ms"])}
        if ev["from_ms"] is not None:
            item["from"] = format_time(ev["from_ms"])
            item["to"] = format_time(ev["to_ms"])
        item.update(ev["detail"])
        item["log_index"] = ev["log_index"]
        try:
            prover.entry(ev["log_index"])
            item["verified"] = True
        except (NotFoundError, ProofError):
            item["verified"] = False
        events.append(item)
    total = math.ceil((to_ms - start) / step)
    return {
        "camera": cam.to_record(),
        "retired": format_time(retired) if retired is not None else None,
        "from": format_time(from_ms),
        "to": format_time(to_ms),
        "interval_s": settings.interval_s,
        "intervals": total,
        "intervals_logged": len(rows),
        "intervals_in_checkpoint": proved_heard,
        "intervals_heard": len(heard),
        "heard": _ranges(heard, step),
        "not_heard": _ranges(silent, step),
        "segments": segments,
        "events": events,
        "checkpoint": prover.checkpoint.decode(),
        "checkpoint_size": prover.cp.size,
    }


def _ranges(starts: list[int], step: int) -> list[dict[str, str]]:
    out: list[list[int]] = []
    for s in sorted(starts):
        if out and out[-1][1] == s:
            out[-1][1] = s + step
        else:
            out.append([s, s + step])
    return [{"from": format_time(a), "to": format_time(b)} for a, b in out]


MAX_PUBLIC_RADIUS_M = 5000.0
MAX_PUBLIC_WINDOW_DAYS = 31


def check_public_query(radius_m: float, from_ms: int, to_ms: int) -> None:
    """Refuse a public query larger than the dashboard allows (FormatError, one sentence)."""
    if to_ms <= from_ms:
        raise FormatError("the window must end after it starts")
    if to_ms - from_ms > MAX_PUBLIC_WINDOW_DAYS * 86400_000:
        raise FormatError(f"the window may span at most {MAX_PUBLIC_WINDOW_DAYS} days")
    if radius_m > MAX_PUBLIC_RADIUS_M:
        raise FormatError(f"the radius may be at most {MAX_PUBLIC_RADIUS_M:,.0f} metres")


def parse_radius(text: str) -> float:
    """Metres from ``300``, ``300m`` or ``1.5km``."""
    t = text.strip().lower()
    scale = 1000.0 if t.endswith("km") else 1.0
    t = t.removesuffix("km").removesuffix("m")
    try:
        value = float(t) * scale
    except ValueError:
        raise FormatError(f"the radius {text!r} is not a distance such as 300m or 1.5km") from None
    if not 0 < value <= 50_000:
        raise FormatError("the radius must be more than 0 and at most 50 km")
    return value


def incident(
    data: Path, lat: float, lon: float, radius_m: float, from_ms: int, to_ms: int
) -> dict[str, Any]:
    """Every camera within ``radius_m`` of a place over a window, with what stands out.

    Flags:

    * ``declared_late``: outages or maintenance covering the window but declared
      after it began;
    * ``silent_together``: two or more of these cameras that fell silent in the
      same interval;
    * ``correlated``: ``outage.correlated`` entries touching these cameras.
    """
    from custodes.fleet.heard import distance_m

    settings = FleetSettings.load(data)
    inst, reader, db = _open(data)
    try:
        prover = Prover(inst, reader)
        dlat = radius_m / 111_000.0
        dlon = dlat / max(0.01, math.cos(math.radians(lat)))
        cams = [
            c for c in db.cameras_near(lat, lon, dlat, dlon)
            if distance_m(lat, lon, c.lat, c.lon) <= radius_m
        ]  # fmt: skip
        cams.sort(key=lambda c: distance_m(lat, lon, c.lat, c.lon))
        out_cams = []
        late: list[dict[str, Any]] = []
        silent_at: dict[int, list[str]] = {}
        correlated: dict[int, dict[str, Any]] = {}
        for cam in cams:
            st = _status(prover, db, settings, cam.id, from_ms, to_ms)
            st["distance_m"] = round(distance_m(lat, lon, cam.lat, cam.lon), 1)
            st.pop("checkpoint")
            for ev in st["events"]:
                if ev["kind"] in ("outage", "maintenance") and ev.get("declared_at"):
                    if parse_time(ev["declared_at"]) > from_ms:
                        late.append({"camera": cam.id, **ev})
                elif ev["kind"] == "silent":
                    step = settings.interval_s * 1000
                    at = parse_time(ev["logged_at"])
                    silent_at.setdefault(at - at % step, []).append(cam.id)
                elif ev["kind"] == "correlated":
                    correlated[ev["log_index"]] = {
                        k: ev[k] for k in ("cameras", "lat", "lon", "radius_m", "from", "log_index")
                    }
            out_cams.append(st)
        together = [
            {"interval": format_time(t), "cameras": sorted(c)}
            for t, c in sorted(silent_at.items())
            if len(c) >= 2
        ]
        return {
            "at": {"lat": lat, "lon": lon},
            "radius_m": radius_m,
            "from": format_time(from_ms),
            "to": format_time(to_ms),
            "cameras": out_cams,
            "flags": {
                "declared_late": late,
                "silent_together": together,
                "correlated": list(correlated.values()),
            },
            "checkpoint": prover.checkpoint.decode(),
            "checkpoint_size": prover.cp.size,
        }
    finally:
        db.close()
        reader.store.close()
