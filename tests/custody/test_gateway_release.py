"""A release under custody, end to end: a real `custodes serve` gateway, a real witness, three
real custodian processes (2 of 3), and an agent that encrypted real ffmpeg segments.

One city for the module; the tests run in order, the destructive ones (custodians stopped,
a custodian made to lie) last.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custodes.access.receipt import check_receipt, fetch_receipt
from tests.conftest import run_cli
from tests.custody.gateway import CAMERA, FFMPEG, City, call, witnessed_city

pytestmark = pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg")


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    with witnessed_city(tmp_path_factory.mktemp("gateway")) as got:  # the gateway waits 5 s
        yield got


def _frames(clip: bytes) -> int:
    import av

    with av.open(io.BytesIO(clip), "r", format="mp4") as f:
        return sum(1 for _ in f.decode(video=0))


def _of(entries: list[dict[str, Any]], kind: str, rid: str) -> list[tuple[int, dict[str, Any]]]:
    return [(i, e) for i, e in enumerate(entries) if e["type"] == kind and e.get("request") == rid]


def test_the_release_is_logged_and_witnessed_first_then_opened_cut_and_exported(
    c: City, tmp_path: Path
) -> None:
    rid = c.approved(unredacted=False)
    status, headers, clip = c.release(rid)
    assert status == 200, clip
    assert headers["content-type"] == "video/mp4"
    digest = hashlib.sha256(clip).hexdigest()
    assert headers["x-custodes-sha256"] == digest
    # Decoded: the frames of the window (ffmpeg wrote the segments faster than real time,
    # so their logged times overlap and the cut keeps each instant once).
    assert _frames(clip) >= 10

    entries = c.log_entries()
    (rel_index, rel), = _of(entries, "access.released", rid)  # fmt: skip
    (exp_index, exp), = _of(entries, "access.exported", rid)  # fmt: skip
    assert int(headers["x-custodes-release-index"]) == rel_index
    assert int(headers["x-custodes-index"]) == exp_index
    # The release names the request, the segments' plaintext digests, the redaction, but no
    # clip: it was logged before anything could be cut.  The export names the clip.
    assert rel["v"] == 3 and "output" not in rel
    assert rel["segments"] == [sha for _, _, sha in c.segments]
    assert rel_index < exp_index
    assert exp["release"] == rel_index
    assert exp["output"] == {"sha256": digest, "bytes": len(clip)}
    assert exp["redaction"] == rel["redaction"] and rel["redaction"]["faces"] is True

    # Every custodian answered for that release, and recorded it in its public record.
    for _, _, url, _ in c.net.custodians:
        answers = urllib.request.urlopen(url + "/answers").read().decode().splitlines()
        mine = [json.loads(a) for a in answers if json.loads(a).get("request") == rid]
        assert len(mine) == 1 and mine[0]["release"].endswith(f"#{rel_index}")
        assert [s["sha256"] for s in mine[0]["segments"]] == rel["segments"]

    # The receipt names the export entry, and checks with the log key alone.
    out = tmp_path / "clip.mp4"
    out.write_bytes(clip)

    def get(path: str) -> bytes:
        return bytes(urllib.request.urlopen(f"{c.url}/log/{path}", timeout=10).read())

    receipt = fetch_receipt(get, rid, exp_index, out)
    assert check_receipt(receipt, out, c.net.log_vkey)["type"] == "access.exported"

    # The requester can fetch the same clip again; it is checked against the export entry.
    status, headers, again = call(
        "GET", f"{c.url}/access/requests/{rid}/clip", c.tokens["ivan"]
    )  # fmt: skip
    assert status == 200 and again == clip
    assert int(headers["x-custodes-index"]) == exp_index


def test_the_release_command_writes_the_clip_and_receipts_that_check_with_the_log_key(
    c: City, tmp_path: Path
) -> None:
    rid = c.approved(seconds=2)
    out = tmp_path / "clip.mp4"
    said = run_cli(
        "access", "release", rid, "--out", str(out), "--server", c.url, "--token",
        c.tokens["ivan"],
    ).stdout.decode()  # fmt: skip
    (rel_index, _), = _of(c.log_entries(), "access.released", rid)  # fmt: skip
    (exp_index, exp), = _of(c.log_entries(), "access.exported", rid)  # fmt: skip
    assert f"release logged at index {rel_index} and opened by the custodians" in said
    assert f"the clip logged at index {exp_index}" in said
    assert exp["output"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    for receipt in (f"{out}.tlog-proof", f"{out}.release.json"):
        ok = run_cli("access", "check-receipt", receipt, "--vkey", c.net.log_vkey)
        assert ok.returncode == 0
    # A clip other than the one exported fails the receipt.
    out.write_bytes(out.read_bytes()[:-1])
    bad = run_cli(
        "access", "check-receipt", f"{out}.tlog-proof", "--vkey", c.net.log_vkey, check=False
    )  # fmt: skip
    assert bad.returncode != 0


def test_a_copy_of_the_data_directory_holds_no_plaintext_of_any_segment(
    c: City, tmp_path: Path
) -> None:
    runs = []
    for f in c.plain:
        blob = f.read_bytes()
        runs += [blob[at : at + 64] for at in (len(blob) // 4, len(blob) // 2, 3 * len(blob) // 4)]
    copy = tmp_path / "copy"
    shutil.copytree(c.net.log_data, copy)
    found = []
    files = [p for p in copy.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".mp4.enc") for p in files)
    for p in files:
        blob = p.read_bytes()
        found += [f"{p}: run {k}" for k, r in enumerate(runs) if r in blob]
    assert found == []


def test_under_custody_the_home_page_does_not_say_footage_is_unencrypted(c: City) -> None:
    home = urllib.request.urlopen(c.url + "/", timeout=10).read().decode()
    assert "The camera map" in home and "stored unencrypted" not in home


def test_under_custody_the_server_refuses_a_plaintext_segment_record(c: City) -> None:
    start, _, sha = c.segments[0]
    from custodes.fleet.model import format_time

    body = {"segments": [{"camera": CAMERA, "start": format_time(start + 100), "duration": 1,
                          "bytes": 1000, "sha256": sha}]}  # fmt: skip
    status, _, raw = call("POST", c.url + "/fleet/segments", c.agent, body)
    assert status == 400, raw
    assert "custody is on" in json.loads(raw)["error"]
    assert "1 of the 1 records carry no epoch" in json.loads(raw)["error"]


def test_a_changed_ciphertext_in_the_archive_is_refused_with_the_segment_named(c: City) -> None:
    rid = c.approved(seconds=2)
    enc = sorted((c.net.log_data / "archive" / CAMERA).rglob("*.mp4.enc"))[0]
    original = enc.read_bytes()
    blob = bytearray(original)
    blob[len(blob) // 2] ^= 0x01
    enc.write_bytes(bytes(blob))
    try:
        status, _, raw = c.release(rid)
        assert status == 422, raw
        error = json.loads(raw)["error"]
        assert f"the archived ciphertext of camera {CAMERA} at" in error
        assert "does not match its logged digest" in error
        assert _of(c.log_entries(), "access.exported", rid) == []
    finally:
        enc.write_bytes(original)
    status, _, clip = c.release(rid)  # the archive mended: the same release opens
    assert status == 200, clip


def test_a_release_not_witnessed_in_time_is_a_503_and_opens_once_it_is(c: City) -> None:
    rid = c.approved(seconds=2)
    c.net.witness.stop()
    try:
        status, _, raw = c.release(rid)
        assert status == 503, raw
        error = json.loads(raw)["error"]
        assert "was cosigned by the log's witnesses within 5 s" in error, error
        assert "no custodian was asked and nothing was released" in error
        assert _of(c.log_entries(), "access.exported", rid) == []
    finally:
        c.net.witness.start()
    status, _, clip = c.release(rid)
    assert status == 200, clip


def test_with_two_custodians_down_nothing_leaves_and_the_503_says_how_many_answered(
    c: City,
) -> None:
    rid = c.approved(seconds=2)
    c.custodian(1).stop()
    c.custodian(2).stop()
    try:
        status, headers, raw = c.release(rid)
        assert status == 503, raw
        assert headers["content-type"].startswith("application/json")
        error = json.loads(raw)["error"]
        assert "1 custodian answered correctly; 2 are needed" in error, error
        assert "2 did not answer" in error
        entries = c.log_entries()
        assert len(_of(entries, "access.released", rid)) == 1  # logged, witnessed, asked
        assert _of(entries, "access.exported", rid) == []  # but nothing was cut
        status, _, raw = call("GET", f"{c.url}/access/requests/{rid}/clip", c.tokens["ivan"])
        assert status == 409 and b"never opened" in raw
    finally:
        c.custodian(1).start()
        c.custodian(2).start()
    # Once they are back, the same logged release is opened: no second release entry.
    status, headers, clip = c.release(rid)
    assert status == 200, clip
    entries = c.log_entries()
    (rel_index, _), = _of(entries, "access.released", rid)  # fmt: skip
    (exp_index, exp), = _of(entries, "access.exported", rid)  # fmt: skip
    assert exp["release"] == rel_index == int(headers["x-custodes-release-index"])
    assert exp["output"]["sha256"] == hashlib.sha256(clip).hexdigest()
    # And now it is done: a third ask is refused as a repeat.
    status, _, raw = c.release(rid)
    assert status == 409 and b"already released" in raw


def test_a_lying_custodian_is_named_in_an_alert_and_the_honest_two_still_open(c: City) -> None:
    c.lie(1)  # c2.test.example
    rid = c.approved(seconds=2)
    status, _, clip = c.release(rid)
    assert status == 200, clip
    assert _frames(clip) > 0
    entries = c.log_entries()
    alerts = [
        e for e in entries if e["type"] == "anomaly.flagged" and e["rule"] == "custodian-wrong"
    ]
    assert len(alerts) == 1, alerts
    assert alerts[0]["requests"] == [rid]
    assert "custodian c2.test.example answered wrongly" in str(alerts[0]["reason"])
    (_, exp), = _of(entries, "access.exported", rid)  # fmt: skip
    assert exp["output"]["sha256"] == hashlib.sha256(clip).hexdigest()
    # With the liar and one honest custodian down, one valid answer is not enough.
    rid = c.approved(seconds=2)
    c.custodian(2).stop()
    try:
        status, _, raw = c.release(rid)
        assert status == 503, raw
        error = json.loads(raw)["error"]
        assert "1 custodian answered correctly; 2 are needed" in error
        assert "1 answered wrongly" in error
        assert _of(c.log_entries(), "access.exported", rid) == []
    finally:
        c.custodian(2).start()


def test_the_public_rules_hold_and_access_db_rebuilds_from_a_log_with_custody_releases(
    c: City,
) -> None:
    import sqlite3

    got = run_cli("audit", "access", "--source", c.url + "/log", "--vkey", c.net.log_vkey,
                  "--json", check=False)  # fmt: skip
    assert got.returncode == 0, got.stdout + got.stderr
    report = json.loads(got.stdout)
    assert report["ok"] and report["rules"]["exported-release"]["checked"] >= 4

    def releases() -> list[tuple[str, str, int]]:
        with sqlite3.connect(c.net.log_data / "access.db") as db:
            rows = db.execute("SELECT request, sha256, bytes FROM req_releases ORDER BY 1")
            return [(str(r), str(s), int(b)) for r, s, b in rows]

    before = releases()
    exported = {
        e["request"]: e["output"] for e in c.log_entries() if e["type"] == "access.exported"
    }
    assert before and all(exported[r] == {"sha256": s, "bytes": b} for r, s, b in before
                          if r in exported)  # fmt: skip
    c.net.server.stop()
    try:
        run_cli("access", "rebuild", data=c.net.log_data)
        assert releases() == before  # access.released, then access.exported, taken in again
    finally:
        c.net.server.start()
