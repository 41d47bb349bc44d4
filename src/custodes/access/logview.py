"""What the log says about access, built from log entries alone.

The gateway decides from this, not from its private tables: ``access.db``,
the identity store and ``policy.json`` are caches an insider can edit, the
log is not (its entries are in a signed, witnessed tree).  A :class:`LogView`
is fed every ``user.*``, ``policy.changed``, ``camera.*`` and ``access.*``
entry in log order and answers:

* each account's role, scope and whether it is active (by pseudonym);
* the policy in force at any time, and every version logged;
* where each camera was at any time (from ``camera.registered`` and
  ``camera.changed``), so that sensitivity is judged by where a camera was
  when it recorded, not where it is now;
* each request's entries (its ``access.requested``, every decision, expiry,
  release, disclosure and reveal) and the state they add up to.

It holds no secret and reads no private store; :meth:`LogView.catch_up`
reads the log's own entries past what it has seen.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from custodes.access.identity import Scope
from custodes.access.policy import Policy
from custodes.errors import VerificationError
from custodes.fleet.model import parse_time
from custodes.tlog.merkle import RightEdge, leaf_hash

__all__ = ["Account", "Decided", "LogView", "RequestView", "TYPES"]

TYPES = (b'"type":"access.', b'"type":"user.', b'"type":"policy.', b'"type":"camera.')
DECIDERS = ("approver", "judge")


@dataclass(frozen=True)
class Account:
    """An account as the log knows it: pseudonym, role, scope, active, and since which entry."""

    pseudonym: str
    role: str
    scope: Scope
    active: bool
    index: int


@dataclass(frozen=True)
class Decided:
    """One ``access.approved`` or ``access.denied`` entry."""

    index: int
    approver: str
    role: str
    approved: bool
    unredacted: bool
    time_ms: int
    expires_ms: int | None
    valid: bool
    """The approver was, by the log, an active account of that role, in scope, and not
    the requester, when the decision was logged."""


@dataclass
class RequestView:
    """A request's own entries, in log order."""

    index: int
    entry: dict[str, Any]
    decisions: list[Decided] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    release_entry: dict[str, Any] | None = None
    """The first ``access.released`` entry (what left, and its digest)."""
    disclosed: list[int] = field(default_factory=list)
    revealed: list[int] = field(default_factory=list)

    @property
    def places(self) -> list[tuple[str | None, tuple[str, ...]]]:
        """(district, groups) of its cameras; v1 entries carry districts only."""
        raw = self.entry.get("places")
        if isinstance(raw, list):
            return [(p[0] or None, tuple(p[1])) for p in raw]
        return [(d, ()) for d in self.entry.get("districts", [])] or [(None, ())]

    @property
    def needs(self) -> tuple[int, bool]:
        n = self.entry.get("needs", {})
        return int(n.get("approvals", 1)), bool(n.get("judge", False))


class LogView:
    """Accounts, policies, camera positions and requests, from the log's entries alone."""

    def __init__(self) -> None:
        self.size = 0
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.policies: list[tuple[int, int, int, dict[str, Any]]] = []
        """(index, version, time_ms, document) per ``policy.changed``, in log order."""
        self.positions: dict[str, list[tuple[int, float, float]]] = {}
        """camera id -> [(from time_ms, lat, lon)], in log order."""
        self.requests: dict[str, RequestView] = {}
        self.moves: list[tuple[int, str, tuple[float, float], tuple[float, float]]] = []
        self._move_times: dict[int, str] = {}
        """(index, camera, old, new) for every logged change of a camera's position."""
        self._parsed: dict[int, Policy] = {}
        self._edge = RightEdge()

    # -- feeding ----------------------------------------------------------------------

    def catch_up(self, store: Any, checkpoint: tuple[int, bytes] | None = None) -> int:
        """Feed the entries the log holds past :attr:`size`; returns how many.

        With ``checkpoint`` (size, root hash of a signed checkpoint), the entries
        read must hash to that root at that size, or VerificationError: a view
        built from entries the signed tree does not hold is refused.
        """
        with self.lock:
            stop = store.next_index()
            n = 0
            while self.size < stop:
                upto = min(stop, self.size + 8192)
                if checkpoint is not None and self.size < checkpoint[0] < upto:
                    upto = checkpoint[0]
                raw = store.read_entries(self.size, upto)
                self.feed_raw(self.size, raw)
                n += len(raw)
                if checkpoint is not None and self.size == checkpoint[0]:
                    self._check_root(*checkpoint)
            if checkpoint is not None and self.size < checkpoint[0]:
                raise VerificationError(
                    f"the log's store holds {self.size} entries but its signed checkpoint"
                    f" {checkpoint[0]}, so the caches are not rebuilt from it"
                )
            return n

    def follow(self, tail: Any) -> bool:
        """Catch up from the writer's :class:`~custodes.ledger.tail.AppendTail` alone,
        without the store's lock; False when the tail no longer keeps what is missing
        (then :meth:`catch_up` from the store)."""
        with self.lock:
            stop = tail.end
            if self.size >= stop:
                return True
            got = tail.read(self.size, stop)
            if got is None:
                return False
            self.feed_raw(self.size, got)
            return True

    def _check_root(self, size: int, root: bytes) -> None:
        if size and self._edge.root() != root:
            raise VerificationError(
                f"the log's first {size} entries do not hash to the root of its signed"
                " checkpoint: an entry was changed in the store, so nothing is built from it"
            )

    def feed_raw(self, start: int, raw: Iterable[bytes]) -> None:
        with self.lock:
            if start != self._edge.size:
                raise ValueError(f"entries fed from {start}, but the view holds {self._edge.size}")
            raw = list(raw)
            self._edge.extend([leaf_hash(d) for d in raw])
            i = start
            for data in raw:
                if any(t in data for t in TYPES):
                    try:
                        obj = json.loads(data)
                    except ValueError:
                        obj = None
                    if isinstance(obj, dict):
                        self.feed(i, obj)
                i += 1
            self.size = max(self.size, i)

    def feed(self, index: int, obj: dict[str, Any]) -> None:
        """Take in one entry (any type; what is not about access is ignored)."""
        kind = obj.get("type")
        try:
            at = parse_time(obj["time"], "time")
        except (KeyError, TypeError, ValueError, Exception):
            return
        if kind in ("user.added", "user.changed"):
            try:
                scope = Scope.from_entry(obj["scope"])
            except Exception:
                return
            self.accounts[obj["user"]] = Account(obj["user"], obj["role"], scope, True, index)
        elif kind == "user.revoked":
            old = self.accounts.get(obj.get("user", ""))
            if old is not None:
                self.accounts[old.pseudonym] = Account(
                    old.pseudonym, old.role, old.scope, False, index
                )
        elif kind == "policy.changed":
            doc = obj.get("policy")
            if isinstance(doc, dict) and isinstance(obj.get("version"), int):
                self.policies.append((index, obj["version"], at, doc))
        elif kind == "camera.registered":
            cam = obj.get("camera", {})
            if isinstance(cam, dict) and "id" in cam and "lat" in cam and "lon" in cam:
                self.positions.setdefault(cam["id"], []).append(
                    (at, float(cam["lat"]), float(cam["lon"]))
                )
        elif kind == "camera.changed":
            ch = obj.get("changes", {})
            past = self.positions.get(obj.get("camera", ""))
            if isinstance(ch, dict) and past and ("lat" in ch or "lon" in ch):
                _t, lat, lon = past[-1]
                new = (
                    float(ch["lat"]) if ch.get("lat") is not None else lat,
                    float(ch["lon"]) if ch.get("lon") is not None else lon,
                )
                past.append((at, *new))
                self.moves.append((index, obj["camera"], (lat, lon), new))
                self._move_times[index] = obj["time"]
        elif isinstance(kind, str) and kind.startswith("access."):
            self._feed_access(index, kind, obj, at)

    def _feed_access(self, index: int, kind: str, obj: dict[str, Any], at: int) -> None:
        rid = obj.get("request")
        if not isinstance(rid, str):
            return
        if kind == "access.requested":
            if rid not in self.requests:
                self.requests[rid] = RequestView(index, obj)
            return
        req = self.requests.get(rid)
        if req is None:
            return
        if kind in ("access.approved", "access.denied"):
            approved = kind == "access.approved"
            who = obj.get("approver", "")
            expires = None
            if approved:
                try:
                    expires = parse_time(obj["expires"], "expires")
                except Exception:
                    expires = 0
            req.decisions.append(
                Decided(
                    index, who, str(obj.get("role", "")), approved,
                    bool(obj.get("unredacted", False)), at, expires,
                    self._valid_decider(who, str(obj.get("role", "")), req),
                )
            )  # fmt: skip
        elif kind == "access.expired":
            req.expired.append(index)
        elif kind == "access.released":
            req.released.append(index)
            if req.release_entry is None:
                req.release_entry = obj
        elif kind == "access.disclosed":
            req.disclosed.append(index)
        elif kind == "access.revealed":
            req.revealed.append(index)

    def _valid_decider(self, who: str, role: str, req: RequestView) -> bool:
        acc = self.accounts.get(who)
        return (
            acc is not None
            and acc.active
            and acc.role in DECIDERS
            and acc.role == role
            and who != req.entry.get("requester")
            and all(acc.scope.covers(d, g) for d, g in req.places)
        )

    # -- questions --------------------------------------------------------------------

    def policy(self) -> tuple[int, dict[str, Any]] | None:
        """(version, document) of the latest ``policy.changed``, or None."""
        with self.lock:
            if not self.policies:
                return None
            _i, version, _t, doc = self.policies[-1]
            return version, doc

    def policies_during(self, from_ms: int, to_ms: int) -> list[Policy]:
        """Every logged policy in force at some time in [from_ms, to_ms], and the latest."""
        with self.lock:
            out: list[Policy] = []
            for k, (_i, version, at, doc) in enumerate(self.policies):
                until = self.policies[k + 1][2] if k + 1 < len(self.policies) else None
                latest = until is None
                if latest or (at <= to_ms and until is not None and until > from_ms):
                    if version not in self._parsed:
                        self._parsed[version] = Policy.parse(doc, version)
                    out.append(self._parsed[version])
            return out

    def positions_during(self, camera: str, from_ms: int, to_ms: int) -> list[tuple[float, float]]:
        """Every position the log held for the camera at some time in [from_ms, to_ms]."""
        with self.lock:
            hist = self.positions.get(camera, [])
            out: list[tuple[float, float]] = []
            for k, (at, lat, lon) in enumerate(hist):
                until = hist[k + 1][0] if k + 1 < len(hist) else None
                if (until is None or until > from_ms) and (at <= to_ms or k == 0):
                    out.append((lat, lon))
            return out

    def entry_time(self, index: int) -> str:
        """The time of a camera move the view holds (see :attr:`moves`)."""
        return self._move_times[index]

    def account(self, pseudonym: str) -> Account | None:
        with self.lock:
            return self.accounts.get(pseudonym)

    def request(self, rid: str) -> RequestView | None:
        with self.lock:
            return self.requests.get(rid)

    def status(self, rid: str, now: int, request_ttl_s: int) -> dict[str, Any] | None:
        """The request's state by the log: pending, approved, denied, expired or released.

        Only valid decisions count (:attr:`Decided.valid`), one per approver; an
        approval counts until its expiry.  None if the log has no such request.
        """
        with self.lock:
            req = self.requests.get(rid)
            if req is None:
                return None
            seen: set[str] = set()
            yes: list[Decided] = []
            no: list[Decided] = []
            for d in req.decisions:
                if d.approver in seen or not d.valid:
                    continue
                seen.add(d.approver)
                (yes if d.approved else no).append(d)
            approvals, judge = req.needs
            complete = len(yes) >= approvals and (not judge or any(d.role == "judge" for d in yes))
            expires = min((d.expires_ms or 0) for d in yes) if complete else None
            created = parse_time(req.entry["time"], "time")
            if req.released:
                state = "released"
            elif no:
                state = "denied"
            elif req.expired:
                state = "expired"
            elif complete:
                state = "approved" if expires is not None and now < expires else "expired"
            elif now >= created + request_ttl_s * 1000:
                state = "expired"
            else:
                state = "pending"
            return {
                "state": state,
                "approvals": yes,
                "denials": no,
                "complete": complete,
                "expires": expires,
                "requested": req.index,
            }
