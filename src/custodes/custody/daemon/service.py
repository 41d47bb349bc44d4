"""``custodes custodian serve``: a custodian that follows the log and answers for releases.

It follows the log like a monitor (:class:`~custodes.monitor.Monitor`: every checkpoint
verified with the log key and the witness policy, every new entry hashed into the tree it
signs), folds the custody entries (:class:`~.ledger.CustodyLog`), and takes its part in each
epoch's DKG (:func:`~.custodian.dkg_actions`) by posting signed entries to the log server's
``POST /custody/entries``.

Routes:

``GET /key``        its name, verifier key and encryption key (for ``custody init``)
``GET /answers``    every answer it gave, JSON Lines, append-only (no partials in it)
``GET /status``     what it has followed: size, custodian set, epochs
``POST /partials``  partial decryptions for one logged release (:func:`check_release`)
``POST /details-partials``  a partial of a request's sealed details, for one logged read
                    or release (:func:`~.details.check_details`)

Each POST answers only when every step of its check passes, and otherwise 403 with one
sentence saying which did not.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from custodes.client.http import HttpClient
from custodes.client.source import HttpSource
from custodes.client.verify import WitnessPolicy
from custodes.custody.daemon.custodian import CustodianDir, dkg_actions
from custodes.custody.daemon.entries import now_ms
from custodes.custody.daemon.ledger import CustodyLog
from custodes.custody.daemon.partials import partials_json
from custodes.custody.errors import CustodyFormatError
from custodes.custody.group import Point, b64decode, b64encode
from custodes.custody.kem import SegmentId
from custodes.custody.keys import EpochShare
from custodes.errors import CustodesError
from custodes.monitor import Monitor
from custodes.tlog import NoteVerifier, SignedCheckpoint, leaf_hash, open_checkpoint
from custodes.tlog.merkle import check_inclusion

__all__ = ["Follower", "Refusal", "check_release", "create_custodian_app", "release_name"]

_log = logging.getLogger("custodes.custodian")
_SKIP = ("segments.batch", "fleet.heard")  # entries the custodian need not keep
MAX_BODY = 8 << 20
MAX_SEGMENTS = 10_000
RESEND_S = 10.0


class Refusal(Exception):
    """Why a custodian will not answer, in one sentence."""


def release_name(origin: str, index: int) -> str:
    """What a partial is bound to: the log and the index of its ``access.released``."""
    return f"{origin}#{index}"


class _Collect:
    """A monitor check that hands every verified new entry to the follower."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower

    def check_entry(self, index: int, entry: bytes) -> None:
        self.follower._entry(index, entry)

    def check_checkpoint(self, signed: SignedCheckpoint) -> list[Any]:
        self.follower.signed = signed
        return []


@dataclass
class Follower:
    me: CustodianDir
    log_url: str
    verifier: NoteVerifier
    witnesses: WitnessPolicy | None = None
    ahead: int = 1
    custody: CustodyLog = field(default_factory=CustodyLog)
    entries: dict[int, bytes] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)  # request id -> its access.requested
    approvals: dict[str, list[int]] = field(default_factory=dict)  # request id -> approvals
    signed: SignedCheckpoint | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rules: tuple[int, dict[int, str]] = (-1, {})

    def __post_init__(self) -> None:
        self.log_url = self.log_url.rstrip("/")
        self.monitor = Monitor(
            source=HttpSource(self.log_url + "/log", timeout=10),
            verifier=self.verifier,
            witnesses=self.witnesses,
            checks=(_Collect(self),),
        )
        self.lock = threading.RLock()
        self.http = HttpClient(timeout=10, user_agent="custodes-custodian")
        self._sent: dict[str, float] = {}

    @property
    def size(self) -> int:
        return self.custody.size

    def _entry(self, index: int, entry: bytes) -> None:
        try:
            obj = json.loads(entry)
        except ValueError:
            obj = None
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind not in _SKIP:
            self.entries[index] = entry
        if kind == "access.requested" and isinstance(obj, dict):
            self.requests.setdefault(str(obj.get("request")), index)
        elif kind == "access.approved" and isinstance(obj, dict):
            self.approvals.setdefault(str(obj.get("request")), []).append(index)
        self.custody.feed(index, obj)

    def follow(self) -> None:
        """One monitor round: verify and fold what is new."""
        with self.lock:
            for alert in self.monitor.round():
                self.alerts.append(alert.as_json())
                _log.warning("log alert: %s", alert.message)

    def step(self) -> int:
        """Follow, then post this custodian's DKG messages; how many were posted."""
        self.follow()
        with self.lock:
            self.me.refresh()
            actions = dkg_actions(self.me, self.custody, now_ms(), ahead=self.ahead)
        posted = 0
        now = time.monotonic()
        for key, entry in actions:
            if now - self._sent.get(key, -RESEND_S) < RESEND_S:
                continue
            self._sent[key] = now
            result = self.post(entry)
            if result is True:
                posted += 1
            elif result is None:
                self._sent.pop(key, None)  # unreachable: try again next round
        return posted

    def post(self, entry: dict[str, Any]) -> bool | None:
        """True if logged, False if refused (tried again after RESEND_S), None if unreachable."""
        try:
            r = self.http.request(
                "POST",
                self.log_url + "/custody/entries",
                body=json.dumps(entry).encode(),
                headers={"Content-Type": "application/json"},
            )
        except (OSError, CustodesError) as exc:
            _log.warning("cannot post %s: %s", entry.get("type"), exc)
            return None
        if r.status == 409:
            return True  # another custodian logged the same thing first
        if r.status >= 300:
            _log.warning("the log refused %s: %s", entry.get("type"), r.body[:300])
        return r.status < 300

    def run(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # keep following; the next round retries
                _log.exception("custodian round failed; retrying")
            stop.wait(interval)


def _proof(obj: object, what: str) -> list[bytes]:
    if not isinstance(obj, list) or len(obj) > 64:
        raise Refusal(f"the {what} proof is not a list of hashes.")
    try:
        return [base64.b64decode(h, validate=True) for h in obj]
    except (binascii.Error, TypeError, ValueError):
        raise Refusal(f"the {what} proof is not base64.") from None


def _entry_at(obj: object, what: str) -> tuple[int, bytes, list[bytes], dict[str, Any]]:
    if not isinstance(obj, dict) or set(obj) != {"index", "entry", "proof"}:
        raise Refusal(f"the {what} must be given as index, entry and proof.")
    index, text = obj["index"], obj["entry"]
    if type(index) is not int or index < 0 or not isinstance(text, str):
        raise Refusal(f"the {what} must be given as a log index and its entry's text.")
    raw = text.encode()
    try:
        body = json.loads(raw)
    except ValueError:
        raise Refusal(f"the {what} entry is not JSON.") from None
    if not isinstance(body, dict):
        raise Refusal(f"the {what} entry is not a JSON object.")
    return index, raw, _proof(obj["proof"], what), body


def public_rules_violations(entries: list[tuple[int, Any]]) -> dict[int, str]:
    """The public-rules hook: each entry index that breaks a rule, with a sentence.

    Kept to this one function: it calls ``custodes.access.public_rules.check_log``, if the
    installed version has it, over the entries this custodian has followed.
    """
    try:
        from custodes.access import public_rules
    except ImportError:
        return {}
    check_log = getattr(public_rules, "check_log", None)
    if check_log is None:
        return {}
    out: dict[int, str] = {}
    for v in check_log(entries).violations:
        out.setdefault(v.index, f"The release breaks the public rule {v.rule}: {v.reason}.")
    return out


def witnessed(f: Follower, note: object) -> SignedCheckpoint:
    """The checkpoint, verified with the log key and this custodian's witness policy."""
    if not isinstance(note, str) or len(note) > 65536:
        raise Refusal("the checkpoint must be the signed note's text.")
    cosigners = f.witnesses.witnesses if f.witnesses else ()
    try:
        signed = open_checkpoint(note.encode(), f.verifier, cosigners=cosigners)
        if f.witnesses is not None:
            f.witnesses.check(signed)
    except CustodesError as exc:
        raise Refusal(f"the checkpoint does not verify: {str(exc).rstrip('.')}.") from None
    return signed


def included(
    f: Follower, obj: object, what: str, size: int, root: bytes
) -> tuple[int, bytes, dict[str, Any]]:
    """An entry given as index, text and proof, included in the tree of ``size``/``root``."""
    index, raw, proof, body = _entry_at(obj, what)
    try:
        check_inclusion(proof, index=index, size=size, leaf=leaf_hash(raw), root=root)
    except CustodesError:
        raise Refusal(f"the {what} is not included in the checkpoint of size {size}.") from None
    return index, raw, body


def followed(f: Follower, size: int) -> None:
    """Follow the log to ``size`` at least (call with ``f.lock`` held after this)."""
    if f.size < size:
        f.follow()
    if f.size < size:
        raise Refusal(
            f"this custodian has followed the log to size {f.size} only, short of {size}."
        )


def check_release(
    f: Follower, body: object
) -> tuple[str, dict[str, Any], list[tuple[SegmentId, Point, str, EpochShare]]]:
    """Steps that must all pass before a custodian answers; raise :class:`Refusal` if not.

    (1) The checkpoint verifies with the log key and the witness policy.
    (2) The release is an ``access.released`` entry (or the ``access.viewed`` of a live
        grant) included in that checkpoint.
    (3) The custodian has followed the log up to that checkpoint (it follows again if
        not), the entry at that index is the same, and the public rules hold for it.
    (4) Each segment record is in a ``segments.batch`` entry included in the checkpoint
        (the record in the batch's tree, the batch in the log), and the release names
        its plaintext digest.
    (5) Each segment's epoch is not shredded here, nor gone in the log, and this
        custodian holds its share.
    (6) Each segment lies inside the request's sealed scope: this custodian opens the
        request's sealed details itself from T custodians' details partials (given in
        ``details``, each proof checked, :func:`~.details.check_scope`), checks them
        against the logged commitment, and refuses a segment of another camera or outside
        the window (a live grant's window is the one the log fixes).

    Returns (release name, the release entry, the segments with their ephemeral keys).
    """
    if (
        not isinstance(body, dict)
        or not {"checkpoint", "release", "segments"} <= set(body)
        or (set(body) - {"checkpoint", "release", "segments", "details"})
    ):
        raise Refusal("the request must give checkpoint, release, segments and details.")
    # (1)
    cp = witnessed(f, body["checkpoint"]).checkpoint
    # (2)
    index, raw, release = included(f, body["release"], "release", cp.size, cp.root_hash)
    if release.get("type") not in ("access.released", "access.viewed"):
        raise Refusal(f"entry {index} is not an access.released or access.viewed entry.")
    # (3)
    followed(f, cp.size)
    with f.lock:
        f.me.refresh()
        state = f.me.state
        if f.entries.get(index) != raw:
            raise Refusal(f"entry {index} of the log this custodian follows is another entry.")
        if f.rules[0] != f.size:  # the rules over the whole log, once per new size
            kept = [(i, json.loads(f.entries[i])) for i in sorted(f.entries)]
            f.rules = (f.size, public_rules_violations(kept))
        violation = f.rules[1].get(index)
        custody = f.custody
    if violation:
        raise Refusal(violation)
    listed = release.get("segments")
    if not isinstance(listed, list):
        raise Refusal("the release names no segments.")
    named = {d for d in listed if isinstance(d, str)}
    # (4)
    segs = body["segments"]
    if not isinstance(segs, list) or not 0 < len(segs) <= MAX_SEGMENTS:
        raise Refusal(f"give 1 to {MAX_SEGMENTS} segments.")
    out: list[tuple[SegmentId, Point, str, EpochShare]] = []
    recs: list[dict[str, Any]] = []
    batches: dict[int, bytes] = {}
    for n, s in enumerate(segs):
        if not isinstance(s, dict) or set(s) != {"record", "position", "proof", "batch"}:
            raise Refusal(f"segment {n} must give record, position, proof and batch.")
        bindex, braw, bproof, batch = _entry_at(s["batch"], f"segment {n}'s batch")
        if batch.get("type") != "segments.batch":
            raise Refusal(f"entry {bindex} is not a segments.batch entry.")
        if batches.get(bindex) != braw:  # each batch once per request
            try:
                check_inclusion(
                    bproof, index=bindex, size=cp.size, leaf=leaf_hash(braw), root=cp.root_hash
                )
            except CustodesError:
                raise Refusal(f"segment {n}'s batch is not included in the checkpoint.") from None
            batches[bindex] = braw
        record, pos = s["record"], s["position"]
        if not isinstance(record, str) or type(pos) is not int:
            raise Refusal(f"segment {n}'s record must be its text and position.")
        count, root = batch.get("count"), batch.get("root")
        try:
            check_inclusion(
                _proof(s["proof"], f"segment {n}"),
                index=pos,
                size=count if type(count) is int else 0,
                leaf=leaf_hash(record.encode()),
                root=bytes.fromhex(root) if isinstance(root, str) else b"",
            )
        except (CustodesError, ValueError):
            raise Refusal(f"segment {n} is not in the batch at entry {bindex}.") from None
        try:
            rec = json.loads(record)
        except ValueError:
            raise Refusal(f"segment {n}'s record is not JSON.") from None
        if not isinstance(rec, dict):
            raise Refusal(f"segment {n}'s record is not a JSON object.")
        if rec.get("sha256") not in named:
            raise Refusal(
                f"segment {rec.get('camera')}@{rec.get('start')} is not one the release names."
            )
        try:
            seg = SegmentId(epoch=rec.get("epoch", ""), camera=rec["camera"], start=rec["start"])
            eph = Point.decode(b64decode(rec.get("ephemeral"), 32, what="ephemeral"))
        except (CustodyFormatError, KeyError):
            raise Refusal(f"segment {n}'s record carries no valid custody fields.") from None
        # (5)
        if seg.epoch in state.shredded or custody.gone(seg.epoch):
            raise Refusal(f"epoch {seg.epoch} was shredded; its footage is gone.")
        if seg.epoch not in state.shares:
            raise Refusal(f"this custodian holds no share of epoch {seg.epoch}.")
        out.append((seg, eph, rec["sha256"], state.shares[seg.epoch]))
        recs.append(rec)
    # (6)
    from custodes.custody.daemon.details import check_scope

    name = release_name(cp.origin, index)
    check_scope(f, name, index, release, body.get("details"), recs)
    return name, release, out


def answer(f: Follower, body: object) -> dict[str, Any]:
    """Check, record durably, then return the partials (raises :class:`Refusal`)."""
    name, release, segs = check_release(f, body)
    partials = partials_json([(seg, eph, share) for seg, eph, _, share in segs], release=name)
    f.me.append_answer(
        {
            "time": now_ms(),
            "release": name,
            "request": release.get("request"),
            "segments": [
                {"camera": s.camera, "start": s.start, "epoch": s.epoch, "sha256": d}
                for s, _, d, _ in segs
            ],
        }
    )
    j = None
    cset = f.custody.epoch_set(segs[0][0].epoch)
    if cset is not None:
        j = cset.position(f.me.name)
    return {"custodian": f.me.name, "index": j, "release": name, "partials": partials}


def create_custodian_app(f: Follower, *, url: str, interval: float = 0.5) -> Starlette:
    stop = threading.Event()
    thread = threading.Thread(target=f.run, args=(stop, interval), name="follower", daemon=True)

    async def key(request: Request) -> Response:
        pub = f.me.state.encryption_key.public
        return JSONResponse(
            {"name": f.me.name, "vkey": f.me.vkey, "key": b64encode(pub.encode()), "url": url}
        )

    async def answers(request: Request) -> Response:
        return Response(f.me.answers(), media_type="application/x-ndjson")

    async def status(request: Request) -> Response:
        with f.lock:
            return JSONResponse({"size": f.size, **f.custody.status(), "alerts": f.alerts[-20:]})

    async def _answer(request: Request, how: Callable[[Follower, object], dict[str, Any]]
                      ) -> Response:  # fmt: skip
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return JSONResponse({"error": "The request is too large."}, status_code=413)
        try:
            obj = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": "The request is not JSON."}, status_code=400)
        try:
            from starlette.concurrency import run_in_threadpool

            result = await run_in_threadpool(how, f, obj)
        except Refusal as exc:
            reason = str(exc)
            return JSONResponse({"error": reason[:1].upper() + reason[1:]}, status_code=403)
        return JSONResponse(result)

    async def partials(request: Request) -> Response:
        return await _answer(request, answer)

    async def details_partials(request: Request) -> Response:
        from custodes.custody.daemon.details import answer_details

        return await _answer(request, answer_details)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        thread.start()
        try:
            yield
        finally:
            stop.set()

    app = Starlette(
        routes=[
            Route("/key", key),
            Route("/answers", answers),
            Route("/status", status),
            Route("/healthz", lambda r: JSONResponse({"status": "ok"})),
            Route("/partials", partials, methods=["POST"]),
            Route("/details-partials", details_partials, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    return app
