"""The verification library loads only the standard library, cryptography and custodes.errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FORBIDDEN = {"fastapi", "click", "psycopg", "uvicorn", "numpy", "httpx", "pydantic", "cv2", "av"}
# cryptography and the native modules it registers under top-level names.
ALLOWED_THIRD_PARTY = {"cryptography", "_cffi_backend", "cffi", "_openssl", "_rust"}

_PROBE = """
import json, sys
before = set(sys.modules)
import custodes.tlog
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_tlog_imports_nothing_heavy() -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True
    ).stdout
    loaded = {name.split(".")[0] for name in json.loads(out)}
    third_party = loaded - set(sys.stdlib_module_names) - {"custodes"}
    assert "cryptography" in loaded
    assert third_party <= ALLOWED_THIRD_PARTY, third_party
    assert not loaded & FORBIDDEN
    custodes_modules = {n for n in json.loads(out) if n.startswith("custodes")}
    assert custodes_modules <= {"custodes", "custodes.errors"} | {
        n for n in custodes_modules if n.startswith("custodes.tlog")
    }
