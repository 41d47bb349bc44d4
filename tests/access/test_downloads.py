# ruff: noqa: F811  (the city fixture is imported)
"""A logged release stays downloadable by its requester until the approval expires
(issue 15, item 1): an interrupted download loses nothing, every later download is
logged first, and the clip is byte for byte the one the log names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from custodes.access.service import Forbidden
from custodes.errors import ConflictError, VerificationError
from tests.access.gateway_kit import City, app_city, city  # noqa: F401


def _downloads(entries: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in entries if e["type"] == "access.downloaded"]


def test_an_interrupted_release_can_be_fetched_again_byte_for_byte(tmp_path: Path) -> None:
    with app_city(tmp_path) as a:
        rid = a.approved()
        with a.client.stream(
            "POST", f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan")
        ) as r:
            assert r.status_code == 200
            logged = r.headers["x-custodes-sha256"]
            next(r.iter_bytes())  # the first bytes, then the line drops
        r = a.client.post(f"/access/requests/{rid}/release", json={}, headers=a.auth("ivan"))
        assert r.status_code == 409 and "already released" in r.text
        r = a.client.get(f"/access/requests/{rid}/clip", headers=a.auth("ivan"))
        assert r.status_code == 200, r.text
        assert hashlib.sha256(r.content).hexdigest() == logged
        assert r.headers["x-custodes-sha256"] == logged
        r2 = a.client.get(f"/access/requests/{rid}/clip", headers=a.auth("ivan"))
        assert r2.content == r.content
        r = a.client.get("/log/checkpoint")
        entries = a.app.state.access.ledger.read(
            lambda log: [__import__("json").loads(e)
                         for e in log.store.read_entries(0, log.store.next_index())]
        )  # fmt: skip
        got = _downloads(entries)
        assert len(got) == 2 and all(e["request"] == rid and e["sha256"] == logged for e in got)
        # nobody else fetches it, and a refusal logs nothing
        r = a.client.get(f"/access/requests/{rid}/clip", headers=a.auth("olga"))
        assert r.status_code == 403
        r = a.client.get(f"/access/requests/{rid}/clip", headers=a.auth("anna"))
        assert r.status_code == 403


def test_nothing_to_fetch_before_the_release(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid)
    with pytest.raises(ConflictError, match="was not released"):
        c.access.download(c.users["ivan"], rid)
    assert not _downloads(c.entries())


def test_the_kept_clip_goes_when_the_approval_expires(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid, unredacted=True)
    c.access.release(c.users["ivan"], rid, c.data.parent / "clip.mp4")
    kept = c.data / "releases" / f"{rid}.mp4"
    assert kept.read_bytes() == (c.data.parent / "clip.mp4").read_bytes()
    assert kept.stat().st_mode & 0o077 == 0
    later = c.end_ms + 400 * 86_400_000
    with pytest.raises(Forbidden, match="expired"):
        c.access.download(c.users["ivan"], rid, now_ms=later)
    assert not kept.exists()
    assert not _downloads(c.entries())


def test_a_kept_clip_that_is_not_the_logged_one_is_not_sent(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid, unredacted=True)
    c.access.release(c.users["ivan"], rid, c.data.parent / "clip.mp4")
    kept = c.data / "releases" / f"{rid}.mp4"
    kept.write_bytes(b"\x00" * 64 + kept.read_bytes()[64:])
    with pytest.raises(VerificationError, match="not the one the log names"):
        c.access.download(c.users["ivan"], rid)
    assert not _downloads(c.entries())


def test_the_sweep_drops_expired_clips(city: City) -> None:
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    c.access.approve(c.users["anna"], rid, unredacted=True)
    c.access.release(c.users["ivan"], rid, c.data.parent / "clip.mp4")
    kept = c.data / "releases" / f"{rid}.mp4"
    c.access.sweep(c.end_ms + 1000)
    assert kept.exists()
    c.access.sweep(c.end_ms + 400 * 86_400_000)
    assert not kept.exists()
