"""The custodian daemon and the custody entries of the log (issue 12).

Kept apart from :mod:`custodes.custody`, whose modules are pure cryptography importing only
crypto libraries: this package talks HTTP, follows the log and writes files.

* :mod:`.entries`: signed custody entries and the custodian set;
* :mod:`.ledger`: what the log says about custody (:class:`CustodyLog`), each epoch's DKG
  worked out from its messages alone;
* :mod:`.custodian`: a custodian's directory and its moves in the DKG;
* :mod:`.service`: ``custodian serve``, which follows the log and answers ``POST /partials``;
* :mod:`.client`: the gateway's side, asking the custodians and combining their answers.
"""

from custodes.custody.daemon.client import (
    Answers,
    SegmentProof,
    ask_custodians,
    open_segments,
    partials_request,
    shortfall,
)
from custodes.custody.daemon.entries import Custodian, CustodianSet
from custodes.custody.daemon.ledger import CustodyLog, EpochView
from custodes.custody.daemon.service import release_name

__all__ = [
    "Answers",
    "Custodian",
    "CustodianSet",
    "CustodyLog",
    "EpochView",
    "SegmentProof",
    "ask_custodians",
    "open_segments",
    "partials_request",
    "release_name",
    "shortfall",
]
