"""The public rule for a release under custody: ``exported-release``.

Under custody a release is logged before the footage is opened, without the clip's
digest (``access.released`` v3), and ``access.exported`` names the clip afterwards.  From
the public log alone: each ``access.exported`` names, by its index, an ``access.released``
of the same request logged before it that carries no ``output`` (a release that named its
clip already has nothing left to export), and no release is exported twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from custodes.access.rules_model import Violation

if TYPE_CHECKING:
    from custodes.access.public_rules import RuleChecker

__all__ = ["exported"]


def exported(checker: RuleChecker, index: int, obj: dict[str, Any]) -> list[Violation]:
    rid = str(obj["request"])
    j = checker._judge(rid, index, obj)
    req = checker._requests.get(rid)
    if req is None:
        j("exported-release", False, f"{rid} exported a clip but was never requested")
        return j.out
    release = obj.get("release")
    named = next((e for e in req.released if e[0] == release), None)
    if named is None:
        j(
            "exported-release",
            False,
            f"{rid} exported a clip for entry {release}, which is not a release of it logged"
            " before",
            req.ev,
        )
    elif "output" in named[1]:
        j(
            "exported-release",
            False,
            f"{rid} exported a clip for a release that named its clip already",
            req.ev,
            named,
        )
    elif any(e[1].get("release") == release for e in req.exported):
        j(
            "exported-release",
            False,
            f"{rid} exported a second clip for the release at entry {release}",
            named,
            *req.exported,
        )
    else:
        j("exported-release", True, "")
    req.exported.append((index, obj))
    return j.out
