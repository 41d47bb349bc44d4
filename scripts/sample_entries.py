"""Print N sample log entries as JSON Lines, for the demo and by hand.

They are typed ``sample.*`` so that no domain (fleet, access) takes them for
its own records.
"""

from __future__ import annotations

import hashlib
import json
import sys


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    out = sys.stdout
    for i in range(n):
        if i < 20:
            entry = {
                "type": "sample.camera",
                "v": 1,
                "time": "2026-11-01T00:00:00Z",
                "camera": f"cam-{i:04d}",
                "position": [55.75 + i / 1000, 37.61 + i / 1000],
            }
        else:
            start = 1_793_577_600 + 60 * (i // 20)
            entry = {
                "type": "sample.segment",
                "v": 1,
                "time": start + 60,
                "camera": f"cam-{i % 20:04d}",
                "start": start,
                "duration": 60,
                "bytes": 1_000_000 + i,
                "sha256": hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
            }
        out.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    main()
