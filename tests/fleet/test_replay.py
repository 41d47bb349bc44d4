"""fleet.db follows the log across crashes: what the log holds is never lost from the registry."""

from __future__ import annotations

import json
from pathlib import Path

from custodes.fleet import entries as E
from custodes.fleet.model import Camera, now_ms
from custodes.fleet.ops import FleetSettings, catch_up, import_cameras, ingest_segments
from custodes.fleet.query import verify_digest
from custodes.fleet.registry import FleetDB
from custodes.ledger.instance import Instance
from tests.conftest import run_cli


def _cams(n: int) -> list[Camera]:
    return [Camera(id=f"R-{i}", lat=55.7 + i / 1000, lon=37.6) for i in range(n)]


def test_entries_logged_before_a_crash_reach_the_registry_on_restart(
    instance: tuple[Path, str],
) -> None:
    data, _ = instance
    inst = Instance.load(data)
    with inst.open_log() as log:
        db = FleetDB.for_instance(data)
        import_cameras(log, db, _cams(2))
        # A crash between the log append and fleet.db's commit: only the log has these.
        cam = Camera(id="R-9", lat=55.8, lon=37.5, operator="Metro")
        log.append(
            [
                E.encode(E.camera_registered(cam, 2, now_ms())),
                E.encode(E.camera_changed("R-0", {"operator": "City"}, now_ms())),
            ]
        )
        db.close()
    listed = json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    assert {c["id"] for c in listed} == {"R-0", "R-1"}  # not yet replayed
    with inst.open_log() as log:
        db = FleetDB.for_instance(data)
        assert catch_up(log, db) == 2
        log.integrate()
        db.close()
    listed = {
        c["id"]: c for c in json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    }
    assert set(listed) == {"R-0", "R-1", "R-9"}
    assert listed["R-0"]["operator"] == "City" and listed["R-9"]["seq"] == 2


def test_a_batch_committed_but_not_logged_is_logged_on_restart(instance: tuple[Path, str]) -> None:
    data, _ = instance
    inst = Instance.load(data)
    seg = {"camera": "R-0", "start": "2026-11-27T00:00:00Z", "duration": 60, "bytes": 5,
           "sha256": "ab" * 32}  # fmt: skip
    with inst.open_log() as log:
        db = FleetDB.for_instance(data)
        import_cameras(log, db, _cams(1))
        real_append = log.append
        log.append = lambda entries: (_ for _ in ()).throw(OSError("disk gone"))  # type: ignore[method-assign]
        try:
            ingest_segments(log, db, [seg], FleetSettings(max_age_s=30 * 86400))
        except OSError:
            pass
        log.append = real_append  # type: ignore[method-assign]
        ok, rep = verify_digest(data, "ab" * 32, 5, "R-0")
        assert not ok and "not yet provable" in rep["result"]
        catch_up(log, db)
        log.integrate()
        db.close()
    ok, rep = verify_digest(data, "ab" * 32, 5, "R-0")
    assert ok, rep["result"]


def test_a_lost_fleet_db_is_rebuilt_from_the_log(instance: tuple[Path, str]) -> None:
    data, _ = instance
    inst = Instance.load(data)
    with inst.open_log() as log:
        db = FleetDB.for_instance(data)
        import_cameras(log, db, _cams(5))
        db.close()
    before = json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    for suffix in ("", "-wal", "-shm"):
        (data / f"fleet.db{suffix}").unlink(missing_ok=True)
    with inst.open_log() as log:
        db = FleetDB.for_instance(data)
        catch_up(log, db)
        db.close()
    after = json.loads(run_cli("cameras", "list", "--json", data=data).stdout)
    assert [c["id"] for c in after] == [c["id"] for c in before]
