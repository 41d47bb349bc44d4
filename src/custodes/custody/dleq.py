"""Chaum-Pedersen proofs that two discrete logarithms are equal (DLEQ), non-interactive.

A prover who knows ``x`` with ``A = x*G1`` and ``B = x*G2`` shows that ``log_G1 A ==
log_G2 B`` without revealing ``x``.  Custody uses it twice:

* a custodian's partial decryption ``D = x_j*R`` of a segment's ephemeral key ``R``
  against its public verification share ``Y_j = x_j*G`` (:mod:`custodes.custody.kem`);
* a DKG complaint, where a custodian reveals the Diffie-Hellman point ``K = sk*E`` for
  one encrypted share and proves it against its encryption key ``PK = sk*G``
  (:mod:`custodes.custody.dkg`), so anyone can decrypt that one share and judge.

The construction (Chaum and Pedersen 1992, made non-interactive by Fiat-Shamir):

1. ``k`` is a fresh nonce: a hash of the secret, 32 bytes from the OS and the statement
   (hedged, so a weak random source alone does not leak ``x``);
2. ``T1 = k*G1``, ``T2 = k*G2``;
3. ``c = H(tag, context, G1, A, G2, B, T1, T2)``, a scalar from SHA-512 with the
   domain-separation tag ``custodes/custody/dleq/v1`` and every part length-prefixed;
4. ``s = k - c*x``; the proof is ``c || s`` (64 bytes).

The verifier recomputes ``T1 = s*G1 + c*A`` and ``T2 = s*G2 + c*B`` and checks that the
challenge comes out as ``c``.  ``context`` binds the proof to its use (epoch, custodian,
segment), so a proof cannot be replayed for another statement.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from custodes.custody.errors import CustodyFormatError
from custodes.custody.group import Point, Scalar, hash_to_scalar

__all__ = ["PROOF_BYTES", "DLEQProof", "check_dleq", "prove_dleq"]

PROOF_BYTES = 64
_DST = b"custodes/custody/dleq/v1"
_DST_NONCE = b"custodes/custody/dleq/v1/nonce"


@dataclass(frozen=True, slots=True)
class DLEQProof:
    challenge: Scalar
    response: Scalar

    def encode(self) -> bytes:
        return self.challenge.encode() + self.response.encode()

    @classmethod
    def decode(cls, raw: bytes) -> DLEQProof:
        if not isinstance(raw, bytes) or len(raw) != PROOF_BYTES:
            raise CustodyFormatError("a DLEQ proof is 64 bytes")
        return cls(Scalar.decode(raw[:32]), Scalar.decode(raw[32:]))


def _mul(base: Point, k: Scalar) -> Point:
    return Point.base_mul(k) if base == Point.generator() else base * k


def _challenge(
    context: bytes, g1: Point, a: Point, g2: Point, b: Point, t1: Point, t2: Point
) -> Scalar:
    return hash_to_scalar(
        _DST, context, g1.encode(), a.encode(), g2.encode(), b.encode(), t1.encode(), t2.encode()
    )


def prove_dleq(x: Scalar, g1: Point, a: Point, g2: Point, b: Point, *, context: bytes) -> DLEQProof:
    """Prove ``a == x*g1`` and ``b == x*g2`` for the secret ``x``."""
    statement = (context, g1.encode(), a.encode(), g2.encode(), b.encode())
    k = hash_to_scalar(_DST_NONCE, x.encode(), os.urandom(32), *statement)
    return _prove_with_nonce(x, k, g1, a, g2, b, context=context)


def _prove_with_nonce(
    x: Scalar, k: Scalar, g1: Point, a: Point, g2: Point, b: Point, *, context: bytes
) -> DLEQProof:
    # Internal, and for the independent test vectors: never reuse a nonce.
    c = _challenge(context, g1, a, g2, b, _mul(g1, k), g2 * k)
    return DLEQProof(c, k - c * x)


def check_dleq(
    proof: DLEQProof, g1: Point, a: Point, g2: Point, b: Point, *, context: bytes
) -> bool:
    """True if ``proof`` shows ``log_g1 a == log_g2 b`` under ``context``."""
    t1 = _mul(g1, proof.response) + a * proof.challenge
    t2 = g2 * proof.response + b * proof.challenge
    return _challenge(context, g1, a, g2, b, t1, t2) == proof.challenge
