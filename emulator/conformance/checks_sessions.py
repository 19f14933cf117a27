"""Checks on how the server manages the channel (C) and runs OMA-DM sessions (E) [PUSH][DMC]
[OMADM][MSMDM][KB3170699]. Each judge reads the devices' sessions (every server message, as
the devices received them), the device events and the WNS requests.
"""

from __future__ import annotations

from collections import defaultdict

from emulator.clock import SECOND
from emulator.conformance.evidence import Evidence, Session, event_item, request_item, session_item
from emulator.conformance.registry import Verdict, broken, check, passed, skipped
from emulator.device.csp import POLL_DEFAULTS
from emulator.device.poll import NAMES as POLL_SETS
from emulator.device.recording import Exchange
from emulator.device.session import SESSION_BREAKING
from emulator.reports.text import plural
from emulator.syncml import Add, Command, Get, Message, Replace, Status
from emulator.syncml.session import walk

AT_RISK = ("wp81", "win81", "win10-1511")  # builds that may fail to renew [PUSH][KB3170699]


def _targets(cmd: Command, suffix: str) -> bool:
    items = getattr(cmd, "items", ())
    return any((item.target or "").endswith(suffix) for item in items)


def _pfn_writes(session: Session) -> list[Command]:
    return [
        c
        for c in walk(session.server_commands())
        if isinstance(c, Add | Replace) and _targets(c, "/Push/PFN")
    ]


def _with_exchanges(ev: Evidence) -> list[Session]:
    return [s for s in ev.sessions if any(ex.reply is not None for ex in s.exchanges)]


# -- C. Channel lifecycle ---------------------------------------------------------------------
@check(
    "C1",
    "pfn-provisioned",
    "MUST",
    "sets Push/PFN (Add or Replace) on a device before relying on push",
    ("PUSH", "DMC"),
    "enrollment session",
    needs=(),
)
def pfn_provisioned(ev: Evidence) -> Verdict:
    by_device: dict[str, list[Session]] = defaultdict(list)
    for s in _with_exchanges(ev):
        by_device[s.device_id].append(s)
    if not by_device:
        return skipped("no session reached the server")
    bad = [
        session_item(sessions[0], "C1: PFN never set on this device")
        for device, sessions in sorted(by_device.items())
        if not any(_pfn_writes(s) for s in sessions)
    ]
    if bad:
        return broken(f"{len(bad)} of {len(by_device)} devices never given a PFN", bad)
    return passed(f"all {len(by_device)} devices given the PFN")


@check(
    "C2",
    "pfn-418",
    "MUST",
    "after Add PFN answered 418 the server uses Replace; it does not repeat the Add",
    ("OMADM",),
    "a device that already has a PFN",
    needs=(),
)
def pfn_418(ev: Evidence) -> Verdict:
    # each device's server messages in order, with the device's answer to each
    refused = 0
    bad = []
    by_device: dict[str, list[tuple[Session, Exchange, Message | None]]] = defaultdict(list)
    for s in _with_exchanges(ev):
        for i, ex in enumerate(s.exchanges):
            answer = s.exchanges[i + 1].sent if i + 1 < len(s.exchanges) else None
            by_device[s.device_id].append((s, ex, answer))
    for steps in by_device.values():
        after_418 = False
        replaced = False
        for session, ex, answer in steps:
            if ex.reply is None:
                continue
            writes = [
                c
                for c in walk(ex.reply.commands)
                if isinstance(c, Add | Replace) and _targets(c, "/Push/PFN")
            ]
            if after_418:
                if any(isinstance(c, Add) for c in writes):
                    bad.append(session_item(session, "C2: Add PFN sent again after 418"))
                    break
                replaced = replaced or any(isinstance(c, Replace) for c in writes)
            adds = {c.cmd_id for c in writes if isinstance(c, Add)}
            if answer is not None and any(
                isinstance(st, Status) and st.cmd_ref in adds and st.data == "418"
                for st in answer.commands
            ):
                if not after_418:
                    refused += 1
                after_418 = True
        else:
            if after_418 and not replaced:
                bad.append({"device": steps[0][0].device_id, "rule": "C2: no Replace after 418"})
    if not refused:
        return skipped("no Add of PFN was answered 418")
    if bad:
        return broken("the server did not switch to Replace after 418", bad)
    return passed(f"{plural(refused, 'device')} answered 418, then given Replace")


@check(
    "C3",
    "channel-query",
    "SHOULD",
    "Gets Push/ChannelURI in every management session",
    ("PUSH", "KI"),
    "every session",
    needs=(),
)
def channel_query(ev: Evidence) -> Verdict:
    sessions = _with_exchanges(ev)
    if not sessions:
        return skipped("no session reached the server")
    bad = [
        session_item(s, "C3: no Get of Push/ChannelURI in this session")
        for s in sessions
        if not any(
            isinstance(c, Get) and _targets(c, "/Push/ChannelURI") for c in s.server_commands()
        )
    ]
    if bad:
        return broken(f"{len(bad)} of {len(sessions)} sessions without the query", bad)
    return passed(f"all {len(sessions)} sessions read Push/ChannelURI")


@check(
    "C4",
    "latest-channel",
    "MUST",
    "once a session has reported a renewed ChannelURI, the server never pushes to the "
    "superseded one",
    ("PUSH",),
    "renewal at day 15",
)
def latest_channel(ev: Evidence) -> Verdict:
    renewed = {d for d, reports in ev.reported_at.items() if len(reports) > 1}
    if not renewed:
        return skipped("no device reported a second ChannelURI")
    bad = []
    for r in ev.notifies:
        device = ev.owner(r)
        if device not in renewed:
            continue
        newer = [t for t, uri in ev.reported_at[device] if uri != r.target and t < r.t_ms]
        mine = [t for t, uri in ev.reported_at[device] if uri == r.target]
        if newer and mine and max(newer) > max(mine):
            bad.append(request_item(ev, r, "C4: pushed to a superseded ChannelURI"))
    if bad:
        return broken(f"{len(bad)} pushes to superseded ChannelURIs", bad)
    return passed(f"{plural(len(renewed), 'device')} renewed; pushes went to their newest channel")


def _stops_after(ev: Evidence, status: int, rule: str) -> Verdict | None:
    first: dict[str, int] = {}
    for r in ev.notifies:
        if r.status == status:
            first.setdefault(r.target, r.t_ms)
    if not first:
        return None
    bad = [
        request_item(ev, r, f"{rule}: sent after the {status}")
        for r in ev.notifies
        if r.target in first and r.t_ms > first[r.target]
    ]
    if bad:
        return broken(f"{len(bad)} pushes to ChannelURIs already answered {status}", bad)
    return passed(f"{len(first)} ChannelURIs answered {status}; none used again")


@check(
    "C5",
    "gone-410",
    "MUST",
    "after a 410 the server stops sending to that ChannelURI",
    ("WNSOV",),
    "channel expired at day 30 (renewal failed)",
)
def gone_410(ev: Evidence) -> Verdict:
    return _stops_after(ev, 410, "C5") or skipped("no push was answered 410")


@check(
    "C6",
    "pfn-reset-after-410",
    "SHOULD",
    "after a 410 the server sets the PFN again in the device's next session",
    ("PUSH",),
    "channel expired at day 30 (renewal failed)",
)
def pfn_reset_after_410(ev: Evidence) -> Verdict:
    gone = [r for r in ev.notifies if r.status == 410 and ev.owner(r)]
    if not gone:
        return skipped("no push was answered 410")
    bad, judged = [], 0
    for r in gone:
        device = ev.owner(r)
        later = [s for s in _with_exchanges(ev) if s.device_id == device and s.start_ms > r.t_ms]
        if not later:
            continue
        judged += 1
        if not _pfn_writes(later[0]):
            bad.append(session_item(later[0], "C6: first session after the 410 kept the PFN"))
    if not judged:
        return skipped("no device had a session after its 410")
    if bad:
        return broken("the PFN was not set again after a 410", bad)
    return passed(f"{plural(judged, 'device')} given the PFN again after their 410")


@check(
    "C7",
    "proactive-reset",
    "SHOULD",
    "for builds that may fail to renew (8.1, 1511), the server resets the PFN before the "
    "channel's 30 days run out",
    ("PUSH", "KB3170699"),
    "a 1511 device whose renewal silently fails",
    needs=(),
    server_clock="reads",
)
def proactive_reset(ev: Evidence) -> Verdict:
    at_risk = sorted(d for d, p in ev.profile_of.items() if p in AT_RISK)
    failing = {
        e["device_id"] for e in ev.of_event("device.renewal_failed") if e["device_id"] in at_risk
    }
    if not failing:
        return skipped("no 8.1/1511 device failed to renew")
    bad = [
        event_item(e, "C7: the channel expired; the PFN was not set again in time")
        for e in ev.of_event("device.channel_expired")
        if e["device_id"] in failing
    ]
    if bad:
        return broken(f"{len(bad)} at-risk channels expired", bad)
    return passed(f"{len(failing)} 8.1/1511 devices failed to renew; none reached expiry")


@check(
    "C8",
    "not-found-404",
    "MUST",
    "after a 404 the server stops sending to that ChannelURI",
    ("WNSHDR",),
    "unknown channel",
)
def not_found_404(ev: Evidence) -> Verdict:
    return _stops_after(ev, 404, "C8") or skipped("no push was answered 404")


@check(
    "C9",
    "pfn-lower-case",
    "SHOULD",
    "the PFN the server sets is in lower case",
    ("WP81BLOG",),
    "every PFN set",
    needs=(),
)
def pfn_lower_case(ev: Evidence) -> Verdict:
    # [WP81BLOG] "Convert the above PFN to lower case before sending it to the device"
    writes = [(s, c) for s in _with_exchanges(ev) for c in _pfn_writes(s)]
    if not writes:
        return skipped("no PFN was set")
    bad = [
        session_item(s, f"C9: PFN {item.data!r} is not in lower case")
        for s, c in writes
        for item in getattr(c, "items", ())
        if (item.target or "").endswith("/Push/PFN")
        and (item.data or "") != (item.data or "").lower()
    ]
    if bad:
        return broken(f"{len(bad)} of {len(writes)} PFN writes have upper-case letters", bad)
    return passed(f"all {len(writes)} PFN writes in lower case")


@check(
    "C10",
    "channel-same-session",
    "SHOULD",
    "after setting the PFN the server reads Push/ChannelURI in that same session (a later "
    "command or package) rather than waiting for another session",
    ("WP81BLOG",),
    "enrollment session",
    needs=(),
)
def channel_same_session(ev: Evidence) -> Verdict:
    # [WP81BLOG] "During the same OMA-DM session the MDM server requests the URI which gets
    # delivered by DMClient"
    judged, bad = 0, []
    for s in _with_exchanges(ev):
        commands = walk(s.server_commands())
        writes = [
            i
            for i, c in enumerate(commands)
            if isinstance(c, Add | Replace) and _targets(c, "/Push/PFN")
        ]
        if not writes:
            continue
        judged += 1
        last = writes[-1]
        if not any(
            isinstance(c, Get) and _targets(c, "/Push/ChannelURI") for c in commands[last + 1 :]
        ):
            bad.append(session_item(s, "C10: PFN set, ChannelURI not read after it in session"))
    if not judged:
        return skipped("no PFN was set")
    if bad:
        return broken(
            f"{len(bad)} of {judged} sessions set the PFN without reading the channel", bad
        )
    return passed(f"all {judged} sessions that set the PFN read the new ChannelURI")


# -- E. Sessions and polling ------------------------------------------------------------------
@check(
    "E1",
    "keeps-polling",
    "MUST",
    "the server does not disable polling (never sets all Poll intervals, or all retry "
    "counts, to 0)",
    ("PUSH", "MDE2"),
    "enrollment session",
    needs=(),
)
def keeps_polling(ev: Evidence) -> Verdict:
    bad, configured = [], 0
    by_device: dict[str, list[Session]] = defaultdict(list)
    for s in _with_exchanges(ev):
        by_device[s.device_id].append(s)
    for _, sessions in sorted(by_device.items()):
        values = {name: default for name, (_, default) in POLL_DEFAULTS.items()}
        culprit = None
        for s in sessions:
            for c in walk(s.server_commands()):
                if isinstance(c, Add | Replace):
                    for item in c.items:
                        leaf = (item.target or "").rpartition("/Poll/")[2]
                        if leaf in values and "/Poll/" in (item.target or ""):
                            values[leaf], culprit = item.data or "0", s
        if culprit is None:
            continue
        configured += 1
        intervals = [values[i] for i, _ in POLL_SETS]
        counts = [values[n] for _, n in POLL_SETS]
        if all(v.strip() in ("", "0") for v in intervals) or all(
            v.strip() in ("", "0") for v in counts
        ):
            bad.append(session_item(culprit, f"E1: Poll left as {values}"))
    if not configured:
        return passed("the server kept the device's default poll schedule")
    if bad:
        return broken(f"polling disabled on {len(bad)} devices", bad)
    return passed(f"{plural(configured, 'device')} given a poll schedule that keeps polling")


@check(
    "E2",
    "valid-syncml",
    "MUST",
    "every server message is valid SyncML DM 1.2: Status for SyncHdr first, CmdIDs unique and "
    "non-zero, MsgRef/CmdRef right, one Status per device command",
    ("MSMDM",),
    "every session",
    needs=(),
)
def valid_syncml(ev: Evidence) -> Verdict:
    if not _with_exchanges(ev) and not ev.of_event("session.server_fault"):
        return skipped("no session reached the server")
    faults = [
        e for e in ev.of_event("session.server_fault") if e.get("rule") != "session-never-ends"
    ]
    if faults:
        return broken(
            f"{len(faults)} server messages broke SyncML DM rules",
            [event_item(e, f"E2: {e.get('rule')}") for e in faults],
        )
    return passed(f"{len(ev.sessions)} sessions, every server message valid")


@check(
    "E3",
    "push-delivers",
    "SHOULD",
    "a command queued on the server is delivered in the session that the push triggered",
    ("PUSH",),
    "hook: queue a command, then push",
    needs=("queue_command", "push"),
)
def push_delivers(ev: Evidence) -> Verdict:
    queued = [e for e in ev.of_event("server.hook") if e["hook"] == "queue_command" and e.get("ok")]
    if not queued:
        return skipped("no command was queued (no hook: queue_command, or none asked)")
    bad, latencies = [], []
    for q in queued:
        sessions = [
            s
            for s in _with_exchanges(ev)
            if s.device_id == q["device_id"] and s.trigger == "push" and s.start_ms >= q["t_ms"]
        ]
        if not sessions:
            bad.append(event_item(q, "E3: no push-triggered session followed"))
            continue
        first = sessions[0]
        if any(_targets(c, q.get("loc_uri") or "\0") for c in first.server_commands()):
            latencies.append(first.start_ms - q["t_ms"])
        else:
            bad.append(session_item(first, f"E3: {q.get('loc_uri')} not in the push session"))
    if bad:
        return broken("queued commands missed the session their push started", bad)
    worst = max(latencies) // SECOND
    return passed(f"{len(latencies)} queued commands delivered by push (worst {worst} s)")


@check(
    "E4",
    "session-ends",
    "MUST",
    "a session ends: the server stops sending commands and closes with a Status-only message "
    "within a bounded number of round trips",
    ("MSMDM",),
    "every session",
    needs=(),
)
def session_ends(ev: Evidence) -> Verdict:
    faults = ev.of_event("session.server_fault")
    endless = [e for e in faults if e.get("rule") == "session-never-ends"]
    # a reply that is no SyncML at all (an empty 200, HTML, another content type) leaves
    # the session without its closing Status-only message [MSMDM 2.2.6.1]
    unclosed = [e for e in faults if e.get("rule") in SESSION_BREAKING]
    if endless or unclosed:
        return broken(
            f"{len(endless)} sessions never ended, {len(unclosed)} ended without a "
            "Status-only message",
            [event_item(e, "E4: still sending commands") for e in endless]
            + [event_item(e, f"E4: not closed: {e.get('detail')}") for e in unclosed],
        )
    ended = [e for e in ev.of_event("session.end") if e.get("outcome") == "ended"]
    if not ended:
        return skipped("no session reached its end")
    return passed(f"{len(ended)} sessions ended with a Status-only message")
