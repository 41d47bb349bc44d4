"""Where recorded segments' files are kept: a folder, or an S3-compatible object store.

The archive only ever holds a file whose SHA-256 was logged first (the
``/fleet/archive`` route checks it before storing) and whose content is a
container a recorder writes (MP4, MPEG-TS or Matroska, checked by
:mod:`custodes.fleet.containers` from the bytes, whatever the suffix) or, for a
segment whose record says it is encrypted under custody, its custody ciphertext
(recognised by its stream header, for the record's epoch, checked against the
logged ciphertext digest, and stored as ``<start><suffix>.enc``); files are kept
0600.  Every reader checks
the digest again before using a file, so the store needs no trust: a
tampered or swapped object is refused, not released.

``fleet.json`` chooses the place: without an ``archive`` key, files live
under ``DIR/archive/<camera>/<YYYY-MM-DD>/<start><suffix>``; with
``"archive": "s3://BUCKET/PREFIX?endpoint=http://HOST:PORT"`` the same paths
are keys under PREFIX, and readers fetch a segment into ``DIR/archive-cache``
the first time they need it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol

from custodes.errors import CustodesError, StoreUnavailableError
from custodes.fleet.containers import SEALED_SUFFIX, check_container, check_sealed
from custodes.fleet.model import format_time

__all__ = ["Archive", "DirArchive", "S3Archive", "open_archive", "segment_key"]


def _checked(src: Path, suffix: str, epoch: str | None) -> str:
    """Refuse (and remove) a file that is not what the segment's record says, by content:
    for a plaintext record a container a recorder writes, for an encrypted one (``epoch``
    given) a custody ciphertext for that epoch.  Returns the suffix to store it under."""
    try:
        if epoch is None:
            check_container(src, suffix)
            return suffix
        check_sealed(src, epoch, suffix)
        return suffix + SEALED_SUFFIX
    except CustodesError:
        src.unlink(missing_ok=True)
        raise


def segment_key(camera: str, start_ms: int, suffix: str) -> str:
    """``<camera>/<YYYY-MM-DD>/<start with - for :><suffix>``: the same in a folder or a bucket."""
    stamp = format_time(start_ms)
    return f"{camera}/{stamp[:10]}/{stamp.replace(':', '-')}{suffix}"


class Archive(Protocol):
    def store(
        self, src: Path, camera: str, start_ms: int, suffix: str, epoch: str | None = None
    ) -> str:
        """Move ``src`` (its digest already checked against the record) into the archive;
        returns where it went.  ``epoch``: the record says the segment is encrypted for
        it, and ``src`` must be its custody ciphertext (stored with ``.enc`` appended)."""
        ...

    def fetch(self, camera: str, start_ms: int) -> Path | None:
        """A local file holding the segment, or None when the archive has none."""
        ...


class DirArchive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def store(
        self, src: Path, camera: str, start_ms: int, suffix: str, epoch: str | None = None
    ) -> str:
        suffix = _checked(src, suffix, epoch)
        final = self.root / segment_key(camera, start_ms, suffix)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(src, 0o600)
        os.replace(src, final)
        return str(final.relative_to(self.root.parent))

    def fetch(self, camera: str, start_ms: int) -> Path | None:
        key = segment_key(camera, start_ms, "")
        folder = self.root / Path(key).parent
        if not folder.is_dir():
            return None
        found = sorted(p for p in folder.glob(Path(key).name + ".*") if p.is_file())
        return found[0] if found else None


class S3Archive:
    """Segments as objects; ``fetch`` downloads into ``cache`` once (atomically)."""

    def __init__(self, url: str, cache: Path) -> None:
        from custodes.ledger.objectstore import S3Target

        self.target = S3Target.parse(url)
        self.cache = cache
        self._s3: Any = None

    def _client(self) -> Any:
        if self._s3 is None:
            self._s3 = self.target.client()
        return self._s3

    def _unavailable(self, err: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"the footage archive at {self.target.endpoint or 'S3'} cannot be reached ({err})"
        )

    def store(
        self, src: Path, camera: str, start_ms: int, suffix: str, epoch: str | None = None
    ) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        suffix = _checked(src, suffix, epoch)
        key = self.target.key("archive/" + segment_key(camera, start_ms, suffix))
        s3 = self._client()
        try:
            try:
                s3.head_bucket(Bucket=self.target.bucket)
            except ClientError:
                s3.create_bucket(Bucket=self.target.bucket)
            s3.upload_file(str(src), self.target.bucket, key)
        except (BotoCoreError, ClientError) as err:
            raise self._unavailable(err) from None
        finally:
            src.unlink(missing_ok=True)
        return f"s3://{self.target.bucket}/{key}"

    def fetch(self, camera: str, start_ms: int) -> Path | None:
        from botocore.exceptions import BotoCoreError, ClientError

        stem = segment_key(camera, start_ms, "")
        local = self.cache / stem
        cached = sorted(local.parent.glob(local.name + ".*")) if local.parent.is_dir() else []
        cached = [p for p in cached if not p.name.endswith(".part")]
        if cached:
            return cached[0]
        s3 = self._client()
        try:
            listed = s3.list_objects_v2(
                Bucket=self.target.bucket, Prefix=self.target.key("archive/" + stem + ".")
            )
            keys = sorted(o["Key"] for o in listed.get("Contents", []))
            if not keys:
                return None
            prefix = self.target.key("archive/" + stem)
            dest: Path = self.cache / (stem + str(keys[0])[len(prefix) :])
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + f".{os.getpid()}.part")
            s3.download_file(self.target.bucket, keys[0], str(part))
            os.chmod(part, 0o600)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404", "NoSuchKey"):
                return None
            raise self._unavailable(err) from None
        except BotoCoreError as err:
            raise self._unavailable(err) from None
        os.replace(part, dest)
        return dest

    def clear_cache(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)


def open_archive(data: Path) -> DirArchive | S3Archive:
    """The archive ``DIR/fleet.json`` names (a folder by default)."""
    from custodes.fleet.ops import FleetSettings

    url = FleetSettings.load(data).archive
    if url:
        return S3Archive(url, data / "archive-cache")
    return DirArchive(data / "archive")
