"""The gateway's side: ask the custodians for partials of one logged release, and open.

::

    custody = CustodyLog()                       # fed the log's entries, in order
    body = partials_request(checkpoint, release_index, release_entry, release_proof, segs)
    got = ask_custodians(custody.current, body)  # every custodian, in parallel
    opened = open_segments(custody, got, segs, release=release_name(origin, release_index))

:func:`open_segments` verifies every partial's DLEQ proof (a custodian whose answer fails
is named in :attr:`Answers.wrong`), and raises
:class:`~custodes.custody.errors.NotEnoughPartialsError` for a segment with fewer than T
valid answers; map that to 503 with :func:`shortfall`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from custodes.client.http import HttpClient
from custodes.custody.daemon.entries import Custodian, CustodianSet
from custodes.custody.daemon.ledger import CustodyLog
from custodes.custody.errors import CustodyFormatError, NotEnoughPartialsError, WrongPartialError
from custodes.custody.group import Point, b64decode
from custodes.custody.kem import Opened, Partial, SegmentId, combine
from custodes.errors import CustodesError

__all__ = [
    "Answers",
    "SegmentProof",
    "ask_custodians",
    "details_request",
    "open_segments",
    "partials_request",
    "shortfall",
]


@dataclass(frozen=True, kw_only=True)
class SegmentProof:
    """One segment as the log holds it: its record in a batch, the batch in the log."""

    record: bytes  # the canonical segment record (a leaf of its batch's tree)
    position: int
    proof: Sequence[bytes]
    batch_index: int
    batch_entry: bytes
    batch_proof: Sequence[bytes]

    def segment(self) -> tuple[SegmentId, Point]:
        rec = json.loads(self.record)
        seg = SegmentId(epoch=rec["epoch"], camera=rec["camera"], start=rec["start"])
        return seg, Point.decode(b64decode(rec["ephemeral"], 32, what="ephemeral"))


def _b64(hashes: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


def partials_request(
    checkpoint: bytes,
    release_index: int,
    release_entry: bytes,
    release_proof: Sequence[bytes],
    segments: Sequence[SegmentProof],
) -> dict[str, Any]:
    """The body of ``POST /partials``: a cosigned checkpoint, the release, the segments."""
    return {
        "checkpoint": checkpoint.decode(),
        "release": {
            "index": release_index,
            "entry": release_entry.decode(),
            "proof": _b64(release_proof),
        },
        "segments": [
            {
                "record": s.record.decode(),
                "position": s.position,
                "proof": _b64(s.proof),
                "batch": {
                    "index": s.batch_index,
                    "entry": s.batch_entry.decode(),
                    "proof": _b64(s.batch_proof),
                },
            }
            for s in segments
        ],
    }


@dataclass
class Answers:
    """What each custodian said: partials (in segment order), a refusal, or nothing."""

    partials: dict[str, list[Partial]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    wrong: dict[str, str] = field(default_factory=dict)
    relayed: dict[str, dict[str, str]] = field(default_factory=dict)
    """For a release's scope check: each custodian's partial of the sealed details,
    encrypted to each custodian by name (base64); the gateway only passes them on."""


def _ask(http: HttpClient, c: Custodian, body: bytes, path: str) -> tuple[str, Any]:
    try:
        r = http.request(
            "POST",
            c.url.rstrip("/") + path,
            body=body,
            headers={"Content-Type": "application/json"},
        )
    except (OSError, CustodesError) as exc:
        return "unreachable", str(exc)
    try:
        obj = json.loads(r.body)
    except ValueError:
        return "unreachable", f"HTTP {r.status} with a body that is not JSON"
    if r.status == 403:
        return "refused", str(obj.get("error", "refused"))
    if r.status != 200 or not isinstance(obj, dict):
        return "unreachable", f"HTTP {r.status}"
    try:
        if path == "/details-partials" and "relay" in obj:
            relay = obj["relay"]
            if not isinstance(relay, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in relay.items()
            ):
                raise TypeError("the relay is not a map of names to sealed partials")
            return "relay", relay
        if path == "/details-partials":
            return "ok", [Partial.from_json(obj["partial"])]
        return "ok", [Partial.from_json(p) for p in obj["partials"]]
    except (CustodyFormatError, KeyError, TypeError) as exc:
        return "wrong", f"an unreadable answer ({exc})"


def ask_custodians(
    custodians: CustodianSet | Sequence[Custodian],
    body: dict[str, Any],
    *,
    timeout: float = 5.0,
    path: str = "/partials",
) -> Answers:
    """``POST /partials`` (or ``/details-partials``: one partial each, of a request's sealed
    details) to every custodian at once; a slow one counts as unreachable."""
    people = custodians.custodians if isinstance(custodians, CustodianSet) else custodians
    http = HttpClient(timeout=timeout, user_agent="custodes-gateway")
    raw = json.dumps(body).encode()
    out = Answers()
    want = len(body["segments"]) if path == "/partials" else 1
    with ThreadPoolExecutor(max_workers=max(1, len(people))) as pool:
        results = list(pool.map(lambda c: _ask(http, c, raw, path), people))
    for c, (kind, value) in zip(people, results, strict=True):
        if kind == "relay":
            out.relayed[c.name] = value
        elif kind == "ok":
            if len(value) != want:
                out.wrong[c.name] = "answered for another number of segments"
            else:
                out.partials[c.name] = value
        else:
            {"refused": out.refused, "unreachable": out.unreachable, "wrong": out.wrong}[kind][
                c.name
            ] = value
    http.close()
    return out


def details_request(
    checkpoint: bytes,
    cause: tuple[int, bytes, Sequence[bytes]],
    request: tuple[int, bytes, Sequence[bytes]],
) -> dict[str, Any]:
    """The body of ``POST /details-partials``: a cosigned checkpoint, the logged cause (a
    read or a release) and the request's ``access.requested``, each with its proof."""

    def at(e: tuple[int, bytes, Sequence[bytes]]) -> dict[str, Any]:
        return {"index": e[0], "entry": e[1].decode(), "proof": _b64(e[2])}

    return {"checkpoint": checkpoint.decode(), "cause": at(cause), "request": at(request)}


def open_segments(
    custody: CustodyLog, answers: Answers, segments: Sequence[SegmentProof], *, release: str
) -> list[Opened]:
    """Verify and combine the partials of each segment; the segment keys, in order.

    A custodian whose partial fails its proof is added to ``answers.wrong``.  Fewer than T
    valid partials for any segment raises NotEnoughPartialsError.
    """
    opened = []
    for n, s in enumerate(segments):
        seg, eph = s.segment()
        public = custody.epoch_public(seg.epoch)
        if public is None:
            raise CustodyFormatError(f"epoch {seg.epoch} has no logged key")
        got = [ps[n] for ps in answers.partials.values()]
        cset = custody.epoch_set(seg.epoch)
        try:
            result = combine(public, got, eph, seg, release=release)
        except NotEnoughPartialsError as exc:
            _name_wrong(answers, cset, exc.wrong)  # named even when nothing opens
            raise
        _name_wrong(answers, cset, result.wrong)
        opened.append(result)
    return opened


def _name_wrong(
    answers: Answers, cset: CustodianSet | None, wrong: Sequence[WrongPartialError]
) -> None:
    for w in wrong:
        if cset is not None and 1 <= w.custodian <= cset.n:
            name = cset.custodians[w.custodian - 1].name
            answers.wrong[name] = str(w)


def shortfall(exc: NotEnoughPartialsError, answers: Answers) -> str:
    """The 503 sentence: how many custodians answered, and how many are needed."""
    return (
        f"{exc.valid} custodian{'' if exc.valid == 1 else 's'} answered correctly;"
        f" {exc.needed} {'is' if exc.needed == 1 else 'are'} needed"
        f" ({len(answers.refused)} refused, {len(answers.unreachable)} did not answer,"
        f" {len(answers.wrong)} answered wrongly)."
    )
