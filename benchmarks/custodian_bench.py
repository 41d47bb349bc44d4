"""A custodian's speed over HTTP, as the gateway asks it (issue 12: >= 2,000 segments a second).

Run by hand (not a timed test)::

    .venv/bin/python benchmarks/custodian_bench.py --segments 2000 --runs 5

Set-up (not timed), every part a real ``custodes`` process on loopback, built as
``tests/custody/network.py`` builds it: a log server (``serve``), a witness (``witness
serve``) whose cosignature the log publishes, three custodians (``custodian serve``, 2 of
3, each following the log with the witness policy), their set logged with their
signatures, and today's epoch key made by their DKG through the log.  Then ``--segments``
segment records (each with a real KEM ephemeral key against the epoch key; the footage
itself is not needed by a custodian) in ``segments.batch`` entries of ``--batch`` records,
and the releases that name them, logged, with users, a policy, a request and its approval
each so that the public rules hold.

One ``access.released`` entry holds at most ``--per-release`` digests: a log entry is at
most 65,535 bytes and each named digest takes 67, so 2,000 segments are 3 releases.

Timed, per run: ``POST /partials`` to one custodian for every release in turn, each with
its cosigned checkpoint, inclusion proof, every segment's record with its two proofs, and
the request's sealed details with the custodians' partials of them (the scope check),
until the last answer's last byte; then the same to a second custodian restarted with
``CUSTODES_PARTIAL_THREADS=1`` (its partials on one thread), runs alternating.  Reported:
segments a second (all segments over the wall time), the custodian's CPU time per segment
(``utime + stime`` of its process, all its threads, from ``/proc``), and the load average
when the run ended.  The median is over ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from custodes.access import entries as A  # noqa: E402
from custodes.access.policy import DEFAULT_POLICY  # noqa: E402
from custodes.custody import SegmentId  # noqa: E402
from custodes.custody.daemon import SegmentProof, partials_request  # noqa: E402
from custodes.custody.daemon.entries import format_ms, now_ms  # noqa: E402
from custodes.custody.daemon.partials import WORKERS  # noqa: E402
from custodes.custody.kem import encapsulate  # noqa: E402
from custodes.records.canonical import canonicalize  # noqa: E402
from custodes.tlog import MemoryTree, leaf_hash  # noqa: E402
from tests.custody.network import (  # noqa: E402
    Network,
    init_set,
    network,
    scope_details,
    sealed_request,
    today,
    wait_ready,
    with_seal,
)


@dataclass
class Scene:
    """What the gateway would send: one request body per release, and what opens them."""

    bodies: list[bytes]
    releases: list[int]  # the log index of each release
    proofs: list[list[SegmentProof]]  # each release's segments
    keys: list[bytes]  # each segment's key, as the agent made it


def records(net: Network, n: int) -> tuple[list[bytes], list[bytes]]:
    """``n`` segment records against today's epoch key, and each one's segment key."""
    public = wait_ready(net, [today()]).epoch_public(today())
    assert public is not None
    t0 = now_ms() - 10_000 * n
    out, keys = [], []
    for k in range(n):
        start = format_ms(t0 + 10_000 * k).replace(".000Z", "Z")
        camera = f"cam-b{k % 4}"
        seg = SegmentId(epoch=public.epoch, camera=camera, start=start)
        sealed = encapsulate(public, seg)
        eph = sealed.ephemeral
        keys.append(sealed.key)
        rec = {
            "camera": camera,
            "start": start,
            "duration": 10.0,
            "bytes": 1_000_000 + k,
            "sha256": f"{k:064x}",
            "epoch": public.epoch,
            "ephemeral": base64.b64encode(eph.encode()).decode(),
            "ciphertext_sha256": f"{k + n:064x}",
        }
        out.append(canonicalize(rec))
    return out, keys


def _batch(records: list[bytes], number: int) -> dict[str, Any]:
    root = MemoryTree(leaf_hash(r) for r in records).root()
    return {"type": "segments.batch", "v": 2, "time": format_ms(now_ms()), "batch": number,
            "count": len(records), "root": root.hex(), "agent": None}  # fmt: skip


def _access(groups: list[list[str]], t: int, seals: list[Any]) -> list[dict[str, Any]]:
    """Users and a policy, then for each group a request (its details sealed to the
    custodians), its approval and its release."""
    ivan, anna = "u-" + "1" * 16, "u-" + "2" * 16
    out = [
        A.user_added(ivan, "investigator", "all", t),
        A.user_added(anna, "approver", "all", t),
        A.policy_changed(1, DEFAULT_POLICY, t),
    ]
    for k, digests in enumerate(groups):
        rid = f"r-{k + 1}"
        out.append(with_seal(A.access_requested(
            rid, "ab" * 32, ivan, "investigation", cameras=4, districts=["north"],
            window_s=3600, sensitive=False, approvals=1, judge=False, policy_version=1,
            now_ms=t + 3 * k,
        ), seals[k]))  # fmt: skip
        out.append(A.access_approved(
            rid, anna, "approver", expires_ms=t + 86_400_000, unredacted=False,
            complete=True, reason="ok", now_ms=t + 3 * k + 1,
        ))  # fmt: skip
        out.append(
            A.access_released(rid, ivan, digests, {"method": "none"}, "cd" * 32, 10, t + 3 * k + 2)
        )
    return out


def scene(net: Network, n: int, batch: int, per_release: int) -> Scene:
    """``n`` records in batches of ``batch``, and releases of ``per_release``, logged."""
    recs, keys = records(net, n)
    batches = [recs[i : i + batch] for i in range(0, n, batch)]
    groups = [recs[i : i + per_release] for i in range(0, n, per_release)]
    digests = [[json.loads(r)["sha256"] for r in g] for g in groups]
    public = wait_ready(net, [today()]).epoch_public(today())
    assert public is not None
    cams, t0 = [f"cam-b{k}" for k in range(4)], now_ms() - 10_000 * (n + 1)
    seals = [sealed_request(public, f"r-{k + 1}", cams, t0, now_ms()) for k in range(len(groups))]
    access = _access(digests, now_ms(), seals)
    first = net.append_offline([_batch(b, k + 1) for k, b in enumerate(batches)] + access)
    releases = [first + len(batches) + 3 + 3 * k + 2 for k in range(len(groups))]
    note = net.wait_size(releases[-1] + 1)
    size = int(note.split(b"\n")[1])
    proofs: list[SegmentProof] = []
    for k, b in enumerate(batches):
        tree = MemoryTree(leaf_hash(r) for r in b)
        bindex = first + k
        bentry, bproof = net.entry(bindex), net.proof(bindex, size)
        proofs += [
            SegmentProof(
                record=r,
                position=p,
                proof=tree.prove_inclusion(p),
                batch_index=bindex,
                batch_entry=bentry,
                batch_proof=bproof,
            )  # fmt: skip
            for p, r in enumerate(b)
        ]
    out = Scene([], releases, [], keys)
    for k, index in enumerate(releases):
        segs = proofs[k * per_release : (k + 1) * per_release]
        body = partials_request(note, index, net.entry(index), net.proof(index, size), segs)
        body["details"] = scope_details(net, note, index, index - 2, size, seals[k])
        out.bodies.append(json.dumps(body).encode())
        out.proofs.append(segs)
    return out


def cpu_s(pid: int) -> float:
    """The CPU seconds a process has used (user and system, waited-for children too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _run(url: str, pid: int, bodies: list[bytes], n: int) -> tuple[float, float, float]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    cpu0, t0 = cpu_s(pid), time.perf_counter()
    for body in bodies:
        conn.request("POST", "/partials", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
        if r.status != 200:
            raise SystemExit(f"the custodian refused: {r.status} {raw[:300]!r}")
    wall = time.perf_counter() - t0
    cpu = cpu_s(pid) - cpu0
    conn.close()
    return n / wall, 1000 * cpu / n, os.getloadavg()[0]


def _median(runs: list[tuple[float, float, float]]) -> dict[str, Any]:
    return {
        "runs_segments_per_s": [round(r[0], 1) for r in runs],
        "median_segments_per_s": round(statistics.median(r[0] for r in runs), 1),
        "runs_cpu_ms_per_segment": [round(r[1], 3) for r in runs],
        "median_cpu_ms_per_segment": round(statistics.median(r[1] for r in runs), 3),
        "load_average_1m": [round(r[2], 2) for r in runs],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--segments", type=int, default=2000, help="segments asked for (2000)")
    ap.add_argument("--batch", type=int, default=500, help="records per segments.batch (500)")
    ap.add_argument("--per-release", type=int, default=900,
                    help="digests per access.released entry (900; at most ~970 fit)")  # fmt: skip
    ap.add_argument("--runs", type=int, default=5, help="timed runs (5)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    if not 0 < args.segments <= 100_000 or not 0 < args.per_release <= 960:
        raise SystemExit("--segments must be 1 to 100000 and --per-release 1 to 960.")
    if not 0 < args.batch <= 100_000 or not 0 < args.runs <= 100:
        raise SystemExit("--batch must be 1 to 100000 and --runs 1 to 100.")
    with tempfile.TemporaryDirectory(prefix="custodian-bench-") as tmp, network(Path(tmp)) as net:
        init_set(net, Path(tmp))
        scene_ = scene(net, args.segments, args.batch, args.per_release)
        bodies = scene_.bodies
        # The second custodian is restarted with its partials on one thread, for comparison.
        one = net.custodians[1][3]
        one.stop()
        os.environ["CUSTODES_PARTIAL_THREADS"] = "1"
        try:
            one.start()
        finally:
            del os.environ["CUSTODES_PARTIAL_THREADS"]
        (_, _, url, proc), (_, _, url1, _) = net.custodians[0], net.custodians[1]
        assert proc.proc is not None and one.proc is not None
        pid, pid1 = proc.proc.pid, one.proc.pid
        # The first request after the releases were logged: the custodian follows the log to
        # their checkpoint and recomputes the public rules over it (as for every new release).
        first = _run(url, pid, bodies[:1], len(scene_.proofs[0]))
        _run(url1, pid1, bodies[:1], len(scene_.proofs[0]))
        runs, runs1 = [], []
        for _ in range(args.runs):  # alternating, so that the machine's load falls on both
            runs.append(_run(url, pid, bodies, args.segments))
            runs1.append(_run(url1, pid1, bodies, args.segments))
    figures = {
        "segments": args.segments,
        "requests": len(bodies),
        "request_bytes": [len(b) for b in bodies],
        "threads": {"custodian": WORKERS, "comparison": 1},
        **_median(runs),
        "one_thread": _median(runs1),
        "first_request": {
            "segments": len(scene_.proofs[0]),
            "segments_per_s": round(first[0], 1),
            "cpu_ms_per_segment": round(first[1], 3),
        },
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"first request ({len(scene_.proofs[0])} segments, the custodian following the log and"
        f" checking the public rules first): {first[0]:,.0f} segments/s, {first[1]:.3f} ms CPU"
    )
    for k, (r, r1) in enumerate(zip(runs, runs1, strict=True), 1):
        print(
            f"run {k}: {r[0]:,.0f} segments/s, {r[1]:.3f} ms CPU a segment, load {r[2]:.2f}"
            f" | one thread: {r1[0]:,.0f} segments/s, {r1[1]:.3f} ms CPU, load {r1[2]:.2f}"
        )
    for label, m in (
        (f"partials on {WORKERS} threads", figures),
        ("one thread", figures["one_thread"]),
    ):
        print(
            f"median, {label}: {m['median_segments_per_s']:,.0f} segments/s "
            f"({args.segments} segments in {len(bodies)} requests), "
            f"{m['median_cpu_ms_per_segment']:.3f} ms of the custodian's CPU a segment"
        )


if __name__ == "__main__":
    main()
