"""Log-side witnessing: a checkpoint is published only once enough witnesses cosign it.

The log sends each new checkpoint to its configured witnesses over C2SP
tlog-witness (``POST /add-checkpoint`` with the size the witness last saw
and a consistency proof from it), collects their ``cosignature/v1`` lines,
and publishes the checkpoint with them only when a k-of-n policy is met.
Until then the previous published checkpoint stays up: publishing fails
closed, as Tessera's does, while appends go on being sequenced and
acknowledged.  Each failure is logged with its reason.
"""

from __future__ import annotations

import base64
import http.client
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from custodes.client.http import HttpClient
from custodes.errors import FormatError, SignatureError
from custodes.tlog import CosignatureVerifier, open_checkpoint, parse_note
from custodes.tlog.note import NoteVerifier

__all__ = ["WitnessClient", "WitnessPolicy", "cosign_checkpoint"]

_log = logging.getLogger("custodes.witnessing")

ProofFn = Callable[[int, int], list[bytes]]


@dataclass(frozen=True, kw_only=True)
class WitnessPolicy:
    """Publish once ``quorum`` of the witnesses have cosigned; wait ``timeout_s`` for each."""

    witnesses: tuple[tuple[str, str], ...]  # (base URL, cosigner verifier key)
    quorum: int
    timeout_s: float = 5.0


class WitnessClient:
    """One witness, and the size it is known to hold for this log."""

    def __init__(self, url: str, vkey: str, *, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/") + "/add-checkpoint"
        self.verifier = CosignatureVerifier.from_key(vkey)
        self.timeout_s = timeout_s
        self.size = 0
        self.http = HttpClient(timeout=timeout_s, user_agent="custodes-log", limit=1 << 16)

    def cosign(self, note: bytes, size: int, prove: ProofFn) -> bytes | None:
        """The witness's cosignature line for ``note`` of ``size``; None, logged, on failure."""
        for _ in range(3):
            old = self.size if self.size <= size else 0
            proof = prove(old, size) if 0 < old < size else []
            body = (
                f"old {old}\n".encode()
                + b"".join(base64.b64encode(h) + b"\n" for h in proof)
                + b"\n"
                + note
            )
            try:
                resp = self.http.request("POST", self.url, body=body)
            except (OSError, http.client.HTTPException, FormatError) as err:
                _log.warning("witness %s unreachable: %s", self.url, err)
                return None
            answer = resp.body
            if resp.status != 200:
                kind = resp.headers.get("Content-Type", "")
                if resp.status == 409 and kind.startswith("text/x.tlog.size"):
                    try:
                        self.size = int(answer.strip())
                    except ValueError:
                        break
                    continue  # retry from the size the witness holds
                why = answer[:4096].decode("utf-8", "replace").strip()
                _log.warning(
                    "witness %s refused size %d: HTTP %d %s", self.url, size, resp.status, why
                )
                return None
            line = self._own_line(note, answer)
            if line is None:
                _log.warning("witness %s answered without a valid cosignature", self.url)
                return None
            self.size = size
            return line
        return None

    def _own_line(self, note: bytes, answer: bytes) -> bytes | None:
        """The line of ``answer`` that is this witness's valid cosignature on ``note``."""
        for line in answer.splitlines(keepends=True):
            if not line.startswith("\u2014 ".encode()):
                continue
            candidate = note + (line if line.endswith(b"\n") else line + b"\n")
            try:
                body = parse_note(candidate)
            except Exception:  # a malformed line is simply not a cosignature
                continue
            if any(
                s.name == self.verifier.name and s.key_id == self.verifier.key_id
                for s in body.signatures
            ) and _verifies(candidate, self.verifier):
                return line if line.endswith(b"\n") else line + b"\n"
        return None


def _verifies(candidate: bytes, cosigner: CosignatureVerifier) -> bool:
    from custodes.tlog.note import open_note

    try:
        opened = open_note(candidate, [cosigner])
    except SignatureError:
        return False
    return any(s.name == cosigner.name for s in opened.verified)


def cosign_checkpoint(
    note: bytes,
    size: int,
    clients: Sequence[WitnessClient],
    quorum: int,
    prove: ProofFn,
    log_verifier: NoteVerifier,
) -> bytes | None:
    """Ask every witness at once; the note with their lines if ``quorum`` cosigned, else None."""
    with ThreadPoolExecutor(max_workers=max(1, len(clients))) as pool:
        lines = list(pool.map(lambda c: c.cosign(note, size, prove), clients))
    got = [line for line in lines if line is not None]
    if len(got) < quorum:
        _log.warning(
            "not publishing size %d: %d of the %d witness cosignatures the policy needs",
            size, len(got), quorum,
        )  # fmt: skip
        return None
    published = note + b"".join(got)
    cosigners = [c.verifier for c in clients]
    signed = open_checkpoint(published, log_verifier, cosigners=cosigners)
    if len(signed.cosignatures) < quorum:
        return None
    return published
