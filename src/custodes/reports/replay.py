"""The public state of a log, rebuilt by replaying its entries in order.

Everything a transparency report, the public dashboard or an auditor shows is
computed from a :class:`PublicState`, and a :class:`PublicState` is computed from
nothing but the public log, so anyone holding the log gets the same figures.

The state is incremental: :meth:`PublicState.apply` takes one entry (its index
and its parsed JSON object) and updates the state in place, so a server can keep
one state and feed it each new entry as the log grows.  :func:`replay` builds a
state from scratch.

What the state holds (times stay RFC 3339 strings, as in the log):

``cameras``    id -> the camera record, plus ``status`` (``active`` or
               ``retired``), ``registered`` and ``retired`` (times, or None),
               ``retired_reason`` and ``seq``; ``camera.changed`` entries are
               applied to the record (a null value removes the field)
``districts``  id -> ``name``, ``population``, ``area_km2``, ``polygon``,
               ``defined`` (time), ``index``; ``district.removed`` deletes it
``places``     id -> ``category``, ``name``, ``lat``, ``lon``, ``defined``,
               ``index``; ``place.removed`` deletes it
``users``      pseudonym -> ``role``, ``scope``, ``active``, ``added``,
               ``revoked``
``policy``     the ``policy.changed`` entry in force (with ``index``), or None;
               ``policies`` lists every version (``version``, ``sha256``,
               ``time``, ``index``), oldest first
``requests``   id -> the ``access.requested`` entry plus ``index``,
               ``approvals``, ``denials``, ``released``, ``exported`` (lists of
               those entries, each with its ``index``; under custody an
               ``access.exported`` names its release by ``release``, the log
               index of the ``access.released``), ``disclosed`` and
               ``revealed`` (the entry or None) and ``expired`` (bool)
``flags``      id -> the ``anomaly.flagged`` entry plus ``index`` and
               ``resolved`` (the ``anomaly.resolved`` entry, or None)
``outages``    the ``camera.silent``, ``camera.back``, ``outage.correlated``,
               ``outage.declared`` and ``maintenance.declared`` entries, each
               with its ``index``, in log order
``retention``  every ``retention.*`` entry, with its ``index``
``segments``   day (``YYYY-MM-DD`` of the batch entry's time) -> segments
               recorded, from ``segments.batch`` counts
``counts``     entry type -> how many entries of that type
``size``       how many entries were applied; ``skipped`` lists the indexes of
               entries that were not JSON objects of a known shape
``last_ms``    the latest ``time`` of an applied entry of a known type

An entry that refers to something the state does not know (an approval of an
unknown request, say) is counted but changes nothing else; a malformed entry
is recorded in ``skipped`` and never half-applied.  Replaying never raises on
the log's content, so one bad entry cannot take a dashboard down.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from custodes.errors import FormatError
from custodes.fleet.model import parse_time

__all__ = ["OUTAGE_TYPES", "PublicState", "entries_from_log", "replay", "time_ms"]

OUTAGE_TYPES = (
    "camera.silent",
    "camera.back",
    "outage.correlated",
    "outage.declared",
    "maintenance.declared",
)

_META = ("type", "v")


class _Malformed(Exception):
    """An entry whose fields do not have the shape its type promises."""


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _Malformed(key)
    return value


_EPOCH_DAY = date(1970, 1, 1).toordinal()


def time_ms(text: str) -> int:
    """:func:`~custodes.fleet.model.parse_time`, quicker for the form entries use.

    Times as :func:`~custodes.fleet.model.format_time` writes them
    (``2026-11-02T10:00:00Z``, ``2026-11-02T10:00:00.250Z``) are read by slicing;
    anything else goes to ``parse_time``, which gives the same answer or refuses.
    """
    n = len(text)
    if (n == 20 or (n == 24 and text[19] == "." and text[20:23].isdigit())) and (
        text.isascii()
        and text[4] == "-"
        and text[7] == "-"
        and text[10] == "T"
        and text[13] == ":"
        and text[16] == ":"
        and text[-1] == "Z"
    ):
        try:
            digits = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
            if all(d.isdigit() for d in digits):
                y, mo, d, h, mi, sec = (int(x) for x in digits)
                if h < 24 and mi < 60 and sec < 60:
                    day = date(y, mo, d).toordinal() - _EPOCH_DAY
                    ms = int(float(text[19:23]) * 1000) if n == 24 else 0
                    return (day * 86400 + h * 3600 + mi * 60 + sec) * 1000 + ms
        except ValueError:
            pass
    return parse_time(text)


def _time(obj: dict[str, Any], key: str = "time") -> int:
    value = _str(obj, key)
    try:
        return time_ms(value)
    except FormatError:
        raise _Malformed(key) from None


def _body(obj: dict[str, Any], index: int) -> dict[str, Any]:
    """The entry without ``type`` and ``v``, plus its log index."""
    out = {k: v for k, v in obj.items() if k not in _META}
    out["index"] = index
    return out


@dataclass
class PublicState:
    """What the public log says, as of its first ``size`` entries."""

    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)
    districts: dict[str, dict[str, Any]] = field(default_factory=dict)
    places: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy: dict[str, Any] | None = None
    policies: list[dict[str, Any]] = field(default_factory=list)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    outages: list[dict[str, Any]] = field(default_factory=list)
    retention: list[dict[str, Any]] = field(default_factory=list)
    segments: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    size: int = 0
    last_ms: int | None = None

    # -- feeding it ----------------------------------------------------------

    def apply(self, index: int, obj: dict[str, Any]) -> None:
        """Apply the entry at ``index`` (already parsed from its canonical JSON).

        The state keeps a copy: the caller may go on using ``obj``.
        """
        self._apply(index, copy.deepcopy(obj))

    def _apply(self, index: int, obj: dict[str, Any]) -> None:
        self.size += 1
        kind = obj.get("type") if isinstance(obj, dict) else None
        if not isinstance(kind, str):
            self.skipped.append(index)
            return
        self.counts[kind] = self.counts.get(kind, 0) + 1
        handler = _HANDLERS.get(kind)
        if handler is None:
            if kind.startswith("retention."):
                handler = PublicState._retention
            else:
                return
        try:
            when = _time(obj)
            handler(self, index, obj)
        except (_Malformed, KeyError, TypeError, ValueError, AttributeError):
            self.skipped.append(index)
            return
        if self.last_ms is None or when > self.last_ms:
            self.last_ms = when

    def apply_bytes(self, index: int, raw: bytes) -> None:
        """Apply one entry as stored in the log (canonical JSON bytes)."""
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            obj = None
        if not isinstance(obj, dict):
            self.size += 1
            self.skipped.append(index)
            return
        self._apply(index, obj)

    # -- the fleet -----------------------------------------------------------

    def _camera_registered(self, index: int, obj: dict[str, Any]) -> None:
        record = obj["camera"]
        if not isinstance(record, dict):
            raise _Malformed("camera")
        cam_id = _str(record, "id")
        cam = dict(record)
        cam.update(
            status="active",
            registered=obj["time"],
            retired=None,
            retired_reason=None,
            seq=obj.get("seq"),
            index=index,
        )
        self.cameras[cam_id] = cam

    def _camera_changed(self, index: int, obj: dict[str, Any]) -> None:
        changes = obj["changes"]
        if not isinstance(changes, dict):
            raise _Malformed("changes")
        cam = self.cameras.get(_str(obj, "camera"))
        if cam is None:
            return
        for key, value in changes.items():
            if key in ("id", "status", "registered", "retired", "retired_reason", "seq", "index"):
                continue
            if value is None:
                cam.pop(key, None)
            else:
                cam[key] = value

    def _camera_retired(self, index: int, obj: dict[str, Any]) -> None:
        cam = self.cameras.get(_str(obj, "camera"))
        reason = obj.get("reason")
        if cam is None:
            return
        cam.update(status="retired", retired=obj["time"], retired_reason=reason)

    def _segments_batch(self, index: int, obj: dict[str, Any]) -> None:
        count = obj["count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise _Malformed("count")
        day = obj["time"][:10]
        self.segments[day] = self.segments.get(day, 0) + count

    def _outage(self, index: int, obj: dict[str, Any]) -> None:
        kind = obj["type"]
        if kind in ("camera.silent", "camera.back"):
            _str(obj, "camera")
            _time(obj, "since" if kind == "camera.silent" else "silent_since")
        else:
            if not isinstance(obj["cameras"], list):
                raise _Malformed("cameras")
            for key in ("since",) if kind == "outage.correlated" else ("from", "to"):
                _time(obj, key)
        entry = _body(obj, index)
        entry["type"] = obj["type"]
        self.outages.append(entry)

    # -- geography -----------------------------------------------------------

    def _district_defined(self, index: int, obj: dict[str, Any]) -> None:
        district = _str(obj, "district")
        body = _body(obj, index)
        body["defined"] = body.pop("time")
        self.districts[district] = body

    def _district_removed(self, index: int, obj: dict[str, Any]) -> None:
        self.districts.pop(_str(obj, "district"), None)

    def _place_defined(self, index: int, obj: dict[str, Any]) -> None:
        place = _str(obj, "place")
        for key in ("lat", "lon"):
            if isinstance(obj[key], bool) or not isinstance(obj[key], int | float):
                raise _Malformed(key)
        body = _body(obj, index)
        body["defined"] = body.pop("time")
        self.places[place] = body

    def _place_removed(self, index: int, obj: dict[str, Any]) -> None:
        self.places.pop(_str(obj, "place"), None)

    # -- people and policy ---------------------------------------------------

    def _user_added(self, index: int, obj: dict[str, Any]) -> None:
        user, role = _str(obj, "user"), _str(obj, "role")
        self.users[user] = {
            "role": role,
            "scope": obj.get("scope", "all"),
            "active": True,
            "added": obj["time"],
            "revoked": None,
        }

    def _user_revoked(self, index: int, obj: dict[str, Any]) -> None:
        known = self.users.get(_str(obj, "user"))
        if known is not None:
            known.update(active=False, revoked=obj["time"])

    def _policy_changed(self, index: int, obj: dict[str, Any]) -> None:
        version = obj["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise _Malformed("version")
        if not isinstance(obj["policy"], dict):
            raise _Malformed("policy")
        body = _body(obj, index)
        self.policy = body
        self.policies.append(
            {"version": version, "sha256": obj.get("sha256"), "time": obj["time"], "index": index}
        )

    # -- access --------------------------------------------------------------

    def _requested(self, index: int, obj: dict[str, Any]) -> None:
        request = _str(obj, "request")
        _str(obj, "purpose")
        districts = obj.get("districts", [])
        if not isinstance(districts, list) or not all(isinstance(d, str) for d in districts):
            raise _Malformed("districts")
        body = _body(obj, index)
        body.update(
            approvals=[],
            denials=[],
            released=[],
            exported=[],
            disclosed=None,
            revealed=None,
            expired=False,
        )
        self.requests[request] = body

    def _approved(self, index: int, obj: dict[str, Any]) -> None:
        _time(obj, "expires")
        req = self.requests.get(_str(obj, "request"))
        if req is not None:
            req["approvals"].append(_body(obj, index))

    def _denied(self, index: int, obj: dict[str, Any]) -> None:
        req = self.requests.get(_str(obj, "request"))
        if req is not None:
            req["denials"].append(_body(obj, index))

    def _released(self, index: int, obj: dict[str, Any]) -> None:
        if not isinstance(obj["segments"], list):
            raise _Malformed("segments")
        req = self.requests.get(_str(obj, "request"))
        if req is not None:
            req["released"].append(_body(obj, index))

    def _exported(self, index: int, obj: dict[str, Any]) -> None:
        release = obj.get("release")
        if isinstance(release, bool) or not isinstance(release, int):
            raise _Malformed("release")
        if not isinstance(obj.get("output"), dict):
            raise _Malformed("output")
        req = self.requests.get(_str(obj, "request"))
        if req is not None:
            req["exported"].append(_body(obj, index))

    def _expired(self, index: int, obj: dict[str, Any]) -> None:
        req = self.requests.get(_str(obj, "request"))
        if req is not None:
            req["expired"] = True
            req["expired_at"] = obj["time"]

    def _disclosed(self, index: int, obj: dict[str, Any]) -> None:
        _time(obj, "from")
        _time(obj, "to")
        if not isinstance(obj["cameras"], list):
            raise _Malformed("cameras")
        req = self.requests.get(_str(obj, "request"))
        if req is not None:
            req["disclosed"] = _body(obj, index)

    def _revealed(self, index: int, obj: dict[str, Any]) -> None:
        req = self.requests.get(_str(obj, "request"))
        if req is not None:
            req["revealed"] = _body(obj, index)

    def _live_revoked(self, index: int, obj: dict[str, Any]) -> None:
        req = self.requests.get(_str(obj, "request"))
        if req is not None and "revoked" not in req:
            req["revoked"] = _body(obj, index)

    def _viewed(self, index: int, obj: dict[str, Any]) -> None:
        if not isinstance(obj["segments"], list):
            raise _Malformed("segments")
        req = self.requests.get(_str(obj, "request"))
        if req is not None:
            req.setdefault("viewed", []).append({"index": index, "time": obj["time"],
                                                 "segments": obj["segments"]})  # fmt: skip

    def _flagged(self, index: int, obj: dict[str, Any]) -> None:
        flag = _str(obj, "flag")
        _str(obj, "rule")
        body = _body(obj, index)
        body["resolved"] = None
        self.flags[flag] = body

    def _resolved(self, index: int, obj: dict[str, Any]) -> None:
        flag = self.flags.get(_str(obj, "flag"))
        if flag is not None:
            flag["resolved"] = _body(obj, index)

    def _retention(self, index: int, obj: dict[str, Any]) -> None:
        entry = _body(obj, index)
        entry["type"] = obj["type"]
        self.retention.append(entry)


_Handler = Callable[[PublicState, int, dict[str, Any]], None]

_HANDLERS: dict[str, _Handler] = {
    "camera.registered": PublicState._camera_registered,
    "camera.changed": PublicState._camera_changed,
    "camera.retired": PublicState._camera_retired,
    "segments.batch": PublicState._segments_batch,
    "district.defined": PublicState._district_defined,
    "district.removed": PublicState._district_removed,
    "place.defined": PublicState._place_defined,
    "place.removed": PublicState._place_removed,
    "user.added": PublicState._user_added,
    "user.revoked": PublicState._user_revoked,
    "policy.changed": PublicState._policy_changed,
    "access.requested": PublicState._requested,
    "access.approved": PublicState._approved,
    "access.denied": PublicState._denied,
    "access.released": PublicState._released,
    "access.exported": PublicState._exported,
    "access.expired": PublicState._expired,
    "access.disclosed": PublicState._disclosed,
    "access.revealed": PublicState._revealed,
    "access.revoked": PublicState._live_revoked,
    "access.viewed": PublicState._viewed,
    "anomaly.flagged": PublicState._flagged,
    "anomaly.resolved": PublicState._resolved,
    **{kind: PublicState._outage for kind in OUTAGE_TYPES},
}


def replay(entries: Iterable[tuple[int, bytes]]) -> PublicState:
    """A fresh state with every ``(index, canonical JSON bytes)`` entry applied in order."""
    state = PublicState()
    for index, raw in entries:
        state.apply_bytes(index, raw)
    return state


class _EntrySource(Protocol):
    """Anything with a store that reads entries: a :class:`~custodes.ledger.log.Log`
    or a :class:`~custodes.ledger.reader.LogReader`."""

    @property
    def store(self) -> Any: ...


def entries_from_log(
    log: _EntrySource, start: int = 0, stop: int | None = None, *, batch: int = 4096
) -> Iterator[tuple[int, bytes]]:
    """``(index, entry)`` for entries ``start`` to ``stop`` (default: the signed size).

    Reads the store in batches so that a large log is never held in memory.
    """
    store = log.store
    end = store.integrated().size if stop is None else stop
    at = start
    while at < end:
        upto = min(end, at + batch)
        rows = store.read_entries(at, upto)
        if len(rows) != upto - at:
            raise FormatError(f"the store returned {len(rows)} entries for {at}..{upto}")
        for offset, raw in enumerate(rows):
            yield at + offset, bytes(raw)
        at = upto
