"""Publishing a log as static C2SP tlog-tiles files.

Full tiles never change, so a file already present is skipped; partial tiles
(``.p/<W>``) are new paths each time.  Each file is written to a temporary
name and renamed, and the checkpoint goes last, so a reader of the directory
never sees a checkpoint whose tiles are missing or half written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from custodes.ledger.lock import atomic_write
from custodes.ledger.reader import LogReader
from custodes.tlog import (
    ENTRIES_LEVEL,
    bundles_for_size,
    parse_checkpoint,
    parse_note,
    tile_path,
    tiles_for_size,
)

__all__ = ["export_tiles"]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_tiles(
    reader: LogReader,
    out: Path,
    *,
    progress: Callable[[int], None] | None = None,
    note: bytes | None = None,
) -> dict[str, int]:
    """Bring ``out`` up to ``note`` (default: the latest checkpoint); returns counts of files."""
    note = note or reader.checkpoint()
    size = parse_checkpoint(parse_note(note).text).size
    written = skipped = 0
    for tile in [*bundles_for_size(size), *tiles_for_size(size)]:
        path = out / tile_path(tile)
        if path.exists():
            skipped += 1
            continue
        if tile.level == ENTRIES_LEVEL:
            data = reader.entry_bundle(tile.index, tile.width)
            if progress is not None:
                progress(tile.width)
        else:
            data = reader.hash_tile(tile.level, tile.index, tile.width)
        _write(path, data)
        written += 1
    atomic_write(out / "checkpoint", note)
    return {"size": size, "written": written, "skipped": skipped}
