"""The gateway's reads and its oversight chores: request views, queues, sealed details,
reveals, the sweep (expiries and disclosures) and the anomaly flags.

A mixin of :class:`~custodes.access.service.AccessService`, kept apart so that
the service module holds the decisions (request, approve, deny, release) and
this one what is read around them.  Every read of sealed details by someone
other than the requester is logged first (``access.details_read``).  Under custody
the details are sealed to the custodians (:mod:`custodes.access.sealing`, version 2):
such a read is opened by T custodians, each checking that logged read in a witnessed
checkpoint (:meth:`~custodes.access.opening.Opening.open_details`), and the requester's
own view shows them only when asked with a reason, which is logged as a read too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from custodes.access import entries as E
from custodes.access.identity import User
from custodes.access.requests import Forbidden, RequestRow, check_text, public_view
from custodes.access.sealing import custody_sealed
from custodes.errors import (
    ConflictError,
    CustodesError,
    FormatError,
    NotFoundError,
    VerificationError,
)
from custodes.fleet.model import format_time
from custodes.fleet.model import now_ms as _now_ms

if TYPE_CHECKING:
    import threading

    from custodes.access.identity import Identities
    from custodes.access.logview import LogView
    from custodes.access.policy import Policy
    from custodes.access.requests import AccessDB, DecisionRow

__all__ = ["ReadingMixin"]

DECIDERS = ("approver", "judge")


class ReadingMixin:
    """Reads, reveals, the sweep and flags (see the module's docstring)."""

    db: AccessDB
    ids: Identities
    data: Path
    view: LogView
    _case_key: bytes

    if TYPE_CHECKING:  # what the service provides

        def _fresh(self, user: User, roles: tuple[str, ...], doing: str) -> User: ...
        def _row(self, rid: object) -> RequestRow: ...
        def _status(self, row: RequestRow, now: int) -> dict[str, Any]: ...
        def _open(
            self, row: RequestRow, read: int | None = None
        ) -> tuple[bytes, dict[str, Any]]: ...
        def _commit(self, items: list[tuple[dict[str, Any], str, str]]) -> int: ...
        def _clip_of(self, rid: str, entry: dict[str, Any], index: int) -> tuple[int, str]: ...
        def _lock(self, rid: str) -> threading.Lock: ...
        def _sync(self, verify: bool = False) -> None: ...
        def policy(self, now_ms: int | None = None) -> Policy: ...
        @staticmethod
        def _made_by(user: User, row: RequestRow) -> bool: ...
        def _covers(self, user: User, row: RequestRow) -> bool: ...
        @staticmethod
        def _needs_judge_now(row: RequestRow, yes: list[DecisionRow]) -> bool: ...

    def get(self, user: User, rid: str, now_ms: int | None = None, why: str = "") -> dict[str, Any]:
        """The request's state and public fields; its sealed details for those who may see them.

        The requester reads their own details freely (under custody only with a
        ``why``: the read is logged and the custodians open it).  An approver or judge
        reads them (``why`` defaults to deciding the request) and an auditor
        only with a ``why``; either way ``access.details_read`` is logged
        first, and if the log cannot be written nothing is shown.
        """
        me = self._fresh(user, ("investigator", *DECIDERS, "auditor"), "see requests")
        row = self._row(rid)
        now = _now_ms() if now_ms is None else now_ms
        if me.role == "investigator" and not self._made_by(me, row):
            raise Forbidden("investigators may see only their own requests")
        if me.role in DECIDERS and not self._covers(me, row):
            raise Forbidden("this request is outside your scope")
        out = public_view(row, self._status(row, now))
        if me.role == "investigator" and custody_sealed(row.sealed) and not why:
            out["details"] = None  # sealed to the custodians: opened only for a logged read
        elif me.role == "investigator" and custody_sealed(row.sealed):
            index = self._log_read(me, row, why, now)
            out["details"] = self._open(row, index)[1]
        elif me.role == "investigator":
            out["details"] = self._open(row)[1]
        elif me.role == "auditor" and not why:
            out["details"] = None  # an auditor says why before reading them
        else:
            index = self._log_read(me, row, why or "to decide the request", now)
            out["details"] = self._open(row, index)[1]
        return out

    def _log_read(self, me: User, row: RequestRow, why: str, now: int) -> int:
        """Log ``access.details_read`` durably; raises (and nothing is shown) if it cannot."""
        check_text(why, "reason for reading sealed details", 1000)
        entry = E.access_details_read(row.id, me.pseudonym, me.role, why, now)
        return self._commit([(entry, "", "")])

    def mine(self, user: User, now_ms: int | None = None) -> list[dict[str, Any]]:
        now = _now_ms() if now_ms is None else now_ms
        rows = self.db.requests("requester = ? AND pseudonym = ?", (user.name, user.pseudonym))
        return [public_view(r, self._status(r, now)) for r in rows]

    def queue(self, user: User, now_ms: int | None = None) -> list[dict[str, Any]]:
        """Pending requests this approver or judge may decide."""
        me = self._fresh(user, DECIDERS, "decide requests")
        now = _now_ms() if now_ms is None else now_ms
        since = now - self.policy(now)["request_ttl_s"] * 1000
        out = []
        for row in self.db.requests("created_ms >= ? AND expired_ms IS NULL", (since,)):
            if row.requester == me.name or not self._covers(me, row):
                continue
            st = self._status(row, now)
            if st["state"] != "pending" or any(
                d.pseudonym == me.pseudonym for d in st["approvals"]
            ):
                continue
            if self._needs_judge_now(row, st["approvals"]) and me.role != "judge":
                continue
            out.append(public_view(row, st))
        return out

    def sealed(
        self, user: User, rid: str, why: str = "", now_ms: int | None = None
    ) -> dict[str, Any]:
        """Auditors read the sealed details (salt included) without publishing them.

        ``why`` is required, and ``access.details_read`` is logged durably
        before anything is opened: a log that cannot be written shows nothing.
        """
        me = self._fresh(user, ("auditor",), "read sealed details")
        if not why.strip():
            raise FormatError("say why you read the sealed details: the reason is logged")
        row = self._row(rid)
        now = _now_ms() if now_ms is None else now_ms
        index = self._log_read(me, row, why, now)
        salt, details = self._open(row, index)
        return {
            "request": rid,
            "commitment": row.commitment,
            "salt": salt.hex(),
            "details": details,
            "read_index": index,
        }

    def reveal(
        self, user: User, rid: str, reason: str, now_ms: int | None = None
    ) -> dict[str, Any]:
        """Publish salt and details (``access.revealed``); anyone can check the commitment."""
        me = self._fresh(user, ("auditor", "judge"), "reveal sealed details")
        check_text(reason, "reason for a reveal", 1000)
        now = _now_ms() if now_ms is None else now_ms
        with self._lock(rid):
            row = self._row(rid)
            if row.revealed_ms is not None:
                raise ConflictError(f"request {rid} is already revealed")
            read = self._log_read(me, row, reason, now) if custody_sealed(row.sealed) else None
            salt, details = self._open(row, read)
            entry = E.access_revealed(rid, me.pseudonym, reason, salt, details, now)
            index = self._commit([(entry, "", "")])
        return {"request": rid, "index": index, "commitment": row.commitment,
                "salt": salt.hex(), "details": details}  # fmt: skip

    def sweep(self, now_ms: int | None = None) -> dict[str, int]:
        """Log ``access.expired`` for lapses; ``access.disclosed`` when due."""
        now = _now_ms() if now_ms is None else now_ms
        self._drop_expired_clips(now)
        rows = self.db.requests("expired_ms IS NULL OR disclosed_ms IS NULL")
        if not rows:  # nothing to do, and no reason to log a default policy yet
            return {"expired": 0, "disclosed": 0}
        delay = self.policy(now)["disclosure_delay_s"] * 1000
        items: list[tuple[dict[str, Any], str, str]] = []
        expired = disclosed = 0
        for row in rows:
            st = self._status(row, now)
            if row.expired_ms is None and st["state"] == "expired":
                why = "approval lapsed unused" if st["complete"] else "not decided in time"
                items.append((E.access_expired(row.id, now, why), "", ""))
                expired += 1
            if row.disclosed_ms is None and now >= row.to_ms + delay:
                entry = E.access_disclosed(row.id, list(row.cameras), row.from_ms, row.to_ms, now)
                items.append((entry, "", ""))
                disclosed += 1
        if items:
            self._commit(items)
        return {"expired": expired, "disclosed": disclosed}

    def run_anomaly_rules(self, now_ms: int | None = None) -> list[str]:
        """Evaluate the insider-abuse rules; log ``anomaly.flagged`` for each new finding."""
        from custodes.access.flags import flag_entries

        now = _now_ms() if now_ms is None else now_ms
        items = flag_entries(self.db, lambda: self.policy(now).doc, self._case_key, now)
        items += self._zone_moves(now)
        if items:
            self._commit(items)
        return [str(entry["flag"]) for entry, _, _ in items]

    # -- the released clip, kept until the approval expires ------------------------------

    def _kept(self, rid: str) -> Path:
        folder = self.data / "releases"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / f"{rid}.mp4"

    def download(self, user: User, rid: str, now_ms: int | None = None) -> dict[str, Any]:
        """The released clip again, for its requester, until the approval's expiry.

        It is byte for byte what ``access.released`` names (its sha256 is checked
        first), and ``access.downloaded`` is logged durably before it is handed out.
        Returns the path and the facts to send with it.
        """
        me = self._fresh(user, ("investigator",), "receive footage")
        row = self._row(rid)
        if not self._made_by(me, row):
            raise Forbidden("only the investigator who made the request may receive its footage")
        now = _now_ms() if now_ms is None else now_ms
        st = self.view.status(rid, now, self.policy(now)["request_ttl_s"])
        req = self.view.request(rid)
        if st is None or req is None or req.release_entry is None:
            raise ConflictError(f"request {rid} was not released, so there is no clip to fetch")
        expires = st["expires"]
        path = self._kept(rid)
        if expires is not None and now >= expires:
            path.unlink(missing_ok=True)
            raise Forbidden(
                f"the approval of request {rid} expired at {format_time(expires)}, and its clip"
                " with it"
            )
        released, digest = self._clip_of(rid, req.release_entry, req.released[0])
        try:
            h = hashlib.sha256()
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            same = h.hexdigest() == digest or _archive_of(path, digest)
        except FileNotFoundError:
            raise NotFoundError(
                f"the clip of request {rid} is no longer kept on this server"
            ) from None
        if not same:
            raise VerificationError(
                f"the kept clip of request {rid} is not the one the log names, so it is not sent"
            )
        entry = E.access_downloaded(rid, me.pseudonym, digest, now)
        index = self._commit([(entry, "", "")])
        return {"path": path, "request": rid, "index": index, "sha256": digest,
                "released": released}  # fmt: skip

    def _drop_expired_clips(self, now: int) -> int:
        """Delete kept clips whose approval has expired (the sweep calls this)."""
        folder = self.data / "releases"
        if not folder.is_dir():
            return 0
        gone = 0
        ttl = self.policy(now)["request_ttl_s"]
        for path in folder.glob("r-*.mp4"):
            st = self.view.status(path.stem, now, ttl)
            if st is None or (st["expires"] is not None and now >= st["expires"]):
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def _zone_moves(self, now: int) -> list[tuple[dict[str, Any], str, str]]:
        """A camera moved into or out of a sensitive zone is itself a finding (rule
        ``camera-moved-zone``): moving a camera out and back is how a judge is skipped."""
        from custodes.access.flags import public_flag_id
        from custodes.fleet.model import parse_time

        self._sync()
        known = self.db.flag_keys()
        out: list[tuple[dict[str, Any], str, str]] = []
        for index, camera, old, new in list(self.view.moves):
            fid = public_flag_id(self._case_key, f"moved:{index}")
            if fid in known:
                continue
            at = parse_time(self.view.entry_time(index), "time")
            zones = {z.name: z for p in self.view.policies_during(at, at) for z in p.zones}
            left = sorted(n for n, z in zones.items() if z.contains(*old) and not z.contains(*new))
            came = sorted(n for n, z in zones.items() if z.contains(*new) and not z.contains(*old))
            if not left and not came:
                continue
            how = "; ".join(
                [f"out of the sensitive zone {n}" for n in left]
                + [f"into the sensitive zone {n}" for n in came]
            )
            reason = f"camera {camera} was moved {how} (log entry {index})"
            entry = E.anomaly_flagged(fid, "camera-moved-zone", "place", reason, [], now)
            out.append((entry, fid, ""))
        return out

    def flags(self, user: User, open_only: bool = True) -> list[dict[str, Any]]:
        self._fresh(user, ("auditor",), "see anomaly flags")
        out = self.db.flags(open_only)
        for f in out:
            f["flagged"] = format_time(f.pop("flagged_ms"))
            r = f.pop("resolved_ms")
            f["resolved"] = format_time(r) if r is not None else None
        return out

    def resolve_flag(
        self, user: User, flag: str, resolution: str, now_ms: int | None = None
    ) -> dict[str, Any]:
        me = self._fresh(user, ("auditor",), "resolve anomaly flags")
        check_text(resolution, "resolution", 1000)
        now = _now_ms() if now_ms is None else now_ms
        with self._lock(flag):
            found = [f for f in self.db.flags(open_only=False) if f["flag"] == flag]
            if not found:
                raise NotFoundError(f"there is no flag {flag[:64]}")
            if found[0]["resolved_ms"] is not None:
                raise ConflictError(f"flag {flag} is already resolved")
            index = self._commit(
                [(E.anomaly_resolved(flag, me.pseudonym, resolution, now), "", "")]
            )
        return {"flag": flag, "index": index}


def _archive_of(path: Path, digest: str) -> bool:
    """The kept file is the archive of a release of several cameras whose manifest is the
    one the log names, and every file in it the one the manifest lists."""
    from custodes.access.archive import check_archive, is_archive

    if not is_archive(path):
        return False
    try:
        check_archive(path, digest, None)
    except CustodesError:
        return False
    return True
