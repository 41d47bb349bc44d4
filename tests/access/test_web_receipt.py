"""A clip downloaded from the web can be verified (issue 15, item 4): the gateway serves the
release receipt, as JSON and as a c2sp.org/tlog-proof file, and `custodes access
check-receipt` accepts either with the clip and the log's key, and refuses a changed clip."""

from __future__ import annotations

from pathlib import Path

from tests.access.gateway_kit import app_city
from tests.conftest import run_cli


def test_the_web_receipt_checks_against_the_downloaded_clip(tmp_path: Path) -> None:
    with app_city(tmp_path) as a:
        rid = a.approved()
        r = a.client.get(f"/access/requests/{rid}/receipt", headers=a.auth("ivan"))
        assert r.status_code == 409 and "was not released" in r.json()["error"]
        r = a.client.post(f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan"))
        assert r.status_code == 200, r.text
        clip = tmp_path / f"{rid}.mp4"
        clip.write_bytes(r.content)
        r = a.client.get(f"/access/requests/{rid}/receipt", headers=a.auth("ivan"))
        assert r.status_code == 200, r.text
        assert f"{rid}.mp4.release.json" in r.headers["content-disposition"]
        (tmp_path / f"{rid}.mp4.release.json").write_bytes(r.content)
        r = a.client.get(
            f"/access/requests/{rid}/receipt", params={"format": "tlog-proof"},
            headers=a.auth("ivan"),
        )  # fmt: skip
        assert r.status_code == 200 and r.text.startswith("c2sp.org/tlog-proof@v1\n"), r.text
        (tmp_path / f"{rid}.mp4.tlog-proof").write_bytes(r.content)
        # nobody else's, and a bad format is one sentence
        assert (
            a.client.get(f"/access/requests/{rid}/receipt", headers=a.auth("olga")).status_code
            == 403
        )
        bad = a.client.get(
            f"/access/requests/{rid}/receipt", params={"format": "xml"}, headers=a.auth("ivan")
        )
        assert bad.status_code == 422
        vkey = (a.data / "keys" / "log.vkey").read_text().strip()
    for name in (f"{rid}.mp4.release.json", f"{rid}.mp4.tlog-proof"):
        ok = run_cli("access", "check-receipt", str(tmp_path / name), "--vkey", vkey)
        assert ok.returncode == 0, ok.stderr
    clip.write_bytes(clip.read_bytes()[:-1] + b"\x00")
    for name in (f"{rid}.mp4.release.json", f"{rid}.mp4.tlog-proof"):
        out = run_cli("access", "check-receipt", str(tmp_path / name), "--vkey", vkey, check=False)
        assert out.returncode != 0 and b"Traceback" not in out.stderr
