"""A served log publishes a checkpoint only once its witnesses cosign it, failing closed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from custodes.tlog import CosignatureVerifier, Verifier, open_checkpoint
from tests.conftest import free_port, run_cli, wait_http


@contextmanager
def _running(args: list[str], log: Path, health: str) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "custodes", *args], stdout=out, stderr=subprocess.STDOUT
        )
        try:
            wait_http(health)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _witness(root: Path, name: str, origin: str, log_vkey: str) -> tuple[Path, str, int]:
    data = root / name
    vkey = run_cli("witness", "init", "--name", f"{name}.example/w", data=data)
    run_cli("witness", "add-log", "--origin", origin, "--vkey", log_vkey, data=data)
    return data, vkey.stdout.decode().split()[-1], free_port()


def _published(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url + "/log/checkpoint", timeout=5) as r:
            return bytes(r.read())
    except urllib.error.HTTPError:
        return None


def _wait_size(url: str, size: int, timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        note = _published(url)
        if note is not None and note.split(b"\n")[1] == str(size).encode():
            return note
        assert time.monotonic() < deadline, f"never published size {size}: {note!r}"
        time.sleep(0.2)


def _lines(n: int, start: int) -> bytes:
    return "".join(json.dumps({"w": i}) + "\n" for i in range(start, start + n)).encode()


def test_publishing_waits_for_the_quorum_and_resumes(tmp_path: Path) -> None:
    origin = "witnessed.example/log"
    data = tmp_path / "log"
    log_vkey = run_cli("init", "--origin", origin, data=data).stdout.decode().split()[-1]
    run_cli("log", "append", "-", data=data, input=_lines(100, 0))
    w1, k1, p1 = _witness(tmp_path, "w1", origin, log_vkey)
    w2, k2, p2 = _witness(tmp_path, "w2", origin, log_vkey)
    for port, key in ((p1, k1), (p2, k2)):
        run_cli("log", "witnesses", "add", f"http://127.0.0.1:{port}", "--vkey", key, data=data)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = ["--data", str(data), "serve", "--port", str(port), "--interval", "0.1"]
    logs = tmp_path / "procs.log"

    def witness(w: Path, p: int) -> list[str]:
        return ["--data", str(w), "witness", "serve", "--host", "127.0.0.1", "--port", str(p)]

    h1, h2 = f"http://127.0.0.1:{p1}/healthz", f"http://127.0.0.1:{p2}/healthz"
    with _running(witness(w1, p1), logs, h1):
        with _running(witness(w2, p2), logs, h2), _running(serve, logs, url + "/healthz"):
            note = _wait_size(url, 100)
        signed = open_checkpoint(
            note,
            Verifier.from_key(log_vkey),
            cosigners=[CosignatureVerifier.from_key(k) for k in (k1, k2)],
        )
        assert len(signed.cosignatures) == 2
        # Witness 2 is down: new entries are still acknowledged, but not published.
        out = run_cli("log", "append", "-", data=data, input=_lines(50, 100))
        assert out.stdout.decode().split()[0] == "100"
        with _running(serve, logs, url + "/healthz"):
            time.sleep(2.0)
            held = _published(url)
            assert held is not None and held.split(b"\n")[1] == b"100"
            # Witness 2 returns: publishing resumes at the new size.
            with _running(witness(w2, p2), logs, h2):
                _wait_size(url, 150)
                res = run_cli(
                    "verify",
                    "--vkey",
                    log_vkey,
                    "--source",
                    url + "/log",
                    "--witness",
                    k1,
                    "--witness",
                    k2,
                    "--quorum",
                    "2",
                    "--json",
                )
                assert json.loads(res.stdout)["size"] == 150
