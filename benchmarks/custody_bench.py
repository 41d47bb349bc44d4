"""Custody crypto speed on one core: segment encryption, KEM, partial decryption.

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/custody_bench.py --runs 5

What each figure is (median of ``--runs`` runs, one process, one thread).  Times are the
process's CPU time (``time.process_time``), so that the figures say what one core costs
even when other jobs share the machine; ``--wall`` measures wall-clock time instead.

* **stream MB/s**: :func:`encrypt_segment` of a 64 MiB in-memory segment (STREAM over
  AES-256-GCM, with the SHA-256 of plaintext and ciphertext that the segment record logs),
  for each ``--chunks`` size; also decryption, and the raw AEAD without the digests.
* **KEM per segment**: :func:`encapsulate` (one fixed-base and one variable-base scalar
  multiplication, HKDF), the agent's cost per segment.
* **custodian answers/s**: :func:`partial_decrypt` (the partial and its DLEQ proof), what
  one custodian core answers per second.
* **DKG**: a whole 3-of-5 epoch key (five dealings, QUAL, the epoch key from the
  extractions, and all five custodians' shares), every role's work added up;
* **gateway verify+combine per segment**: :func:`combine` of T = 3 partials of 5 (three
  proofs checked, Lagrange in the exponent, HKDF).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from collections.abc import Callable

from custodes.custody import (
    EncryptionKey,
    Roster,
    SegmentId,
    combine,
    combine_share,
    deal,
    decrypt_stream,
    encapsulate,
    encrypt_segment,
    epoch_key,
    partial_decrypt,
    qualify,
    read_header,
)


def _clock() -> float:
    """CPU seconds of this process: on a shared machine, the cost on one core."""
    return time.process_time()


def _median(runs: int, once: Callable[[], float]) -> tuple[float, list[float]]:
    values = [once() for _ in range(runs)]
    return statistics.median(values), values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=64, help="segment size for the stream")
    parser.add_argument("--chunks", default="65536,262144,1048576")
    parser.add_argument("--ops", type=int, default=2000, help="KEM/partial operations a run")
    parser.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    args = parser.parse_args()
    if args.wall:
        global _clock
        _clock = time.perf_counter

    keys = [EncryptionKey.generate() for _ in range(5)]
    roster = Roster(epoch="2026-12-03", threshold=3, keys=tuple(k.public for k in keys))
    dealt = [deal(roster, i) for i in range(1, 6)]
    dealings = [d for d, _ in dealt]
    public = epoch_key(roster, dealings, qualify(roster, dealings, []), [x for _, x in dealt], [])
    shares = [combine_share(roster, public, dealings, j, keys[j - 1]) for j in range(1, 6)]
    seg = SegmentId("2026-12-03", "cam-17", "2026-12-03T10:00:00Z")
    data = os.urandom(args.mib << 20)

    def dkg_once() -> float:
        t = _clock()
        dealt = [deal(roster, i) for i in range(1, 6)]
        ds = [d for d, _ in dealt]
        pub = epoch_key(roster, ds, qualify(roster, ds, []), [x for _, x in dealt], [])
        for j in range(1, 6):
            combine_share(roster, pub, ds, j, keys[j - 1])
        return (_clock() - t) * 1e3

    med, values = _median(args.runs, dkg_once)
    print(
        f"DKG 3 of 5, all roles in one process: median {med:.1f} ms"
        f"  runs {[round(v, 1) for v in values]}"
    )

    for chunk in (int(c) for c in args.chunks.split(",")):
        sink = io.BytesIO()

        def enc_once(chunk: int = chunk, sink: io.BytesIO = sink) -> float:
            sink.seek(0)
            sink.truncate()
            t = _clock()
            encrypt_segment(io.BytesIO(data), sink, public, seg, chunk_size=chunk)
            return len(data) / (_clock() - t) / 1e6

        med, values = _median(args.runs, enc_once)
        print(
            f"encrypt chunk={chunk:>8}: median {med:7.0f} MB/s  runs {[round(v) for v in values]}"
        )

    src = io.BytesIO()
    sealed = encrypt_segment(io.BytesIO(data), src, public, seg)
    blob = src.getvalue()
    header = read_header(io.BytesIO(blob))
    key = combine(
        public,
        [partial_decrypt(s, header.ephemeral, seg) for s in shares[:3]],
        header.ephemeral,
        seg,
    ).key
    assert sealed.ephemeral == header.ephemeral

    def dec_once() -> float:
        out = io.BytesIO()
        t = _clock()
        decrypt_stream(io.BytesIO(blob), out, key=key, segment=str(seg))
        return len(data) / (_clock() - t) / 1e6

    med, values = _median(args.runs, dec_once)
    print(f"decrypt chunk= 1048576: median {med:7.0f} MB/s  runs {[round(v) for v in values]}")

    def kem_once() -> float:
        t = _clock()
        for _ in range(args.ops):
            encapsulate(public, seg)
        return (_clock() - t) / args.ops * 1e3

    med, values = _median(args.runs, kem_once)
    print(f"KEM encapsulate: median {med:.3f} ms/segment  runs {[round(v, 3) for v in values]}")

    ephemerals = [encapsulate(public, seg).ephemeral for _ in range(args.ops)]

    def partial_once() -> float:
        t = _clock()
        for r in ephemerals:
            partial_decrypt(shares[0], r, seg)
        return args.ops / (_clock() - t)

    med, values = _median(args.runs, partial_once)
    print(
        f"custodian partial+proof: median {med:.0f} segments/s  runs {[round(v) for v in values]}"
    )

    answers = [
        (r, [partial_decrypt(s, r, seg) for s in shares[:3]]) for r in ephemerals[: args.ops // 4]
    ]

    def combine_once() -> float:
        t = _clock()
        for r, ps in answers:
            combine(public, ps, r, seg)
        return (_clock() - t) / len(answers) * 1e3

    med, values = _median(args.runs, combine_once)
    print(
        f"gateway verify 3 + combine: median {med:.3f} ms/segment"
        f"  runs {[round(v, 3) for v in values]}"
    )


if __name__ == "__main__":
    main()
