"""The mirror's copying and checking, against an in-memory origin."""

from __future__ import annotations

from pathlib import Path

import pytest

from custodes.client.source import DirSource
from custodes.client.verify import WitnessPolicy, verify_log
from custodes.errors import InconsistentLogError, NotFoundError, ProofError
from custodes.mirror import Mirror, changed_tiles
from custodes.tlog import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    Verifier,
    generate_cosigner_key,
    sign_checkpoint,
    tile_path,
    tiles_for_size,
)
from tests.mirror.origin import MemoryOrigin


def _mirror(root: Path, origin: MemoryOrigin, skey: str | None = None) -> Mirror:
    skey = skey or generate_cosigner_key("mirror.example")[0]
    return Mirror(
        root, Verifier.from_key(origin.vkey), CosignatureSigner.from_key(skey), fsync=False
    )


def _entries(start: int, n: int) -> list[bytes]:
    return [b"entry %d" % i for i in range(start, start + n)]


SIZES = [(0, 1), (0, 256), (5, 300), (255, 257), (256, 65_537), (1000, 70_000), (65_535, 65_536)]


@pytest.mark.parametrize("old,new", [*SIZES, (70_000, 70_000)])
def test_changed_tiles_are_what_the_new_tree_publishes_and_the_old_lacks(
    old: int, new: int
) -> None:
    def published(size: int) -> set[str]:
        bundles = {t.index: t for t in tiles_for_size(size) if t.level == 0}
        out = {tile_path(t) for t in tiles_for_size(size)}
        from custodes.tlog import bundles_for_size

        out |= {tile_path(t) for t in bundles_for_size(size)}
        assert bundles or size == 0
        return out

    got = [tile_path(t) for t in changed_tiles(old, new)]
    assert len(got) == len(set(got))
    assert set(got) == published(new) - published(old)


def test_the_mirror_follows_checks_cosigns_and_restarts(tmp_path: Path) -> None:
    origin = MemoryOrigin()
    skey, vkey = generate_cosigner_key("mirror.example")
    mirror = _mirror(tmp_path / "m", origin, skey)
    for n in (1, 0, 300, 5, 65_536 - 306, 1, 700):
        origin.append(_entries(len(origin.entries), n))
        origin.publish()
        done = mirror.update(origin)
        assert done.new_size == mirror.size == len(origin.entries)
        policy = WitnessPolicy(witnesses=(CosignatureVerifier.from_key(vkey),), quorum=1)
        result = verify_log(
            DirSource(tmp_path / "m"), Verifier.from_key(origin.vkey), witnesses=policy, workers=1
        )
        assert result.size == len(origin.entries) and result.cosigned_by == ("mirror.example",)
    # a restart rebuilds from the files and goes on
    again = _mirror(tmp_path / "m", origin, skey)
    assert again.size == mirror.size
    origin.append(_entries(len(origin.entries), 1000))
    origin.publish()
    assert again.update(origin).new_size == len(origin.entries)
    # the origin down: the round fails, the copy stays
    origin.down = True
    with pytest.raises(NotFoundError):
        again.update(origin)
    assert again.served_checkpoint() is not None and again.size == len(origin.entries)


def test_a_fork_a_rollback_and_bad_tiles_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    origin = MemoryOrigin()
    origin.append(_entries(0, 600))
    origin.publish()
    mirror = _mirror(tmp_path / "m", origin)
    mirror.update(origin)
    held = mirror.served_checkpoint()
    # a rollback
    good_note = origin.note
    origin.note = sign_checkpoint(
        Checkpoint(origin=origin.origin, size=10, root_hash=origin.tree.root(10)), origin.signer
    )
    with pytest.raises(InconsistentLogError, match="Rollback"):
        mirror.update(origin)
    # a fork at the same size
    origin.note = sign_checkpoint(
        Checkpoint(origin=origin.origin, size=600, root_hash=b"\x01" * 32), origin.signer
    )
    with pytest.raises(InconsistentLogError, match="Fork"):
        mirror.update(origin)
    origin.note = good_note
    # a changed entry: tiles that disagree with the entries, or a root that does not match
    origin.append(_entries(600, 100))
    origin.publish()
    origin.entries[650] = b"rewritten"
    with pytest.raises(ProofError):
        mirror.update(origin)
    assert mirror.served_checkpoint() == held and mirror.size == 600
    assert not (tmp_path / "m" / "tile" / "entries" / "002.p" / "188").exists()
    # a new root over other entries, tiles consistent with it but not with the mirror's copy
    forked = MemoryOrigin()
    forked.signer, forked.vkey = origin.signer, origin.vkey
    forked.append([b"other"] * 700)
    forked.publish()
    with pytest.raises((ProofError, InconsistentLogError)):
        mirror.update(forked)
    assert mirror.served_checkpoint() == held
    origin.entries[650] = b"entry 650"
    assert mirror.update(origin).new_size == 700


def test_the_server_sends_stored_gzip_bundles_and_refuses_writes_and_bad_paths(
    tmp_path: Path,
) -> None:
    import gzip
    import warnings

    with warnings.catch_warnings():  # starlette asks for httpx2; httpx works the same here
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from custodes.mirror import origin_hash
    from custodes.mirror.server import create_app

    origin = MemoryOrigin()
    origin.append(_entries(0, 300))
    origin.publish()
    mirror = _mirror(tmp_path / "m", origin)
    mirror.update(origin)
    client = TestClient(create_app(mirror, origin.origin))
    plain = client.get("/tile/entries/000", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.content == origin.fetch("tile/entries/000")
    zipped = client.get("/tile/entries/001.p/44", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == origin.fetch("tile/entries/001.p/44")  # decoded by the client
    assert (tmp_path / "m" / "tile" / "entries" / "001.p" / "44.gz").exists()
    assert gzip.decompress((tmp_path / "m" / "tile/entries/001.p/44.gz").read_bytes())
    prefix = origin_hash(origin.origin)
    assert client.get(f"/{prefix}/checkpoint").content == mirror.served_checkpoint()
    assert client.get("/tile/0/000").headers["cache-control"].endswith("immutable")
    assert client.get("/tile/0/001.p/44").status_code == 200
    assert client.head("/checkpoint").status_code == 200
    assert client.post("/checkpoint").status_code == 405
    for bad in ("/tile/entries/000.gz", "/tile/0/..%2F..%2Fcheckpoint", "/tile/0/x", "/tile/0/002"):
        assert client.get(bad).status_code == 404, bad
