"""Fixtures for the redaction tests.  They need the redaction extra, which make test installs."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def detector() -> Any:
    """One face detector for the whole session (loading it takes about half a second)."""
    from custodes.redact.detect import FaceDetector

    return FaceDetector(threads=2)
