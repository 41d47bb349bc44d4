"""Issue 15, item 19, in part: results as JSON, tokens alone on stdout, a busy port in one
sentence, and JSON Lines as editors write them (a BOM, a blank line at the end)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port, run_cli
from tests.geo import city


def test_init_agents_add_and_cameras_retire_print_json_when_asked(tmp_path: Path) -> None:
    data = tmp_path / "city"
    made = json.loads(run_cli("init", "--json", data=data).stdout)
    assert made["data"] == str(data) and made["verifier_key"].startswith(made["origin"] + "+")
    assert (data / "keys" / "log.vkey").read_text().strip() == made["verifier_key"]

    proc = run_cli("agents", "add", "north-ops", "--role", "operator", "--json", data=data)
    agent = json.loads(proc.stdout)
    assert agent["name"] == "north-ops" and agent["role"] == "operator"
    assert agent["token"].startswith("cus_" + agent["agent"])

    (tmp_path / "files").mkdir()
    files = city.write(tmp_path / "files")
    run_cli("cameras", "import", str(files["cameras"]), data=data)
    proc = run_cli("cameras", "retire", "cam-c1", "cam-c2", "--reason", "vandalised", "--json",
                   data=data)  # fmt: skip
    assert json.loads(proc.stdout) == {"retired": ["cam-c1", "cam-c2"], "reason": "vandalised"}
    listed = json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    assert "cam-c1" not in json.dumps(listed)


def test_a_token_is_the_only_thing_on_standard_output(tmp_path: Path) -> None:
    data = tmp_path / "city"
    run_cli("init", data=data)
    (tmp_path / "files").mkdir()
    files = city.write(tmp_path / "files")
    run_cli("cameras", "import", str(files["cameras"]), data=data)
    proc = run_cli("agents", "add", "rec-centre", "--cameras", "cam-c1,cam-c2", data=data)
    token = proc.stdout.decode()
    assert token.count("\n") == 1 and token.startswith("cus_") and " " not in token
    assert "registered; its token (shown once)" in proc.stderr.decode()


def test_serve_on_a_busy_port_says_so_in_one_sentence(tmp_path: Path) -> None:
    data = tmp_path / "city"
    run_cli("init", data=data)
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        proc = subprocess.run(
            [sys.executable, "-m", "custodes", "--data", str(data), "serve", "--port", str(port)],
            capture_output=True, timeout=60,
        )  # fmt: skip
    err = proc.stderr.decode().strip()
    assert proc.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use by another program" in err
    assert err.count("\n") == 0 and "Traceback" not in err and "Errno" not in err


def test_json_lines_with_a_bom_and_a_blank_line_at_the_end_are_appended(tmp_path: Path) -> None:
    data = tmp_path / "city"
    run_cli("init", data=data)
    lines = (
        b"\xef\xbb\xbf"
        + b'{"type":"note","time":"2026-12-01T00:00:00Z","text":"one"}\r\n'
        + b'{"type":"note","time":"2026-12-01T00:00:01Z","text":"two"}\r\n'
        + b"\r\n"
    )
    proc = run_cli("log", "append", "-", data=data, input=lines)
    assert proc.stdout.decode().split() == ["0", "1"]
    # A blank line between entries is still a mistake, named by its line.
    gap = b'{"type":"note","time":"2026-12-01T00:00:02Z"}\n\n{"type":"note"}\n'
    proc = run_cli("log", "append", "-", data=data, input=gap, check=False)
    assert proc.returncode != 0 and "line 2" in proc.stderr.decode()
