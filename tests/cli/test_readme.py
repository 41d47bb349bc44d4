"""The README's examples that say they run as written do (issue 15, item 20): the scratch
instance's first ``log append`` (not the city's data) and the report's ``custodes audit``.

Every ``sh`` block preceded by ``<!-- runs as written: tests/cli/test_readme.py -->`` is run,
in order, in one bash with ``set -euo pipefail`` and the project's ``custodes`` first on the
PATH.  The one change is where ``/tmp/`` points: a fresh folder of the test's own, so that
runs in parallel do not share ``/tmp/scratch``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

MARK = "<!-- runs as written: tests/cli/test_readme.py -->"


def marked_blocks(readme: str) -> list[str]:
    """The ``sh`` blocks the README marks as run by this test, in order."""
    return re.findall(re.escape(MARK) + r"\n```sh\n(.*?)\n```", readme, flags=re.S)


def test_the_readme_examples_marked_as_tested_run_as_written(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = marked_blocks(readme)
    assert readme.count(MARK) == len(blocks) >= 2, "a marked block is not a ```sh block"
    script = "\n".join(blocks)
    # The first log append of the README writes to a scratch instance, not the city's.
    first = next(line for line in readme.splitlines() if " log append" in line)
    assert "/tmp/scratch log append" in first, first
    assert "custodes audit " in script and "custodes --data /tmp/scratch init" in script
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script.replace("/tmp/", f"{scratch}/")],
        cwd=tmp_path, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, f"README examples failed:\n{out}\n{err}"
    assert out.splitlines()[0].startswith("scratch.example/log+")  # init: the verifier key
    assert "\n0\n" in out  # log append: the index
    assert "verified scratch.example/log: size 1" in out
    assert re.search(r"all \d+ figures of 2026-11 match the log scratch.example/log at size 1", out)


def test_the_readme_says_how_long_the_demo_city_takes_and_what_it_prints() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "under a minute" not in readme
    assert re.search(r"took \d+ s", readme), "the measured build time"
    assert "custodes: simulating 7 days" in readme  # the progress it prints
