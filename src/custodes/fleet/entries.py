"""The fleet's log entries: one builder per type, each a canonical JSON object.

Every entry has ``type``, ``v`` (its schema version) and ``time`` (when it was
written, UTC).  The types:

``camera.registered``   ``camera`` (the full record) and ``seq``, the camera's
                        position in the registry, which ``fleet.heard`` bitmaps use
``camera.changed``      ``camera`` (id) and ``changes``: each changed field's new
                        value (null when removed)
``camera.retired``      ``camera`` and ``reason``
``agent.added``         ``agent`` (a random token id), a pseudonymous ``name``, ``role``;
                        from v2 also ``pseudonym`` and its binding: ``cameras``
                        (ids) or ``district``
``agent.bound``         ``agent``, ``pseudonym``, the new ``cameras`` or ``district``
                        (an operator changed which cameras the agent may act for)
``agent.revoked``       ``agent``, ``pseudonym``, ``reason``
``segments.batch``      ``batch``, ``count``, ``root``: the RFC 9162 Merkle root
                        over the batch's segment records (each record is the
                        canonical JSON of {camera, start, duration, bytes, sha256}),
                        in the order of their position in the batch; from v2,
                        ``agent``: the pseudonym of the agent that sent it (or null);
                        v3, only for a batch holding segments encrypted under custody,
                        adds ``encrypted``: how many of its records are.  An encrypted
                        segment's record adds ``epoch``, ``ephemeral`` (base64 of the
                        32-byte ephemeral key of :mod:`custodes.custody.kem`) and
                        ``ciphertext``: {``sha256``, ``bytes``} of the stored file;
                        ``sha256`` and ``bytes`` stay the plaintext's.  Readers accept
                        v1, v2 and v3
``fleet.heard``         ``interval`` (start), ``seconds``, ``shard``,
                        ``first_seq``, ``count`` and ``bitmap`` (base64): bit i
                        (LSB first within each byte) is set when the camera
                        with seq ``first_seq + i`` was heard from in the interval;
                        from v2, ``agents``: the pseudonyms of the agents heard from

An agent's pseudonym is an HMAC of its id under a key kept in ``fleet.db``: it
names the same agent across entries without its name.  Readers accept v1 and v2.
``camera.silent``       ``camera``, ``since`` (end of the last interval heard)
``camera.back``         ``camera``, ``silent_since``
``outage.correlated``   ``cameras`` near each other (``radius_m`` of ``lat``,
                        ``lon``) that fell silent in the same interval (``since``)
``outage.declared``,    ``cameras``, ``from``, ``to``, ``reason``,
``maintenance.declared`` ``declared_at`` and ``late`` (declared after ``from``)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from custodes.fleet.model import Camera, format_time
from custodes.records.canonical import canonicalize

__all__ = [
    "Sealing",
    "agent_added",
    "agent_bound",
    "agent_revoked",
    "camera_back",
    "camera_changed",
    "camera_registered",
    "camera_retired",
    "camera_silent",
    "correlated",
    "declaration",
    "encode",
    "heard",
    "segment_record",
    "segments_batch",
]

V = 1


def encode(obj: dict[str, Any]) -> bytes:
    return canonicalize(obj)


def _base(kind: str, now_ms: int, v: int = V) -> dict[str, Any]:
    return {"type": kind, "v": v, "time": format_time(now_ms)}


def _binding(cameras: list[str] | None, district: str | None) -> dict[str, Any]:
    if cameras is not None:
        return {"cameras": sorted(cameras)}
    return {"district": district} if district is not None else {}


def camera_registered(cam: Camera, seq: int, now_ms: int) -> dict[str, Any]:
    return {**_base("camera.registered", now_ms), "camera": cam.to_record(), "seq": seq}


def camera_changed(camera_id: str, changes: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {**_base("camera.changed", now_ms), "camera": camera_id, "changes": changes}


def camera_retired(camera_id: str, reason: str, now_ms: int) -> dict[str, Any]:
    return {**_base("camera.retired", now_ms), "camera": camera_id, "reason": reason}


def agent_added(
    agent_id: str,
    name: str,
    role: str,
    now_ms: int,
    *,
    pseudonym: str | None = None,
    cameras: list[str] | None = None,
    district: str | None = None,
) -> dict[str, Any]:
    obj = {**_base("agent.added", now_ms), "agent": agent_id, "name": name, "role": role}
    if pseudonym is None:
        return obj
    return {**obj, "v": 2, "pseudonym": pseudonym, **_binding(cameras, district)}


def agent_bound(
    agent_id: str, pseudonym: str, cameras: list[str] | None, district: str | None, now_ms: int
) -> dict[str, Any]:
    return {
        **_base("agent.bound", now_ms),
        "agent": agent_id,
        "pseudonym": pseudonym,
        **_binding(cameras, district),
    }


def agent_revoked(agent_id: str, pseudonym: str, reason: str, now_ms: int) -> dict[str, Any]:
    return {
        **_base("agent.revoked", now_ms),
        "agent": agent_id,
        "pseudonym": pseudonym,
        "reason": reason,
    }


@dataclass(frozen=True, slots=True)
class Sealing:
    """What an encrypted segment's record adds: its epoch, ephemeral key and ciphertext."""

    epoch: str
    ephemeral: str  # base64 of the 32-byte point
    sha256: str  # of the ciphertext file
    size: int

    def to_record(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "ephemeral": self.ephemeral,
            "ciphertext": {"sha256": self.sha256, "bytes": self.size},
        }


def segment_record(
    camera: str,
    start_ms: int,
    duration: float,
    size: int,
    sha256: str,
    sealing: Sealing | None = None,
) -> bytes:
    """The canonical bytes of one segment: the leaf of its batch's Merkle tree."""
    rec: dict[str, Any] = {
        "camera": camera,
        "start": format_time(start_ms),
        "duration": duration,
        "bytes": size,
        "sha256": sha256,
    }
    if sealing is not None:
        rec.update(sealing.to_record())
    return canonicalize(rec)


def segments_batch(
    batch: int,
    count: int,
    root: bytes,
    now_ms: int,
    agent: str | None = None,
    *,
    encrypted: int = 0,
) -> dict[str, Any]:
    obj = {
        **_base("segments.batch", now_ms, 2),
        "batch": batch,
        "count": count,
        "root": root.hex(),
        "agent": agent,
    }
    if encrypted:
        obj.update(v=3, encrypted=encrypted)
    return obj


def heard(
    interval_ms: int,
    seconds: int,
    shard: int,
    first_seq: int,
    count: int,
    bits: bytes,
    now_ms: int,
    agents: list[str] | None = None,
) -> dict[str, Any]:
    return {
        **_base("fleet.heard", now_ms, 2),
        "agents": sorted(agents or []),
        "interval": format_time(interval_ms),
        "seconds": seconds,
        "shard": shard,
        "first_seq": first_seq,
        "count": count,
        "bitmap": base64.b64encode(bits).decode(),
    }


def camera_silent(camera: str, since_ms: int, now_ms: int) -> dict[str, Any]:
    return {**_base("camera.silent", now_ms), "camera": camera, "since": format_time(since_ms)}


def camera_back(camera: str, silent_since_ms: int, now_ms: int) -> dict[str, Any]:
    return {
        **_base("camera.back", now_ms),
        "camera": camera,
        "silent_since": format_time(silent_since_ms),
    }


def correlated(
    cameras: list[str], lat: float, lon: float, radius_m: float, since_ms: int, now_ms: int
) -> dict[str, Any]:
    return {
        **_base("outage.correlated", now_ms),
        "cameras": cameras,
        "lat": round(lat, 6),
        "lon": round(lon, 6),
        "radius_m": radius_m,
        "since": format_time(since_ms),
    }


def declaration(
    kind: str, cameras: list[str], from_ms: int, to_ms: int, reason: str, now_ms: int
) -> dict[str, Any]:
    return {
        **_base(f"{kind}.declared", now_ms),
        "cameras": cameras,
        "from": format_time(from_ms),
        "to": format_time(to_ms),
        "reason": reason,
        "declared_at": format_time(now_ms),
        "late": now_ms > from_ms,
    }
