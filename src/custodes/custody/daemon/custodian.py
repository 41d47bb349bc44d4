"""A custodian's directory and its part in each epoch's DKG.

The directory (``custodes --data C custodian init``), mode 0700, files 0600::

    C/custodian.key    its signed-note signing key (Ed25519), like the log's and witnesses'
    C/state.json       its CustodianState: encryption key, epoch shares, epochs shredded
    C/pending/E.json   its dealing and extraction for epoch E, written before the dealing
                       is posted, so that a restart re-posts the same dealing (a second,
                       different one would be equivocation), removed once E's share is held
    C/answers.jsonl    every answer it gave, one JSON line each, fsynced before it is sent

:func:`dkg_actions` is the custodian's move in the DKG: given what the log says
(:class:`~.ledger.CustodyLog`), the signed entries it should post now.  It is idempotent:
run again before its entries are logged, it returns the same ones (the caller keeps a
record of what it has sent, see :class:`~.service.Follower`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custodes.custody.daemon.entries import (
    CustodianSet,
    epoch_bounds,
    format_ms,
    sign_entry,
    upcoming,
)
from custodes.custody.daemon.ledger import CustodyLog, EpochView
from custodes.custody.dkg import (
    Dealing,
    Extraction,
    check_extraction,
    combine_share,
    deal,
    make_complaint,
    make_reveal,
    open_share,
)
from custodes.custody.errors import CustodyFormatError, DealingError
from custodes.custody.keys import Roster
from custodes.custody.state import CustodianState
from custodes.errors import UsageError
from custodes.tlog import Signer, generate_key

__all__ = ["CustodianDir", "dkg_actions", "epochs_to_prepare"]


def _write(path: Path, data: bytes) -> None:
    """Atomically, durably, 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass
class CustodianDir:
    path: Path
    signer: Signer
    state: CustodianState
    _seen: tuple[int, int] = (0, 0)

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def vkey(self) -> str:
        return self.signer.verifier().key

    @classmethod
    def init(cls, path: Path, name: str) -> CustodianDir:
        if (path / "custodian.key").exists():
            raise UsageError(f"{path} already holds a custodian; refusing to overwrite it")
        try:
            skey, _ = generate_key(name)
        except Exception as exc:
            raise UsageError(f"{name!r} cannot name a key: {exc}") from None
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        (path / "pending").mkdir(mode=0o700, exist_ok=True)
        state = CustodianState.create(name)
        _write(path / "state.json", state.dumps().encode())
        _write(path / "custodian.key", (skey + "\n").encode())
        c = cls(path, Signer.from_key(skey), state)
        c.refresh()
        return c

    @classmethod
    def load(cls, path: Path) -> CustodianDir:
        key = path / "custodian.key"
        if not key.exists():
            raise UsageError(f"{path} holds no custodian; run `custodian init` first")
        signer = Signer.from_key(key.read_text().strip())
        state = CustodianState.loads((path / "state.json").read_bytes())
        if signer.name != state.name:
            raise UsageError(f"{path}: the signing key and the state name different custodians")
        (path / "pending").mkdir(mode=0o700, exist_ok=True)
        c = cls(path, signer, state)
        c.refresh()
        return c

    def refresh(self) -> None:
        """Reload the state if another process (``custodian shred``) has changed it."""
        st = os.stat(self.path / "state.json")
        if (st.st_mtime_ns, st.st_size) != self._seen:
            self.state = CustodianState.loads((self.path / "state.json").read_bytes())
            self._seen = (st.st_mtime_ns, st.st_size)

    def save(self, state: CustodianState) -> None:
        """Write ``state``, merged with the file: the serve process and ``custodian shred``
        both write it, so a shredding on disk is kept (a share never comes back) and so is a
        share the other process added."""
        with _locked(self.path / "state.lock"):
            self._save(state)

    def _save(self, state: CustodianState) -> None:
        disk = CustodianState.loads((self.path / "state.json").read_bytes())
        if disk.shredded - state.shredded:
            state = state.shred(disk.shredded)
        for epoch, share in disk.shares.items():  # one written meanwhile by the other process
            if epoch not in state.shares and epoch not in state.shredded:
                state = state.add_share(share)
        _write(self.path / "state.json", state.dumps().encode())
        self.state = state
        st = os.stat(self.path / "state.json")
        self._seen = (st.st_mtime_ns, st.st_size)

    def pending(self, epoch: str) -> dict[str, Any] | None:
        p = self.path / "pending" / f"{epoch}.json"
        if not p.exists():
            return None
        obj: dict[str, Any] = json.loads(p.read_bytes())
        return obj

    def save_pending(self, epoch: str, dealing: Dealing, extraction: Extraction) -> None:
        doc = {"dealing": dealing.to_json(), "extraction": extraction.to_json()}
        _write(self.path / "pending" / f"{epoch}.json", json.dumps(doc).encode())

    def drop_pending(self, epoch: str) -> None:
        (self.path / "pending" / f"{epoch}.json").unlink(missing_ok=True)

    def shred_before(self, day: str) -> list[str]:
        """Destroy the shares of every epoch ending on or before ``day`` 00:00 UTC."""
        cutoff, _ = epoch_bounds(day)
        gone = []
        for e in sorted(self.state.shares):
            if epoch_bounds(e)[1] <= cutoff:
                gone.append(e)
        for p in sorted((self.path / "pending").glob("*.json")):
            e = p.stem
            try:
                if epoch_bounds(e)[1] <= cutoff:
                    gone.append(e)
                    p.unlink()
            except CustodyFormatError:
                continue
        gone = sorted(set(gone))
        self.save(self.state.shred(gone))
        return gone

    def append_answer(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path / "answers.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def answers(self) -> bytes:
        try:
            return (self.path / "answers.jsonl").read_bytes()
        except FileNotFoundError:
            return b""


def epochs_to_prepare(now_ms: int, ahead: int) -> list[str]:
    """Today's epoch and the next ``ahead``."""
    return upcoming(now_ms, ahead)


def _signed(me: CustodianDir, cset: CustodianSet, body: dict[str, Any], now: int) -> dict[str, Any]:
    return sign_entry({**body, "set": cset.number}, me.signer, time_ms=now)


def dkg_actions(
    me: CustodianDir, log: CustodyLog, now_ms: int, *, ahead: int = 1
) -> list[tuple[str, dict[str, Any]]]:
    """What to post now, as ``(key, entry)`` pairs; ``key`` names the action once."""
    out: list[tuple[str, dict[str, Any]]] = []
    for epoch in epochs_to_prepare(now_ms, ahead):
        if epoch in me.state.shredded or log.gone(epoch):
            continue
        view = log.view(epoch)
        if view is None:
            cset = log.current
            if cset is None or cset.position(me.name) is None:
                continue
            out.extend(_deal(me, cset, epoch, now_ms))
            continue
        out.extend(_step(me, view, now_ms))
    return out


def _deal(
    me: CustodianDir, cset: CustodianSet, epoch: str, now: int
) -> list[tuple[str, dict[str, Any]]]:
    j = cset.position(me.name)
    assert j is not None
    roster = Roster(epoch, cset.threshold, tuple(c.key for c in cset.custodians))
    kept = me.pending(epoch)
    if kept is not None:
        dealing = Dealing.from_json(kept["dealing"], roster)
    else:
        dealing, extraction = deal(roster, j)
        me.save_pending(epoch, dealing, extraction)
    return [(f"{epoch}:dealing", _signed(me, cset, dealing.to_json(), now))]


def _step(me: CustodianDir, v: EpochView, now_ms: int) -> list[tuple[str, dict[str, Any]]]:
    cset, roster, epoch = v.cset, v.roster, v.epoch
    j = cset.position(me.name)
    if j is None or v.failed:
        return []
    if roster.keys[j - 1] != me.state.encryption_key.public:
        return []  # this directory's key is not the one the set names
    key = me.state.encryption_key
    out: list[tuple[str, dict[str, Any]]] = []

    def post(name: str, body: dict[str, Any]) -> None:
        out.append((f"{epoch}:{name}", _signed(me, cset, body, now_ms)))

    complained = {c.dealer for c in v.complaints1 + v.complaints2 if c.complainer == j}
    if 1 not in v.closed:
        if all(d.dealer != j for d in v.dealings):
            out.extend(_deal(me, cset, epoch, now_ms))
        for d in v.dealings:
            try:
                open_share(roster, d, j, key)
            except DealingError:
                if d.dealer not in complained:
                    post(f"complaint:{d.dealer}", make_complaint(roster, d, j, key).to_json())
        dealers = {d.dealer for d in v.dealings}
        if len(dealers) == roster.n and j not in v.checked[1]:
            post("checked:1", {"type": "custody.checked", "epoch": epoch, "phase": 1})
        if now_ms >= v.opened_ms + cset.dkg_deadline_s * 1000:
            post("close:1", {"type": "custody.close", "epoch": epoch, "phase": 1})
        return out
    qual = v.qualified or ()
    by_dealer = {d.dealer: d for d in v.dealings}
    if 2 not in v.closed:
        if j in qual and all(x.dealer != j for x in v.extractions):
            kept = me.pending(epoch)
            if kept is not None:
                post("extraction", Extraction.from_json(kept["extraction"], roster).to_json())
        for x in v.extractions:
            dx = by_dealer.get(x.dealer)
            if dx is None:
                continue
            try:
                check_extraction(roster, dx, x, j, key)
            except DealingError:
                if x.dealer not in complained:
                    post(f"complaint:{x.dealer}", make_complaint(roster, dx, j, key).to_json())
        if {x.dealer for x in v.extractions} >= set(qual) and j not in v.checked[2]:
            post("checked:2", {"type": "custody.checked", "epoch": epoch, "phase": 2})
        if now_ms >= v.closed[1] + cset.dkg_deadline_s * 1000:
            post("close:2", {"type": "custody.close", "epoch": epoch, "phase": 2})
        return out
    revealed = {r.dealer for r in v.reveals if r.complainer == j}
    for dealer in v.missing:
        if dealer not in revealed and dealer in by_dealer:
            post(f"reveal:{dealer}", make_reveal(roster, by_dealer[dealer], j, key).to_json())
    if v.public is None:
        return out
    if epoch not in me.state.shares:
        share = combine_share(roster, v.public, v.dealings, j, key)
        me.save(me.state.add_share(share))
        me.drop_pending(epoch)
    if v.logged is None:
        start, end = epoch_bounds(epoch)
        post(
            "epoch",
            {
                "type": "custody.epoch",
                "epoch": epoch,
                "starts": format_ms(start),
                "ends": format_ms(end),
                "key": v.public.to_json(),
            },
        )
    return out
