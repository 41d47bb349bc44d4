"""Transparency log proofs (C2SP tlog-proof): an offline-checkable receipt of logging.

A proof file holds everything needed to check, with only the log's key (and
witness keys), that one entry is in the log::

    c2sp.org/tlog-proof@v1
    extra eyJ0eXBlIjoiYWNjZXNzLnJlbGVhc2VkIn0=
    index 5
    gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
    B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=

    example.org/custodes/test-log
    7
    sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

    — example.org/custodes/test-log hI2DJw...
    — witness.example/w1 mJirIklj...

Lines end in a newline (U+000A).  The first is the header; the second, only
when there is extra data, is ``extra`` and its base64; then ``index`` and the
zero-based index in canonical decimal; then the inclusion proof, one base64
SHA-256 hash a line from the leaf's sibling up; then an empty line and the
signed checkpoint note, verbatim, with whatever cosignatures it carries.

The extra data is not authenticated by the file.  custodes puts the logged
entry there, so the leaf hash is ``leaf_hash(extra)`` and the inclusion proof
authenticates it; an application must still decide what the entry means.

:func:`format_proof` writes strictly (canonical base64, 32-byte hashes, a
checkpoint that parses as a signed note).  :func:`parse_proof` reads as
leniently as the text allows and no more: any padded standard base64, no
extra line, zero proof lines, signature lines it cannot read (the note parser
keeps them as unknown keys); but the header, the canonical index, the blank
line and the hash lengths are required.  :func:`check_proof` follows the
spec's four verification steps.

Which witnesses are enough is an application's policy; :func:`parse_policy`
reads it in the C2SP tlog-policy format (``log``, ``witness``, ``group`` and
``quorum`` lines), and :meth:`TlogPolicy.check` applies it to a checkpoint::

    log example.org/log+1a2b3c4d+AbC...
    witness w1 w1.example+5e6f7a8b+BdE...
    witness w2 w2.example+9c0d1e2f+BfG...
    group both all w1 w2
    quorum both
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from custodes.errors import FormatError, KeyFormatError, ProofError, SignatureError
from custodes.tlog._text import decode_base64, encode_base64, parse_decimal
from custodes.tlog.checkpoint import SignedCheckpoint, open_checkpoint, parse_checkpoint
from custodes.tlog.cosignature import CosignatureVerifier
from custodes.tlog.merkle import HASH_SIZE, check_inclusion, leaf_hash
from custodes.tlog.note import MAX_NOTE_SIZE, NoteVerifier, Verifier, parse_note

__all__ = [
    "MAX_PROOF_SIZE",
    "PROOF_HEADER",
    "TlogPolicy",
    "TlogProof",
    "check_proof",
    "format_proof",
    "is_tlog_proof",
    "parse_policy",
    "parse_proof",
]

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES = 64
MAX_EXTRA_SIZE = 1 << 20
MAX_PROOF_SIZE = MAX_NOTE_SIZE + MAX_EXTRA_SIZE * 4 // 3 + 8 + 64 * (MAX_PROOF_HASHES + 2)
_MAX_INDEX = 1 << 63
_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


@dataclass(frozen=True, kw_only=True)
class TlogProof:
    """One entry's index, its inclusion proof, the signed checkpoint, and extra data.

    ``checkpoint`` is the signed note exactly as the log (and its witnesses)
    signed it; ``extra`` is opaque and unauthenticated (empty: no extra line).
    """

    index: int
    inclusion: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes = b""


def _b64(line: bytes, what: str) -> bytes:
    if len(line) % 4 or _B64.fullmatch(line) is None:
        raise FormatError(f"The tlog-proof {what} is not padded standard base64.")
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"The tlog-proof {what} is not padded standard base64.") from None


def format_proof(proof: TlogProof) -> bytes:
    """The tlog-proof file of ``proof``; a :class:`FormatError` if a field cannot be written."""
    if not isinstance(proof.index, int) or not 0 <= proof.index < _MAX_INDEX:
        raise FormatError(f"A tlog-proof index must be in 0..2**63-1, not {proof.index!r}.")
    if len(proof.inclusion) > MAX_PROOF_HASHES:
        raise FormatError(f"An inclusion proof has at most {MAX_PROOF_HASHES} hashes.")
    if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in proof.inclusion):
        raise FormatError("Every inclusion proof hash must be 32 bytes.")
    if len(proof.extra) > MAX_EXTRA_SIZE:
        raise FormatError(f"The extra data of a tlog-proof is at most {MAX_EXTRA_SIZE} bytes.")
    parse_note(proof.checkpoint)  # a NoteError (a FormatError) if it is not a signed note
    lines = [PROOF_HEADER]
    if proof.extra:
        lines.append("extra " + encode_base64(proof.extra))
    lines.append(f"index {proof.index}")
    lines.extend(encode_base64(h) for h in proof.inclusion)
    lines.append("")
    return "\n".join(lines).encode("ascii") + b"\n" + bytes(proof.checkpoint)


def is_tlog_proof(data: bytes) -> bool:
    """Whether ``data`` starts as a tlog-proof file does (its header line)."""
    return bytes(data[: len(PROOF_HEADER) + 1]) == PROOF_HEADER.encode() + b"\n"


def parse_proof(data: bytes) -> TlogProof:
    """The proof a tlog-proof file holds; raises :class:`FormatError` on any deviation.

    Nothing is verified here; see :func:`check_proof`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FormatError("A tlog-proof must be bytes.")
    data = bytes(data)
    if len(data) > MAX_PROOF_SIZE:
        raise FormatError(f"A tlog-proof is at most {MAX_PROOF_SIZE} bytes.")
    if not is_tlog_proof(data):
        raise FormatError(f"A tlog-proof must start with the line {PROOF_HEADER}.")
    blank = data.find(b"\n\n")
    if blank < 0:
        raise FormatError("A tlog-proof needs an empty line before its checkpoint.")
    head, checkpoint = data[:blank].split(b"\n")[1:], data[blank + 2 :]
    extra = b""
    if head and head[0].startswith(b"extra "):
        extra = _b64(head[0][len(b"extra ") :], "extra data")
        head = head[1:]
    if not head or not head[0].startswith(b"index "):
        raise FormatError("A tlog-proof needs an 'index N' line after its header (and extra).")
    try:
        index_text = head[0][len(b"index ") :].decode("ascii")
    except UnicodeDecodeError:
        index_text = "?"
    index = parse_decimal(index_text, _MAX_INDEX)
    if index is None:
        raise FormatError(
            f"The tlog-proof index {index_text!r} is not a canonical decimal below 2**63."
        )
    if len(head) - 1 > MAX_PROOF_HASHES:
        raise FormatError(f"An inclusion proof has at most {MAX_PROOF_HASHES} hashes.")
    hashes = tuple(_b64(line, "proof hash") for line in head[1:])
    if any(len(h) != HASH_SIZE for h in hashes):
        raise FormatError("Every inclusion proof hash in a tlog-proof must be 32 bytes.")
    if not checkpoint:
        raise FormatError("A tlog-proof ends without its checkpoint.")
    parse_note(checkpoint)
    return TlogProof(index=index, inclusion=hashes, checkpoint=checkpoint, extra=extra)


def check_proof(
    proof: TlogProof,
    leaf: bytes,
    verifier: NoteVerifier,
    *,
    origin: str | None = None,
    witnesses: Sequence[CosignatureVerifier] = (),
    quorum: int = 0,
) -> SignedCheckpoint:
    """Verify ``proof`` for the entry ``leaf`` (its data, not its hash).

    Steps, as tlog-proof lists them:

    (1) Compute the leaf hash of ``leaf``.
    (2) The checkpoint must be signed by the log key ``verifier``, and its
        origin must be ``origin`` (default: the key's name).
    (3) Verify the cosignatures of the known ``witnesses``; at least
        ``quorum`` distinct witnesses must have cosigned (SignatureError).
    (4) The inclusion proof must bind the leaf hash at ``index`` to the
        checkpoint's root (ProofError).

    Returns the opened checkpoint, with each witness's cosigning time.
    """
    # (1)
    hashed = leaf_hash(leaf)
    # (2)
    signed = open_checkpoint(proof.checkpoint, verifier, cosigners=witnesses)
    cp = signed.checkpoint
    want = verifier.name if origin is None else origin
    if cp.origin != want:
        raise SignatureError(f"The proof's checkpoint is of the log {cp.origin!r}, not {want!r}.")
    # (3)
    if quorum > len({w.name for w in witnesses}):
        raise SignatureError(f"A quorum of {quorum} cannot be met by {len(witnesses)} witnesses.")
    if len(signed.cosignatures) < quorum:
        raise SignatureError(
            f"The proof's checkpoint is cosigned by {len(signed.cosignatures)} of the known"
            f" witnesses, fewer than the {quorum} required."
        )
    # (4)
    if proof.index >= cp.size:
        raise ProofError(f"Index {proof.index} is not in the checkpoint of size {cp.size}.")
    check_inclusion(
        list(proof.inclusion), index=proof.index, size=cp.size, leaf=hashed, root=cp.root_hash
    )
    return signed


# -- tlog-policy ---------------------------------------------------------------------------

MAX_POLICY_SIZE = 1 << 20
_POLICY_BYTES = re.compile(rb"[\x09\x0a\x20-\x7e\x80-\xff]*")
_WS = re.compile(rb"[ \t]+")


@dataclass(frozen=True, kw_only=True)
class TlogPolicy:
    """A tlog-policy: the logs accepted, the witnesses known, and the quorum rule.

    ``groups`` maps a group's name to its threshold and members (witness or
    group names); ``quorum`` is a witness or group name, or None for
    ``quorum none``.  Names are opaque strings (decoded from UTF-8 with
    surrogate escapes, so any octets compare as octets).
    """

    logs: tuple[Verifier, ...]
    witnesses: dict[str, CosignatureVerifier] = field(default_factory=dict)
    groups: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)
    quorum: str | None = None

    def log_for(self, origin: str) -> Verifier:
        """The log key for ``origin`` (the key name must be the origin); SignatureError if none."""
        for log in self.logs:
            if log.name == origin:
                return log
        raise SignatureError(f"The policy lists no log {origin!r}.")

    def satisfied_by(self, cosigned: set[str]) -> bool:
        """Whether the witnesses named ``cosigned`` (policy names) meet the quorum."""
        if self.quorum is None:
            return True

        def witnessed(name: str) -> bool:
            if name in self.witnesses:
                return name in cosigned
            k, members = self.groups[name]
            return sum(witnessed(m) for m in members) >= k

        return witnessed(self.quorum)

    def check(self, checkpoint: bytes) -> SignedCheckpoint:
        """Open ``checkpoint`` with the policy: a listed log's signature and the quorum.

        Raises SignatureError when either is missing or a trusted signature is bad.
        """
        origin = parse_checkpoint(parse_note(checkpoint).text).origin
        signed = open_checkpoint(
            checkpoint, self.log_for(origin), cosigners=list(self.witnesses.values())
        )
        by_key = {(v.name, v.key_id): name for name, v in self.witnesses.items()}
        cosigned = {
            by_key[(s.name, s.key_id)] for s in signed.note.verified if (s.name, s.key_id) in by_key
        }
        if not self.satisfied_by(cosigned):
            raise SignatureError(
                f"The checkpoint's cosignatures ({', '.join(sorted(cosigned)) or 'none'}) do not"
                f" meet the policy's quorum {self.quorum!r}."
            )
        return signed


def _policy_error(lineno: int, message: str) -> FormatError:
    return FormatError(f"Policy line {lineno}: {message}.")


def parse_policy(data: bytes) -> TlogPolicy:
    """The policy a tlog-policy file holds; raises :class:`FormatError` on any deviation."""
    if len(data) > MAX_POLICY_SIZE:
        raise FormatError(f"A policy file is at most {MAX_POLICY_SIZE} bytes.")
    if _POLICY_BYTES.fullmatch(data) is None:
        raise FormatError("A policy file may hold no control characters but tab and newline.")
    logs: list[Verifier] = []
    witnesses: dict[str, CosignatureVerifier] = {}
    groups: dict[str, tuple[int, tuple[str, ...]]] = {}
    quorum: str | None = None
    seen_quorum = False
    publics: set[bytes] = set()

    def key(
        lineno: int, text: str, cls: type[Verifier] | type[CosignatureVerifier]
    ) -> Verifier | CosignatureVerifier:
        try:
            verifier = cls.from_key(text)
        except KeyFormatError as err:
            raise _policy_error(lineno, f"the key is not a usable vkey ({err})") from None
        # name+keyid+base64: the name holds no "+", but base64 may, so split twice from the left
        public = (decode_base64(text.split("+", 2)[-1]) or b"")[1:]  # without the type byte
        if public in publics:
            raise _policy_error(lineno, "the key is listed twice")
        publics.add(public)
        return verifier

    lines = data.split(b"\n")
    for lineno, raw in enumerate(lines, 1):
        words = [w.decode("utf-8", "surrogateescape") for w in _WS.split(raw.strip(b" \t")) if w]
        if not words or words[0].startswith("#"):
            continue
        kind, args = words[0], words[1:]
        if kind == "log":
            if len(args) not in (1, 2):
                raise _policy_error(lineno, "a log line is 'log <vkey> [<url>]'")
            log = key(lineno, args[0], Verifier)
            assert isinstance(log, Verifier)
            logs.append(log)
        elif kind == "witness":
            if len(args) not in (2, 3):
                raise _policy_error(lineno, "a witness line is 'witness <name> <vkey> [<url>]'")
            name = args[0]
            if name == "none" or name in witnesses or name in groups:
                raise _policy_error(lineno, f"the name {name!r} is already defined")
            verifier = key(lineno, args[1], CosignatureVerifier)
            assert isinstance(verifier, CosignatureVerifier)
            witnesses[name] = verifier
        elif kind == "group":
            if len(args) < 3:
                raise _policy_error(lineno, "a group line is 'group <name> <k|all|any> <name>...'")
            name, k_text, members = args[0], args[1], tuple(args[2:])
            if name == "none" or name in witnesses or name in groups:
                raise _policy_error(lineno, f"the name {name!r} is already defined")
            if len(set(members)) != len(members):
                raise _policy_error(lineno, "a group lists a member more than once")
            for m in members:
                if m not in witnesses and m not in groups:
                    raise _policy_error(lineno, f"the member {m!r} is not defined above")
            if k_text == "all":
                k = len(members)
            elif k_text == "any":
                k = 1
            else:
                parsed = parse_decimal(k_text, len(members) + 1)
                if parsed is None or parsed < 1:
                    raise _policy_error(
                        lineno, f"the threshold {k_text!r} is not in 1..{len(members)}"
                    )
                k = parsed
            groups[name] = (k, members)
        elif kind == "quorum":
            if len(args) != 1:
                raise _policy_error(lineno, "a quorum line is 'quorum <name>'")
            if seen_quorum:
                raise _policy_error(lineno, "a policy has exactly one quorum line")
            seen_quorum = True
            if args[0] == "none":
                quorum = None
            elif args[0] in witnesses or args[0] in groups:
                quorum = args[0]
            else:
                raise _policy_error(lineno, f"the quorum {args[0]!r} is not defined above")
        else:
            raise _policy_error(lineno, f"unknown keyword {kind!r}")
    if not seen_quorum:
        raise FormatError("A policy file must have a quorum line.")
    return TlogPolicy(logs=tuple(logs), witnesses=witnesses, groups=groups, quorum=quorum)
