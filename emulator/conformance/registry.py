"""The conformance checks as data: id, level, title, source keys, what provokes them, judge.

Owns: :class:`Check`, :class:`Verdict` and the registry every check module adds to with
:func:`check`; the order of ``conformance.md`` (A1 ... E4).
Must not: run anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.conformance.evidence import Evidence

MAX_EVIDENCE = 10


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # passed | failed | warning | skipped
    reason: str  # one line a vendor reads first
    evidence: list[dict[str, Any]] = field(default_factory=list)  # the offending requests


Judge = Callable[["Evidence"], Verdict]


@dataclass(frozen=True, slots=True)
class Check:
    id: str  # "A1"
    slug: str  # "token-request"
    level: str  # MUST | SHOULD
    title: str  # the rule, as conformance.md states it
    sources: tuple[str, ...]  # protocol.md source keys
    provoked_by: str  # what in the conformance scenario makes the server show it
    judge: Judge
    needs: tuple[str, ...] = ()  # server hooks without which it cannot be provoked

    @property
    def name(self) -> str:
        return f"{self.id} {self.slug}"


CHECKS: dict[str, Check] = {}


def check(
    id: str,
    slug: str,
    level: str,
    title: str,
    sources: tuple[str, ...],
    provoked_by: str,
    needs: tuple[str, ...] = ("push",),
) -> Callable[[Judge], Judge]:
    def register(judge: Judge) -> Judge:
        CHECKS[id] = Check(id, slug, level, title, sources, provoked_by, judge, needs)
        return judge

    return register


def passed(reason: str) -> Verdict:
    return Verdict("passed", reason)


def skipped(reason: str) -> Verdict:
    return Verdict("skipped", reason)


def broken(level: str, reason: str, evidence: list[dict[str, Any]]) -> Verdict:
    """A rule broken: failed for a MUST, a warning for a SHOULD; evidence capped."""
    shown = evidence[:MAX_EVIDENCE]
    more = len(evidence) - len(shown)
    if more > 0:
        reason += f" ({more} more not shown)"
    return Verdict("failed" if level == "MUST" else "warning", reason, shown)


def ordered() -> list[Check]:
    from emulator.conformance import checks_sessions, checks_wns  # noqa: F401 - they register

    return sorted(CHECKS.values(), key=lambda c: (c.id[0], int(c.id[1:])))
