"""A log whose own key is ML-DSA-44 (``custodes init --algorithm ml-dsa-44``), end to end.

Everything runs as a user would run it, in subprocesses: the log is served by
``custodes serve``, checked by ``custodes verify`` and ``custodes monitor``,
cosigned by ``custodes witness serve`` and copied by ``custodes mirror serve``.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from custodes.tlog import CosignatureVerifier, Verifier, generate_cosigner_key, open_checkpoint
from tests.conftest import free_port, run_cli, wait_http
from tests.witness.helpers import add_checkpoint_body, post

ORIGIN = "pq.custodes.example/log"


@contextmanager
def _process(args: list[str], log: Path) -> Iterator[None]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "custodes", *args], stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def _init(data: Path, *extra: str) -> dict[str, str]:
    out = run_cli("init", "--origin", ORIGIN, *extra, "--json", data=data)
    info: dict[str, str] = json.loads(out.stdout)
    return info


def _append(data: Path, n: int) -> None:
    lines = "".join(json.dumps({"type": "note", "n": i}) + "\n" for i in range(n)).encode()
    run_cli("log", "append", "-", data=data, input=lines)


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        body: bytes = r.read()
        return body


def test_an_ml_dsa_log_is_verified_monitored_witnessed_and_mirrored(tmp_path: Path) -> None:
    data = tmp_path / "log"
    info = _init(data, "--algorithm", "ml-dsa-44")
    vkey = info["verifier_key"]
    assert info["algorithm"] == "ml-dsa-44"
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x06
    _append(data, 300)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = ["--data", str(data), "serve", "--port", str(port), "--interval", "0.1"]
    with _process(serve, tmp_path / "serve.log"):
        wait_http(url + "/healthz")
        # custodes verify and monitor
        out = run_cli("verify", "--vkey", vkey, "--source", url + "/log", "--json")
        assert json.loads(out.stdout)["size"] == 300
        run_cli("monitor", "--source", url + "/log", "--vkey", vkey, "--once")

        # A witness (ML-DSA-44 itself) cosigns the ML-DSA-44 log's checkpoint.
        wdata = tmp_path / "witness"
        out = run_cli("witness", "init", "--name", "witness.test/pq", "--algorithm",
                      "ml-dsa-44", data=wdata)  # fmt: skip
        wvkey = out.stdout.decode().strip().splitlines()[-1]
        run_cli("witness", "add-log", "--origin", ORIGIN, "--vkey", vkey, data=wdata)
        wport = free_port()
        witness = ["--data", str(wdata), "witness", "serve", "--port", str(wport)]
        with _process(witness, tmp_path / "witness.log"):
            wait_http(f"http://127.0.0.1:{wport}/healthz")
            note = _fetch(url + "/log/checkpoint")
            status, _, line = post(wport, add_checkpoint_body(0, [], note))
            assert status == 200, line
            signed = open_checkpoint(
                note + line,
                Verifier.from_key(vkey),
                cosigners=[CosignatureVerifier.from_key(wvkey)],
            )
            assert signed.checkpoint.size == 300 and "witness.test/pq" in signed.cosignatures

        # A mirror copies it, checking the ML-DSA-44 log signature, and serves it cosigned.
        skey, mvkey = generate_cosigner_key("mirror.test/pq", "ml-dsa-44")
        mport = free_port()
        mirror_url = f"http://127.0.0.1:{mport}"
        mirror = ["mirror", "serve", "--log", url + "/log", "--log-vkey", vkey,
                  "--data", str(tmp_path / "mirror"), "--port", str(mport),
                  "--witness-key", skey, "--interval", "0.1"]  # fmt: skip
        with _process(mirror, tmp_path / "mirror.log"):
            wait_http(mirror_url + "/healthz")
            for _ in range(300):
                if _fetch(mirror_url + "/healthz").strip() == b"300":
                    break
                subprocess.run(["sleep", "0.1"], check=True)
            out = run_cli("verify", "--vkey", vkey, "--source", mirror_url,
                          "--witness", mvkey, "--json")  # fmt: skip
            assert json.loads(out.stdout)["size"] == 300


def test_a_tampered_ml_dsa_checkpoint_signature_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "log"
    vkey = _init(data, "--algorithm", "ml-dsa-44")["verifier_key"]
    _append(data, 10)
    good = tmp_path / "good"
    run_cli("log", "export", str(good), data=data)
    run_cli("verify", "--vkey", vkey, "--source", str(good))
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    note = (bad / "checkpoint").read_bytes()
    text, _, line = note.partition(b"\n\n")
    b64 = line.split(b" ")[2].strip()
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x01  # the last byte of the ML-DSA-44 signature
    (bad / "checkpoint").write_bytes(
        text + b"\n\n" + line.replace(b64, base64.b64encode(bytes(raw)))
    )
    out = run_cli("verify", "--vkey", vkey, "--source", str(bad), check=False)
    assert out.returncode == 1
    err = out.stderr.decode()
    assert "does not verify" in err and err.count("\n") == 1


def test_ed25519_stays_the_default_log_key(tmp_path: Path) -> None:
    info = _init(tmp_path / "log")
    assert info["algorithm"] == "ed25519"
    assert base64.b64decode(info["verifier_key"].split("+", 2)[2])[0] == 0x01
    out = run_cli("init", "--algorithm", "rsa", data=tmp_path / "other", check=False)
    assert out.returncode == 2 and b"rsa" in out.stderr


def test_an_ml_dsa_log_publishes_through_its_witness(tmp_path: Path) -> None:
    data = tmp_path / "log"
    vkey = _init(data, "--algorithm", "ml-dsa-44")["verifier_key"]
    _append(data, 40)
    wdata = tmp_path / "witness"
    out = run_cli("witness", "init", "--name", "witness.test/pub", data=wdata)
    wvkey = out.stdout.decode().strip().splitlines()[-1]
    run_cli("witness", "add-log", "--origin", ORIGIN, "--vkey", vkey, data=wdata)
    wport, port = free_port(), free_port()
    run_cli("log", "witnesses", "add", f"http://127.0.0.1:{wport}", "--vkey", wvkey, data=data)
    url = f"http://127.0.0.1:{port}"
    witness = ["--data", str(wdata), "witness", "serve", "--port", str(wport)]
    serve = ["--data", str(data), "serve", "--port", str(port), "--interval", "0.1"]
    with _process(witness, tmp_path / "w.log"), _process(serve, tmp_path / "s.log"):
        wait_http(f"http://127.0.0.1:{wport}/healthz")
        wait_http(url + "/healthz")
        for _ in range(300):
            try:
                if "\u2014 witness.test/pub ".encode() in _fetch(url + "/log/checkpoint"):
                    break
            except urllib.error.HTTPError as err:  # none published until the witness cosigns
                if err.code != 404:
                    raise
            subprocess.run(["sleep", "0.1"], check=True)
        out = run_cli("verify", "--vkey", vkey, "--source", url + "/log", "--witness", wvkey,
                      "--json")  # fmt: skip
        result = json.loads(out.stdout)
        assert result["size"] == 40 and result["cosigned_by"] == ["witness.test/pub"]
