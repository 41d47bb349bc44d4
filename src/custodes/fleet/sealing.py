"""The recorder agent's side of custody: learn each epoch's key from the log, seal segments.

The agent holds no secret.  It folds the log's custody entries
(:class:`~custodes.custody.daemon.ledger.CustodyLog`, which checks every custodian's
signature and recomputes each epoch's DKG from its logged messages, so a ``custody.epoch``
counts only if the custodians' own dealings give that key), and encrypts each segment to
the key of the UTC day it starts in:

1. with ``log_vkey``, it follows the log as a monitor does (every checkpoint verified with
   the log key, every entry hashed into the tree it signs), so the server can neither
   forge nor hide a custody entry below a checkpoint it signed;
2. without it, it asks ``GET /custody/status`` whether custody is on and, if so, reads the
   entry bundles as served: the custodians' signatures are still checked, but the server
   could hide entries (the agent says so once);
3. while custody is on and the segment's epoch has no ready key (its DKG not done, or
   gone), the segment is held, not recorded in the clear; and until the agent has heard
   from the server once it does not know whether custody is on, so it holds segments too;
4. with ``custodians`` (verifier keys the recorder's owner trusts), custody is required,
   and an epoch counts only if every custodian of its set is one of them: an operator
   who logs a set of its own keys gets its segments held, not sealed to itself.

:func:`seal_file` then encrypts one file (:func:`custodes.custody.stream.encrypt_segment`:
a fresh ephemeral key per segment, bound to epoch, camera and start; AES-256-GCM over
fixed-size chunks) into the agent's spool, beside its journal, never into the operator's
data directory; the plaintext is read once and never written anywhere.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custodes.custody.daemon.ledger import CustodyLog
from custodes.custody.group import b64encode
from custodes.custody.kem import SegmentId
from custodes.custody.keys import EpochPublic
from custodes.custody.stream import DEFAULT_CHUNK, StreamDigests, encrypt_segment
from custodes.errors import CustodesError
from custodes.tlog import (
    TILE_WIDTH,
    SignedCheckpoint,
    Verifier,
    bundles_for_size,
    parse_entry_bundle,
    tile_path,
)

__all__ = ["EpochKeys", "SealedFile", "seal_file"]

REFRESH_S = 30.0
"""How often the agent reads new custody entries when it has all the keys it needs."""
RETRY_S = 2.0
"""How often, at most, it looks again for a key it is missing."""


class _Collect:
    def __init__(self, keys: EpochKeys) -> None:
        self.keys = keys

    def check_entry(self, index: int, entry: bytes) -> None:
        self.keys.custody.feed_raw(index, entry)

    def check_checkpoint(self, signed: SignedCheckpoint) -> list[Any]:
        return []


class EpochKeys:
    """What the log says about custody, as the agent needs it: is it on, and which key."""

    def __init__(
        self,
        server: str,
        *,
        log_vkey: str | None = None,
        custodians: frozenset[str] | None = None,
        say: Callable[[str], None] = lambda s: None,
        timeout: float = 10.0,
    ) -> None:
        self.server = server.rstrip("/")
        self.custodians = custodians or None
        self._refused: set[str] = set()
        self.say = say
        self.timeout = timeout
        self.custody = CustodyLog()
        self.known = False  # heard from the server at least once
        self._on = False
        self._last = -1e9
        self._failed = False
        self._monitor: Any = None
        self._warned = False
        if log_vkey is not None:
            from custodes.client.source import HttpSource
            from custodes.monitor import Monitor

            self._monitor = Monitor(
                source=HttpSource(self.server + "/log", timeout=timeout),
                verifier=Verifier.from_key(log_vkey),
                checks=(_Collect(self),),
            )

    @property
    def on(self) -> bool:
        """Custody is on: the log holds a custodian set (or the server says it does)."""
        return self.custodians is not None or self._on or self.custody.current is not None

    def refresh(self, *, force: bool = False) -> None:
        """Read what is new in the log (at most every ``REFRESH_S``, or now if ``force``
        and ``RETRY_S`` has passed); a server that cannot be reached changes nothing."""
        now = time.monotonic()
        if now < self._last + (RETRY_S if force or self._failed else REFRESH_S):
            return
        self._last = now
        self._failed = False
        try:
            if self._monitor is not None:
                for alert in self._monitor.round():
                    self.say(f"log alert: {alert.message}")
                if self._monitor.state.checkpoint is not None:
                    self.known = True
                return
            status = self._get_json("/custody/status")
            self.known = True
            self._on = bool(status.get("custody")) if status else False
            if self._on:
                if not self._warned:
                    self._warned = True
                    self.say(
                        "custody is on; reading its entries without --log-vkey, so the"
                        " custodians' signatures are checked but not the log's checkpoint"
                    )
                self._follow_unverified()
        except (OSError, ValueError, CustodesError) as err:
            self.say(f"cannot read the log's custody entries ({err}); trying again")
            self._failed = True

    def _get(self, path: str) -> bytes:
        req = urllib.request.Request(self.server + path, headers={"User-Agent": "custodes-agent"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            data: bytes = resp.read()
            return data

    def _get_json(self, path: str) -> dict[str, Any] | None:
        try:
            obj = json.loads(self._get(path))
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None  # a server from before custody: custody is off
            raise
        return obj if isinstance(obj, dict) else None

    def _follow_unverified(self) -> None:
        note = self._get("/log/checkpoint").decode()
        lines = note.split("\n")
        if len(lines) < 2 or not lines[1].isdigit():
            raise ValueError("the log's checkpoint has no size")
        size = int(lines[1])
        for tile in bundles_for_size(size):
            first = tile.index * TILE_WIDTH
            if first + tile.width <= self.custody.size:
                continue
            bundle = self._get("/log/" + tile_path(tile))
            for k, entry in enumerate(parse_entry_bundle(bundle, tile.width)):
                if first + k >= self.custody.size:
                    self.custody.feed_raw(first + k, entry)

    def key_for(self, epoch: str) -> EpochPublic | None:
        """The ready key of ``epoch``, looking again (now and then) if it is not known."""
        public = self.custody.epoch_public(epoch)
        if public is None:
            self.refresh(force=True)
            public = self.custody.epoch_public(epoch)
        if public is None or self.custodians is None:
            return public
        cset = self.custody.epoch_set(epoch)
        strangers = sorted(
            c.name for c in (cset.custodians if cset else ()) if c.vkey not in self.custodians
        )
        if cset is None or strangers:
            if epoch not in self._refused:
                self._refused.add(epoch)
                self.say(
                    f"epoch {epoch} is dealt by custodians not given with --custodian"
                    f" ({', '.join(strangers) or 'unknown'}): its segments wait"
                )
            return None
        return public


@dataclass(frozen=True, slots=True)
class SealedFile:
    path: Path  # the ciphertext, in the agent's spool
    epoch: str
    ephemeral: str  # base64
    digests: StreamDigests


def seal_file(
    src: Path,
    spool: Path,
    public: EpochPublic,
    camera: str,
    start: str,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> SealedFile:
    """Encrypt ``src`` for (``public.epoch``, ``camera``, ``start``) into ``spool``.

    The ciphertext is written under a temporary name and renamed once complete, mode
    0600; its name is fixed by ``src``'s path, so sealing the same file again replaces it.
    """
    import hashlib

    spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    final = spool / (hashlib.sha256(str(src).encode()).hexdigest()[:32] + ".enc")
    segment = SegmentId(epoch=public.epoch, camera=camera, start=start)
    fd, tmp = tempfile.mkstemp(dir=spool, prefix=".sealing-")
    try:
        with open(src, "rb") as f, os.fdopen(fd, "wb") as out:
            sealed = encrypt_segment(f, out, public, segment, chunk_size=chunk_size)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return SealedFile(final, public.epoch, b64encode(sealed.ephemeral.encode()), sealed.digests)
