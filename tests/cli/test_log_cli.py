"""The log from the command line, as a user drives it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import rfc8785

from tests.conftest import run_cli


def _lines(n: int, start: int = 0) -> bytes:
    return "".join(
        json.dumps({"type": "test", "n": i, "note": f"entry {i}"}) + "\n"
        for i in range(start, start + n)
    ).encode()


def test_init_prints_the_verifier_key_last_and_refuses_to_overwrite(tmp_path: Path) -> None:
    data = tmp_path / "d"
    out = run_cli("init", "--origin", "example.org/log", data=data)
    vkey = out.stdout.decode().splitlines()[-1]
    name, key_id, _ = vkey.split("+", 2)
    assert name == "example.org/log" and len(key_id) == 8
    again = run_cli("init", data=data, check=False)
    assert again.returncode == 1
    assert b"already holds a custodes instance" in again.stderr
    assert b"Traceback" not in again.stderr
    assert (data / "keys" / "log.vkey").read_text().strip() == vkey


def test_append_prints_one_index_per_entry_and_checkpoint_covers_them(
    instance: tuple[Path, str],
) -> None:
    data, _ = instance
    out = run_cli("log", "append", "-", data=data, input=_lines(5))
    assert out.stdout.decode().split() == ["0", "1", "2", "3", "4"]
    out = run_cli("log", "append", "-", data=data, input=_lines(3, 5))
    assert out.stdout.decode().split() == ["5", "6", "7"]
    cp = run_cli("log", "checkpoint", data=data).stdout.decode()
    assert cp.splitlines()[:2] == ["test.custodes.example/log", "8"]
    js = json.loads(run_cli("log", "checkpoint", "--json", data=data).stdout)
    assert js["size"] == 8


def test_entries_are_stored_in_canonical_form(instance: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = instance
    run_cli("log", "append", "-", data=data, input=b'{ "b": 1.0, "a" : "\\u00e9" }\n')
    run_cli("log", "export", str(tmp_path / "out"), data=data)
    bundle = (tmp_path / "out" / "tile" / "entries" / "000.p" / "1").read_bytes()
    assert bundle[2:] == rfc8785.dumps({"a": "é", "b": 1})


def test_a_bad_line_refuses_the_whole_batch(instance: tuple[Path, str]) -> None:
    data, _ = instance
    run_cli("log", "append", "-", data=data, input=_lines(2))
    bad = _lines(3) + b"[1,2]\n" + _lines(3)
    out = run_cli("log", "append", "-", data=data, input=bad, check=False)
    assert out.returncode == 1
    assert out.stdout == b""
    err = out.stderr.decode()
    assert "line 4" in err and "expected a JSON object" in err
    assert len(err.strip().splitlines()) == 1
    # Nothing of the bad batch was appended: the next entry gets index 2.
    again = run_cli("log", "append", "-", data=data, input=_lines(1))
    assert again.stdout.decode().split() == ["2"]


def test_oversized_entry_is_refused_with_its_line(instance: tuple[Path, str]) -> None:
    data, _ = instance
    big = json.dumps({"x": "a" * 70000}).encode() + b"\n"
    out = run_cli("log", "append", "-", data=data, input=_lines(1) + big, check=False)
    assert out.returncode == 1
    assert b"line 2" in out.stderr and b"65535" in out.stderr


def test_append_from_a_file_argument(instance: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = instance
    f = tmp_path / "in.jsonl"
    f.write_bytes(_lines(4))
    out = run_cli("log", "append", str(f), data=data)
    assert out.stdout.decode().split() == ["0", "1", "2", "3"]


def test_export_then_verify_and_detect_a_rollback(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, vkey = instance
    run_cli("log", "append", "-", data=data, input=_lines(700))
    old = tmp_path / "old"
    run_cli("log", "export", str(old), data=data)
    run_cli("log", "append", "-", data=data, input=_lines(300, 700))
    new = tmp_path / "new"
    run_cli("log", "export", str(new), data=data)
    state = tmp_path / "state"
    out = run_cli("verify", "--vkey", vkey, "--source", str(new), "--state", str(state), "--json")
    assert json.loads(out.stdout)["size"] == 1000
    # A mirror that serves the older tree to someone who saw the newer one: rollback.
    out = run_cli(
        "verify", "--vkey", vkey, "--source", str(old), "--state", str(state), check=False
    )
    assert out.returncode == 1
    err = out.stderr.decode()
    assert "rollback" in err
    assert "\n1000\n" in err and "\n700\n" in err  # both checkpoints as evidence


def test_verify_detects_a_fork_signed_by_the_same_key(tmp_path: Path) -> None:
    a = tmp_path / "a"
    vkey = run_cli("init", "--origin", "fork.example/log", data=a).stdout.decode().split()[-1]
    run_cli("log", "append", "-", data=a, input=_lines(10))
    b = tmp_path / "b"
    shutil.copytree(a, b)  # the operator keeps a second copy ...
    run_cli("log", "append", "-", data=a, input=_lines(5, 100))
    run_cli("log", "append", "-", data=b, input=_lines(5, 200))  # ... and lets it diverge
    run_cli("log", "export", str(tmp_path / "ea"), data=a)
    run_cli("log", "export", str(tmp_path / "eb"), data=b)
    state = tmp_path / "seen"
    run_cli("verify", "--vkey", vkey, "--source", str(tmp_path / "ea"), "--state", str(state))
    out = run_cli(
        "verify",
        "--vkey",
        vkey,
        "--source",
        str(tmp_path / "eb"),
        "--state",
        str(state),
        check=False,
    )
    assert out.returncode == 1
    assert b"fork" in out.stderr
    # And a verifier whose view is the other branch sees the same.
    run_cli("log", "append", "-", data=a, input=_lines(1, 300))
    run_cli("log", "export", str(tmp_path / "ea"), data=a)
    state2 = tmp_path / "seen2"
    run_cli("verify", "--vkey", vkey, "--source", str(tmp_path / "eb"), "--state", str(state2))
    out = run_cli(
        "verify",
        "--vkey",
        vkey,
        "--source",
        str(tmp_path / "ea"),
        "--state",
        str(state2),
        check=False,
    )
    assert out.returncode == 1 and b"fork" in out.stderr


def test_verify_rejects_a_tampered_tile(instance: tuple[Path, str], tmp_path: Path) -> None:
    data, vkey = instance
    run_cli("log", "append", "-", data=data, input=_lines(600))
    out = tmp_path / "out"
    run_cli("log", "export", str(out), data=data)
    bundle = out / "tile" / "entries" / "001"
    raw = bytearray(bundle.read_bytes())
    raw[10] ^= 1
    bundle.write_bytes(bytes(raw))
    res = run_cli("verify", "--vkey", vkey, "--source", str(out), check=False)
    assert res.returncode == 1
    assert b"Traceback" not in res.stderr


def test_verify_rejects_the_wrong_key(instance: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = instance
    other = run_cli("init", "--origin", "test.custodes.example/log", data=tmp_path / "o")
    other_vkey = other.stdout.decode().split()[-1]
    run_cli("log", "export", str(tmp_path / "out"), data=data)
    res = run_cli("verify", "--vkey", other_vkey, "--source", str(tmp_path / "out"), check=False)
    assert res.returncode == 1


def test_export_is_incremental(instance: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = instance
    run_cli("log", "append", "-", data=data, input=_lines(600))
    out = tmp_path / "out"
    first = json.loads(run_cli("log", "export", str(out), "--json", data=data).stdout)
    second = json.loads(run_cli("log", "export", str(out), "--json", data=data).stdout)
    assert first["written"] > 0 and second["written"] == 0


def test_commands_on_a_missing_instance_say_how_to_make_one(tmp_path: Path) -> None:
    out = run_cli("log", "checkpoint", data=tmp_path / "nothing", check=False)
    assert out.returncode == 1
    assert b"init" in out.stderr and b"Traceback" not in out.stderr


def test_an_unwritable_export_target_is_one_sentence(
    instance: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = instance
    target = tmp_path / "file-not-dir"
    target.write_text("x")
    out = run_cli("log", "export", str(target / "sub"), data=data, check=False)
    assert out.returncode == 1
    assert b"Traceback" not in out.stderr
    assert len(out.stderr.decode().strip().splitlines()) == 1
