"""Shards: separate logs under one signed index, served behind one address, and simulated."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custodes.errors import FormatError, NotFoundError, SignatureError, UsageError
from custodes.ledger.shards import INDEX_HEADER, ShardIndex, ShardInfo, ShardSet, open_index
from custodes.tlog import generate_key, parse_note, sign_note
from tests.conftest import free_port, run_cli, wait_http


def test_index_is_signed_versioned_and_lists_every_shard(tmp_path: Path) -> None:
    s = ShardSet.init(tmp_path / "city", "city.example/log")
    north = s.add("north", url="http://n.example/log")
    s.add("south")
    assert north.origin == "city.example/log/north"
    index = open_index(s.index_note(), s.verifier_key)
    assert index.version == 3 and [x.name for x in index.shards] == ["north", "south"]
    assert index.shard("north").vkey == north.verifier_key
    assert index.shard("south").url is None
    # Every version stays on record.
    assert (tmp_path / "city" / "index-history").read_bytes().count(INDEX_HEADER.encode()) == 3
    with pytest.raises(UsageError, match="exists already"):
        s.add("north")
    with pytest.raises(UsageError, match="lowercase"):
        s.add("North Side")
    with pytest.raises(NotFoundError):
        index.shard("east")
    # Reloaded from disk, the set is the same.
    again = ShardSet.load(tmp_path / "city")
    assert again.version == 3 and again.shards == s.shards


def test_an_index_with_a_shard_left_out_or_another_key_is_refused(tmp_path: Path) -> None:
    s = ShardSet.init(tmp_path / "city", "city.example/log")
    s.add("north")
    s.add("south")
    note = s.index_note()
    text = parse_note(note).text
    dropped = text.replace(text.splitlines()[-1] + "\n", "")
    forged = note.replace(text.encode(), dropped.encode())
    with pytest.raises(SignatureError):
        open_index(forged, s.verifier_key)
    other_skey, other_vkey = generate_key("city.example/log")
    from custodes.tlog import Signer

    resigned = sign_note(dropped, Signer.from_key(other_skey))
    with pytest.raises(SignatureError):
        open_index(resigned, s.verifier_key)
    assert len(open_index(resigned, other_vkey).shards) == 1  # only with the wrong key
    # A note for another origin, signed by that origin's own key, is not this index.
    skey2, vkey2 = generate_key("elsewhere.example/log")
    with pytest.raises(FormatError, match="is for"):
        open_index(sign_note(text, Signer.from_key(skey2)), vkey2)


_names = st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}", fullmatch=True), unique=True)


@given(_names, st.integers(1, 10**6))
def test_index_text_round_trips(names: list[str], version: int) -> None:
    _, vkey = generate_key("city.example/log")
    shards = tuple(
        ShardInfo(n, f"city.example/log/{n}", vkey, None if i % 2 else f"http://h/{n}")
        for i, n in enumerate(names)
    )
    index = ShardIndex("city.example/log", version, shards)
    from custodes.ledger.shards import _parse_index

    assert _parse_index(index.text()) == index


def test_shards_served_behind_one_address_verify_from_the_index(tmp_path: Path) -> None:
    data = tmp_path / "city"
    ivkey = run_cli("shards", "init", "--origin", "city.example/log", data=data)
    ivkey_s = ivkey.stdout.decode().strip().splitlines()[-1]
    for name in ("north", "south"):
        run_cli("shards", "add", name, data=data)
        lines = "".join(json.dumps({"type": "sample", "shard": name, "i": i}) + "\n"
                        for i in range(300 if name == "north" else 40))  # fmt: skip
        run_cli("log", "append", "-", data=data / "shards" / name, input=lines.encode())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "custodes", "--data", str(data), "shards", "serve",
         "--port", str(port), "--public-url", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_http(url + "/healthz")
        with urllib.request.urlopen(url + "/shards/north/log/checkpoint", timeout=10) as r:
            assert r.read().split(b"\n")[:2] == [b"city.example/log/north", b"300"]
        out = run_cli(
            "shards", "verify", "--index", url + "/shards/index", "--vkey", ivkey_s, "--json"
        )
        rep = json.loads(out.stdout)
        assert [(r["shard"], r["size"]) for r in rep["shards"]] == [("north", 300), ("south", 40)]
        # A verifier trusting the index key refuses a shard that is not the one listed.
        bad = run_cli(
            "shards", "verify", "--index", url + "/shards/index", "--vkey", ivkey_s,
            "--source", f"north={url}/shards/south/log", check=False,
        )  # fmt: skip
        assert bad.returncode == 1 and b"custodes:" in bad.stderr
        missing = run_cli(
            "shards", "verify", "--index", url + "/shards/index", "--vkey", ivkey_s,
            "--source", "east=/nowhere", check=False,
        )  # fmt: skip
        assert missing.returncode == 1 and b"no shard named 'east'" in missing.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # Stopping the service stops every shard's server with it: no orphans keep the ports.
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _shard_servers(data):
        time.sleep(0.2)
    assert _shard_servers(data) == []


def _shard_servers(data: Path) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmd = status.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmd and any(str(data).encode() in part for part in cmd):
            found.append(int(status.parent.name))
    return found


def test_simulate_drives_several_shards(tmp_path: Path) -> None:
    data = tmp_path / "sim"
    out = run_cli(
        "simulate", "--cameras", "600", "--minutes", "0.5", "--shards", "2", "--json", data=data
    )
    rep = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert sorted(rep["shards"]) == ["s0", "s1"] and sum(rep["shards"].values()) == 600
    assert min(rep["shards"].values()) > 0 and rep["heartbeats"] > 0
    s = ShardSet.load(data)
    for sh in s.shards:
        shard_dir = s.shard_path(sh.name)
        tiles = tmp_path / f"tiles-{sh.name}"
        run_cli("log", "export", str(tiles), data=shard_dir)
        run_cli("verify", "--vkey", sh.vkey, "--source", str(tiles))
        cams = json.loads(run_cli("cameras", "list", "--json", data=shard_dir).stdout)
        assert len(cams) == rep["shards"][sh.name]
