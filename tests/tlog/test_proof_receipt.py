"""The release receipt as a tlog-proof: written by ``access release``, read by ``check-receipt``
and by the spec-only checker of test_proof.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from custodes.fleet.model import format_time
from custodes.ledger.instance import Instance
from tests.cli.test_access_cli import access, served
from tests.conftest import run_cli
from tests.tlog.test_proof import Refused, independent_check

__all__ = ["served"]


def test_release_writes_a_tlog_proof_that_check_receipt_and_the_spec_accept(
    served: dict[str, Any], tmp_path: Path
) -> None:
    s = served
    window = (
        "--from", format_time(s["start"] + 5_000), "--to", format_time(s["start"] + 25_000),
        "--purpose", "investigation", "--case", "CASE-2026-0002",
        "--why", "A theft at the kiosk by the metro entrance.",
    )  # fmt: skip
    rid = access(s, "ivan", "request", "--cameras", "cam-n1", *window).stdout.decode().split()[-1]
    access(s, "anna", "approve", rid, "--reason", "fits the case")
    clip = tmp_path / "clip.mp4"
    done = access(s, "ivan", "release", rid, "--out", str(clip)).stdout.decode()
    proof = tmp_path / "clip.mp4.tlog-proof"
    assert proof.exists() and str(proof) in done
    assert (tmp_path / "clip.mp4.release.json").exists()
    vkey = Instance.load(s["data"]).verifier_key
    digest = hashlib.sha256(clip.read_bytes()).hexdigest()

    # check-receipt reads either file, told apart by content (the clip found by its name)
    for receipt in (proof, tmp_path / "clip.mp4.release.json"):
        ok = run_cli("access", "check-receipt", str(receipt), "--vkey", vkey, "--json")
        assert json.loads(ok.stdout)["output"]["sha256"] == digest
    renamed = tmp_path / "receipt.txt"
    renamed.write_bytes(proof.read_bytes())
    ok = run_cli("access", "check-receipt", str(renamed), "--vkey", vkey, "--clip", str(clip))
    assert rid in ok.stdout.decode()

    # the spec-only checker agrees, with the entry the extra line carries
    data = proof.read_bytes()
    extra_line = data.split(b"\n")[1]
    assert extra_line.startswith(b"extra ")
    entry = json.loads((tmp_path / "clip.mp4.release.json").read_text())["entry"]["json"]
    index = json.loads((tmp_path / "clip.mp4.release.json").read_text())["entry"]["index"]
    assert independent_check(data, entry.encode(), vkey, [], 0) == index

    # another clip, a tampered entry, a witness quorum the checkpoint does not meet
    other = tmp_path / "other.mp4"
    other.write_bytes(clip.read_bytes()[:-1] + b"\x00")
    bad = run_cli(
        "access", "check-receipt", str(proof), "--vkey", vkey, "--clip", str(other), check=False
    )
    assert bad.returncode == 1 and "is not the clip this release logged" in bad.stderr.decode()
    import base64

    forged_entry = entry.replace(digest, hashlib.sha256(other.read_bytes()).hexdigest())
    forged = tmp_path / "forged.tlog-proof"
    forged.write_bytes(
        data.replace(extra_line, b"extra " + base64.b64encode(forged_entry.encode()))
    )
    bad = run_cli(
        "access", "check-receipt", str(forged), "--vkey", vkey, "--clip", str(other), check=False
    )
    assert bad.returncode == 1 and bad.stderr.decode().startswith("custodes:")
    try:
        independent_check(forged.read_bytes(), forged_entry.encode(), vkey, [], 0)
        raise AssertionError("the spec-only checker accepted a forged entry")
    except Refused:
        pass
    from custodes.tlog import generate_cosigner_key

    _, witness = generate_cosigner_key("w.example")
    bad = run_cli(
        "access", "check-receipt", str(proof), "--vkey", vkey, "--witness", witness, check=False
    )
    assert bad.returncode == 1 and "fewer than the 1 required" in bad.stderr.decode()

    # a c2sp.org/tlog-policy file instead of --vkey
    policy = tmp_path / "policy.txt"
    policy.write_text(f"log {vkey}\nquorum none\n")
    for receipt in (proof, tmp_path / "clip.mp4.release.json"):
        ok = run_cli("access", "check-receipt", str(receipt), "--policy", str(policy))
        assert rid in ok.stdout.decode()
    policy.write_text(f"log {vkey}\nwitness W {witness}\nquorum W\n")
    for receipt in (proof, tmp_path / "clip.mp4.release.json"):
        bad = run_cli("access", "check-receipt", str(receipt), "--policy", str(policy), check=False)
        assert bad.returncode == 1 and "quorum" in bad.stderr.decode(), bad.stderr
    policy.write_text(f"log {generate_cosigner_key('x.example')[1].replace('+B', '+A', 1)}\n")
    bad = run_cli("access", "check-receipt", str(proof), "--policy", str(policy), check=False)
    assert bad.returncode == 1
    both = run_cli("access", "check-receipt", str(proof), check=False)
    assert both.returncode != 0
