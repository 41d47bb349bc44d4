"""tlog-proof files: custodes writes them, an independent checker from the spec reads them.

The checker at the top of this file is written from tlog-proof.md,
signed-note.md, tlog-checkpoint.md and tlog-cosignature.md alone: it uses
hashlib, base64 and ``cryptography``, and nothing of custodes.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import FormatError, ProofError, SignatureError
from custodes.tlog import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    MemoryTree,
    NoteSignature,
    Signer,
    Verifier,
    format_checkpoint,
    format_note,
    generate_cosigner_key,
    generate_key,
    leaf_hash,
    parse_note,
)
from custodes.tlog.proof import (
    PROOF_HEADER,
    TlogProof,
    check_proof,
    format_proof,
    is_tlog_proof,
    parse_proof,
)

ORIGIN = "example.org/custodes/proof-test"

# -- the independent checker -------------------------------------------------------------


class Refused(Exception):
    pass


def _vkey(vkey: str) -> tuple[str, bytes, int, bytes]:
    """signed-note vkey: name+hex id+base64(type || public key)."""
    name, kid, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64, validate=True)
    return name, bytes.fromhex(kid), raw[0], raw[1:]


def _key_id(name: str, key_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public).digest()[:4]


def _rfc6962_root(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2, verbatim."""
    if index >= size:
        raise Refused("index not in tree")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise Refused("proof too long")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Refused("proof too short")
    return r


def independent_check(
    data: bytes, entry: bytes, log_vkey: str, witness_vkeys: list[str], quorum: int
) -> int:
    """Check a tlog-proof for ``entry``; return the index, or raise Refused."""
    text = data.decode("utf-8")
    lines = text.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        raise Refused("header")
    i = 1
    extra = None
    if lines[i].startswith("extra "):
        extra = base64.b64decode(lines[i][6:], validate=True)
        i += 1
    if not lines[i].startswith("index "):
        raise Refused("index line")
    digits = lines[i][6:]
    if not digits.isdigit() or not digits.isascii() or (digits != "0" and digits[0] == "0"):
        raise Refused("index")
    index = int(digits)
    i += 1
    proof = []
    while lines[i] != "":
        h = base64.b64decode(lines[i], validate=True)
        if len(h) != 32:
            raise Refused("hash length")
        proof.append(h)
        i += 1
    note = "\n".join(lines[i + 1 :])
    body, sep, sigs = note.rpartition("\n\n")
    if not sep:
        raise Refused("note")
    body += "\n"
    body_lines = body.split("\n")
    origin, size_text, root_b64 = body_lines[0], body_lines[1], body_lines[2]
    size = int(size_text)
    root = base64.b64decode(root_b64, validate=True)
    # step 1: the leaf hash (custodes: the entry is the extra data)
    if extra is not None and extra != entry:
        raise Refused("extra is not the entry")
    leaf = hashlib.sha256(b"\x00" + entry).digest()
    # step 2: origin and log signature
    name, kid, key_type, public = _vkey(log_vkey)
    if origin != name or key_type != 1 or _key_id(name, 1, public) != kid:
        raise Refused("log key")
    signed_by_log = False
    cosigned: set[str] = set()
    witnesses = {}
    for w in witness_vkeys:
        wname, wkid, wtype, wpub = _vkey(w)
        assert wtype == 4 and _key_id(wname, 4, wpub) == wkid
        witnesses[(wname, wkid)] = wpub
    for line in sigs.rstrip("\n").split("\n"):
        if not line.startswith("\u2014 "):
            raise Refused("signature line")
        sname, _, b64 = line[2:].partition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except ValueError:
            continue
        skid, sig = raw[:4], raw[4:]
        if (sname, skid) == (name, kid):
            try:
                Ed25519PublicKey.from_public_bytes(public).verify(sig, body.encode())
            except InvalidSignature:
                raise Refused("log signature") from None
            signed_by_log = True
        elif (sname, skid) in witnesses:
            # step 3: cosignature/v1
            ts = int.from_bytes(sig[:8], "big")
            msg = f"cosignature/v1\ntime {ts}\n".encode() + body.encode()
            try:
                Ed25519PublicKey.from_public_bytes(witnesses[(sname, skid)]).verify(sig[8:], msg)
            except InvalidSignature:
                raise Refused("cosignature") from None
            cosigned.add(sname)
    if not signed_by_log:
        raise Refused("no log signature")
    if len(cosigned) < quorum:
        raise Refused("quorum")
    # step 4: inclusion
    if _rfc6962_root(index, size, leaf, proof) != root:
        raise Refused("inclusion")
    return index


# -- making proofs with custodes ----------------------------------------------------------


class Log:
    def __init__(self, entries: list[bytes], witnesses: int = 2) -> None:
        skey, self.vkey = generate_key(ORIGIN)
        self.signer = Signer.from_key(skey)
        self.entries = entries
        self.tree = MemoryTree(leaf_hash(e) for e in entries)
        self.witness_keys = [generate_cosigner_key(f"w{n}.example") for n in range(witnesses)]

    def checkpoint(self, size: int, cosign: int | None = None) -> bytes:
        cp = Checkpoint(origin=ORIGIN, size=size, root_hash=self.tree.root(size))
        body = format_checkpoint(cp)
        sigs = [
            NoteSignature(
                name=self.signer.name,
                key_id=self.signer.key_id,
                signature=self.signer.sign(body.encode()),
            )
        ]
        for skey, _ in self.witness_keys[:cosign]:
            sigs.append(CosignatureSigner.from_key(skey).cosign(body, 1_700_000_000))
        return format_note(body, sigs)

    def proof(self, index: int, size: int | None = None, *, extra: bool = True) -> bytes:
        size = self.tree.size if size is None else size
        return format_proof(
            TlogProof(
                index=index,
                inclusion=tuple(self.tree.prove_inclusion(index, size)),
                checkpoint=self.checkpoint(size),
                extra=self.entries[index] if extra else b"",
            )
        )

    @property
    def witness_vkeys(self) -> list[str]:
        return [v for _, v in self.witness_keys]


def _entries(n: int) -> list[bytes]:
    return [b'{"type":"access.released","n":%d}' % i for i in range(n)]


def test_every_proof_in_small_trees_passes_the_independent_checker() -> None:
    log = Log(_entries(20))
    for size in range(1, 21):
        for index in range(size):
            data = log.proof(index, size)
            assert (
                independent_check(data, log.entries[index], log.vkey, log.witness_vkeys, 2) == index
            )
            assert independent_check(data, log.entries[index], log.vkey, [], 0) == index
            parsed = parse_proof(data)
            check_proof(
                parsed,
                parsed.extra,
                Verifier.from_key(log.vkey),
                witnesses=[CosignatureVerifier.from_key(v) for v in log.witness_vkeys],
                quorum=2,
            )


def test_the_format_is_the_spec_example_shape() -> None:
    log = Log(_entries(5))
    data = log.proof(3)
    lines = data.decode().split("\n")
    assert lines[0] == PROOF_HEADER
    assert lines[1] == "extra " + base64.b64encode(log.entries[3]).decode()
    assert lines[2] == "index 3"
    assert [len(line) for line in lines[3:6]] == [44, 44, 44]
    assert lines[6] == ""
    assert "\n".join(lines[7:]).encode() == log.checkpoint(5)
    assert is_tlog_proof(data)
    no_extra = log.proof(3, extra=False).decode().split("\n")
    assert no_extra[1] == "index 3"
    assert parse_proof(log.proof(0, 1)).inclusion == ()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    pick=st.integers(0, 10_000),
    extra=st.binary(max_size=300),
    witnesses=st.integers(0, 3),
)
def test_round_trip(n: int, pick: int, extra: bytes, witnesses: int) -> None:
    log = Log(_entries(n), witnesses)
    index = pick % n
    proof = TlogProof(
        index=index,
        inclusion=tuple(log.tree.prove_inclusion(index, n)),
        checkpoint=log.checkpoint(n, witnesses),
        extra=extra,
    )
    data = format_proof(proof)
    assert parse_proof(data) == proof
    assert format_proof(parse_proof(data)) == data
    check_proof(
        proof,
        log.entries[index],
        Verifier.from_key(log.vkey),
        witnesses=[CosignatureVerifier.from_key(v) for v in log.witness_vkeys],
        quorum=witnesses,
    )


def test_every_flipped_proof_bit_is_refused_by_both_checkers() -> None:
    log = Log(_entries(13))
    verifier = Verifier.from_key(log.vkey)
    good = parse_proof(log.proof(6))
    for k, h in enumerate(good.inclusion):
        for bit in range(256):
            flipped = bytearray(h)
            flipped[bit // 8] ^= 1 << (bit % 8)
            path = list(good.inclusion)
            path[k] = bytes(flipped)
            bad = TlogProof(
                index=good.index,
                inclusion=tuple(path),
                checkpoint=good.checkpoint,
                extra=good.extra,
            )
            with pytest.raises(ProofError):
                check_proof(bad, good.extra, verifier)
            if bit % 61 == 0:
                with pytest.raises(Refused):
                    independent_check(format_proof(bad), good.extra, log.vkey, [], 0)


def test_tampered_proofs_are_refused() -> None:
    log = Log(_entries(9))
    verifier = Verifier.from_key(log.vkey)
    wits = [CosignatureVerifier.from_key(v) for v in log.witness_vkeys]
    good = parse_proof(log.proof(4))
    # another entry, another index, a shorter or longer path
    with pytest.raises(ProofError):
        check_proof(good, log.entries[5], verifier)
    for bad in (
        TlogProof(index=5, inclusion=good.inclusion, checkpoint=good.checkpoint),
        TlogProof(index=4, inclusion=good.inclusion[:-1], checkpoint=good.checkpoint),
        TlogProof(index=4, inclusion=(*good.inclusion, b"\0" * 32), checkpoint=good.checkpoint),
        TlogProof(index=40, inclusion=good.inclusion, checkpoint=good.checkpoint),
    ):
        with pytest.raises(ProofError):
            check_proof(bad, log.entries[4], verifier)
    # the checkpoint of another tree, or edited
    other = TlogProof(index=4, inclusion=good.inclusion, checkpoint=log.checkpoint(8))
    with pytest.raises(ProofError):
        check_proof(other, log.entries[4], verifier)
    edited = good.checkpoint.replace(b"\n9\n", b"\n10\n")
    with pytest.raises(SignatureError):
        check_proof(
            TlogProof(index=4, inclusion=good.inclusion, checkpoint=edited),
            log.entries[4],
            verifier,
        )
    with pytest.raises(Refused):
        independent_check(
            format_proof(TlogProof(index=4, inclusion=good.inclusion, checkpoint=edited)),
            log.entries[4],
            log.vkey,
            [],
            0,
        )
    # another log's key; too few cosignatures
    with pytest.raises(SignatureError):
        check_proof(good, log.entries[4], Verifier.from_key(generate_key(ORIGIN)[1]))
    half = TlogProof(index=4, inclusion=good.inclusion, checkpoint=log.checkpoint(9, 1))
    check_proof(half, log.entries[4], verifier, witnesses=wits, quorum=1)
    with pytest.raises(SignatureError):
        check_proof(half, log.entries[4], verifier, witnesses=wits, quorum=2)
    with pytest.raises(Refused):
        independent_check(format_proof(half), log.entries[4], log.vkey, log.witness_vkeys, 2)
    # a forged cosignature
    note = parse_note(good.checkpoint)
    forged_sig = NoteSignature(
        name=note.signatures[1].name,
        key_id=note.signatures[1].key_id,
        signature=note.signatures[1].signature[:8] + bytes(64),
    )
    forged = format_note(note.text, [note.signatures[0], forged_sig])
    with pytest.raises(SignatureError):
        check_proof(
            TlogProof(index=4, inclusion=good.inclusion, checkpoint=forged),
            log.entries[4],
            verifier,
            witnesses=wits,
            quorum=1,
        )


@pytest.mark.parametrize(
    "defect",
    [
        b"c2sp.org/tlog-proof@v2\nindex 0\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 01\n\n",
        b"c2sp.org/tlog-proof@v1\nindex +1\n\n",
        b"c2sp.org/tlog-proof@v1\nindex  1\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 9223372036854775808\n\n",
        b"c2sp.org/tlog-proof@v1\nextra !!!!\nindex 0\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\nAAAA\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\n",
        b"c2sp.org/tlog-proof@v1\n\n",
        b"c2sp.org/tlog-proof@v1\nextra AAAA\n\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\n\nno note here\n",
    ],
)
def test_malformed_files_are_one_format_error(defect: bytes) -> None:
    log = Log(_entries(1))
    cp = log.checkpoint(1)
    data = defect if defect.endswith(b"here\n") else defect + cp
    with pytest.raises(FormatError):
        parse_proof(data)


def test_reading_is_as_lenient_as_the_spec() -> None:
    log = Log(_entries(3))
    data = log.proof(1, extra=False)
    # an unknown signature line in non-canonical base64 is ignored
    sloppy = data + "\u2014 someone.example AAAAAB=\n".encode()
    check_proof(parse_proof(sloppy), log.entries[1], Verifier.from_key(log.vkey))
    # an empty extra line reads as no extra data
    lines = data.split(b"\n", 1)
    assert parse_proof(lines[0] + b"\nextra \n" + lines[1]).extra == b""
    # writing is strict
    with pytest.raises(FormatError):
        format_proof(TlogProof(index=-1, inclusion=(), checkpoint=log.checkpoint(3)))
    with pytest.raises(FormatError):
        format_proof(TlogProof(index=0, inclusion=(b"short",), checkpoint=log.checkpoint(3)))
    with pytest.raises(FormatError):
        format_proof(TlogProof(index=0, inclusion=(), checkpoint=b"not a note"))


# -- tlog-policy ---------------------------------------------------------------------------


def _policy(log: Log, quorum_lines: str) -> bytes:
    w = log.witness_vkeys
    return (
        f"# a comment\n  log {log.vkey} https://log.example/\n\n"
        f"witness A {w[0]}\n\twitness   B {w[1]} https://b.example/\n{quorum_lines}"
    ).encode()


def test_a_policy_decides_whether_the_cosignatures_are_enough() -> None:
    from custodes.tlog.proof import parse_policy

    log = Log(_entries(4), witnesses=2)
    one, both = log.checkpoint(4, 1), log.checkpoint(4, 2)
    cases = {
        "quorum none\n": (True, True, True),
        "quorum A\n": (False, True, True),
        "quorum B\n": (False, False, True),
        "group g any A B\nquorum g\n": (False, True, True),
        "group g all A B\nquorum g\n": (False, False, True),
        "group g 2 A B\nquorum g\n": (False, False, True),
        "group g 1 B\ngroup h all g A\nquorum h\n": (False, False, True),
    }
    for lines, wants in cases.items():
        policy = parse_policy(_policy(log, lines))
        for note, want in zip((log.checkpoint(4, 0), one, both), wants, strict=True):
            if want:
                policy.check(note)
            else:
                with pytest.raises(SignatureError):
                    policy.check(note)
    # check_proof with the policy's keys, then the policy
    policy = parse_policy(_policy(log, "quorum A\n"))
    proof = parse_proof(log.proof(2))
    signed = check_proof(
        proof,
        proof.extra,
        policy.log_for(ORIGIN),
        witnesses=list(policy.witnesses.values()),
    )
    assert set(signed.cosignatures) == {"w0.example", "w1.example"}
    other = parse_policy(f"log {generate_key('other.example')[1]}\nquorum none\n".encode())
    with pytest.raises(SignatureError):
        other.check(both)


@pytest.mark.parametrize(
    "defect",
    [
        "",  # no quorum
        "quorum A\nquorum A\n",
        "quorum C\n",
        "group g 3 A B\nquorum g\n",
        "group g 0 A B\nquorum g\n",
        "group g any A A\nquorum g\n",
        "group g any C\nquorum g\n",
        "group A any B\nquorum A\n",
        "witness none {w0}\nquorum none\n",
        "witness C {w0}\nquorum none\n",  # the same key twice
        "frobnicate\nquorum none\n",
        "group g\x01 any A\nquorum none\n",
        "quorum g\ngroup g any A\n",  # defined after use
    ],
)
def test_malformed_policies_are_one_format_error(defect: str) -> None:
    from custodes.tlog.proof import parse_policy

    log = Log(_entries(1), witnesses=2)
    text = _policy(log, defect.replace("{w0}", log.witness_vkeys[0]))
    with pytest.raises(FormatError):
        parse_policy(text)
