"""Sealed request details under custody, end to end: a real `custodes serve` gateway, a real
witness and three real custodian processes (2 of 3).

The details are sealed to the custodians, so nothing in the data directory opens them; an
auditor's read is logged, witnessed and opened by T custodians; and a release whose segments
lie outside the sealed scope (access.db forged) is refused by the custodians themselves.
One city for the module; the tests run in order, the destructive ones last.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from custodes.access.sealing import Sealer, check_commitment, custody_sealed
from custodes.custody.errors import CustodyFormatError, NotEnoughPartialsError
from custodes.custody.sealed import SealedDetails, details_partial, open_details, seal_details
from custodes.errors import FormatError
from tests.custody.conftest import Epoch, make_epoch
from tests.custody.gateway import FFMPEG, City, call, witnessed_city

CASE = b"CASE-2026-0042"  # what City.approved files
JUSTIFICATION = b"A bag snatched at the metro entrance."


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    if FFMPEG is None:
        pytest.skip("needs ffmpeg")
    with witnessed_city(tmp_path_factory.mktemp("sealed")) as got:  # the gateway waits 5 s
        yield got


def _rows(data: Path) -> dict[str, tuple[bytes, str]]:
    with sqlite3.connect(data / "access.db") as db:
        got = db.execute("SELECT id, sealed, commitment FROM req_requests").fetchall()
    return {str(r): (bytes(s), str(m)) for r, s, m in got}


def _read(c: City, rid: str, why: str = "Audit of the metro case.") -> tuple[int, Any]:
    q = urllib.parse.urlencode({"why": why})
    url = f"{c.url}/access/requests/{rid}/sealed?{q}"
    status, _, raw = call("GET", url, c.tokens["audrey"])
    return status, json.loads(raw)


def _answers(url: str) -> list[dict[str, Any]]:
    raw = urllib.request.urlopen(url + "/answers", timeout=10).read().decode()
    return [json.loads(line) for line in raw.splitlines()]


def test_a_copied_data_directory_holds_no_key_and_no_plaintext_of_the_details(
    c: City, tmp_path: Path
) -> None:
    rid = c.approved(seconds=2)
    copy = tmp_path / "copy"
    shutil.copytree(c.net.log_data, copy)
    found = [
        str(p) for p in copy.rglob("*") if p.is_file() and any(
            s in p.read_bytes() for s in (CASE, JUSTIFICATION))
    ]  # fmt: skip
    assert found == []
    rows = _rows(copy)
    assert rid in rows and all(custody_sealed(blob) for blob, _ in rows.values())
    # The logged entry carries the ephemeral key and epoch, so custodians take them from it.
    (req,) = [e for e in c.log_entries() if e["type"] == "access.requested"
              and e["request"] == rid]  # fmt: skip
    assert set(req["sealed"]) == {"epoch", "ephemeral"}
    # Nothing in the copy opens a row: not the instance's sealing key (the v1 Sealer
    # refuses the format), nor that key or any 32 bytes of a key file as the AES-GCM key.
    from custodes.access.identity import Identities

    ids = Identities(copy)
    try:
        candidates = {ids._sealing_key}
        for blob, _ in rows.values():
            with pytest.raises(FormatError, match="not in the sealed format"):
                ids.sealer().open(blob)
    finally:
        ids.close()
    for p in (copy / "keys").rglob("*"):
        raw = p.read_bytes() if p.is_file() else b""
        candidates |= {raw[i : i + 32] for i in range(max(0, len(raw) - 31))}
    for row_id, (blob, _) in rows.items():
        sealed = SealedDetails.parse(blob)
        for key in candidates:
            with pytest.raises(InvalidTag):
                AESGCM(key).decrypt(sealed.nonce, sealed.body, sealed.aad(row_id))
    # The requester's own view shows no details: nothing here opens them without a read;
    # with a reason the read is logged and the custodians open it.
    status, _, raw = call("GET", f"{c.url}/access/requests/{rid}", c.tokens["ivan"])
    assert status == 200 and json.loads(raw)["details"] is None
    status, _, raw = call("GET", f"{c.url}/access/requests/{rid}?why=My+own+case.",
                          c.tokens["ivan"])  # fmt: skip
    assert status == 200 and json.loads(raw)["details"]["case"] == CASE.decode(), raw
    read = [e for e in c.log_entries() if e["type"] == "access.details_read"][-1]
    assert read["request"] == rid and read["role"] == "investigator"


def test_an_auditor_reads_the_details_opened_by_the_custodians_and_not_with_two_down(
    c: City,
) -> None:
    rid = c.approved(seconds=2)
    status, got = _read(c, rid)
    assert status == 200, got
    assert got["details"]["case"] == CASE.decode() and got["details"]["request"] == rid
    blob, commitment = _rows(c.net.log_data)[rid]
    assert check_commitment(commitment, got["salt"], got["details"])
    read = c.log_entries()[got["read_index"]]
    assert read["type"] == "access.details_read" and read["role"] == "auditor"
    for _, _, url, _ in c.net.custodians:  # each answered for that logged read
        mine = [a for a in _answers(url) if a.get("details") == rid]
        assert [a["for"].rsplit("#", 1)[1] for a in mine] == [str(got["read_index"])]
    c.custodian(2).stop()
    try:
        status, got = _read(c, rid)
        assert status == 200 and got["details"]["case"] == CASE.decode()  # 2 of 3 suffice
        c.custodian(1).stop()
        status, got = _read(c, rid)
        assert status == 503, got
        assert "1 custodian answered correctly; 2 are needed" in got["error"], got
        assert "details" not in got and CASE.decode() not in json.dumps(got)
    finally:
        c.custodian(1).start()
        c.custodian(2).start()
    # A reveal is a read too: logged, opened by the custodians, then published.
    status, _, raw = call("POST", f"{c.url}/access/requests/{rid}/reveal", c.tokens["audrey"],
                          {"reason": "The court asked for it."})  # fmt: skip
    assert status == 200, raw
    entries = c.log_entries()
    (revealed,) = [e for e in entries if e["type"] == "access.revealed" and e["request"] == rid]
    assert revealed["details"]["case"] == CASE.decode()
    assert check_commitment(commitment, revealed["salt"], revealed["details"])
    reads = [e for e in entries if e["type"] == "access.details_read" and e["request"] == rid]
    assert reads[-1]["why"] == "The court asked for it."


def test_a_release_outside_the_sealed_scope_is_refused_by_the_custodians(c: City) -> None:
    starts = [start for start, _, _ in c.segments]
    assert starts[0] < starts[1]  # the sealed window ends where the second segment starts
    rid = c.approved(seconds=(starts[1] - starts[0]) / 1000)
    end = c.segments[-1][1]
    # An insider widens the window in access.db: the gateway's own checks pass, but each
    # custodian opens the sealed details itself and refuses the segments past the window.
    with sqlite3.connect(c.net.log_data / "access.db") as db:
        db.execute("UPDATE req_requests SET to_ms = ? WHERE id = ?", (end, rid))
    status, _, raw = c.release(rid)
    assert status == 503, raw
    error = json.loads(raw)["error"]
    assert "0 custodians answered correctly; 2 are needed (3 refused" in error, error
    assert f"is outside the sealed scope of request {rid}: it lies outside the window" in error
    entries = c.log_entries()
    assert [e for e in entries if e["type"] == "access.exported" and e["request"] == rid] == []
    for _, _, url, _ in c.net.custodians:  # no custodian answered for that release
        assert [a for a in _answers(url) if a.get("request") == rid] == []
    # Another request's sealed details put in its row: the gateway sees they are not the
    # ones the log names (an alert), and asks no custodian.
    a, b = c.approved(seconds=1), c.approved(seconds=2)
    with sqlite3.connect(c.net.log_data / "access.db") as db:
        db.execute("UPDATE req_requests SET sealed = (SELECT sealed FROM req_requests WHERE"
                   " id = ?) WHERE id = ?", (b, a))  # fmt: skip
    status, _, raw = c.release(a)
    assert status == 409, raw
    assert "are not the ones its logged access.requested names" in json.loads(raw)["error"]
    assert [e for e in c.log_entries() if e["type"] == "access.released"
            and e["request"] == a] == []  # refused before anything was logged # fmt: skip
    # The honest request opens: the scope check passes for segments inside the window.
    ok = c.approved(seconds=2)
    status, _, clip = c.release(ok)
    assert status == 200, clip


def test_old_v1_rows_still_open_and_the_custody_format_binds_request_and_cause() -> None:
    # A row sealed before custody (made by the v1 Sealer with this key) still opens.
    old = bytes.fromhex(
        "0112c393c0cf76b7853587e1c8e38bd8580c405016f9474e70484a1eaf19337c6bf355bea908d5f87a6d"
        "abb4da79aa5d5272deee17d1da73d9340f0536423a3bedb42bf779afa16768be2b8ee051cef682be1fdd"
        "3868fcf74ddbbe28f810d8587101d088b8396c3cbd554b0f9bca123ce871d14c171b802e561c10994e69"
        "1daacc0d13ea3e2155bfbfcffaa0132ab432a1bb4da1b2ae93276afe4d056d5a9d0c4f928928116f8a87"
        "86e17d2759da554961040484b34820183d9a6cab1ac0580bfe87"
    )
    salt, details = Sealer(bytes(range(32))).open(old)
    assert details["case"] == "CASE-OLD-1" and not custody_sealed(old)
    assert check_commitment(
        "8a5a9311b8dba05514578f74ec82ca1d92927ffc8e82f4b425a4ed5514cf0d9b", salt.hex(), details
    )
    # Version 2: T partials for the logged cause open it; any other request or cause fails.
    ep: Epoch = make_epoch(3, 2)
    sealed = seal_details(ep.public, "r-1", b"s" * 32 + b'{"case":"X"}')
    parts = [details_partial(s, sealed.ephemeral, "r-1", cause="log#7") for s in ep.shares[:2]]
    plain, wrong = open_details(ep.public, parts, sealed, "r-1", cause="log#7")
    assert plain.endswith(b'{"case":"X"}') and wrong == ()
    with pytest.raises(NotEnoughPartialsError):
        open_details(ep.public, parts, sealed, "r-1", cause="log#8")
    with pytest.raises(NotEnoughPartialsError):
        open_details(ep.public, parts[:1], sealed, "r-1", cause="log#7")
    other = [details_partial(s, sealed.ephemeral, "r-2", cause="log#7") for s in ep.shares[:2]]
    with pytest.raises(CustodyFormatError):  # the key binds the request id
        open_details(ep.public, other, sealed, "r-2", cause="log#7")


def test_the_details_equations_agree_with_an_independent_model() -> None:
    """The key, ciphertext and combined partials, recomputed with the slow pure-Python
    ristretto255 of the vectors (no libsodium, no custodes code)."""
    from custodes.custody.group import Scalar
    from custodes.custody.sealed import _seal_with
    from tests.custody import slow_ristretto as slow

    ep = make_epoch(3, 2)
    r, nonce, plain = 0x1234_5678_9ABC_DEF0 * 977, bytes(range(12)), b"s" * 32 + b'{"a":1}'
    sealed = _seal_with(Scalar.from_int(r), nonce, ep.public, "r-7", plain)
    y = slow.decode(ep.public.public_key.encode())
    assert y is not None
    eph = slow.encode(slow.mul(r, slow.B))
    assert sealed.ephemeral.encode() == eph and sealed.epoch == ep.public.epoch
    info = slow.lp(b"r-7", sealed.epoch.encode(), eph, slow.encode(y))
    z = slow.encode(slow.mul(r, y))
    key = slow.hkdf_sha256(z, salt=b"custodes/custody/details/v1", info=info)
    aad = bytes([2]) + slow.lp(b"r-7", sealed.epoch.encode(), eph)
    assert AESGCM(key).decrypt(nonce, sealed.body, aad) == plain
    # T partials D_j = x_j*R, combined with Lagrange coefficients at 0, give Z = r*Y.
    used = (1, 3)
    total = None
    for j in used:
        d = details_partial(ep.shares[j - 1], sealed.ephemeral, "r-7", cause="log#1")
        x_j = int.from_bytes(ep.shares[j - 1].secret.encode(), "little")
        assert d.point.encode() == slow.encode(slow.mul(x_j, slow.mul(r, slow.B)))
        lam = 1
        for m in used:
            if m != j:
                lam = lam * m * pow((m - j) % slow.L, -1, slow.L) % slow.L
        pt = slow.decode(d.point.encode())
        assert pt is not None
        term = slow.mul(lam, pt)
        total = term if total is None else slow.add(total, term)
    assert total is not None and slow.encode(total) == z
