"""Recall and false positives on the composite stills, against the recorded baseline.

The bounds come from ``baseline.json``, which ``benchmarks/redact_bench.py
--write-baseline`` recorded once; they are never taken from the detector while
the test runs. The true boxes are where the faces were pasted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from custodes.redact import evalset  # noqa: E402
from custodes.redact.options import RedactOptions  # noqa: E402
from custodes.redact.pipeline import redact_array  # noqa: E402

pytestmark = pytest.mark.heavy  # every composite still through the detector: about a minute

BASELINE = json.loads((Path(__file__).with_name("baseline.json")).read_text())

#: How far a run may fall below the baseline before the test fails.
RECALL_SLACK = 0.02
FP_SLACK = 2


@pytest.fixture(scope="module")
def scored(detector: Any) -> dict[str, Any]:
    samples = list(evalset.composite_set(**BASELINE["composite_set"]))
    opts = RedactOptions(mode="fill", fill_rgb=evalset.MAGENTA)
    masks = [evalset.magenta_mask(redact_array(s.image, opts, detector)[0]) for s in samples]
    return evalset.score(samples, masks)


def test_the_set_is_the_recorded_one(scored: dict[str, Any]) -> None:
    assert scored["faces"] == BASELINE["faces"]
    assert scored["images"] == BASELINE["images"]
    assert scored["negatives"] == BASELINE["negatives"]


def test_recall_of_faces_24px_and_up(scored: dict[str, Any]) -> None:
    assert scored["recall_24"] >= BASELINE["recall_24"] - RECALL_SLACK
    assert scored["recall_24"] >= 0.85  # the floor the target implies


def test_recall_per_bucket(scored: dict[str, Any]) -> None:
    for bucket, (hit, total) in BASELINE["recall"].items():
        got, n = scored["recall"][bucket]
        assert n == total
        assert got >= hit - max(1, round(RECALL_SLACK * total)), bucket


def test_large_faces_are_all_hidden(scored: dict[str, Any]) -> None:
    for bucket in ("48-63", "64-127", "128-256"):
        got, n = scored["recall"][bucket]
        assert got >= n - 1, bucket


def test_false_positives(scored: dict[str, Any]) -> None:
    assert scored["false_positives"] <= BASELINE["false_positives"] + FP_SLACK
    assert scored["negatives_with_fp"] <= BASELINE["negatives_with_fp"] + 1
