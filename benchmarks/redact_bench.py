"""Redaction benchmark: custodes against deface, same clips, same machine, one run.

Run by hand (it takes several minutes), from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/redact_bench.py --runs 3

It measures, on this machine:

1. **Throughput**, frames/s end to end (start-up, decode, detect, mask,
   encode), each tool run as its command line in a subprocess on the same
   1280x720 H.264 clip: ``custodes redact`` with its defaults, ``deface`` at
   full resolution and ``deface --scale 640x360``. The median of ``--runs``
   (wall clock). Because a shared machine's other work slows every tool, the
   CPU time of each run is recorded too, and ``fps_cpu_bound`` (frames per
   CPU-second times the number of cores) says what that CPU time would allow
   with the machine to itself: a derived figure, not a measured rate.
2. **Unblurred frames** in those outputs: the clip is made of moving-face
   composites (:func:`custodes.redact.evalset.moving_clip`) whose true face
   boxes are known; a face is unblurred in a frame when
   :func:`custodes.redact.evalset.exposure` > 0.5 (faces 24 px and up, at
   least 8 px of them inside the frame).
3. **Recall and false positives** on the composite stills
   (:func:`custodes.redact.evalset.composite_set`), both tools filling their
   masks with magenta so that the mask can be read back from the pixels:
   custodes through its image path in-process, deface through its CLI on the
   PNG files with ``--replacewith img --boxes`` (its largest mask).

``--write-baseline`` also records custodes' figures on the smaller composite
set that ``tests/redact/test_composite.py`` uses, in
``tests/redact/baseline.json``; the test asserts bounds around them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from custodes.redact import evalset  # noqa: E402
from custodes.redact.detect import FaceDetector  # noqa: E402
from custodes.redact.options import RedactOptions  # noqa: E402
from custodes.redact.pipeline import redact_array  # noqa: E402

#: The composite set the benchmark reports on, and the one the test uses.
BENCH_SET = {"positives": 300, "negatives": 60, "seed": 0}
TEST_SET = {"positives": 60, "negatives": 12, "seed": 1}
CLIP_SEEDS = (0, 1, 2, 3)
CLIP_FRAMES = 75  # per seed; the clip is the four joined, 300 frames
TOOLS = ("custodes", "deface full-res", "deface --scale 640x360")


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


def make_clip(folder: Path) -> tuple[Path, list[evalset.ClipFrame]]:
    import av

    frames: list[evalset.ClipFrame] = []
    for seed in CLIP_SEEDS:
        frames.extend(evalset.moving_clip(frames=CLIP_FRAMES, size=(1280, 720), seed=seed))
    path = folder / "moving.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 1280, 720, "yuv420p"
        s.options = {"crf": "18", "preset": "medium"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f.image, format="bgr24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path, frames


def read_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def unblurred(
    source: list[np.ndarray], output: list[np.ndarray], clip: list[evalset.ClipFrame]
) -> dict[str, int]:
    """Frames (and face-frames) in which a face is exposed (exposure > 0.5)."""
    bad_frames = 0
    bad_faces = 0
    checked = 0
    if len(output) != len(clip):
        return {"frames_with_unblurred_face": -1, "unblurred_face_frames": -1, "checked": 0}
    for src, out, cf in zip(source, output, clip, strict=True):
        bad = 0
        for box in cf.faces:
            if box[3] - box[1] < 24 or box[2] - box[0] < 8:
                continue
            checked += 1
            bad += evalset.exposure(src, out, box) > 0.5
        bad_faces += bad
        bad_frames += bad > 0
    return {
        "frames_with_unblurred_face": bad_frames,
        "unblurred_face_frames": bad_faces,
        "checked": checked,
    }


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall-clock seconds and CPU seconds (user + system) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def throughput(
    clip: Path, frames: list[evalset.ClipFrame], runs: int, work: Path
) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    deface = shutil.which("deface") or str(Path(sys.executable).with_name("deface"))
    outs = {name: work / f"{i}.mp4" for i, name in enumerate(TOOLS)}
    tools = {
        "custodes": [sys.executable, "-m", "custodes", "redact", str(clip), str(outs["custodes"])],
        "deface full-res": [deface, str(clip), "-o", str(outs["deface full-res"])],
        "deface --scale 640x360": [
            *(deface, str(clip), "-o", str(outs["deface --scale 640x360"])),
            *("--scale", "640x360"),
        ],
    }
    source = read_frames(clip)
    out: dict[str, Any] = {}
    for name, cmd in tools.items():
        times, cpus, loads = [], [], []
        for _ in range(runs):
            wall, cpu = timed(cmd, env)
            times.append(wall)
            cpus.append(cpu)
            loads.append(round(os.getloadavg()[0], 2))
        med = statistics.median(times)
        cpu_med = statistics.median(cpus)
        result = {
            "seconds": [round(t, 2) for t in times],
            "median_seconds": round(med, 2),
            "fps": round(len(frames) / med, 1),
            "fps_runs": [round(len(frames) / t, 1) for t in times],
            "cpu_seconds": [round(c, 2) for c in cpus],
            # What the CPU time would allow on the machine's cores if nothing else ran:
            # a load-independent figure, not a measured wall-clock rate.
            "fps_cpu_bound": round(len(frames) / (cpu_med / (os.cpu_count() or 1)), 1),
            "loadavg_1min_after_each_run": loads,
        }
        result.update(unblurred(source, read_frames(outs[name]), frames))
        out[name] = result
        print(name, result, flush=True)
    return out


def custodes_masks(samples: list[evalset.Sample], detector: FaceDetector) -> list[np.ndarray]:
    opts = RedactOptions(mode="fill", fill_rgb=evalset.MAGENTA)
    return [evalset.magenta_mask(redact_array(s.image, opts, detector)[0]) for s in samples]


def deface_masks(samples: list[evalset.Sample], work: Path, scale: str | None) -> list[np.ndarray]:
    deface = shutil.which("deface") or str(Path(sys.executable).with_name("deface"))
    folder = work / f"stills_{scale or 'full'}"
    folder.mkdir()
    paths = []
    for s in samples:
        p = folder / f"{s.name}.png"
        cv2.imwrite(str(p), s.image)
        paths.append(p)
    magenta = work / "magenta.png"
    cv2.imwrite(str(magenta), np.full((8, 8, 3), evalset.MAGENTA[::-1], np.uint8))
    cmd = [
        deface,
        *map(str, paths),
        "--replacewith",
        "img",
        "--replaceimg",
        str(magenta),
        "--boxes",
    ]
    if scale:
        cmd += ["--scale", scale]
    subprocess.run(cmd, check=True, capture_output=True)
    return [
        evalset.magenta_mask(cv2.imread(str(p.with_name(p.stem + "_anonymized.png"))))
        for p in paths
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-recall", action="store_true")
    ap.add_argument("--write-baseline", action="store_true")
    ap.add_argument("--out", type=Path, help="Also write the report (JSON) to this file.")
    args = ap.parse_args()
    report: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv)}
    print(report["machine"], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            clip, frames = make_clip(work)
            report["throughput"] = throughput(clip, frames, args.runs, work)
        detector = FaceDetector(threads=2)
        if not args.skip_recall:
            samples = list(evalset.composite_set(**BENCH_SET))
            report["composite_set"] = BENCH_SET
            t = time.perf_counter()
            report["recall"] = {
                "custodes": evalset.score(samples, custodes_masks(samples, detector))
            }
            report["recall"]["custodes"]["seconds"] = round(time.perf_counter() - t, 1)
            for label, scale in (("deface full-res", None), ("deface --scale 640x360", "640x360")):
                t = time.perf_counter()
                report["recall"][label] = evalset.score(samples, deface_masks(samples, work, scale))
                report["recall"][label]["seconds"] = round(time.perf_counter() - t, 1)
            print(json.dumps(report["recall"], indent=1), flush=True)
        if args.write_baseline:
            samples = list(evalset.composite_set(**TEST_SET))
            base = evalset.score(samples, custodes_masks(samples, detector))
            base["composite_set"] = TEST_SET
            base["recorded_by"] = "benchmarks/redact_bench.py --write-baseline"
            path = REPO / "tests" / "redact" / "baseline.json"
            path.write_text(json.dumps(base, indent=2, sort_keys=True) + "\n")
            print("baseline", base, flush=True)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    text = json.dumps(report, indent=2) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
