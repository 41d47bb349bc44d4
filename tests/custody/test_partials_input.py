"""POST /partials bodies of every wrong shape are refused with a sentence, never a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from custodes.custody.daemon.custodian import CustodianDir
from custodes.custody.daemon.service import Follower, Refusal, check_release
from custodes.tlog import Signer, generate_key, sign_checkpoint
from custodes.tlog.checkpoint import Checkpoint

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
_SKEY, _VKEY = generate_key("fuzz.example/log")


def _follower(tmp: Path) -> Follower:
    me = CustodianDir.init(tmp / "c", "fuzz.example")
    from custodes.tlog import Verifier

    return Follower(me=me, log_url="http://127.0.0.1:9", verifier=Verifier.from_key(_VKEY))


def _note() -> str:
    cp = Checkpoint(origin="fuzz.example/log", size=5, root_hash=bytes(32))
    return sign_checkpoint(cp, Signer.from_key(_SKEY)).decode()


def _refused(f: Follower, body: Any) -> str:
    try:
        check_release(f, json.loads(json.dumps(body)))
    except Refusal as exc:
        return str(exc)
    raise AssertionError("accepted")


@settings(max_examples=300, deadline=None)
@given(body=_json)
def test_any_json_is_refused_with_a_sentence(tmp_path_factory: Any, body: Any) -> None:
    f = _follower(tmp_path_factory.mktemp("f"))
    assert _refused(f, body).endswith(".")


@settings(max_examples=300, deadline=None)
@given(release=_json, segments=_json)
def test_a_good_checkpoint_with_junk_release_or_segments_is_refused(
    tmp_path_factory: Any, release: Any, segments: Any
) -> None:
    f = _follower(tmp_path_factory.mktemp("f"))
    body = {"checkpoint": _note(), "release": release, "segments": segments}
    assert _refused(f, body).endswith(".")


def test_a_checkpoint_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    f = _follower(tmp_path)
    other, _ = generate_key("fuzz.example/log")
    cp = Checkpoint(origin="fuzz.example/log", size=5, root_hash=bytes(32))
    note = sign_checkpoint(cp, Signer.from_key(other)).decode()
    reason = _refused(f, {"checkpoint": note, "release": {}, "segments": []})
    assert reason.startswith("the checkpoint does not verify")
