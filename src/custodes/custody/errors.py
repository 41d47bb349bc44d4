"""The errors the custody layer raises, placed in the project's one tree.

::

    CustodesError (custodes.errors)
    ├── FormatError
    │   └── CustodyFormatError          a key, point, scalar, dealing, partial or header
    │                                   that does not parse (wrong length, non-canonical,
    │                                   not a group element, bad base64, unknown version)
    └── VerificationError
        ├── SegmentError                a segment's ciphertext does not authenticate;
        │                               carries ``segment`` and ``chunk``
        ├── WrongPartialError           a custodian's partial decryption fails its proof;
        │                               carries ``custodian`` and the ``partial`` (evidence)
        ├── NotEnoughPartialsError      fewer than T valid partials; carries ``valid``,
        │                               ``needed`` and the ``wrong`` custodians
        ├── DealingError                a DKG dealing is malformed or a share in it is bad;
        │                               carries ``dealer`` and the evidence
        └── DKGFailedError              fewer qualified dealers than the threshold

Errors that prove misbehaviour carry their evidence (the partial, or the dealing and the
complaint), so the caller can publish it in an alert.  An integrator maps
:class:`NotEnoughPartialsError` to HTTP 503 ("2 of 5 custodians answered; 3 are needed").
"""

from __future__ import annotations

from typing import Any

from custodes.errors import FormatError, VerificationError

__all__ = [
    "CustodyFormatError",
    "DKGFailedError",
    "DealingError",
    "NotEnoughPartialsError",
    "SegmentError",
    "WrongPartialError",
]


class CustodyFormatError(FormatError):
    """Custody key material, a log entry or a ciphertext header does not parse."""


class SegmentError(VerificationError):
    """A segment's ciphertext is tampered with, truncated, reordered or spliced."""

    def __init__(self, message: str, *, segment: str, chunk: int) -> None:
        super().__init__(f"segment {segment}, chunk {chunk}: {message}")
        self.segment = segment
        self.chunk = chunk


class WrongPartialError(VerificationError):
    """A custodian answered with a partial decryption whose proof does not verify."""

    def __init__(self, message: str, *, custodian: int, partial: Any) -> None:
        super().__init__(f"custodian {custodian}: {message}")
        self.custodian = custodian
        self.partial = partial


class NotEnoughPartialsError(VerificationError):
    """Fewer than the threshold of valid partial decryptions: nothing can be opened."""

    def __init__(self, *, valid: int, needed: int, wrong: tuple[WrongPartialError, ...]) -> None:
        names = ", ".join(str(w.custodian) for w in wrong)
        extra = f"; custodians {names} answered wrongly" if wrong else ""
        super().__init__(f"{valid} valid answers from custodians; {needed} are needed{extra}")
        self.valid = valid
        self.needed = needed
        self.wrong = wrong


class DealingError(VerificationError):
    """A DKG dealer's dealing is malformed, or a share it sent does not match its commitments."""

    def __init__(self, message: str, *, dealer: int, evidence: Any = None) -> None:
        super().__init__(f"dealer {dealer}: {message}")
        self.dealer = dealer
        self.evidence = evidence


class DKGFailedError(VerificationError):
    """Too few dealers qualified for the epoch key to be made."""
