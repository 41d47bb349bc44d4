"""The mirror's pending state on disk: pushed packages survive a restart, the follower goes on
from them, and any held size can be committed (its partial tiles cut from the held ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from custodes.client.source import DirSource
from custodes.client.verify import WitnessPolicy, verify_log
from custodes.errors import InconsistentLogError, ProofError
from custodes.mirror import Mirror
from custodes.mirror.follow import Gap
from custodes.tlog import (
    CosignatureSigner,
    MemoryTree,
    SignedCheckpoint,
    Verifier,
    generate_cosigner_key,
    leaf_hash,
    open_checkpoint,
    prove_subtree_consistency,
)
from tests.mirror.origin import MemoryOrigin


def _push(
    mirror: Mirror, origin: MemoryOrigin, pending: SignedCheckpoint, lo: int, hi: int
) -> None:
    size = pending.checkpoint.size
    for first in range(lo - lo % 256, hi, 256):
        start, end = max(lo, first), min(hi, first + 256)
        proof = prove_subtree_consistency(first, end, size, origin.tree.read_hashes)
        mirror.add_package(pending, start, end, origin.entries[start:end], proof)


def _setup(tmp_path: Path) -> tuple[MemoryOrigin, Verifier, CosignatureSigner, Path]:
    origin = MemoryOrigin()
    origin.append([f'{{"n":{i}}}'.encode() for i in range(1000)])
    skey, _ = generate_cosigner_key("mirror.test/state")
    return origin, Verifier.from_key(origin.vkey), CosignatureSigner.from_key(skey), tmp_path / "m"


def _verify(root: Path, verifier: Verifier, signer: CosignatureSigner) -> int:
    policy = WitnessPolicy(witnesses=(signer.verifier(),), quorum=1)
    return verify_log(DirSource(root), verifier, witnesses=policy).size


def test_pushed_entries_survive_a_restart_and_the_follower_goes_on(tmp_path: Path) -> None:
    origin, verifier, signer, root = _setup(tmp_path)
    origin.publish()
    mirror = Mirror(root, verifier, signer, fsync=False)
    pending = open_checkpoint(origin.note, verifier)
    mirror.take_pending(pending)
    _push(mirror, origin, pending, 0, 300)
    assert (mirror.size, mirror.next_entry) == (0, 300)
    with pytest.raises(Gap):
        _push(mirror, origin, pending, 400, 512)
    again = Mirror(root, verifier, signer, fsync=False)
    assert (again.size, again.next_entry, again.pending_size) == (0, 300, 1000)
    done = again.update(origin)  # the origin is reachable again: the rest is pulled
    assert done.new_size == 1000
    assert _verify(root, verifier, signer) == 1000


def test_any_held_size_commits_with_its_own_tiles(tmp_path: Path) -> None:
    origin, verifier, signer, root = _setup(tmp_path)
    origin.entries, rest = origin.entries[:600], origin.entries[600:]
    origin.tree = MemoryTree(leaf_hash(e) for e in origin.entries)
    origin.publish()
    at_600 = open_checkpoint(origin.note, verifier)
    origin.append(rest)
    origin.publish()
    at_1000 = open_checkpoint(origin.note, verifier)
    mirror = Mirror(root, verifier, signer, fsync=False)
    mirror.take_pending(at_600)
    mirror.take_pending(at_1000)
    _push(mirror, origin, at_1000, 0, 1000)
    mirror.commit(at_600)  # bundles and tiles of size 600 are cut from those of 1000
    assert _verify(root, verifier, signer) == 600
    # A checkpoint signed by the log key for other entries than those held is not committed.
    forked = MemoryOrigin()
    forked.signer, forked.origin = origin.signer, origin.origin
    forked.append([b"other"] * 700)
    forked.publish()
    with pytest.raises(InconsistentLogError, match="nothing was committed"):
        mirror.commit(open_checkpoint(forked.note, verifier))
    assert _verify(root, verifier, signer) == 600
    mirror.commit(at_1000)
    assert _verify(root, verifier, signer) == 1000
    # A package whose entries are not the log's is refused and nothing is saved.
    other = Mirror(tmp_path / "other", verifier, signer, fsync=False)
    other.take_pending(at_1000)
    proof = prove_subtree_consistency(0, 256, 1000, origin.tree.read_hashes)
    with pytest.raises(ProofError):
        other.add_package(at_1000, 0, 256, [b"forged"] * 256, proof)
    assert other.next_entry == 0
