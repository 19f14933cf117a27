"""The conformance checks as data: id, level, title, source keys, what provokes them, judge.

Owns: :class:`Check`, :class:`Verdict` and the registry every check module adds to with
:func:`check`; the order of ``conformance.md`` (A1 ... E4).
Must not: run anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.conformance.evidence import Evidence

MAX_EVIDENCE = 10


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # passed | failed | warning | skipped (a judge says broken; see Check.run)
    reason: str  # one line a vendor reads first
    evidence: list[dict[str, Any]] = field(default_factory=list)  # the offending requests
    seconds: float = 0.0  # wall time judging it took (JUnit's case time)


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
    #: judged from the server's clock: "reads" (what time it thinks it is: right when its
    #: clock is bound to the run's, in process or by --server-cmd) or "waits" (how long it
    #: waits: right in process or at --rate 1 only); None: not from its clock
    server_clock: str | None = None

    @property
    def name(self) -> str:
        return f"{self.id} {self.slug}"

    def run(self, evidence: Evidence) -> Verdict:
        """The judge's verdict, a broken rule graded by this check's level."""
        verdict = self.judge(evidence)
        if verdict.status != "broken":
            return verdict
        return replace(verdict, status="failed" if self.level == "MUST" else "warning")


CHECKS: dict[str, Check] = {}


def check(
    id: str,
    slug: str,
    level: str,
    title: str,
    sources: tuple[str, ...],
    provoked_by: str,
    needs: tuple[str, ...] = ("push",),
    *,
    server_clock: str | None = None,
) -> Callable[[Judge], Judge]:
    def register(judge: Judge) -> Judge:
        CHECKS[id] = Check(id, slug, level, title, sources, provoked_by, judge, needs, server_clock)
        return judge

    return register


def passed(reason: str) -> Verdict:
    return Verdict("passed", reason)


def skipped(reason: str) -> Verdict:
    return Verdict("skipped", reason)


def broken(reason: str, evidence: list[dict[str, Any]]) -> Verdict:
    """The rule was broken (evidence capped); :meth:`Check.run` makes it failed for a MUST
    and a warning for a SHOULD."""
    shown = evidence[:MAX_EVIDENCE]
    more = len(evidence) - len(shown)
    if more > 0:
        reason += f" ({more} more not shown)"
    return Verdict("broken", reason, shown)


def ordered() -> list[Check]:
    from emulator.conformance import checks_sessions, checks_wns  # noqa: F401 - they register

    return sorted(CHECKS.values(), key=lambda c: (c.id[0], int(c.id[1:])))


GROUPS = {
    "A": "WNS authentication",
    "B": "The raw push request",
    "C": "Channel lifecycle",
    "D": "Rates and errors",
    "E": "Sessions and polling",
}


def markdown() -> str:
    """``docs/conformance.md``: every check as a server vendor reads it (generated)."""
    lines = [
        "# Conformance checks",
        "",
        "What `dmemu conformance` judges about an MDM server's push handling. A MUST that",
        "fails fails the run; a SHOULD is a warning, and fails the run only with `--strict`.",
        "Each check names the documents it rests on (keys in",
        "[protocol-decisions.md](protocol-decisions.md)) and what in the conformance scenario",
        "provokes it. A check whose server hook is missing is `skipped (no hook: NAME)`, never",
        "passed. Checks marked *server clock* depend on the server's clock. Against a server",
        "you started yourself they are `skipped` (not judged) on virtual time, which leaps",
        "while the world is quiet. When dmemu starts it (`--server-cmd`) its clock is bound",
        "to the run's: the checks on its *reads* are judged on the virtual month, those on",
        "its *waits* on a second, two-hour run paced in real time at 600x, with the server's",
        "clock and sleeps at the same rate (`scenarios/conformance/waits.yaml`).",
        "",
        "Generated from `emulator/conformance/` (`pytest --regen-golden`).",
    ]
    for letter, title in GROUPS.items():
        lines += ["", f"## {letter}. {title}", ""]
        lines += ["| id | level | rule | sources | provoked by |", "|---|---|---|---|---|"]
        for c in ordered():
            if c.id[0] != letter:
                continue
            clock = f" *(server clock: {c.server_clock})*" if c.server_clock else ""
            sources = "".join(f"[{k}]" for k in c.sources)
            title = c.title.replace("<", "&lt;").replace(">", "&gt;")  # <token> is no tag
            lines.append(
                f"| {c.id} {c.slug} | {c.level} | {title}{clock} | {sources} | {c.provoked_by} |"
            )
    return "\n".join(lines) + "\n"
