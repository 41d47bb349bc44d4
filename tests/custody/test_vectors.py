"""Our own vectors for DLEQ, the DKG, the KEM and the stream, checked two ways.

``vectors.json`` beside this file was made by :func:`build` through the library (fixed
scalars in place of random ones).  The tests check that (1) the library still makes exactly
those bytes, and (2) the slow model (:mod:`tests.custody.slow_ristretto`, plain integers
and the standard library, no libsodium) recomputes every value from the same inputs.

Regenerate, only after a deliberate format change: ``python -m tests.custody.test_vectors``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from custodes.custody import (
    Dealing,
    EpochPublic,
    Header,
    Partial,
    Point,
    Roster,
    Scalar,
    SegmentId,
    combine,
    dkg,
    dleq,
    epoch_key,
    kem,
    qualify,
)
from custodes.custody.group import hash_to_point
from custodes.custody.stream import encrypt_stream
from tests.custody import slow_ristretto as slow

VECTORS = Path(__file__).with_name("vectors.json")
EPOCH = "2026-12-03"
SEG = SegmentId(EPOCH, "cam-17", "2026-12-03T10:00:00Z")
N, T = 3, 2


def fixed(label: str) -> int:
    """A fixed, reproducible scalar for a vector input."""
    wide = hashlib.sha512(b"custodes/custody/test-vector/" + label.encode()).digest()
    return int.from_bytes(wide, "little") % slow.L


def sc(label: str) -> Scalar:
    return Scalar.from_int(fixed(label))


def build() -> dict[str, Any]:
    """Every vector, computed through the library."""
    g = Point.generator()
    # DLEQ
    x, k = sc("dleq x"), sc("dleq k")
    h = hash_to_point(b"custodes/custody/test-vector", b"dleq base")
    a, b = Point.base_mul(x), h * x
    proof = dleq._prove_with_nonce(x, k, g, a, h, b, context=b"vector context")
    out: dict[str, Any] = {
        "dleq": {
            "h": h.encode().hex(),
            "a": a.encode().hex(),
            "b": b.encode().hex(),
            "context": b"vector context".hex(),
            "proof": proof.encode().hex(),
        }
    }
    # DKG, 2 of 3
    keys = tuple(Point.base_mul(sc(f"dkg sk {j}")) for j in range(1, N + 1))
    roster = Roster(epoch=EPOCH, threshold=T, keys=keys)
    dealt = [
        dkg._deal_with(
            roster,
            i,
            [sc(f"dkg a {i} {c}") for c in range(T)],
            [sc(f"dkg b {i} {c}") for c in range(T)],
            [sc(f"dkg e {i} {j}") for j in range(1, N + 1)],
        )
        for i in range(1, N + 1)
    ]
    dealings = [d for d, _ in dealt]
    public = epoch_key(roster, dealings, qualify(roster, dealings, []), [x for _, x in dealt], [])
    out["dkg"] = {
        "roster": roster.to_json(),
        "dealings": [d.to_json() for d in dealings],
        "extractions": [x.to_json() for _, x in dealt],
        "epoch_key": public.to_json(),
    }
    # KEM for one segment, partials from every custodian, combined by {1, 3}
    enc = kem._encapsulate_with(sc("kem r"), public, SEG)
    partials = []
    for j in range(1, N + 1):
        x_j = Scalar.from_int(sum(_poly(i, j) for i in range(1, N + 1)))
        y_j = public.verification_shares[j - 1]
        d_j = enc.ephemeral * x_j
        pr = dleq._prove_with_nonce(
            x_j,
            sc(f"kem k {j}"),
            g,
            y_j,
            enc.ephemeral,
            d_j,
            context=kem._context(SEG, j, enc.ephemeral, "release 42"),
        )
        partials.append(Partial(j, d_j, pr))
    opened = combine(public, [partials[0], partials[2]], enc.ephemeral, SEG, release="release 42")
    assert opened.key == enc.key
    out["kem"] = {
        "segment": {"epoch": SEG.epoch, "camera": SEG.camera, "start": SEG.start},
        "ephemeral": enc.ephemeral.encode().hex(),
        "key": enc.key.hex(),
        "partials": [p.to_json() for p in partials],
    }
    # The stream: 40 bytes in chunks of 16 under that key
    plaintext = bytes(range(40))
    blob = io.BytesIO()
    encrypt_stream(
        io.BytesIO(plaintext), blob, key=enc.key, header=Header(EPOCH, enc.ephemeral, 16)
    )
    out["stream"] = {
        "chunk_size": 16,
        "plaintext": plaintext.hex(),
        "ciphertext": blob.getvalue().hex(),
    }
    return out


def _poly(dealer: int, x: int, letter: str = "a") -> int:
    total, power = 0, 1
    for c in range(T):
        total += fixed(f"dkg {letter} {dealer} {c}") * power
        power *= x
    return total % slow.L


def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def test_the_library_still_makes_the_vectors() -> None:
    assert build() == _load()


def _enc(p: slow.Pt) -> str:
    return slow.encode(p).hex()


def test_model_dleq() -> None:
    v = _load()["dleq"]
    x, k = fixed("dleq x"), fixed("dleq k")
    h = slow.hash_to_point(b"custodes/custody/test-vector", b"dleq base")
    assert _enc(h) == v["h"]
    assert _enc(slow.mul(x, slow.B)) == v["a"]
    assert _enc(slow.mul(x, h)) == v["b"]
    c = slow.hash_to_scalar(
        b"custodes/custody/dleq/v1",
        bytes.fromhex(v["context"]),
        slow.encode(slow.B),
        bytes.fromhex(v["a"]),
        bytes.fromhex(v["h"]),
        bytes.fromhex(v["b"]),
        slow.encode(slow.mul(k, slow.B)),
        slow.encode(slow.mul(k, h)),
    )
    assert v["proof"] == (slow.scalar_bytes(c) + slow.scalar_bytes(k - c * x)).hex()


def test_model_dkg() -> None:
    v = _load()["dkg"]
    pks = [slow.mul(fixed(f"dkg sk {j}"), slow.B) for j in range(1, N + 1)]
    roster = Roster.from_json(v["roster"])
    assert [k.encode() for k in roster.keys] == [slow.encode(p) for p in pks]
    h = slow.hash_to_point(b"custodes/custody/dkg/pedersen-generator/v1")
    for i, (dealing, extraction) in enumerate(
        zip(v["dealings"], v["extractions"], strict=True), start=1
    ):
        assert dealing["commitments"] == [
            _b64(
                slow.encode(
                    slow.add(
                        slow.mul(fixed(f"dkg a {i} {c}"), slow.B),
                        slow.mul(fixed(f"dkg b {i} {c}"), h),
                    )
                )
            )
            for c in range(T)
        ]
        assert extraction["commitments"] == [
            _b64(slow.encode(slow.mul(fixed(f"dkg a {i} {c}"), slow.B))) for c in range(T)
        ]
        for j, share in enumerate(dealing["shares"], start=1):
            e = fixed(f"dkg e {i} {j}")
            eph = slow.encode(slow.mul(e, slow.B))
            assert share["ephemeral"] == _b64(eph)
            info = slow.lp(
                b"custodes/custody/dkg/share/v1",
                EPOCH.encode(),
                i.to_bytes(4, "big"),
                j.to_bytes(4, "big"),
                eph,
                slow.encode(pks[j - 1]),
            )
            key = slow.hkdf_sha256(slow.encode(slow.mul(e, pks[j - 1])), salt=None, info=info)
            plain = slow.scalar_bytes(_poly(i, j)) + slow.scalar_bytes(_poly(i, j, "b"))
            ct = ChaCha20Poly1305(key).encrypt(bytes(12), plain, info)
            assert share["ciphertext"] == _b64(ct)
        Dealing.from_json(dealing, roster)
    y = slow.mul(sum(fixed(f"dkg a {i} 0") for i in range(1, N + 1)), slow.B)
    ek = v["epoch_key"]
    assert ek["public_key"] == _b64(slow.encode(y))
    assert ek["verification_shares"] == [
        _b64(slow.encode(slow.mul(sum(_poly(i, j) for i in range(1, N + 1)), slow.B)))
        for j in range(1, N + 1)
    ]
    assert ek["qualified"] == [1, 2, 3] and ek["threshold"] == T


def test_model_kem_and_combination() -> None:
    data = _load()
    v = data["kem"]
    public = EpochPublic.from_json(data["dkg"]["epoch_key"])
    y = slow.decode(public.public_key.encode())
    assert y is not None
    r = fixed("kem r")
    big_r = slow.mul(r, slow.B)
    assert _enc(big_r) == v["ephemeral"]
    seg = (SEG.epoch.encode(), SEG.camera.encode(), SEG.start.encode())
    info = slow.lp(*seg, slow.encode(big_r), slow.encode(y))
    z = slow.mul(r, y)
    key = slow.hkdf_sha256(slow.encode(z), salt=b"custodes/custody/kem/v1", info=info)
    assert key.hex() == v["key"]
    points = {}
    for j, p in enumerate(v["partials"], start=1):
        x_j = sum(_poly(i, j) for i in range(1, N + 1)) % slow.L
        d_j = slow.mul(x_j, big_r)
        assert p["custodian"] == j and p["partial"] == _b64(slow.encode(d_j))
        k = fixed(f"kem k {j}")
        context = slow.lp(
            b"custodes/custody/kem/partial/v1",
            *seg,
            j.to_bytes(4, "big"),
            slow.encode(big_r),
            b"release 42",
        )
        c = slow.hash_to_scalar(
            b"custodes/custody/dleq/v1",
            context,
            slow.encode(slow.B),
            slow.encode(slow.mul(x_j, slow.B)),
            slow.encode(big_r),
            slow.encode(d_j),
            slow.encode(slow.mul(k, slow.B)),
            slow.encode(slow.mul(k, big_r)),
        )
        assert p["proof"] == _b64(slow.scalar_bytes(c) + slow.scalar_bytes(k - c * x_j))
        points[j] = d_j
    # Lagrange at 0 over {1, 3}: lambda_1 = 3/(3-1), lambda_3 = 1/(1-3).
    lam1 = 3 * pow(2, -1, slow.L) % slow.L
    lam3 = -pow(2, -1, slow.L) % slow.L
    assert slow.equal(slow.add(slow.mul(lam1, points[1]), slow.mul(lam3, points[3])), z)


def test_model_stream() -> None:
    data = _load()
    v = data["stream"]
    key = bytes.fromhex(data["kem"]["key"])
    eph = bytes.fromhex(data["kem"]["ephemeral"])
    header = b"custodes-seg" + b"\x01\x01" + (16).to_bytes(4, "big")
    header += bytes((len(EPOCH),)) + EPOCH.encode() + eph
    plain = bytes.fromhex(v["plaintext"])
    expected = header
    chunks = [plain[i : i + 16] for i in range(0, len(plain), 16)]
    for i, chunk in enumerate(chunks):
        nonce = bytes(7) + i.to_bytes(4, "big") + bytes((i == len(chunks) - 1,))
        expected += AESGCM(key).encrypt(nonce, chunk, header)
    assert v["ciphertext"] == expected.hex()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


if __name__ == "__main__":
    VECTORS.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
