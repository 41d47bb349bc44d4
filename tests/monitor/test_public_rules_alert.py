"""A monitor beside a gateway alerts when a release that breaks the public rules is logged.

The gateway writes the honest entries; then, with the server stopped, an
insider appends a release by hand with ``custodes log append`` on the data
directory.  Each ``monitor --once`` is a fresh process, so the second one also
shows that the rule checker is rebuilt from the log it accepted before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from custodes.access import entries as E
from custodes.client.source import DirSource
from custodes.fleet.model import now_ms
from custodes.monitor import Monitor
from custodes.tlog import Verifier
from tests.access.gateway_kit import City, city  # noqa: F401  (the fixture)
from tests.conftest import run_cli


def _monitor(tiles: Path, vkey: str, state: Path) -> tuple[int, list[dict[str, Any]]]:
    proc = run_cli("monitor", "--source", str(tiles), "--vkey", vkey, "--state", str(state),
                   "--once", check=False)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines() if line]


def _append(data: Path, *entries: dict[str, Any]) -> list[int]:
    lines = b"".join(json.dumps(e).encode() + b"\n" for e in entries)
    out = run_cli("log", "append", "--workers", "0", data=data, input=lines)
    return [int(x) for x in out.stdout.split()]


def _honest(c: City) -> tuple[str, str]:
    """One request approved and released, one left waiting; the gateway then stops."""
    done = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], done)
    plan = c.access.check_release(c.users["ivan"], done)
    c.access.commit_release(c.users["ivan"], plan, ["00" * 32], {"method": "blur"}, "22" * 32, 9)
    waiting = c.access.request(c.users["olga"], c.inp())
    c.ledger.integrate_now()
    return done, waiting


def _forged(c: City, rid: str) -> dict[str, Any]:
    return E.access_released(rid, c.users["olga"].pseudonym, ["00" * 32], {"method": "none"},
                             "33" * 32, 9, now_ms())  # fmt: skip


def test_a_release_appended_by_hand_raises_one_alert_per_rule_broken(
    city: City,  # noqa: F811
    tmp_path: Path,
) -> None:
    c = city
    data, vkey = c.data, (c.data / "keys" / "log.vkey").read_text().strip()
    done, waiting = _honest(c)
    c.close()  # the insider stops the server to take the writer lock
    tiles, state = tmp_path / "tiles", tmp_path / "monitor.json"
    run_cli("log", "export", str(tiles), data=data)
    assert _monitor(tiles, vkey, state) == (0, [])

    (forged,) = _append(data, _forged(c, waiting))
    run_cli("log", "export", str(tiles), data=data)
    code, alerts = _monitor(tiles, vkey, state)
    assert code == 1
    assert {a["alert"] for a in alerts} == {"public-rules"}
    rules = {a["evidence"]["rule"]: a for a in alerts}
    assert {"approvals-logged", "enough-approvals"} <= set(rules)
    ev = rules["approvals-logged"]["evidence"]
    requested = next(
        i for i, e in enumerate(c_entries(data)) if e.get("request") == waiting
        and e["type"] == "access.requested"
    )  # fmt: skip
    assert ev["index"] == forged and ev["request"] == waiting
    assert [e["index"] for e in ev["entries"]] == [requested, forged]
    assert ev["entries"][-1]["entry"]["type"] == "access.released"
    assert "checkpoint" in ev
    # raised once, not again on the next round
    assert _monitor(tiles, vkey, state) == (0, [])

    # a second release of the honest request, appended later: the rebuilt checker knows the first
    (again,) = _append(data, _forged(c, done))
    run_cli("log", "export", str(tiles), data=data)
    code, alerts = _monitor(tiles, vkey, state)
    assert code == 1 and [a["evidence"]["rule"] for a in alerts] == ["not-already-released"]
    assert alerts[0]["evidence"]["index"] == again


def c_entries(data: Path) -> list[dict[str, Any]]:
    from custodes.ledger.instance import Instance

    reader = Instance.load(data).reader()
    try:
        size = reader.store.next_index()
        return [json.loads(bytes(e)) for e in reader.store.read_entries(0, size)]
    finally:
        reader.store.close()


def test_one_monitor_keeps_its_checker_across_rounds(
    city: City,  # noqa: F811
    tmp_path: Path,
) -> None:
    c = city
    data, vkey = c.data, (c.data / "keys" / "log.vkey").read_text().strip()
    done, _waiting = _honest(c)
    c.close()
    tiles = tmp_path / "tiles"
    run_cli("log", "export", str(tiles), data=data)
    mon = Monitor(source=DirSource(tiles), verifier=Verifier.from_key(vkey))
    assert mon.round() == []
    (again,) = _append(data, _forged(c, done))
    run_cli("log", "export", str(tiles), data=data)
    alerts = mon.round()
    assert [a.evidence["rule"] for a in alerts] == ["not-already-released"]
    assert [e["index"] for e in alerts[0].evidence["entries"]][-1] == again
    assert mon.round() == []
