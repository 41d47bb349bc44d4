"""A release of several cameras is one file per camera, named by camera and time, in one
archive with its manifest and receipt (issue 15, item 5).

The archive's ``manifest.json`` is what the release entry logs (its SHA-256), and lists
each file's camera, start, end, digest and size; ``custodes access check-receipt``
checks the manifest against the entry, every file against the manifest, and that the
zip holds nothing else.  One camera is still one MP4.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custodes.access.identity import Scope
from custodes.access.users import add_user
from tests.access.gateway_kit import AppCity, app_city, segment_bytes
from tests.conftest import run_cli

PASSWORD = "wendy's long password"
NAME = re.compile(r"cam-n[12]_\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.mp4")


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppCity]:
    """One app city for the module, with an investigator who can also log in to the pages."""
    with app_city(tmp_path_factory.mktemp("archive")) as a:
        st = a.app.state
        _, token = st.ledger.write(
            lambda log: add_user(
                log, st.identities, "wendy", "investigator", Scope.parse(""), password=PASSWORD
            )
        )
        a.tokens["wendy"] = token
        yield a


def _approved(a: AppCity, who: str, cameras: list[str]) -> str:
    r = a.client.post("/access/requests", json=a.body(cameras=cameras), headers=a.auth(who))
    assert r.status_code == 201, r.text
    rid: str = r.json()["request"]
    r = a.client.post(f"/access/requests/{rid}/approve", json={}, headers=a.auth("anna"))
    assert r.status_code == 200, r.text
    return rid


def _entry(a: AppCity, kind: str, rid: str) -> dict[str, Any]:
    def read(log: Any) -> list[bytes]:
        return list(log.store.read_entries(0, log.store.next_index()))

    found = [json.loads(e) for e in a.app.state.ledger.read(read)]
    return next(e for e in found if e["type"] == kind and e.get("request") == rid)


def _shared_bytes(a: AppCity) -> int:
    """``sharing.bytes`` of the public figures, replayed from the log."""
    from custodes.reports.figures import compute
    from custodes.reports.replay import replay

    def read(log: Any) -> list[bytes]:
        return list(log.store.read_entries(0, log.store.next_index()))

    state = replay(enumerate(a.app.state.ledger.read(read)))
    return int(compute(state, 0, 4_102_444_800_000)["sharing.bytes"])


def _check(a: AppCity, path: Path, *extra: str) -> Any:
    vkey = (a.data / "keys" / "log.vkey").read_text().strip()
    return run_cli("access", "check-receipt", str(path), "--vkey", vkey, *extra, check=False)


def _rezip(src: Path, dst: Path, change: dict[str, bytes]) -> None:
    """A copy of the archive with members replaced or added."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for name in z.namelist():
            out.writestr(name, change.pop(name, z.read(name)))
        for name, body in change.items():
            out.writestr(name, body)


def test_a_two_camera_release_by_the_cli_is_an_archive_that_checks(
    town: AppCity, tmp_path: Path
) -> None:
    a = town
    rid = _approved(a, "ivan", ["cam-n1", "cam-n2"])
    base = str(a.client.base_url).rstrip("/")
    got = run_cli(
        "access", "release", rid, "--out", str(tmp_path / "footage.mp4"), "--json",
        "--server", base, "--token", a.tokens["ivan"], timeout=300,
    )  # fmt: skip
    result = json.loads(got.stdout)
    archive = tmp_path / "footage.zip"
    assert result["archive"] is True and result["clip"] == str(archive)
    assert sorted(f["camera"] for f in result["files"]) == ["cam-n1", "cam-n2"]
    with zipfile.ZipFile(archive) as z:
        names = sorted(z.namelist())
        manifest_raw = z.read("manifest.json")
        videos = {n: z.read(n) for n in names if n.endswith(".mp4")}
    assert len(videos) == 2 and all(NAME.fullmatch(n) for n in videos), names
    assert set(names) - set(videos) == {"manifest.json", "release.json", "release.tlog-proof"}
    assert all(body[4:8] == b"ftyp" for body in videos.values())  # each a whole MP4
    manifest = json.loads(manifest_raw)
    assert manifest["request"] == rid
    for item in manifest["files"]:
        assert hashlib.sha256(videos[item["name"]]).hexdigest() == item["sha256"]
        assert item["start"] < item["end"] and item["redaction"]["faces"] is True
    # the entry binds the manifest, so every file; it says what the archive holds
    output = _entry(a, "access.released", rid)["output"]
    assert output["sha256"] == hashlib.sha256(manifest_raw).hexdigest() == result["sha256"]
    assert output["manifest"] == {"files": 2, "bytes": sum(map(len, videos.values()))}

    # the public figures count the footage shared, not the manifest (the first release here)
    assert _shared_bytes(a) == sum(map(len, videos.values()))

    ok = _check(a, archive)
    assert ok.returncode == 0, ok.stderr
    assert "archive of 2 camera files" in ok.stdout.decode()
    # the receipt outside the zip, with the zip as the clip, checks the same way
    proof = tmp_path / "receipt.tlog-proof"
    with zipfile.ZipFile(archive) as z:
        proof.write_bytes(z.read("release.tlog-proof"))
    assert _check(a, proof, "--clip", str(archive)).returncode == 0

    one = sorted(videos)[0]
    for defect, change in {
        "swapped": {one: segment_bytes(0)},  # another MP4 under the same name
        "extra": {"note.txt": b"added later"},
        "manifest-edited": {"manifest.json": manifest_raw.replace(b'"request"', b'"Request"')},
    }.items():
        bad = tmp_path / f"archive-{defect}.zip"
        _rezip(archive, bad, dict(change))
        out = _check(a, bad)
        assert out.returncode != 0, defect
        assert b"Traceback" not in out.stderr and len(out.stderr.decode().splitlines()) == 1


def test_an_archive_is_fetched_again_byte_for_byte_with_its_receipt(
    town: AppCity, tmp_path: Path
) -> None:
    a = town
    rid = _approved(a, "ivan", ["cam-n1", "cam-n2"])
    with a.client.stream(
        "POST", f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan")
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        logged = r.headers["x-custodes-sha256"]
        next(r.iter_bytes())  # the first bytes, then the line drops
    r = a.client.get(f"/access/requests/{rid}/clip", headers=a.auth("ivan"))
    assert r.status_code == 200, r.text
    assert f'filename="{rid}.zip"' in r.headers["content-disposition"]
    assert r.headers["x-custodes-receipt"] == "inside"
    first = tmp_path / "first.zip"
    first.write_bytes(r.content)
    with zipfile.ZipFile(first) as z:
        assert hashlib.sha256(z.read("manifest.json")).hexdigest() == logged
        files = {n: z.read(n) for n in z.namelist() if n.endswith(".mp4")}
    again = a.client.get(f"/access/requests/{rid}/clip", headers=a.auth("ivan"))
    second = tmp_path / "second.zip"
    second.write_bytes(again.content)
    with zipfile.ZipFile(second) as z:
        assert {n: z.read(n) for n in z.namelist() if n.endswith(".mp4")} == files
    assert _entry(a, "access.downloaded", rid)["sha256"] == logged
    assert _check(a, second).returncode == 0
    # a kept archive with one file changed is not sent
    kept = a.data / "releases" / f"{rid}.mp4"
    name = sorted(files)[0]
    _rezip(kept, tmp_path / "changed.zip", {name: files[name][:-1] + b"\x00"})
    shutil.copyfile(tmp_path / "changed.zip", kept)
    r = a.client.get(f"/access/requests/{rid}/clip", headers=a.auth("ivan"))
    assert r.status_code >= 400 and "not the one the log names" in r.json()["error"], r.text


def test_the_staff_page_releases_two_cameras_as_a_zip(town: AppCity, tmp_path: Path) -> None:
    import httpx

    a = town
    rid = _approved(a, "wendy", ["cam-n1", "cam-n2"])
    base = str(a.client.base_url).rstrip("/")
    with httpx.Client(base_url=base, timeout=300, headers={"Origin": base}) as web:
        assert web.post("/login", data={"name": "wendy", "password": PASSWORD}).status_code == 303
        page = web.get(f"/app/requests/{rid}").text
        assert "for several cameras, a zip" in page
        got = web.post(f"/app/requests/{rid}/release", data={})
        assert got.status_code == 200, got.text
        assert got.headers["content-type"] == "application/zip"
        assert f'filename="{rid}.zip"' in got.headers["content-disposition"]
        archive = tmp_path / f"{rid}.zip"
        archive.write_bytes(got.content)
        page = web.get(f"/app/requests/{rid}").text
        assert 'id="archive"' in page and "Download the released archive again" in page
        again = web.post(f"/app/requests/{rid}/download", data={})
        assert again.headers["content-type"] == "application/zip"
        got = web.get(f"/access/requests/{rid}/receipt")  # the link beside the download
        assert f'filename="{rid}.zip.release.json"' in got.headers["content-disposition"]
        (tmp_path / f"{rid}.zip.release.json").write_bytes(got.content)
    with zipfile.ZipFile(archive) as z:
        assert len([n for n in z.namelist() if NAME.fullmatch(n)]) == 2
    assert _check(a, archive).returncode == 0
    assert _check(a, tmp_path / f"{rid}.zip.release.json").returncode == 0  # finds ID.zip
    broken = tmp_path / "broken.zip"
    shutil.copyfile(archive, broken)
    with zipfile.ZipFile(broken, "a") as z:
        z.writestr("extra.mp4", b"\x00" * 16)
    assert _check(a, broken).returncode != 0


def test_a_one_camera_release_is_still_one_mp4(town: AppCity) -> None:
    a = town
    rid = _approved(a, "ivan", ["cam-n1"])
    r = a.client.post(f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan"))
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.content[4:8] == b"ftyp"
    output = _entry(a, "access.released", rid)["output"]
    assert output == {"sha256": hashlib.sha256(r.content).hexdigest(), "bytes": len(r.content)}


def test_file_names_hold_safe_characters_only_and_never_repeat() -> None:
    from custodes.access.archive import file_name

    taken: set[str] = set()
    first = file_name("../MSK 0001/ü", "2026-12-04T10:00:05Z", taken)
    again = file_name("../MSK 0001/ü", "2026-12-04T10:00:05Z", taken)
    assert first == "MSK-0001--_2026-12-04T10-00-05Z.mp4"
    assert again == "MSK-0001--_2026-12-04T10-00-05Z_2.mp4"
