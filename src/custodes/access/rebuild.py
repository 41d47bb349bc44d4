"""Rebuild the gateway's caches from the log alone: ``custodes access rebuild``.

The log is the only authority; ``access.db`` (decisions, releases, expiries,
disclosures, reveals, flags), ``policy.json`` and the roles and scopes of the
identity store are caches of it.  An insider who edits one of them changes
nothing the gateway decides (it decides from the log and refuses a cache that
disagrees), and this command puts the caches back as a server that never
stopped would have them.

What the log cannot give back stays: the sealed details of each request (kept
encrypted beside its row; each must still open to the commitment its
``access.requested`` entry holds) and the accounts' secrets (token and
password hashes).  Before anything is written, every entry of the log up to
its latest signed checkpoint must hash to that checkpoint's root: caches are
never rebuilt from a store whose entries were changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from custodes.access import entries as E
from custodes.errors import CacheMismatchError

__all__ = ["rebuild", "state_digest"]

_DERIVED = ("req_decisions", "req_releases", "req_flags")
_REQUEST_COLUMNS = ("log_index", "expired_ms", "disclosed_ms", "revealed_ms")


def state_digest(db: Any) -> str:
    """SHA-256 over every row of access.db, table by table in key order: equal digests,
    equal state."""
    import hashlib

    h = hashlib.sha256()
    with db.lock:
        for table in ("req_requests", *_DERIVED):
            for row in db.conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2"):
                h.update(json.dumps([table, *[_plain(v) for v in row]]).encode() + b"\n")
    return h.hexdigest()


def _plain(v: Any) -> Any:
    return v.hex() if isinstance(v, bytes | bytearray | memoryview) else v


def rebuild(data: Path) -> dict[str, Any]:
    """Rebuild the caches of the instance at ``data`` (its server stopped) from its log."""
    from custodes.access.identity import Identities
    from custodes.access.logview import LogView
    from custodes.access.policy import POLICY_FILE, Policy
    from custodes.access.service import AccessService
    from custodes.fleet.registry import FleetDB
    from custodes.ledger.instance import Instance
    from custodes.tlog.checkpoint import open_checkpoint
    from custodes.tlog.note import Verifier
    from custodes.web.service import LedgerService

    inst = Instance.load(data)
    ledger = LedgerService(inst)
    try:
        view = LogView()

        def verify(log: Any) -> int:
            note = log.latest_checkpoint()
            cp = None
            if note:
                signed = open_checkpoint(note, Verifier.from_key(inst.verifier_key)).checkpoint
                cp = (signed.size, signed.root_hash)
            view.catch_up(log.store, checkpoint=cp)
            return cp[0] if cp else 0

        ledger.integrate_now()  # what a starting server does: entries past the checkpoint
        verified = ledger.read(verify)
        with Identities(inst.path) as ids:
            fixed = _accounts_from_log(ids, view)
            logged = view.policy()
            pfile = inst.path / POLICY_FILE
            pfile.unlink(missing_ok=True)
            if logged is not None:
                from custodes.access.policy import PolicyFile

                PolicyFile(inst.path).write(Policy.parse(logged[1], logged[0]))
            fleet = FleetDB.for_instance(inst.path)
            try:
                svc_db = _reset(inst.path)
                svc_db.close()
                svc = AccessService(ledger, fleet, ids, inst.path)
                try:
                    bad = _check_sealed(svc, view)
                    digest = state_digest(svc.db)
                    requests = len(svc.db.requests("1 = 1"))
                finally:
                    svc.close()
            finally:
                fleet.close()
    finally:
        ledger.close()
    if bad:
        raise CacheMismatchError(
            f"the caches were rebuilt, but the sealed details of {len(bad)} request(s)"
            f" ({', '.join(bad[:5])}) do not open to their logged commitment"
        )
    return {
        "entries": view.size,
        "verified": verified,
        "requests": requests,
        "accounts_fixed": fixed,
        "policy": logged[0] if logged else None,
        "state_sha256": digest,
    }


def _reset(data: Path) -> Any:
    from custodes.access.requests import AccessDB

    db = AccessDB(data)
    with db.transaction() as c:
        for table in _DERIVED:
            c.execute(f"DELETE FROM {table}")
        c.execute(
            "UPDATE req_requests SET " + ", ".join(f"{col} = NULL" for col in _REQUEST_COLUMNS)
        )
        c.execute("DELETE FROM req_meta WHERE key = 'applied'")
    return db


def _accounts_from_log(ids: Any, view: Any) -> int:
    """Put each account's role, scope and standing back as the log has them."""
    fixed = 0
    for user in ids.users():
        acc = view.account(user.pseudonym)
        if acc is None:
            continue
        if (acc.role, acc.scope, acc.active) != (user.role, user.scope, user.active):
            ids.restore(user.pseudonym, acc.role, acc.scope, acc.active)
            fixed += 1
    return fixed


def _check_sealed(svc: Any, view: Any) -> list[str]:
    bad = []
    for row in svc.db.requests("1 = 1"):
        req = view.request(row.id)
        if req is None or row.sealed[:1] == b"\x02":
            continue  # (sealed to the custodians: they open it, for a logged read only)
        try:
            salt, details = svc._open(row)
            ok = E.commitment(salt, details) == req.entry.get("commitment")
        except Exception:
            ok = False
        if not ok:
            bad.append(row.id)
    return bad
