"""Publishing a log's tiles to an S3-compatible object store, for any CDN to serve.

Readers then never touch the database.  The layout is C2SP tlog-tiles under
a prefix.  Each object is written by one PUT, which S3 makes atomic: an
object is either absent or whole, so a reader never sees half a tile.  The
checkpoint goes last, and it is what makes a publication visible: a reader
that follows it finds every tile it names, even if the publisher was killed
half-way through an earlier attempt.

Publishing is incremental: the checkpoint already in the bucket says which
full tiles are there, so only the tiles the new size adds are uploaded.

Objects carry the headers ``custodes serve`` sends (:func:`tile_headers`), so
a CDN in front of the bucket caches them as it should: full tiles for a year
as immutable, partial tiles (whose hashes never change) for a day, the
checkpoint not at all.  Entry bundles are stored gzip-compressed with
``Content-Encoding: gzip``, which tlog-tiles lets a log send unasked.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from custodes.errors import StoreUnavailableError, UsageError
from custodes.ledger.reader import LogReader
from custodes.tlog import (
    ENTRIES_LEVEL,
    TILE_WIDTH,
    Tile,
    bundles_for_size,
    parse_checkpoint,
    parse_note,
    tile_path,
    tiles_for_size,
)

__all__ = ["S3Target", "publish_to_s3", "tile_headers"]

IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=86400"


def tile_headers(tile: Tile) -> dict[str, str]:
    """The S3 object parameters for ``tile``: the headers a reader will be sent."""
    headers = {
        "ContentType": "application/octet-stream",
        "CacheControl": IMMUTABLE if tile.width == TILE_WIDTH else PARTIAL,
    }
    if tile.level == ENTRIES_LEVEL:
        headers["ContentEncoding"] = "gzip"
    return headers


@dataclass(frozen=True, kw_only=True)
class S3Target:
    """``s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT``; keys from ``AWS_*`` variables."""

    bucket: str
    prefix: str
    endpoint: str | None

    @classmethod
    def parse(cls, url: str, *, endpoint: str | None = None) -> S3Target:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise UsageError(f"{url!r} is not s3://BUCKET/PREFIX")
        given = parse_qs(parts.query).get("endpoint", [])
        return cls(
            bucket=parts.netloc,
            prefix=parts.path.strip("/"),
            endpoint=endpoint or (given[0] if given else None),
        )

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "custodes"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "custodes"),
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30),
        )


def _remote_size(s3: Any, target: S3Target) -> int:
    from botocore.exceptions import ClientError

    try:
        body = s3.get_object(Bucket=target.bucket, Key=target.key("checkpoint"))["Body"].read()
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NoSuchBucket"):
            return 0
        raise
    return parse_checkpoint(parse_note(body).text).size


def publish_to_s3(
    reader: LogReader,
    target: S3Target,
    *,
    note: bytes | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Bring the bucket up to ``note`` (default: the latest checkpoint)."""
    from botocore.exceptions import BotoCoreError, ClientError

    note = note or reader.checkpoint()
    size = parse_checkpoint(parse_note(note).text).size
    s3 = target.client()
    try:
        try:
            s3.head_bucket(Bucket=target.bucket)
        except ClientError:
            try:
                s3.create_bucket(Bucket=target.bucket)
            except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
                pass
        old = _remote_size(s3, target)
        if old > size:
            raise UsageError(
                f"the bucket already holds a checkpoint of size {old}, larger than {size}"
            )
        have = {tile_path(t) for t in [*bundles_for_size(old), *tiles_for_size(old)]}
        written = 0
        for tile in [*bundles_for_size(size), *tiles_for_size(size)]:
            path = tile_path(tile)
            if path in have:
                continue
            if tile.level == ENTRIES_LEVEL:
                data = gzip.compress(
                    reader.entry_bundle(tile.index, tile.width), compresslevel=6, mtime=0
                )
                if progress is not None:
                    progress(tile.width)
            else:
                data = reader.hash_tile(tile.level, tile.index, tile.width)
            s3.put_object(
                Bucket=target.bucket, Key=target.key(path), Body=data, **tile_headers(tile)
            )
            written += 1
        s3.put_object(
            Bucket=target.bucket,
            Key=target.key("checkpoint"),
            Body=note,
            ContentType="text/plain; charset=utf-8",
            CacheControl="no-cache",
        )
    except (BotoCoreError, ClientError) as err:
        raise StoreUnavailableError(
            f"the object store at {target.endpoint or 'AWS'} failed: {err}"
        ) from None
    return {"size": size, "previous_size": old, "written": written + 1}
