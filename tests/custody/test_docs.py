"""The example in the custody package's docstring runs as written."""

from __future__ import annotations

import io
import os
import textwrap
from typing import Any

import custodes.custody as custody


def test_the_package_example_runs() -> None:
    doc = custody.__doc__ or ""
    block = doc.split("The path of one segment", 1)[1].split("::", 1)[1]
    code = textwrap.dedent(
        "\n".join(line for line in block.splitlines() if line.startswith("    "))
    )
    data = os.urandom(100_000)
    namespace: dict[str, Any] = {name: getattr(custody, name) for name in custody.__all__}
    for name in ("k1", "k2", "k3"):
        namespace[name] = custody.EncryptionKey.generate()
    namespace.update(plain_file=io.BytesIO(data), cipher_file=io.BytesIO(), out=io.BytesIO())
    exec(compile(code, "custody.__doc__", "exec"), namespace)
    assert namespace["out"].getvalue() == data
