"""Custody: footage that nobody can open alone (issue 12).

The cryptographic core, pure functions over values, no I/O beyond file objects:

* :mod:`~custodes.custody.group`: ristretto255 (RFC 9496) scalars and points over libsodium;
* :mod:`~custodes.custody.dleq`: Chaum-Pedersen equality-of-logarithm proofs;
* :mod:`~custodes.custody.keys`: key material and epoch results as strict JSON values;
* :mod:`~custodes.custody.dkg`: the epoch key by the GJKR DKG (Pedersen VSS, then Feldman
  extraction), with self-proving complaints, every message a JSON log entry;
* :mod:`~custodes.custody.kem`: the threshold ElGamal KEM, one key per segment, opened by
  combining T verified partial decryptions of the segment's ephemeral key;
* :mod:`~custodes.custody.stream`: STREAM chunked AES-256-GCM over file objects;
* :mod:`~custodes.custody.state`: a custodian's key material as one JSON document.

The custodian daemon, the custody log entries and the gateway's client sit apart, in
:mod:`custodes.custody.daemon`, since they talk HTTP and follow the log.

The path of one segment (``k1``, ``k2``, ``k3`` are the custodians' :class:`EncryptionKey`)::

    roster = Roster(epoch="2026-12-03", threshold=2, keys=(k1.public, k2.public, k3.public))
    dealt = [deal(roster, i) for i in (1, 2, 3)]  # on each custodian
    dealings = [d for d, _ in dealt]  # each logged now
    qualified = qualify(roster, dealings, complaints=[])  # by anyone, from the log
    extractions = [x for d, x in dealt if d.dealer in qualified]  # logged after that
    public = epoch_key(roster, dealings, qualified, extractions, complaints=[])
    share_1 = combine_share(roster, public, dealings, 1, k1)  # on custodian 1 only
    share_3 = combine_share(roster, public, dealings, 3, k3)  # on custodian 3 only
    seg = SegmentId(epoch="2026-12-03", camera="cam-17", start="2026-12-03T10:00:00Z")
    sealed = encrypt_segment(plain_file, cipher_file, public, seg)  # the agent
    partials = [  # each custodian, once the release is in the witnessed log
        partial_decrypt(share, sealed.ephemeral, seg, release="log 1041")
        for share in (share_1, share_3)
    ]
    opened = combine(public, partials, sealed.ephemeral, seg, release="log 1041")  # gateway
    cipher_file.seek(0)
    decrypt_stream(cipher_file, out, key=opened.key, segment=str(seg))
"""

from custodes.custody.dkg import (
    Complaint,
    Dealing,
    Extraction,
    check_complaint,
    check_extraction,
    combine_share,
    deal,
    epoch_key,
    make_complaint,
    make_reveal,
    needs_reconstruction,
    open_share,
    qualify,
)
from custodes.custody.dleq import DLEQProof, check_dleq, prove_dleq
from custodes.custody.errors import (
    CustodyFormatError,
    DealingError,
    DKGFailedError,
    NotEnoughPartialsError,
    SegmentError,
    WrongPartialError,
)
from custodes.custody.group import Point, Scalar
from custodes.custody.kem import (
    Encapsulation,
    Opened,
    Partial,
    SegmentId,
    combine,
    encapsulate,
    partial_decrypt,
    verify_partial,
)
from custodes.custody.keys import EncryptionKey, EpochPublic, EpochShare, Roster
from custodes.custody.state import CustodianState
from custodes.custody.stream import (
    Header,
    Sealed,
    StreamDigests,
    decrypt_stream,
    encrypt_segment,
    encrypt_stream,
    read_header,
)

__all__ = [
    "needs_reconstruction",
    "make_reveal",
    "epoch_key",
    "check_extraction",
    "Extraction",
    "Complaint",
    "CustodianState",
    "CustodyFormatError",
    "DKGFailedError",
    "DLEQProof",
    "Dealing",
    "DealingError",
    "Encapsulation",
    "EncryptionKey",
    "EpochPublic",
    "EpochShare",
    "Header",
    "NotEnoughPartialsError",
    "Opened",
    "Partial",
    "Point",
    "Roster",
    "Scalar",
    "Sealed",
    "SegmentError",
    "SegmentId",
    "StreamDigests",
    "WrongPartialError",
    "check_complaint",
    "check_dleq",
    "combine",
    "combine_share",
    "deal",
    "decrypt_stream",
    "encapsulate",
    "encrypt_segment",
    "encrypt_stream",
    "make_complaint",
    "open_share",
    "partial_decrypt",
    "prove_dleq",
    "qualify",
    "read_header",
    "verify_partial",
]
