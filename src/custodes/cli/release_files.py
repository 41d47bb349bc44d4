"""What ``custodes access release`` writes beside (or into) the released footage: the receipt.

One camera's clip gets its receipt beside it (``CLIP.release.json`` and
``CLIP.tlog-proof``); the archive of several cameras carries it inside
(:mod:`custodes.access.archive`).  A receipt that cannot be had now is said on stderr,
and the footage stays: it is logged either way.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from custodes.errors import CustodesError

__all__ = ["archive_receipt", "listed_files", "write_receipts"]


def listed_files(manifest: dict[str, Any] | None, out: Path) -> list[dict[str, Any]]:
    """The files an archive holds, as ``--json`` gives them (a clip: itself)."""
    if manifest is None:
        return [{"name": out.name}]
    keys = ("name", "camera", "start", "end", "sha256", "bytes")
    return [{k: item.get(k) for k in keys} for item in manifest["files"]]


def archive_receipt(
    server: str, rid: str, index: int, out: Path, result: dict[str, Any],
    say: Callable[[str], None],
) -> None:  # fmt: skip
    """The receipt inside the archive: the server's, or else fetched and added here."""
    from custodes.access.archive import RECEIPT_NAMES, add_receipt, read_receipt
    from custodes.access.receipt import as_tlog_proof, fetch_receipt

    def get(path: str) -> bytes:
        with urllib.request.urlopen(f"{server.rstrip('/')}/log/{path}", timeout=30) as r:
            data: bytes = r.read()
            return data

    if read_receipt(out) is None:
        try:
            receipt = fetch_receipt(get, rid, index, out)
            add_receipt(out, receipt, as_tlog_proof(receipt))
        except (CustodesError, OSError, ValueError) as err:
            click.echo(f"custodes: no release receipt in the archive: {err}", err=True)
            return
    result["receipt"] = f"{out}:{RECEIPT_NAMES[0]}"
    result["tlog_proof"] = f"{out}:{RECEIPT_NAMES[1]}"
    say(
        f"{out} holds the receipt ({RECEIPT_NAMES[0]}, {RECEIPT_NAMES[1]}): check it with"
        f" `custodes access check-receipt {out} --vkey KEY`"
    )


def write_receipts(
    server: str, rid: str, index: int, out: Path, result: dict[str, Any],
    say: Callable[[str], None],
) -> None:  # fmt: skip
    """The receipt beside the clip, and the same as a tlog-proof; a failure is said, and
    the clip stays (it is logged either way)."""
    from custodes.access.receipt import as_tlog_proof, fetch_receipt

    def get(path: str) -> bytes:
        with urllib.request.urlopen(f"{server.rstrip('/')}/log/{path}", timeout=30) as r:
            data: bytes = r.read()
            return data

    receipt_path = out.with_name(out.name + ".release.json")
    try:
        receipt = fetch_receipt(get, rid, index, out)
    except (CustodesError, OSError, ValueError) as err:
        click.echo(f"custodes: no release receipt written: {err}", err=True)
        return
    receipt_path.write_text(json.dumps(receipt, indent=2) + "\n")
    result["receipt"] = str(receipt_path)
    say(f"wrote {receipt_path}: the release entry, its inclusion proof and checkpoint")
    proof_path = out.with_name(out.name + ".tlog-proof")
    try:
        proof_path.write_bytes(as_tlog_proof(receipt))
    except (CustodesError, OSError, ValueError, KeyError, TypeError) as err:
        click.echo(f"custodes: no tlog-proof written: {err}", err=True)
        return
    result["tlog_proof"] = str(proof_path)
    say(f"wrote {proof_path}: the same, as a c2sp.org/tlog-proof@v1 file")
