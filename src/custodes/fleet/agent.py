"""The recorder agent: follow a recorder's segment files, send their digests and heartbeats.

Layouts understood under the watched folder ``DIR``:

* ffmpeg's segment muxer, one folder per camera: ``DIR/<camera>/<name>.mp4``
  (also ``.ts``, ``.mkv``, ``.m4s``).  A name holding a time such as
  ``20260102T030405`` or ``2026-01-02_03-04-05`` (ffmpeg ``-strftime 1``) gives
  the start; otherwise the start is the file's last write minus its duration.
* Frigate: ``DIR/YYYY-MM-DD/HH/<camera>/MM.SS.mp4`` (UTC).

A segment is complete when a later file appeared for the same camera, or its
size and time stayed unchanged for ``settle`` seconds.  It is then hashed
once; its digest goes into the journal (SQLite) before it is sent, and is
marked sent only when the server has answered for it.  The server takes a
re-sent segment as a no-op, so a crash between sending and marking loses
nothing and duplicates nothing.  While the server cannot be reached the agent
retries with exponential back-off.

Custody (:mod:`custodes.fleet.sealing`): when the log holds a custodian set, each
segment is encrypted before anything leaves the recorder, to the ready key of the
UTC day it starts in (fresh ephemeral key, AEAD over fixed-size chunks), into the
agent's spool (``<journal>.sealed/``, 0600); the digest sent adds ``epoch``,
``ephemeral`` and ``ciphertext`` {sha256, bytes}, and only the ciphertext is
uploaded (then removed from the spool; with ``--no-upload`` the ciphertexts stay
there, for an archive that reads them).  A segment of an epoch without a ready
key waits on the recorder's disk.  The agent deletes none of the recorder's files.
Without custody nothing changes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from custodes.errors import UsageError
from custodes.fleet.agent_journal import Journal
from custodes.fleet.model import format_time, valid_camera_id
from custodes.fleet.recorder import Recorders

__all__ = ["Agent", "Journal", "Segment", "scan"]

EXTS = {".mp4", ".ts", ".mkv", ".m4s", ".mov"}
_FRIGATE_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_FRIGATE_FILE = re.compile(r"(\d{2})\.(\d{2})\.mp4")
_STAMPS = (
    (re.compile(r"(\d{8}T\d{6})"), "%Y%m%dT%H%M%S"),
    (re.compile(r"(\d{4}-\d{2}-\d{2}[T_ ]\d{2}[-:]\d{2}[-:]\d{2})"), None),
    (re.compile(r"(\d{14})"), "%Y%m%d%H%M%S"),
)


@dataclass(frozen=True)
class Segment:
    path: Path
    camera: str
    start_ms: int | None
    size: int
    mtime_ns: int


def _stamp(name: str) -> int | None:
    for pattern, fmt in _STAMPS:
        m = pattern.search(name)
        if not m:
            continue
        text = m.group(1)
        try:
            if fmt is None:
                text = re.sub(r"[T_ ]", "T", text, count=1)
                day, clock = text.split("T")
                dt = datetime.strptime(f"{day}T{clock.replace('-', ':')}", "%Y-%m-%dT%H:%M:%S")
            else:
                dt = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return int(dt.replace(tzinfo=UTC).timestamp()) * 1000
    return None


def scan(root: Path) -> list[Segment]:
    """Every segment file under ``root`` in a layout we understand."""
    out: list[Segment] = []
    for path in root.rglob("*"):
        if path.suffix.lower() not in EXTS or path.name.startswith("."):
            continue
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        parts = path.relative_to(root).parts
        camera: str | None = None
        start: int | None = None
        if len(parts) == 4 and _FRIGATE_DAY.fullmatch(parts[0]) and parts[1].isdigit():
            m = _FRIGATE_FILE.fullmatch(parts[3])
            if m:
                camera = parts[2]
                try:
                    dt = datetime.strptime(
                        f"{parts[0]} {parts[1]}:{m.group(1)}:{m.group(2)}", "%Y-%m-%d %H:%M:%S"
                    )
                except ValueError:
                    continue
                start = int(dt.replace(tzinfo=UTC).timestamp()) * 1000
        elif len(parts) == 2:
            camera = parts[0]
            start = _stamp(path.stem)
        if camera is None or not valid_camera_id(camera):
            continue
        out.append(Segment(path, camera, start, st.st_size, st.st_mtime_ns))
    return out


def mp4_complete(path: Path) -> bool:
    """Whether an MP4/MOV file's top-level boxes fill it exactly and include ``moov``.

    ffmpeg writes an MP4 segment's index (``moov``) last, so a file without one
    is still being written, however long its size has stayed the same.
    """
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            pos = 0
            seen_moov = False
            while pos < size:
                f.seek(pos)
                head = f.read(16)
                if len(head) < 8:
                    return False
                box = int.from_bytes(head[:4], "big")
                kind = head[4:8]
                if box == 1 and len(head) == 16:
                    box = int.from_bytes(head[8:16], "big")
                if box < 8:
                    return False
                seen_moov |= kind == b"moov"
                pos += box
            return pos == size and seen_moov
    except OSError:
        return False


def probe_duration(path: Path) -> float | None:
    """The media duration in seconds, by ffprobe when it is installed."""
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
            capture_output=True,
            timeout=30,
            check=False,
        )
        value = float(out.stdout.strip())
    except (ValueError, subprocess.TimeoutExpired, OSError):
        return None
    return value if value > 0 else None


PRUNE_EVERY_S = 600.0
"""How often a running agent forgets files that are sent and deleted."""

LIVE_POLL_S = 0.2
"""How often the folder is scanned, at least, while a recorded camera has a live grant."""


def _record(item: dict[str, Any]) -> dict[str, Any]:
    """What the server is sent of a journal item (not where the agent spooled it)."""
    return {k: v for k, v in item.items() if k != "spool"}


class Agent:
    def __init__(
        self,
        *,
        watch: Path,
        server: str,
        token: str,
        journal: Path,
        settle: float = 5.0,
        heartbeat: float = 10.0,
        batch: int = 1000,
        max_backoff: float = 30.0,
        upload: bool = True,
        say: Callable[[str], None] = lambda s: None,
        log_vkey: str | None = None,
        custodians: frozenset[str] | None = None,
        chunk_size: int | None = None,
        progress: Callable[[dict[str, int]], None] | None = None,
        progress_every: float = 10.0,
        recorders: Recorders | None = None,
    ) -> None:
        """``progress`` is called with :meth:`status` when it changed, at most once every
        ``progress_every`` seconds while running, and once more at the end.  ``recorders``:
        the ffmpeg writers the agent runs itself (``--record``), told which of their
        cameras have a live grant by the server's answer to each heartbeat."""
        if not watch.is_dir():
            raise UsageError(f"{watch} is not a folder to watch")
        self.watch = watch
        self.server = server.rstrip("/")
        self.token = token
        self.journal = Journal(journal)
        self.settle = settle
        self.heartbeat = heartbeat
        self.batch = batch
        self.max_backoff = max_backoff
        self.upload = upload
        self.say = say
        self._seen: dict[str, tuple[int, int, float]] = {}
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_beat = 0.0
        self._active: dict[str, float] = {}
        from custodes.custody.stream import DEFAULT_CHUNK
        from custodes.fleet.sealing import EpochKeys

        self.keys = EpochKeys(self.server, log_vkey=log_vkey, custodians=custodians, say=say)
        self.spool = journal.with_name(journal.name + ".sealed")
        self.chunk_size = chunk_size or DEFAULT_CHUNK
        self._waiting: set[str] = set()
        self.held = 0  # segments the last collect left on disk for want of a key
        self._spool_said = False
        self.progress = progress
        self.progress_every = progress_every
        self.seen = 0  # segments hashed into the journal by this run
        self._last_report: tuple[int, ...] | None = None
        self._report_at = 0.0
        self.recorders = recorders

    # -- finding complete segments ----------------------------------------------------

    def collect(self, *, final: bool = False) -> int:
        """Hash every newly complete segment into the journal; returns how many."""
        now = time.time()
        known = self.journal.known()
        self.keys.refresh()
        self.held = 0
        if not self.keys.known:
            self.held = 1
            return 0  # custody may be on: record nothing in the clear before we know
        by_camera: dict[str, list[Segment]] = {}
        for seg in scan(self.watch):
            by_camera.setdefault(seg.camera, []).append(seg)
            self._active[seg.camera] = max(self._active.get(seg.camera, 0), seg.mtime_ns / 1e9)
        added = 0
        for camera, segs in by_camera.items():
            segs.sort(key=lambda s: (s.mtime_ns, s.path.name))
            latest = segs[-1].mtime_ns
            for seg in segs:
                key = str(seg.path)
                if key in known:
                    continue
                prev = self._seen.get(key)
                stable = prev is not None and prev[:2] == (seg.size, seg.mtime_ns)
                since = prev[2] if stable and prev else now
                self._seen[key] = (seg.size, seg.mtime_ns, since)
                settled = (stable or final) and now - seg.mtime_ns / 1e9 >= self.settle
                settled = settled and now - since >= (0 if final else self.settle)
                complete = seg.mtime_ns < latest or settled
                if seg.path.suffix.lower() in (".mp4", ".mov"):
                    complete = complete and mp4_complete(seg.path)
                if not complete or seg.size == 0:
                    continue
                item = self._describe(seg)
                if item is None:
                    self.held += self.keys.on and seg.path.exists()
                    continue
                self.journal.add(seg.path, camera, item)
                self._seen.pop(key, None)
                added += 1
        return added

    def _describe(self, seg: Segment) -> dict[str, Any] | None:
        if self.keys.on:
            return self._describe_sealed(seg)
        digest = hashlib.sha256()
        size = 0
        try:
            with open(seg.path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
            after = seg.path.stat()
        except FileNotFoundError:
            return None
        if (after.st_size, after.st_mtime_ns) != (seg.size, seg.mtime_ns) or size != seg.size:
            return None  # changed while being hashed: not complete after all
        duration = probe_duration(seg.path) or 1.0
        start = seg.start_ms
        if start is None:
            start = seg.mtime_ns // 1_000_000 - int(duration * 1000)
        return {
            "camera": seg.camera,
            "start": format_time(start),
            "duration": round(duration, 3),
            "bytes": size,
            "sha256": digest.hexdigest(),
        }

    def _describe_sealed(self, seg: Segment) -> dict[str, Any] | None:
        """Encrypt the segment into the spool; its record with the custody fields."""
        from custodes.fleet.sealing import seal_file

        duration = probe_duration(seg.path) or 1.0
        start = seg.start_ms
        if start is None:
            start = seg.mtime_ns // 1_000_000 - int(duration * 1000)
        stamp = format_time(start)
        epoch = stamp[:10]
        public = self.keys.key_for(epoch)
        if public is None:
            if epoch not in self._waiting:
                self._waiting.add(epoch)
                self.say(f"custody is on and epoch {epoch} has no ready key: segments wait")
            return None
        self._waiting.discard(epoch)
        if not self.upload and not self._spool_said:
            self._spool_said = True
            self.say(
                f"custody is on and uploads are off: the ciphertexts stay in {self.spool};"
                " an archive must read those, not the recorder's files"
            )
        try:
            sealed = seal_file(
                seg.path, self.spool, public, seg.camera, stamp, chunk_size=self.chunk_size
            )
            after = seg.path.stat()
        except FileNotFoundError:
            return None
        d = sealed.digests
        if (after.st_size, after.st_mtime_ns) != (seg.size, seg.mtime_ns) or (
            d.plaintext_size != seg.size
        ):
            sealed.path.unlink(missing_ok=True)
            return None  # changed while being read: not complete after all
        return {
            "camera": seg.camera,
            "start": stamp,
            "duration": round(duration, 3),
            "bytes": d.plaintext_size,
            "sha256": d.plaintext_sha256,
            "epoch": sealed.epoch,
            "ephemeral": sealed.ephemeral,
            "ciphertext": {"sha256": d.ciphertext_sha256, "bytes": d.ciphertext_size},
            "spool": sealed.path.name,
        }

    # -- talking to the server --------------------------------------------------------

    def _post(
        self, path: str, body: dict[str, Any] | bytes, method: str = "POST"
    ) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "User-Agent": "custodes-agent",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                payload = json.loads(err.read() or b"{}")
            except ValueError:
                payload = {}
            return err.code, payload

    def send(self) -> bool:
        """Send pending digests and heartbeats; False when the server could not be reached."""
        if time.monotonic() < self._retry_at:
            return False
        try:
            self._send_beats()
            while True:
                pending = self.journal.pending(self.batch)
                if not pending:
                    break
                status, payload = self._post(
                    "/fleet/segments", {"segments": [_record(item) for _, item in pending]}
                )
                if status == 413 and self.batch > 1:
                    self.batch = max(1, self.batch // 2)
                    continue
                if status == 401:
                    raise UsageError(f"{self.server} refused the agent token")
                if status != 200:
                    raise ConnectionError(f"HTTP {status}: {payload.get('error', '')}")
                refused = {r["item"]: r["reason"] for r in payload.get("refused", [])}
                results: list[tuple[str, str, str | None]] = []
                for n, (path, _) in enumerate(pending):
                    if n in refused:
                        self.say(f"segment {path} refused: {refused[n]}")
                        results.append((path, "refused", refused[n]))
                    else:
                        results.append((path, "sent", None))
                self.journal.mark(results)
            if self.upload:
                self._upload()
        except (OSError, ConnectionError, ValueError) as err:
            self._backoff = min(self.max_backoff, max(0.5, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            self.say(f"server unreachable ({err}); retrying in {self._backoff:.1f} s")
            return False
        self._backoff = 0.0
        return True

    def _upload(self) -> None:
        """Send logged segments' files to the server's archive, which checks each digest."""
        from urllib.parse import urlencode

        for path, item in self.journal.to_upload(20):
            spooled = self.spool / item["spool"] if "spool" in item else None
            try:
                blob = (spooled or Path(path)).read_bytes()
            except FileNotFoundError:
                self.say(f"segment {path} is gone before it was archived")
                self.journal.mark_uploaded(path, -2)
                continue
            q = urlencode(
                {"camera": item["camera"], "start": item["start"], "suffix": Path(path).suffix}
            )
            status, payload = self._post(f"/fleet/archive?{q}", blob, method="PUT")
            if status == 200:
                self.journal.mark_uploaded(path, 1)
                if spooled is not None:
                    spooled.unlink(missing_ok=True)  # the archive holds it now
            elif status == 422:
                self.say(f"archive refused {path}: {payload.get('error', '')}")
                self.journal.mark_uploaded(path, -1)
            elif status == 401:
                raise UsageError(f"{self.server} refused the agent token")
            else:
                raise ConnectionError(f"HTTP {status}: {payload.get('error', '')}")

    def _send_beats(self) -> None:
        now = time.time()
        if now - self._last_beat >= self.heartbeat:
            self._last_beat = now
            stamp = format_time(int(now) * 1000)
            fresh = {
                c for c, t in self._active.items() if now - t <= max(120.0, 3 * self.heartbeat)
            }
            if self.recorders is not None:
                fresh |= self.recorders.running()
            self.journal.conn.executemany(
                "INSERT OR IGNORE INTO beats VALUES (?, ?)", [(c, stamp) for c in fresh]
            )
        rows = self.journal.conn.execute("SELECT camera, time FROM beats LIMIT 10000").fetchall()
        if not rows:
            return
        status, payload = self._post(
            "/fleet/heartbeats", {"heartbeats": [{"camera": c, "time": t} for c, t in rows]}
        )
        if status == 401:
            raise UsageError(f"{self.server} refused the agent token")
        if status != 200:
            raise ConnectionError(f"HTTP {status}: {payload.get('error', '')}")
        self.journal.conn.executemany("DELETE FROM beats WHERE camera = ? AND time = ?", rows)
        hint = payload.get("live")
        if self.recorders is not None and isinstance(hint, list):
            beaten = {c for c, _ in rows}
            said = {c for c in hint if isinstance(c, str)} & beaten
            self.recorders.update((self.recorders.live - beaten) | said)

    # -- progress -------------------------------------------------------------------------

    def status(self) -> dict[str, int]:
        """Segments ``seen`` (hashed by this run), and over the whole journal ``sent``,
        ``uploaded``, ``pending`` (not yet logged), ``refused``, plus ``held`` (waiting
        for an epoch key)."""
        counts = self.journal.counts()
        uploaded = self.journal.conn.execute(
            "SELECT COUNT(*) FROM files WHERE uploaded = 1"
        ).fetchone()[0]
        return {
            "seen": self.seen,
            "sent": counts.get("sent", 0),
            "uploaded": int(uploaded),
            "pending": counts.get("pending", 0),
            "refused": counts.get("refused", 0),
            "held": self.held if self.keys.on else 0,
        }

    def report(self, *, force: bool = False) -> None:
        """Tell ``progress`` the status, when it changed and ``progress_every`` has passed."""
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now < self._report_at:
            return
        st = self.status()
        key = tuple(st.values())
        if key == self._last_report and not force:
            return
        self._last_report = key
        self._report_at = now + self.progress_every
        self.progress(st)

    def run(self, *, once: bool = False, poll: float = 1.0, stop: Callable[[], bool] = bool) -> int:
        """Follow the folder until ``stop()``; with ``once``, send what is there and return.

        While a camera the agent records has a live grant, the folder is scanned every
        :data:`LIVE_POLL_S` at least, so that its short segments are logged and archived
        soon after they close."""
        try:
            return self._run(once=once, poll=poll, stop=stop)
        finally:
            if self.recorders is not None:
                self.recorders.close()
            self.report(force=True)

    def _run(self, *, once: bool, poll: float, stop: Callable[[], bool]) -> int:
        next_prune = time.monotonic() + PRUNE_EVERY_S
        last_at = (-1, -1)
        while True:
            if self.recorders is not None and not once:
                self.recorders.update()
            self.seen += self.collect(final=once)
            ok = self.send()
            self.report()
            if time.monotonic() >= next_prune:
                self.journal.prune(upload=self.upload)
                next_prune = time.monotonic() + PRUNE_EVERY_S
            if once:
                if ok:
                    if self.journal.pending(1) or (self.upload and self.journal.to_upload(1)):
                        st = self.status()
                        now_at = (st["sent"], st["uploaded"])
                        if now_at != last_at:  # each round sends one batch: go on while it moves
                            last_at = now_at
                            continue
                        return 1
                    return 1 if self.held else 0
                if self._backoff >= self.max_backoff:
                    return 1
                time.sleep(max(0.0, self._retry_at - time.monotonic()))
                continue
            if stop():
                return 0
            live = self.recorders is not None and bool(self.recorders.live)
            time.sleep(min(poll, LIVE_POLL_S) if live else poll)
