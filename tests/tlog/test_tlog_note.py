"""Signed notes: round trips, the key encodings, and one test per malformation."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.errors import KeyFormatError, NoteError, SignatureError
from custodes.tlog import (
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    NoteVerifier,
    Signer,
    Verifier,
    format_note,
    generate_cosigner_key,
    generate_key,
    key_id,
    open_note,
    parse_note,
    sign_note,
)

from .helpers import assert_sentence

SKEY, VKEY = generate_key("example.org/log")
SIGNER = Signer.from_key(SKEY)
VERIFIER = Verifier.from_key(VKEY)
OTHER = Signer.from_key(generate_key("example.org/other")[0])
TEXT = "example.org/log\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"

names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=20,
).filter(lambda s: "+" not in s and not any(c.isspace() for c in s))
texts = st.text(
    st.characters(codec="utf-8").filter(lambda c: c == "\n" or ord(c) >= 0x20),
    max_size=200,
).map(lambda s: s + "\n")
signatures = st.builds(
    NoteSignature,
    name=names,
    key_id=st.integers(0, 2**32 - 1),
    signature=st.binary(min_size=1, max_size=80),
)


def line(name: str, raw: bytes) -> bytes:
    return f"— {name} {base64.b64encode(raw).decode()}\n".encode()


def good_line() -> bytes:
    return sign_note(TEXT, SIGNER)[len(TEXT) + 1 :]


# -- round trips ------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(text=texts, sigs=st.lists(signatures, min_size=1, max_size=5))
def test_format_parse_round_trip(text: str, sigs: list[NoteSignature]) -> None:
    message = format_note(text, sigs)
    assert parse_note(message) == Note(text=text, signatures=tuple(sigs))


@settings(max_examples=30, deadline=None)
@given(text=texts)
def test_sign_open_round_trip(text: str) -> None:
    message = sign_note(text, SIGNER, OTHER)
    opened = open_note(message, [VERIFIER])
    assert opened.text == text
    assert [s.name for s in opened.verified] == ["example.org/log"]
    assert [s.name for s in opened.unverified] == ["example.org/other"]
    assert len(opened.signatures) == 2


@settings(max_examples=30, deadline=None)
@given(name=names)
def test_key_round_trip(name: str) -> None:
    skey, vkey = generate_key(name)
    signer = Signer.from_key(skey)
    verifier = Verifier.from_key(vkey)
    assert signer.name == verifier.name == name
    assert signer.key_id == verifier.key_id
    assert signer.verifier_key == vkey == verifier.key
    assert verifier.verify(b"m", signer.sign(b"m"))
    assert not verifier.verify(b"n", signer.sign(b"m"))


def test_key_id_definition() -> None:
    public = base64.b64decode(VKEY.split("+", 2)[2])[1:]
    assert VERIFIER.key_id == key_id("example.org/log", 0x01, public)
    assert VKEY.split("+")[1] == f"{VERIFIER.key_id:08x}"


def test_verifier_protocol() -> None:
    assert isinstance(VERIFIER, NoteVerifier)


# -- opening ----------------------------------------------------------------------------


def test_sixteen_valid_signatures_accepted() -> None:
    signers = [Signer.from_key(generate_key(f"w{i}.example")[0]) for i in range(16)]
    message = sign_note(TEXT, *signers)
    opened = open_note(message, [s.verifier() for s in signers])
    assert len(opened.verified) == 16


def test_hundred_signatures_accepted() -> None:
    message = sign_note(TEXT, SIGNER) + line("x.example", b"\0\0\0\1sig") * 99
    opened = open_note(message, [VERIFIER])
    assert len(opened.signatures) == 100 and len(opened.unverified) == 1


def test_too_many_signatures() -> None:
    message = sign_note(TEXT, SIGNER) + line("x.example", b"\0\0\0\1sig") * MAX_SIGNATURES
    with pytest.raises(NoteError, match="101 signature lines") as err:
        parse_note(message)
    assert_sentence(err.value)


def test_unknown_key_only() -> None:
    with pytest.raises(SignatureError, match="No trusted key signed this note") as err:
        open_note(sign_note(TEXT, OTHER), [VERIFIER])
    assert_sentence(err.value)


def test_no_verifiers_at_all() -> None:
    with pytest.raises(SignatureError):
        open_note(sign_note(TEXT, SIGNER), [])


def test_bad_signature_by_known_key() -> None:
    message = sign_note(TEXT, SIGNER)
    forged = message.replace(b"42\n", b"43\n", 1)
    with pytest.raises(SignatureError, match="does not verify") as err:
        open_note(forged, [VERIFIER])
    assert_sentence(err.value)


def test_bad_signature_by_known_key_beside_a_good_one() -> None:
    good = sign_note(TEXT, SIGNER)
    sig = parse_note(good).signatures[0]
    bad = NoteSignature(name=sig.name, key_id=sig.key_id, signature=bytes(64))
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(format_note(TEXT, [sig, bad]), [VERIFIER])


def test_same_name_other_key_id_is_unknown() -> None:
    sig = NoteSignature(name=SIGNER.name, key_id=SIGNER.key_id ^ 1, signature=bytes(64))
    good = parse_note(sign_note(TEXT, SIGNER)).signatures[0]
    opened = open_note(format_note(TEXT, [sig, good]), [VERIFIER])
    assert opened.unverified == (sig,) and opened.verified == (good,)


def test_repeated_signatures_kept_once() -> None:
    good = parse_note(sign_note(TEXT, SIGNER)).signatures[0]
    unknown = NoteSignature(name="x", key_id=1, signature=b"s")
    opened = open_note(format_note(TEXT, [good, unknown, good, unknown]), [VERIFIER])
    assert opened.verified == (good,) and opened.unverified == (unknown,)


def test_ambiguous_verifiers() -> None:
    with pytest.raises(SignatureError, match="share the name"):
        open_note(sign_note(TEXT, SIGNER), [VERIFIER, Verifier.from_key(VKEY)])


def test_text_with_blank_lines() -> None:
    text = "a\n\nb\n\n"
    assert open_note(sign_note(text, SIGNER), [VERIFIER]).text == text


# -- malformed notes, one per defect ---------------------------------------------------------

MALFORMED_NOTES = {
    "no_blank_line": TEXT.encode() + good_line(),
    "no_signature_lines": TEXT.encode() + b"\n",
    "missing_final_newline": TEXT.encode() + b"\n" + good_line()[:-1],
    "hyphen_instead_of_em_dash": TEXT.encode() + b"\n" + b"-" + good_line()[len("—") :],
    "en_dash_instead_of_em_dash": TEXT.encode() + b"\n" + "–".encode() + good_line()[3:],
    "no_space_after_dash": TEXT.encode()
    + b"\n"
    + good_line().replace(b"\xe2\x80\x94 ", b"\xe2\x80\x94"),
    "no_space_before_signature": TEXT.encode() + b"\n" + f"— {SIGNER.name}".encode() + b"\n",
    "name_with_plus": TEXT.encode() + b"\n" + line("a+b", b"\0\0\0\1sig"),
    "empty_name": TEXT.encode() + b"\n" + line("", b"\0\0\0\1sig"),
    "carriage_return_in_text": b"a\r\n\n" + good_line(),
    "carriage_return_line_endings": TEXT.replace("\n", "\r\n").encode() + b"\r\n" + good_line(),
    "tab_in_text": b"a\tb\n\n" + good_line(),
    "nul_in_text": b"a\0b\n\n" + good_line(),
    "invalid_utf8": b"a\xff\n\n" + good_line(),
    "utf8_encoded_surrogate": b"a\xed\xa0\x80\n\n" + good_line(),
    "oversized": b"a" * (1 << 20) + b"\n\n" + good_line(),
}


@pytest.mark.parametrize("message", MALFORMED_NOTES.values(), ids=MALFORMED_NOTES.keys())
def test_malformed_note(message: bytes) -> None:
    with pytest.raises(NoteError) as err:
        parse_note(message)
    assert_sentence(err.value)
    with pytest.raises(NoteError):
        open_note(message, [VERIFIER])


# Signature lines whose base64 is not canonical name no key that could be
# checked: they are ignored like any unknown key's (signed-note), never fatal.
UNREADABLE_LINES = {
    "bad_base64": "— name AAAA*AAA",
    "base64_without_padding": "— name AAAAAAA",
    "base64_non_canonical_bits": "— name AAAAAAB=",
    "base64_with_whitespace": "— name AAAA AAA=",
    "truncated_signature": line("name", b"\0\0\0\1").decode()[:-1],
    "empty_signature": "— name ",
    "trusted_name_other_id_non_canonical": f"— {SIGNER.name} AAAAAAAAAAB=",
}


@pytest.mark.parametrize("bad", UNREADABLE_LINES.values(), ids=UNREADABLE_LINES.keys())
def test_an_unreadable_signature_line_is_ignored(bad: str) -> None:
    signed = sign_note(TEXT, SIGNER)
    for message in (signed + (bad + "\n").encode(), TEXT.encode() + b"\n" + (bad + "\n").encode()
                    + good_line()):  # fmt: skip
        note = parse_note(message)
        assert note.unreadable == (bad,)
        assert [s.name for s in note.signatures] == [SIGNER.name]
        opened = open_note(message, [VERIFIER])
        assert [s.name for s in opened.verified] == [SIGNER.name]
    with pytest.raises(SignatureError, match="No trusted key"):
        open_note(TEXT.encode() + b"\n" + (bad + "\n").encode(), [VERIFIER])


def test_an_unreadable_line_claiming_a_trusted_key_refuses_the_note() -> None:
    sig = base64.b64encode(VERIFIER.key_id.to_bytes(4, "big") + b"\1" * 64).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    bent = sig[:-2] + alphabet[alphabet.index(sig[-2]) | 1] + "="  # same id, trailing bits set
    message = sign_note(TEXT, SIGNER) + f"— {SIGNER.name} {bent}\n".encode()
    assert parse_note(message).unreadable
    with pytest.raises(SignatureError, match="not canonical base64") as err:
        open_note(message, [VERIFIER])
    assert_sentence(err.value)


b64_alphabet = st.sampled_from(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=*-_ "
)


@settings(max_examples=200, deadline=None)
@given(name=names, junk=st.text(b64_alphabet, max_size=40))
def test_any_unknown_line_leaves_the_verdict_as_it_was(name: str, junk: str) -> None:
    signed = sign_note(TEXT, SIGNER)
    extra = f"— {name} {junk}\n".encode()
    try:
        note = parse_note(signed + extra)
    except NoteError:
        return  # not a signature line at all (e.g. a space inside): the note is malformed
    assert note.text == TEXT
    if name != SIGNER.name:
        assert [s.name for s in open_note(signed + extra, [VERIFIER]).verified] == [SIGNER.name]


@settings(max_examples=200, deadline=None)
@given(text=texts, sigs=st.lists(signatures, min_size=1, max_size=5), junk=st.binary(max_size=64))
def test_what_custodes_writes_is_always_canonical(
    text: str, sigs: list[NoteSignature], junk: bytes
) -> None:
    message = format_note(text, sigs)
    note = parse_note(message)
    assert note.unreadable == ()
    assert format_note(note.text, note.signatures) == message
    # Parsing arbitrary bytes after it raises only NoteError.
    try:
        parse_note(message + junk)
    except NoteError:
        pass


FORMAT_ERRORS = {
    "text_without_final_newline": ("abc", [NoteSignature(name="n", key_id=1, signature=b"s")]),
    "text_with_carriage_return": ("a\r\n", [NoteSignature(name="n", key_id=1, signature=b"s")]),
    "text_with_lone_surrogate": ("\ud800\n", [NoteSignature(name="n", key_id=1, signature=b"s")]),
    "no_signatures": ("a\n", []),
    "name_with_space": ("a\n", [NoteSignature(name="a b", key_id=1, signature=b"s")]),
    "key_id_too_large": ("a\n", [NoteSignature(name="n", key_id=1 << 32, signature=b"s")]),
    "empty_signature": ("a\n", [NoteSignature(name="n", key_id=1, signature=b"")]),
    "too_many_signatures": ("a\n", [NoteSignature(name="n", key_id=1, signature=b"s")] * 101),
}


@pytest.mark.parametrize(("text", "sigs"), FORMAT_ERRORS.values(), ids=FORMAT_ERRORS.keys())
def test_format_refuses(text: str, sigs: list[NoteSignature]) -> None:
    with pytest.raises(NoteError) as err:
        format_note(text, sigs)
    assert_sentence(err.value)


# -- malformed keys, one per defect ----------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


_NAME, _ID, _B64 = VKEY.split("+", 2)
_SEED64 = SKEY.split("+", 4)[4]
COSIGNER_SKEY, COSIGNER_VKEY = generate_cosigner_key("w.example")

BAD_VERIFIER_KEYS = {
    "no_key_material": f"{_NAME}+{_ID}",
    "empty_name": f"+{_ID}+{_B64}",
    "name_with_space": f"a b+{_ID}+{_B64}",
    "uppercase_key_id": f"{_NAME}+{_ID.upper()}+{_B64}"
    if _ID.upper() != _ID
    else f"{_NAME}+X+{_B64}",
    "short_key_id": f"{_NAME}+{_ID[:7]}+{_B64}",
    "wrong_key_id": f"{_NAME}+{int(_ID, 16) ^ 1:08x}+{_B64}",
    "bad_base64": f"{_NAME}+{_ID}+{_B64[:-2]}*=",
    "short_key": f"{_NAME}+{_ID}+{_b64(bytes([1]) + bytes(31))}",
    "wrong_type_byte": f"{_NAME}+{_ID}+{_b64(bytes([2]) + bytes(32))}",
    "cosignature_key": COSIGNER_VKEY,
    "private_key": SKEY,
}


@pytest.mark.parametrize("vkey", BAD_VERIFIER_KEYS.values(), ids=BAD_VERIFIER_KEYS.keys())
def test_bad_verifier_key(vkey: str) -> None:
    with pytest.raises(KeyFormatError) as err:
        Verifier.from_key(vkey)
    assert_sentence(err.value)


BAD_SIGNER_KEYS = {
    "missing_private_prefix": f"{_NAME}+{_ID}+{_SEED64}",
    "verifier_key": VKEY,
    "wrong_key_id": f"PRIVATE+KEY+{_NAME}+{int(_ID, 16) ^ 1:08x}+{_SEED64}",
    "other_name": f"PRIVATE+KEY+example.org/logs+{_ID}+{_SEED64}",
    "cosignature_key": COSIGNER_SKEY,
    "lowercase_prefix": SKEY.replace("PRIVATE+KEY", "private+key"),
}


@pytest.mark.parametrize("skey", BAD_SIGNER_KEYS.values(), ids=BAD_SIGNER_KEYS.keys())
def test_bad_signer_key(skey: str) -> None:
    with pytest.raises(KeyFormatError) as err:
        Signer.from_key(skey)
    assert_sentence(err.value)


def test_generate_key_refuses_bad_name() -> None:
    with pytest.raises(KeyFormatError, match="not valid"):
        generate_key("has space")
