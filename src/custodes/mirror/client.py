"""A tlog-mirror client: push a log, read from any tlog-tiles copy, to a mirror.

:func:`push` does what the spec's client does:

1. ``add-checkpoint`` with ``old 0``; a 409 names the mirror's pending size,
   and the request is sent again with the consistency proof from that size
   (computed from the copy's hash tiles).  A mirror ahead of the copy is
   refused: nothing to push.
2. ``add-entries`` from the mirror's checkpoint size (read at its monitoring
   prefix) to the checkpoint's size, at most ``max_packages`` packages (32,
   the spec's advice) a request, gzip-compressed, each package carrying its
   subtree consistency proof.  A 202 or 409 gives the next entry to go on
   from; a 200 the mirror's cosignature.

The copy is verified as it is read: the checkpoint by the log key, and every
package by the proof the mirror checks too, so a damaged copy is refused by
the mirror with 422 and the push fails saying so.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from dataclasses import dataclass

from custodes.client.http import HttpClient
from custodes.client.source import TileSource
from custodes.errors import NotFoundError, VerificationError
from custodes.tlog import (
    TILE_WIDTH,
    HashReader,
    NoteVerifier,
    Tile,
    open_checkpoint,
    parse_checkpoint,
    parse_entry_bundle,
    prove_consistency,
    prove_subtree_consistency,
    tile_hash_reader,
    tile_path,
)

__all__ = ["PushResult", "push"]

MAX_PACKAGES = 32


@dataclass(frozen=True, kw_only=True)
class PushResult:
    """What a push did: the size pushed, from where, in how many requests, and the cosignature."""

    origin: str
    size: int
    mirror_size_before: int
    requests: int
    cosignature: bytes

    def as_json(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "size": self.size,
            "mirror_size_before": self.mirror_size_before,
            "requests": self.requests,
            "cosignature": self.cosignature.decode("utf-8"),
        }


def _mirror_info(body: bytes) -> tuple[int, int, bytes]:
    try:
        size, nxt, ticket = body.decode("ascii").split("\n")[:3]
        return int(size), int(nxt), base64.b64decode(ticket, validate=True)
    except (ValueError, UnicodeDecodeError) as err:
        raise VerificationError(f"The mirror's mirror-info answer is unreadable: {err}") from None


def push(
    mirror_url: str,
    source: TileSource,
    verifier: NoteVerifier,
    *,
    max_packages: int = MAX_PACKAGES,
    timeout: float = 60.0,
) -> PushResult:
    """Push the log in ``source`` (checked with ``verifier``) to the mirror at ``mirror_url``."""
    base = mirror_url.rstrip("/")
    http = HttpClient(timeout=timeout, user_agent="custodes-mirror-push")
    try:
        note = source.fetch("checkpoint")
        cp = open_checkpoint(note, verifier).checkpoint
        size = cp.size

        def get_tile(level: int, index: int, width: int) -> bytes:
            return source.fetch(tile_path(Tile(level=level, index=index, width=width)))

        reader = tile_hash_reader(size, get_tile)
        requests = 0
        # (1) the pending checkpoint
        old = 0
        for _ in range(3):
            proof = [] if old in (0, size) else prove_consistency(old, size, reader)
            body = b"\n".join([f"old {old}".encode(), *map(base64.b64encode, proof)])
            resp = http.request("POST", f"{base}/add-checkpoint", body=body + b"\n\n" + note)
            requests += 1
            if resp.status == 200:
                break
            if resp.status == 409 and resp.headers.get("Content-Type", "").startswith(
                "text/x.tlog.size"
            ):
                old = int(resp.body.decode("ascii").strip())
                if old > size:
                    raise VerificationError(
                        f"The mirror is ahead of this copy ({old} entries, the copy {size})."
                    )
                continue
            raise VerificationError(
                f"The mirror refused the checkpoint: HTTP {resp.status}:"
                f" {resp.body.decode(errors='replace').strip()}"
            )
        else:
            raise VerificationError("The mirror's pending checkpoint kept changing.")
        # (2) the entries
        prefix = hashlib.sha256(cp.origin.encode()).hexdigest()
        monitored = http.get(f"{base}/{prefix}/checkpoint")
        start = parse_note_size(monitored.body) if monitored.status == 200 else 0
        before = start
        ticket = b""
        while True:
            start = min(start, size)
            body = _entries_body(cp.origin, start, size, ticket, source, reader, max_packages)
            resp = http.request(
                "POST",
                f"{base}/add-entries",
                body=gzip.compress(body, compresslevel=6),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Encoding": "gzip",
                },
            )
            requests += 1
            if resp.status == 200:
                return PushResult(
                    origin=cp.origin,
                    size=size,
                    mirror_size_before=before,
                    requests=requests,
                    cosignature=resp.body,
                )
            if resp.status in (202, 409) and resp.headers.get("Content-Type", "").startswith(
                "text/x.tlog.mirror-info"
            ):
                pending, nxt, ticket = _mirror_info(resp.body)
                if pending != size or (resp.status == 409 and nxt == start):
                    raise VerificationError(
                        f"The mirror's pending checkpoint is now {pending}, not {size}; push again."
                    )
                start = nxt
                continue
            raise VerificationError(
                f"The mirror refused the entries: HTTP {resp.status}:"
                f" {resp.body.decode(errors='replace').strip()}"
            )
    except OSError as err:
        raise NotFoundError(f"cannot reach the mirror at {base}: {err}") from None
    finally:
        http.close()


def parse_note_size(note: bytes) -> int:
    """The tree size of a checkpoint note, read without verifying it (a starting point only)."""
    text = note.decode("utf-8", errors="replace")
    return parse_checkpoint(text[: text.rfind("\n\n") + 1]).size


def _entries_body(
    origin: str,
    start: int,
    end: int,
    ticket: bytes,
    source: TileSource,
    reader: HashReader,
    max_packages: int,
) -> bytes:
    """An add-entries body: the header, then up to ``max_packages`` canonical packages."""
    raw_origin = origin.encode("utf-8")
    parts = [
        len(raw_origin).to_bytes(2, "big"),
        raw_origin,
        start.to_bytes(8, "big"),
        end.to_bytes(8, "big"),
        len(ticket).to_bytes(2, "big"),
        ticket,
    ]
    if start < end:
        rounded = start - start % TILE_WIDTH
        total = -(-end // TILE_WIDTH) - rounded // TILE_WIDTH
        for i in range(min(total, max_packages)):
            first = rounded + i * TILE_WIDTH
            lo, hi = max(start, first), min(end, first + TILE_WIDTH)
            width = min(TILE_WIDTH, end - first)
            bundle = parse_entry_bundle(
                source.fetch(tile_path(Tile(level=-1, index=first // TILE_WIDTH, width=width))),
                width,
            )
            for entry in bundle[lo - first : hi - first]:
                parts += [len(entry).to_bytes(2, "big"), entry]
            proof = prove_subtree_consistency(first, hi, end, reader)
            parts += [bytes([len(proof)]), *proof]
    return b"".join(parts)
