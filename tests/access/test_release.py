"""Release: the clip is cut from checked segments, logged first, redacted unless granted."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from custodes.access.release import segment_path
from custodes.errors import NotFoundError, VerificationError
from tests.access import gateway_kit
from tests.access.gateway_kit import City

city = gateway_kit.city


def duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def released(c: City) -> list[dict[str, Any]]:
    return [e for e in c.entries() if e["type"] == "access.released"]


def test_release_logs_exact_digests_before_the_clip_appears(city: City, tmp_path: Path) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid)
    out = tmp_path / "clip.mp4"
    seen: list[bool] = []
    submit = c.access.committer.submit

    def spy(items: Any) -> int:
        seen.append(out.exists())
        return submit(items)

    c.access.committer.submit = spy  # type: ignore[method-assign]
    info = c.access.release(c.users["ivan"], rid, out)
    assert seen == [False]  # the entry went to the log while no clip existed yet
    entry = released(c)[-1]
    body = out.read_bytes()
    assert entry["output"] == {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
    assert info["index"] == len(c.entries()) - 1 and info["sha256"] == entry["output"]["sha256"]
    # The window 5 s..25 s touches the segments at 0, 10 and 20 s, exactly those.
    want = [
        s.sha256 for s in c.fleet.segments_for("cam-n1", c.start_ms + 5_000, c.start_ms + 25_000)
    ]
    assert entry["segments"] == want and len(want) == 3
    assert entry["redaction"] == {"faces": True, "plates": False, "method": "blur"}
    assert entry["by"] == c.users["ivan"].pseudonym
    assert duration(out) == pytest.approx(20.0, abs=0.2)
    assert not list(tmp_path.glob(".*"))  # no partial file left behind


def test_several_cameras_are_one_file_each_and_a_narrower_window_is_allowed(
    city: City, tmp_path: Path
) -> None:
    import zipfile

    c = city
    rid = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1", "cam-s1")))
    c.access.approve(c.users["anna"], rid)
    out = tmp_path / "clip.zip"
    c.access.release(
        c.users["ivan"], rid, out, from_ms=c.start_ms + 12_000, to_ms=c.start_ms + 18_000
    )
    with zipfile.ZipFile(out) as z:  # one MP4 per camera (issue 15, item 5)
        names = [n for n in z.namelist() if n.endswith(".mp4")]
        assert sorted(n.split("_")[0] for n in names) == ["cam-n1", "cam-s1"]
        z.extractall(tmp_path)
    for name in names:
        assert duration(tmp_path / name) == pytest.approx(6.0, abs=0.3)  # 6 s of each
    assert len(released(c)[-1]["segments"]) == 2


def test_unredacted_only_when_every_approval_grants_it(city: City, tmp_path: Path) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid, unredacted=True, reason="faces needed")
    c.access.release(c.users["ivan"], rid, tmp_path / "a.mp4")
    assert released(c)[-1]["redaction"] == {"method": "none"}
    c.access.set_policy(c.users["adam"], {"max_cameras": 1})
    rid2 = c.access.request(c.users["ivan"], c.inp(cameras=("cam-n1", "cam-n2")))
    c.access.approve(c.users["anna"], rid2, unredacted=True)
    c.access.approve(c.users["boris"], rid2)
    c.access.release(c.users["ivan"], rid2, tmp_path / "b.mp4")
    assert released(c)[-1]["redaction"]["method"] == "blur"


def test_an_altered_archive_file_is_not_released(city: City, tmp_path: Path) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid)
    path = segment_path(c.data, "cam-n1", c.start_ms + 10_000)
    assert path is not None
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    out = tmp_path / "clip.mp4"
    with pytest.raises(VerificationError, match="does not match its logged digest"):
        c.access.release(c.users["ivan"], rid, out)
    path.unlink()
    with pytest.raises(NotFoundError, match="not in the archive"):
        c.access.release(c.users["ivan"], rid, out)
    assert not out.exists() and released(c) == []
    assert not list(tmp_path.glob(".*"))
