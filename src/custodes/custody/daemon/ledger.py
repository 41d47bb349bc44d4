"""What the log says about custody: the custodian sets, each epoch's DKG, shredding.

:class:`CustodyLog` is fed the log's entries in order and keeps the custody ones whose
signatures verify (:mod:`.entries`).  :meth:`CustodyLog.view` then works out an epoch's
DKG from its messages alone, the same way on every custodian and every auditor:

1. the epoch's set is the one its first dealing names, which must be the set in force
   when it was logged; every later message must name the same set;
2. phase 1 (dealings, complaints) is open from the first dealing until the entry that
   completes a ``custody.checked`` (phase 1) from every custodian, or a ``custody.close``
   (phase 1) timed at least ``dkg_deadline_s`` after the first dealing; later phase-1
   messages are ignored.  QUAL is fixed from what came before (:func:`~..dkg.qualify`);
3. phase 2 (extractions of QUAL, complaints against them) is open from there until the
   same rule closes it, counted from the entry that closed phase 1;
4. after that, reveals reconstruct any qualified dealer whose extraction is missing or
   was complained about; the epoch key is then :func:`~..dkg.epoch_key` of all this.  A
   ``custody.epoch`` entry counts only if it equals that recomputation.

An epoch is *gone* once ``n - t + 1`` of its custodians logged ``custody.shredded`` for it:
fewer than ``t`` shares can remain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from custodes.custody.daemon.entries import (
    DKG_KINDS,
    CustodianSet,
    accept_set,
    check_signed,
    epoch_bounds,
    upcoming,
)
from custodes.custody.dkg import Complaint, Dealing, Extraction, needs_reconstruction, qualify
from custodes.custody.dkg import epoch_key as compute_epoch_key
from custodes.custody.errors import CustodyFormatError, DKGFailedError
from custodes.custody.keys import EpochPublic, Roster
from custodes.errors import CustodesError

__all__ = ["CustodyLog", "EpochView", "Message"]


@dataclass(frozen=True, slots=True)
class Message:
    index: int
    kind: str
    author: int
    body: dict[str, Any]
    time_ms: int


@dataclass
class EpochView:
    """One epoch's DKG as the log has it so far."""

    epoch: str
    cset: CustodianSet
    roster: Roster
    opened_ms: int
    dealings: list[Dealing] = field(default_factory=list)
    complaints1: list[Complaint] = field(default_factory=list)
    complaints2: list[Complaint] = field(default_factory=list)
    extractions: list[Extraction] = field(default_factory=list)
    reveals: list[Complaint] = field(default_factory=list)
    checked: dict[int, set[int]] = field(default_factory=lambda: {1: set(), 2: set()})
    closed: dict[int, int] = field(default_factory=dict)  # phase -> time it closed (ms)
    qualified: tuple[int, ...] | None = None
    missing: tuple[int, ...] = ()
    public: EpochPublic | None = None
    logged: EpochPublic | None = None  # a custody.epoch equal to ``public``
    failed: str | None = None

    @property
    def state(self) -> str:
        if self.failed:
            return "failed"
        if self.logged is not None:
            return "ready"
        return "in progress"


class CustodyLog:
    """The custody entries of one log, folded in log order."""

    def __init__(self) -> None:
        self.size = 0
        self.sets: list[CustodianSet] = []
        self.rejected: list[tuple[int, str]] = []
        self._messages: dict[str, list[Message]] = {}
        self._epoch_set: dict[str, CustodianSet] = {}
        self.shredded: dict[str, set[str]] = {}  # epoch -> custodians' names
        self._views: dict[str, EpochView] = {}

    @property
    def current(self) -> CustodianSet | None:
        return self.sets[-1] if self.sets else None

    def epochs(self) -> list[str]:
        return sorted(set(self._messages) | set(self.shredded))

    def feed(self, index: int, obj: Any) -> None:
        """Entry ``index`` (parsed JSON); entries must come in order, each once."""
        self.size = index + 1
        kind = obj.get("type") if isinstance(obj, dict) else None
        if not isinstance(kind, str) or not kind.startswith("custody."):
            return
        try:
            self._feed(index, kind, obj)
        except CustodyFormatError as exc:
            self.rejected.append((index, str(exc)))

    def feed_raw(self, index: int, raw: bytes) -> None:
        """Entry ``index`` as the log stores it; entries of other kinds are skipped unparsed."""
        if b'"custody.' not in raw:
            self.size = index + 1
            return
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        self.feed(index, obj)

    def _feed(self, index: int, kind: str, obj: dict[str, Any]) -> None:
        if kind == "custody.set":
            self.sets.append(accept_set(obj, self.current, index))
            return
        if kind == "custody.shredded":
            cset = self.current
            if cset is None:
                raise CustodyFormatError("no custodian set is logged")
            j, body, _ = check_signed(obj, cset)
            epochs = body.get("epochs")
            if not isinstance(epochs, list) or not all(isinstance(e, str) for e in epochs):
                raise CustodyFormatError("custody.shredded: epochs is a list of epochs")
            for e in epochs:
                self.shredded.setdefault(e, set()).add(cset.custodians[j - 1].name)
            return
        if kind not in DKG_KINDS:
            raise CustodyFormatError(f"unknown custody entry type {kind}")
        epoch = obj.get("epoch")
        number = obj.get("set")
        if not isinstance(epoch, str):
            raise CustodyFormatError("a DKG message names its epoch")
        cset = self._epoch_set.get(epoch)
        if cset is None:
            if kind != "custody.dealing" or self.current is None:
                raise CustodyFormatError(f"epoch {epoch} has no dealing yet")
            cset = self.current
        if number != cset.number:
            raise CustodyFormatError(f"epoch {epoch} is dealt under set {cset.number}")
        author, body, time_ms = check_signed(obj, cset)
        self._epoch_set[epoch] = cset
        self._messages.setdefault(epoch, []).append(Message(index, kind, author, body, time_ms))
        self._views.pop(epoch, None)

    def epoch_set(self, epoch: str) -> CustodianSet | None:
        return self._epoch_set.get(epoch)

    def messages(self, epoch: str) -> list[Message]:
        return list(self._messages.get(epoch, ()))

    def gone(self, epoch: str) -> bool:
        cset = self._epoch_set.get(epoch) or self.current
        if cset is None:
            return False
        names = {c.name for c in cset.custodians}
        return len(self.shredded.get(epoch, set()) & names) >= cset.n - cset.threshold + 1

    def view(self, epoch: str) -> EpochView | None:
        if epoch not in self._views:
            msgs = self._messages.get(epoch)
            if not msgs:
                return None
            self._views[epoch] = _view(epoch, self._epoch_set[epoch], msgs)
        return self._views[epoch]

    def epoch_public(self, epoch: str) -> EpochPublic | None:
        """The epoch's key, once logged (and equal to the DKG's recomputation); not if gone."""
        v = self.view(epoch)
        return None if v is None or self.gone(epoch) else v.logged

    def unready(self, now_ms: int, ahead: int = 1) -> list[str]:
        """Today's and the next ``ahead`` epochs whose key is not logged yet.

        With custody on, an agent cannot record into such an epoch: the log server reports
        them (``GET /custody/status``) so that an operator sees a stalled DKG in time.
        """
        if self.current is None:
            return []
        return [e for e in upcoming(now_ms, ahead) if self.epoch_public(e) is None]

    def status(self) -> dict[str, Any]:
        """Custodians and epochs, as ``custody status --json`` prints them."""
        cset = self.current
        epochs = []
        for e in self.epochs():
            v = self.view(e)
            state = "gone" if self.gone(e) else (v.state if v else "unknown")
            try:
                start, end = epoch_bounds(e)
            except CustodyFormatError:
                start = end = 0
            epochs.append(
                {
                    "epoch": e,
                    "state": state,
                    "set": v.cset.number if v else None,
                    "qualified": list(v.qualified or ()) if v else [],
                    "public_key": v.logged.to_json()["public_key"] if v and v.logged else None,
                    "shredded_by": sorted(self.shredded.get(e, ())),
                    "starts_ms": start,
                    "ends_ms": end,
                    **({"reason": v.failed} if v and v.failed else {}),
                }
            )
        return {
            "custody": cset is not None,
            "set": None
            if cset is None
            else {
                "number": cset.number,
                "threshold": cset.threshold,
                "index": cset.index,
                "custodians": [
                    {"index": j, "name": c.name, "url": c.url, "vkey": c.vkey}
                    for j, c in enumerate(cset.custodians, 1)
                ],
            },
            "epochs": epochs,
        }


def _view(epoch: str, cset: CustodianSet, msgs: list[Message]) -> EpochView:
    roster = Roster(
        epoch=epoch, threshold=cset.threshold, keys=tuple(c.key for c in cset.custodians)
    )
    deadline = cset.dkg_deadline_s * 1000
    v = EpochView(epoch, cset, roster, opened_ms=msgs[0].time_ms)
    phase2_opened = 0
    epoch_entries: list[dict[str, Any]] = []
    for m in msgs:
        try:
            _apply(v, m, deadline, epoch_entries)
        except CustodyFormatError:
            continue  # a malformed message is its author's fault: as if never sent
        if 1 in v.closed and not phase2_opened:
            phase2_opened = v.closed[1]
    try:
        if 1 in v.closed:
            v.qualified = qualify(roster, v.dealings, v.complaints1)
        if 2 in v.closed and v.qualified is not None:
            v.missing = needs_reconstruction(
                roster, v.dealings, v.qualified, v.extractions, v.complaints2
            )
            try:
                v.public = compute_epoch_key(
                    roster, v.dealings, v.qualified, v.extractions, v.complaints2, v.reveals
                )
            except DKGFailedError:
                v.public = None  # waiting for reveals
    except DKGFailedError as exc:
        v.failed = str(exc)
    except CustodesError as exc:
        v.failed = str(exc)
    if v.public is not None:
        for e in epoch_entries:
            try:
                if EpochPublic.from_json(e.get("key")) == v.public:
                    v.logged = v.public
                    break
            except CustodyFormatError:
                continue
    return v


def _apply(v: EpochView, m: Message, deadline: int, epoch_entries: list[dict[str, Any]]) -> None:
    kind, body, j = m.kind, m.body, m.author
    if kind == "custody.dealing":
        if 1 in v.closed:
            return
        d = Dealing.from_json(body, v.roster)
        if d.dealer != j:
            raise CustodyFormatError("a dealer deals only as itself")
        v.dealings.append(d)
    elif kind in ("custody.complaint", "custody.reveal"):
        c = Complaint.from_json(body, v.roster)
        if c.complainer != j:
            raise CustodyFormatError("a custodian complains only as itself")
        if c.kind == "reveal":
            if 2 in v.closed:
                v.reveals.append(c)
        elif 1 not in v.closed:
            v.complaints1.append(c)
        elif 2 not in v.closed:
            v.complaints2.append(c)
    elif kind == "custody.extraction":
        if 1 not in v.closed or 2 in v.closed:
            return
        x = Extraction.from_json(body, v.roster)
        if x.dealer != j:
            raise CustodyFormatError("a dealer extracts only as itself")
        v.extractions.append(x)
    elif kind in ("custody.checked", "custody.close"):
        phase = body.get("phase")
        if phase not in (1, 2) or phase in v.closed or (phase == 2 and 1 not in v.closed):
            return
        opened = v.opened_ms if phase == 1 else v.closed[1]
        if kind == "custody.checked":
            v.checked[phase].add(j)
            if len(v.checked[phase]) == v.roster.n:
                v.closed[phase] = m.time_ms
        elif m.time_ms >= opened + deadline:
            v.closed[phase] = m.time_ms
    elif kind == "custody.epoch":
        epoch_entries.append(body)
