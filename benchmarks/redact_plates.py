"""Is a shipped licence-plate detector good enough to hide plates? A measurement.

Run by hand, from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/redact_plates.py

The only plate models that ship inside a PyPI package with a usable licence
are OpenCV 4.x's two Haar cascades (``haarcascade_russian_plate_number.xml``
and ``haarcascade_license_plate_rus_16stages.xml``, in ``cv2.data``; OpenCV 5
wheels ship none). No photograph of a plate ships in a package, so plates are
drawn: a white plate with a black rim and a Russian-format registration
(``A123BC 77``) in OpenCV's Hershey font, 60-300 px wide, slightly rotated,
blurred, noised and JPEG-compressed, pasted on the same 1280x720 backgrounds
as the face composites. Recall counts a plate found when a detection's IoU
with it is at least 0.3; false positives are detections touching no plate,
counted on the face composites (which hold no plate).

This is only a rough check: the drawn font is not the real plate font, so a
low recall here may understate the cascade on real plates; the false
positives, though, are measured on real scenery.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from custodes.redact import evalset  # noqa: E402

CASCADES = ("haarcascade_russian_plate_number.xml", "haarcascade_license_plate_rus_16stages.xml")
LETTERS = "ABEKMHOPCTYX"


def plate(rng: np.random.Generator, width: int) -> np.ndarray:
    h = max(8, round(width * 112 / 520))  # the Russian plate's 520 x 112 mm
    img = np.full((h, width, 3), 245, np.uint8)
    cv2.rectangle(img, (0, 0), (width - 1, h - 1), (20, 20, 20), max(1, width // 100))
    text = (
        LETTERS[rng.integers(len(LETTERS))]
        + "".join(str(d) for d in rng.integers(0, 10, 3))
        + "".join(LETTERS[i] for i in rng.integers(0, len(LETTERS), 2))
    )
    region = f"{rng.integers(10, 200)}"
    scale = h / 30
    thick = max(1, round(h / 12))
    cv2.putText(
        img,
        text,
        (round(0.04 * width), round(0.8 * h)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (15, 15, 15),
        thick,
        cv2.LINE_AA,
    )
    x = round(0.78 * width)
    cv2.line(img, (x, 0), (x, h - 1), (20, 20, 20), max(1, width // 150))
    cv2.putText(
        img,
        region,
        (x + round(0.02 * width), round(0.62 * h)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale * 0.6,
        (15, 15, 15),
        max(1, thick - 1),
        cv2.LINE_AA,
    )
    return img


def scenes(n: int, seed: int) -> list[tuple[np.ndarray, list[tuple[int, int, int, int]]]]:
    rng = np.random.default_rng(seed)
    base = [s.image for s in evalset.composite_set(positives=0, negatives=n, seed=seed)]
    out = []
    for img in base:
        img = img.copy()
        boxes: list[tuple[int, int, int, int]] = []
        for _ in range(int(rng.integers(1, 4))):
            width = int(rng.integers(60, 300))
            p = plate(rng, width)
            angle = rng.uniform(-6, 6)
            m = cv2.getRotationMatrix2D((width / 2, p.shape[0] / 2), angle, 1.0)
            p = cv2.warpAffine(p, m, (width, p.shape[0]), borderMode=cv2.BORDER_REPLICATE)
            if rng.random() < 0.4:
                p = cv2.GaussianBlur(p, (0, 0), rng.uniform(0.5, 1.5))
            p = np.clip(p * rng.uniform(0.5, 1.1), 0, 255).astype(np.uint8)
            ph, pw = p.shape[:2]
            x, y = int(rng.integers(0, 1280 - pw)), int(rng.integers(0, 720 - ph))
            if any(x < b[2] and b[0] < x + pw and y < b[3] and b[1] < y + ph for b in boxes):
                continue
            img[y : y + ph, x : x + pw] = p
            boxes.append((x, y, x + pw, y + ph))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 95))])
        out.append((cv2.imdecode(buf, cv2.IMREAD_COLOR), boxes))
    return out


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def main() -> None:
    with_plates = scenes(60, seed=11)
    faces_only = [
        (s.image, [box for box in s.faces])
        for s in evalset.composite_set(positives=60, negatives=20, seed=12)
    ]
    report = {}
    for name in CASCADES:
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        found = total = 0
        fp_plates = 0
        t = time.perf_counter()
        for img, boxes in with_plates:
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            dets = [(x, y, x + w, y + h) for x, y, w, h in cascade.detectMultiScale(gray, 1.1, 3)]
            total += len(boxes)
            found += sum(any(iou(b, d) >= 0.3 for d in dets) for b in boxes)
            fp_plates += sum(not any(iou(b, d) > 0 for b in boxes) for d in dets)
        ms = (time.perf_counter() - t) / len(with_plates) * 1000
        fp = 0
        for img, _faces in faces_only:
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            fp += len(cascade.detectMultiScale(gray, 1.1, 3))
        report[name] = {
            "plates": total,
            "recall": round(found / max(1, total), 3),
            "false_positives_in_plate_scenes": fp_plates,
            "false_positives_in_80_plate_free_images": fp,
            "ms_per_1280x720_image": round(ms, 1),
        }
        print(name, report[name], flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
