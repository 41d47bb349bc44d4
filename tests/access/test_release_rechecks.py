"""The checks a release makes again right before it is logged (issue 10, item 19).

An approval is judged at release by the people as they are then, not as they
were when they decided: an approver whose role or scope changed, a judge who
is a judge no more, or a requester whose scope was narrowed makes the release
refused.  Each test first shows the release would go ahead, then changes one
thing and shows it is refused with nothing logged.
"""

from __future__ import annotations

import pytest

from custodes.access.identity import Scope
from custodes.access.service import Forbidden
from custodes.access.users import add_user, change_user
from custodes.errors import FormatError, StoreUnavailableError
from tests.access.gateway_kit import City, city  # noqa: F401  (the fixture)

ZONE = {"name": "Clinic 7", "kind": "clinic", "lat": 55.7600, "lon": 37.6100, "radius_m": 50}


def _edit_user(c: City, name: str, role: str | None = None, scope: str | None = None) -> None:
    """An admin's later change of a person's role or scope (logged as ``user.changed``)."""
    parsed = Scope.parse(scope) if scope is not None else None
    c.ledger.write(lambda log: change_user(log, c.ids, name, role, parsed))


def _released(c: City) -> int:
    return sum(1 for e in c.entries() if e["type"] == "access.released")


def _approved_by(c: City, who: str, **kw: object) -> str:
    rid = c.access.request(c.users["ivan"], c.inp(**kw))
    assert c.access.approve(c.users[who], rid)["complete"]
    c.access.check_release(c.users["ivan"], rid)  # would go ahead now
    return rid


def test_an_approver_re_added_under_another_role_lapses(
    city: City,  # noqa: F811
) -> None:
    c = city
    rid = _approved_by(c, "anna")
    c.revoke("anna")
    c.ledger.write(lambda log: add_user(log, c.ids, "anna", "auditor", Scope()))
    with pytest.raises(Forbidden, match="revoked or changed role"):
        c.access.check_release(c.users["ivan"], rid)
    assert _released(c) == 0


def test_an_approver_whose_role_changed_lapses(city: City) -> None:  # noqa: F811
    c = city
    rid = _approved_by(c, "anna")
    _edit_user(c, "anna", role="auditor")
    with pytest.raises(Forbidden, match="revoked or changed role"):
        c.access.check_release(c.users["ivan"], rid)


def test_a_judge_who_is_now_an_approver_lapses(city: City) -> None:  # noqa: F811
    c = city
    c.access.set_policy(c.users["adam"], {"sensitive_zones": [ZONE]})
    rid = _approved_by(c, "jude", cameras=("cam-n1",))
    _edit_user(c, "jude", role="approver")
    with pytest.raises(Forbidden, match="no longer a judge"):
        c.access.check_release(c.users["ivan"], rid)


def test_a_judge_re_added_as_an_approver_lapses(city: City) -> None:  # noqa: F811
    c = city
    c.access.set_policy(c.users["adam"], {"sensitive_zones": [ZONE]})
    rid = _approved_by(c, "jude", cameras=("cam-n1",))
    c.revoke("jude")
    c.ledger.write(lambda log: add_user(log, c.ids, "jude", "approver", Scope()))
    with pytest.raises(Forbidden, match="revoked or changed role|no longer a judge"):
        c.access.check_release(c.users["ivan"], rid)
    assert _released(c) == 0


def test_an_approvers_scope_narrowed_after_approval_lapses(city: City) -> None:  # noqa: F811
    c = city
    rid = _approved_by(c, "anna")  # cam-n1, in the north
    _edit_user(c, "anna", scope="district:south")
    with pytest.raises(Forbidden, match="no longer within approver"):
        c.access.check_release(c.users["ivan"], rid)


def test_a_requesters_scope_narrowed_after_approval_stops_the_release(
    city: City,  # noqa: F811
) -> None:
    c = city
    rid = _approved_by(c, "anna")
    _edit_user(c, "ivan", scope="district:south")
    with pytest.raises(Forbidden, match="no longer inside your scope"):
        c.access.check_release(c.users["ivan"], rid)


def test_an_admin_only_action_by_a_judge_is_refused(city: City) -> None:  # noqa: F811
    c = city
    before = len(c.entries())
    with pytest.raises(Forbidden):
        c.access.set_policy(c.users["jude"], {"sensitive_zones": []})
    assert len(c.entries()) == before


# -- reads of sealed details (issue 10, item 5) ---------------------------------------


def _reads(c: City) -> list[dict[str, object]]:
    return [e for e in c.entries() if e["type"] == "access.details_read"]


def test_every_read_of_sealed_details_is_logged_first(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    # The requester reads their own request freely.
    assert c.access.get(c.users["ivan"], rid)["details"]
    assert _reads(c) == []
    # An approver opening it to decide leaves an entry, with their pseudonym.
    assert c.access.get(c.users["anna"], rid)["details"]
    # An auditor sees nothing without a reason, and the reason is logged.
    assert c.access.get(c.users["audrey"], rid)["details"] is None
    with pytest.raises(FormatError, match="say why"):
        c.access.sealed(c.users["audrey"], rid, "")
    got = c.access.sealed(c.users["audrey"], rid, "quarterly audit of night requests")
    reads = _reads(c)
    assert [(r["request"], r["by"], r["why"]) for r in reads] == [
        (rid, c.users["anna"].pseudonym, "to decide the request"),
        (rid, c.users["audrey"].pseudonym, "quarterly audit of night requests"),
    ]
    assert got["read_index"] == max(i for i, e in enumerate(c.entries()) if e in reads)


def test_a_read_the_log_cannot_record_shows_nothing(city: City) -> None:  # noqa: F811
    c = city
    rid = c.access.request(c.users["ivan"], c.inp())
    store = c.ledger.log.store
    real = store.append

    def broken(entries: object) -> tuple[int, int]:
        raise StoreUnavailableError("the disk is gone")

    store.append = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(StoreUnavailableError):
            c.access.sealed(c.users["audrey"], rid, "audit")
        with pytest.raises(StoreUnavailableError):
            c.access.get(c.users["anna"], rid)
    finally:
        store.append = real  # type: ignore[method-assign]
    assert _reads(c) == []


def test_a_name_added_again_inherits_nothing_of_the_old_account(city: City) -> None:  # noqa: F811
    c = city
    rid = _approved_by(c, "anna")
    c.revoke("ivan")
    again, _ = c.ledger.write(lambda log: add_user(log, c.ids, "ivan", "investigator", Scope()))
    assert again.pseudonym != c.users["ivan"].pseudonym
    assert c.access.mine(again) == []
    with pytest.raises(Forbidden, match="only their own requests"):
        c.access.get(again, rid)
    with pytest.raises(Forbidden, match="only the investigator who made the request"):
        c.access.check_release(again, rid)
    assert _released(c) == 0
