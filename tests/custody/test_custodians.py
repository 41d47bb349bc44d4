"""Custodians as real processes on loopback: the DKG through the log, and who answers what.

One network for the module (a log server, a witness, three custodians, 2 of 3); the tests
run in order, the destructive ones (a custodian down, shredding, a set change) last.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custodes.custody import CustodyFormatError, NotEnoughPartialsError, Partial, decrypt_stream
from custodes.custody.daemon import ask_custodians, open_segments, partials_request, release_name
from custodes.custody.daemon.custodian import CustodianDir
from custodes.custody.daemon.entries import format_ms, now_ms, sign_entry
from tests.conftest import run_cli
from tests.custody.network import (
    ORIGIN,
    Network,
    http,
    init_set,
    network,
    record_segments,
    release_entries,
    scope_details,
    sealed_request,
    segment_proofs,
    today,
    wait_ready,
)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with network(tmp_path_factory.mktemp("custody")) as n:
        init_set(n, n.root)
        yield n


@pytest.fixture(scope="module")
def scene(net: Network) -> dict[str, Any]:
    """The epoch ready; three segments recorded; a release of the first two, logged."""
    custody = wait_ready(net, [today()])
    public = custody.epoch_public(today())
    assert public is not None
    t0 = now_ms() - 60_000
    footage = record_segments(public, 3, t0)
    digests = [json.loads(r)["sha256"] for r in footage.records[:2]]
    sealed = sealed_request(public, "r-1", ["cam-n1"], t0, t0 + 30_000)
    first = net.append_offline([footage.batch, *release_entries(digests, now_ms(), sealed)])
    batch, release, bad = first, first + 6, first + 7
    note = net.wait_size(bad + 1)
    size = int(note.split(b"\n")[1])
    return {
        "details": scope_details(net, note, release, first + 4, size, sealed),
        "footage": footage,
        "note": note,
        "size": size,
        "batch": batch,
        "release": release,
        "bad": bad,
        "proofs": segment_proofs(net, footage, batch, size),
    }


def _body(net: Network, s: dict[str, Any], *, release: str = "release", segs: Any = None,
          note: bytes | None = None) -> dict[str, Any]:  # fmt: skip
    index = s[release]
    proofs = s["proofs"][:2] if segs is None else segs
    body = partials_request(
        note or s["note"], index, net.entry(index), net.proof(index, s["size"]), proofs
    )
    body["details"] = s["details"]
    return body


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    return http("POST", url + "/partials", body)


def test_init_makes_a_private_directory_and_prints_the_key_last(tmp_path: Path) -> None:
    out = run_cli("custodian", "init", "--name", "solo.example", data=tmp_path / "c")
    assert out.stdout.decode().strip().startswith("solo.example+")
    assert len(out.stdout.decode().strip().splitlines()) == 1
    assert b"created" in out.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "c").st_mode) == 0o700
    for name in ("custodian.key", "state.json"):
        assert stat.S_IMODE(os.stat(tmp_path / "c" / name).st_mode) == 0o600
    again = run_cli("custodian", "init", "--name", "solo.example", data=tmp_path / "c", check=False)
    assert again.returncode != 0


def test_a_2_of_3_dkg_completes_through_the_log_and_logs_the_epoch_key(net: Network) -> None:
    tomorrow = format_ms(now_ms() + 86_400_000)[:10]
    custody = wait_ready(net, [today(), tomorrow])
    public = custody.epoch_public(today())
    assert public is not None and public.threshold == 2 and public.qualified == (1, 2, 3)
    for cdir, _, _, _ in net.custodians:
        deadline = time.monotonic() + 30  # each takes its share on its next round
        while not {today(), tomorrow} <= set(CustodianDir.load(cdir).state.shares):
            assert time.monotonic() < deadline, f"{cdir.name} never took its shares"
            time.sleep(0.2)
        state = CustodianDir.load(cdir).state
        assert state.shares[today()].public == public
        assert not list((cdir / "pending").glob("*.json"))
    out = run_cli("custody", "status", "--server", net.url, "--json", data=net.log_data)
    status = json.loads(out.stdout)
    states = {e["epoch"]: e["state"] for e in status["epochs"]}
    assert states[today()] == "ready" and states[tomorrow] == "ready"
    assert [c["name"] for c in status["set"]["custodians"]] == [
        "c1.test.example", "c2.test.example", "c3.test.example",
    ]  # fmt: skip
    text = run_cli("custody", "status", "--server", net.url, data=net.log_data).stdout.decode()
    assert f"epoch {today()}: ready" in text and "2 of 3" in text


def test_the_log_server_appends_only_custodian_signed_entries(net: Network, tmp_path: Path) -> None:
    wait_ready(net, [today()])
    url = net.url + "/custody/entries"
    me = CustodianDir.load(net.custodians[0][0])
    stranger = CustodianDir.init(tmp_path / "x", "x.test.example")
    checked = {"type": "custody.checked", "epoch": today(), "phase": 1, "set": 1}
    assert http("POST", url, {"type": "test.other"})[0] == 400
    status, out = http("POST", url, {**checked, "v": 1, "by": me.name})
    assert status == 403, out
    status, out = http("POST", url, sign_entry(checked, stranger.signer))
    assert status == 403 and "not a custodian" in out["error"], out
    forged = sign_entry(checked, me.signer)
    forged["phase"] = 2
    status, out = http("POST", url, forged)
    assert status == 403 and "does not verify" in out["error"], out
    key = net.custody().epoch_public(today())
    assert key is not None
    again = {"type": "custody.epoch", "epoch": today(), "set": 1, "starts": "", "ends": "",
             "key": key.to_json()}  # fmt: skip
    status, out = http("POST", url, sign_entry(again, me.signer))
    assert status == 409 and "logged already" in out["error"], out
    status, st = http("GET", net.url + "/custody/status")
    assert status == 200 and st["custody"] and st["set"]["threshold"] == 2
    assert {e["epoch"]: e["state"] for e in st["epochs"]}[today()] == "ready"


def test_custodians_answer_for_a_logged_release_and_t_answers_open_it(
    net: Network, scene: dict[str, Any]
) -> None:
    body = _body(net, scene)
    custody = net.custody()
    got = ask_custodians(custody.current, body)  # type: ignore[arg-type]
    assert not got.refused and not got.unreachable, (got.refused, got.unreachable)
    name = release_name(ORIGIN, scene["release"])
    opened = open_segments(custody, got, scene["proofs"][:2], release=name)
    f = scene["footage"]
    for k, o in enumerate(opened):
        out = io.BytesIO()
        decrypt_stream(
            io.BytesIO(f.cipher[k]), out, key=o.key, segment=str(scene["proofs"][k].segment()[0])
        )
        assert out.getvalue() == f.plain[k]


def test_a_custodian_whose_partial_is_wrong_is_named_and_the_others_still_open(
    net: Network, scene: dict[str, Any]
) -> None:
    custody = net.custody()
    got = ask_custodians(custody.current, _body(net, scene))  # type: ignore[arg-type]
    liar = got.partials["c2.test.example"]
    other = got.partials["c1.test.example"]
    got.partials["c2.test.example"] = [
        Partial(p.custodian, o.point, p.proof) for p, o in zip(liar, other, strict=True)
    ]
    name = release_name(ORIGIN, scene["release"])
    opened = open_segments(custody, got, scene["proofs"][:2], release=name)
    assert list(got.wrong) == ["c2.test.example"] and opened[0].used == (1, 3)
    # An answer given for one release does not open a segment for another.
    got = ask_custodians(custody.current, _body(net, scene))  # type: ignore[arg-type]
    with pytest.raises(NotEnoughPartialsError):
        open_segments(custody, got, scene["proofs"][:2], release=release_name(ORIGIN, 1))


def test_a_release_not_in_the_log_is_refused(net: Network, scene: dict[str, Any]) -> None:
    body = _body(net, scene)
    forged = json.loads(body["release"]["entry"])
    forged["request"] = "r-forged"
    body["release"]["entry"] = json.dumps(forged, separators=(",", ":"))
    status, out = _post(net.custodians[0][2], body)
    assert status == 403 and "not included" in out["error"]


def test_a_checkpoint_without_the_witness_quorum_is_refused(
    net: Network, scene: dict[str, Any]
) -> None:
    lines = scene["note"].split(b"\n")
    log_name = ORIGIN.encode()
    kept = [ln for ln in lines if not ln.startswith(b"\xe2\x80\x94 ") or log_name in ln]
    status, out = _post(net.custodians[0][2], _body(net, scene, note=b"\n".join(kept)))
    assert status == 403 and "witness" in out["error"], out


def test_a_segment_the_release_does_not_name_is_refused(
    net: Network, scene: dict[str, Any]
) -> None:
    status, out = _post(net.custodians[1][2], _body(net, scene, segs=scene["proofs"]))
    assert status == 403 and "not one the release names" in out["error"], out


def test_a_release_that_breaks_the_public_rules_is_refused(
    net: Network, scene: dict[str, Any]
) -> None:
    status, out = _post(net.custodians[0][2], _body(net, scene, release="bad"))
    assert status == 403 and "requested-first" in out["error"], out


def test_the_answer_record_is_append_only_and_public(net: Network, scene: dict[str, Any]) -> None:
    url = net.custodians[0][2]
    assert _post(url, _body(net, scene))[0] == 200  # an answer of its own: no test order
    before = _answers(url)
    assert before, "the answer given is recorded"
    assert _post(url, _body(net, scene))[0] == 200
    after = _answers(url)
    assert after[: len(before)] == before and len(after) == len(before) + 1
    last = json.loads(after[-1])
    assert last["release"] == release_name(ORIGIN, scene["release"])
    assert "partials" not in last and len(last["segments"]) == 2


def _answers(url: str) -> list[bytes]:
    import urllib.request

    with urllib.request.urlopen(url + "/answers", timeout=10) as r:
        return bytes(r.read()).splitlines()


def test_with_n_minus_t_custodians_down_the_rest_still_open(
    net: Network, scene: dict[str, Any]
) -> None:
    net.custodians[2][3].stop()
    try:
        custody = net.custody()
        body = _body(net, scene)
        got = ask_custodians(custody.current, body, timeout=3)  # type: ignore[arg-type]
        assert list(got.unreachable) == ["c3.test.example"]
        name = release_name(ORIGIN, scene["release"])
        assert len(open_segments(custody, got, scene["proofs"][:2], release=name)) == 2
        net.custodians[1][3].stop()
        got = ask_custodians(custody.current, body, timeout=3)  # type: ignore[arg-type]
        with pytest.raises(NotEnoughPartialsError):
            open_segments(custody, got, scene["proofs"][:2], release=name)
    finally:
        for _, _, _, p in net.custodians:
            if p.proc is None:
                p.start()


def test_a_slow_custodian_counts_as_not_answering(net: Network, scene: dict[str, Any]) -> None:
    proc = net.custodians[1][3].proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        custody = net.custody()
        got = ask_custodians(custody.current, _body(net, scene), timeout=1)  # type: ignore[arg-type]
        assert list(got.unreachable) == ["c2.test.example"] and len(got.partials) == 2
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def test_details_partials_are_given_only_for_a_logged_read_by_a_role_that_may_read(
    net: Network, scene: dict[str, Any]
) -> None:
    from custodes.access import entries as A
    from custodes.custody.daemon.client import details_request

    ivan, anna, nobody = "u-" + "1" * 16, "u-" + "2" * 16, "u-" + "3" * 16
    reads = [
        A.access_details_read("r-1", anna, "approver", "to decide", now_ms()),
        A.access_details_read("r-1", ivan, "investigator", "my own", now_ms()),  # the requester
        A.access_details_read("r-1", nobody, "auditor", "not an account", now_ms()),
        A.access_details_read("r-1", anna, "auditor", "not her role", now_ms()),
    ]
    first = net.append_offline(reads)
    note = net.wait_size(first + len(reads))
    size = int(note.split(b"\n")[1])
    request = scene["release"] - 2  # r-1's access.requested
    said = []
    for k in range(len(reads)):
        at = (first + k, net.entry(first + k), net.proof(first + k, size))
        body = details_request(note, at, (request, net.entry(request), net.proof(request, size)))
        said.append(http("POST", net.custodians[0][2] + "/details-partials", body))
    assert [status for status, _ in said] == [200, 200, 403, 403], said
    assert said[0][1]["for"] == release_name(ORIGIN, first)
    assert f"{nobody} was no active auditor when the read was logged" in said[2][1]["error"]
    assert f"{anna} was no active auditor" in said[3][1]["error"]
    # For a release (the scope check) no partial is given in the clear: each is encrypted to
    # each custodian, and opens only with that custodian's own key.
    rel = scene["release"]
    body = details_request(
        note, (rel, net.entry(rel), net.proof(rel, size)),
        (request, net.entry(request), net.proof(request, size)),
    )  # fmt: skip
    status, out = http("POST", net.custodians[0][2] + "/details-partials", body)
    assert status == 200 and "partial" not in out, out
    assert sorted(out["relay"]) == ["c1.test.example", "c2.test.example", "c3.test.example"]
    from custodes.custody.group import b64decode
    from custodes.custody.sealed import open_relayed

    blob = b64decode(out["relay"]["c2.test.example"])
    mine, theirs = (CustodianDir.load(net.custodians[k][0]).state.encryption_key for k in (1, 2))
    name = release_name(ORIGIN, rel)
    got = open_relayed(blob, mine.secret, mine.public, request="r-1", cause=name, sender=1,
                       recipient=2)  # fmt: skip
    assert got.custodian == 1
    with pytest.raises(CustodyFormatError):
        open_relayed(blob, theirs.secret, theirs.public, request="r-1", cause=name, sender=1,
                     recipient=2)  # fmt: skip
    # A cause that is not the request's, or a request entry that is another one, is refused.
    at = (first, net.entry(first), net.proof(first, size))
    wrong = details_request(note, at, (first + 1, net.entry(first + 1), net.proof(first + 1, size)))
    status, out = http("POST", net.custodians[0][2] + "/details-partials", wrong)
    assert status == 403 and "is not the access.requested of request r-1" in out["error"], out


def test_a_shredded_epoch_refuses_and_is_gone_once_n_minus_t_plus_1_shred(
    net: Network, scene: dict[str, Any]
) -> None:
    after = format_ms(now_ms() + 86_400_000)[:10]
    c1 = net.custodians[0]
    out = run_cli("custodian", "shred", "--before", after, "--log", net.url, data=c1[0])
    assert json.loads(out.stdout)["shredded"] == [today()]
    assert today() not in CustodianDir.load(c1[0]).state.shares
    status, body = _post(c1[2], _body(net, scene))
    assert status == 403 and "shredded" in body["error"], body
    run_cli("custodian", "shred", "--before", after, "--log", net.url, data=net.custodians[1][0])
    net.wait_size(scene["size"] + 2)
    deadline = time.monotonic() + 30
    while True:
        st = json.loads(
            run_cli("custody", "status", "--server", net.url, "--json", data=net.log_data).stdout
        )
        states = {e["epoch"]: e["state"] for e in st["epochs"]}
        if states[today()] == "gone":
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.3)
    status, body = _post(net.custodians[2][2], _body(net, scene))
    assert status == 403 and "shredded" in body["error"], body


def test_changing_the_set_needs_t_signatures_of_current_custodians(
    net: Network, tmp_path: Path
) -> None:
    specs = []
    for _, vkey, url, _ in net.custodians[:2]:
        specs += ["--custodian", f"{vkey}@{url}"]
    base = ["custody", "init", "--threshold", "2", *specs, "--server", net.url]
    proposed = run_cli(*base, "--propose", data=net.log_data).stdout
    body = json.loads(proposed)
    assert body["number"] == 2 and "signatures" not in body
    (tmp_path / "set.json").write_bytes(proposed)
    sigs = [
        run_cli("custodian", "sign-set", str(tmp_path / "set.json"), data=c[0]).stdout.decode()
        for c in net.custodians[:2]
    ]
    final = [*base, "--time", body["time"]]
    one = run_cli(*final, "--signature", sigs[0], data=net.log_data, check=False)
    assert one.returncode == 1 and b"needs 2 signatures of current custodians" in one.stderr
    # The route refuses it too, whoever sends it.
    status, out = http("POST", net.url + "/custody/entries",
                       {**body, "signatures": [json.loads(sigs[0])]})  # fmt: skip
    assert status == 403 and "needs 2 signatures" in out["error"], out
    two = run_cli(*final, "--signature", sigs[0], "--signature", sigs[1], data=net.log_data)
    assert json.loads(two.stdout)["set"] == 2
    st = json.loads(
        run_cli("custody", "status", "--server", net.url, "--json", data=net.log_data).stdout
    )
    assert st["set"]["number"] in (1, 2)  # logged; published once integrated and cosigned


def test_without_a_custodian_set_custody_is_off_and_says_so(instance: tuple[Path, str]) -> None:
    data, _ = instance
    out = run_cli("custody", "status", data=data).stdout.decode()
    assert "custody is off" in out and "unencrypted" in out
    st = json.loads(run_cli("custody", "status", "--json", data=data).stdout)
    assert st == {"custody": False, "set": None, "epochs": []}
