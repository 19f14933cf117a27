"""The event catalogue: every event the event log can hold, what it means, and its fields.

Owns: the one list of event names and fields, which scenario expectations are checked
against (a typo is an error with a suggestion) and from which ``docs/events.md`` is
generated (``pytest --regen-golden``). A test runs the shipped scenarios and fails when an
event or a field is emitted that this catalogue does not list, so it cannot drift.
Must not: emit or store events (:mod:`emulator.events.log` does).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

#: fields every record has
COMMON = {
    "t_ms": "virtual time, ms since the Unix epoch (events.jsonl also has `t`, ISO-8601)",
    "event": "the event's name",
    "device_id": "the device it concerns (null for events of the whole world)",
}
_SESSION = {
    "session_id": "the OMA-DM SessionID",
    "trigger": "what started the session: enrollment, poll, retry, push, registration, renewal",
}
#: timeline actions a scenario can take (each logged as ``timeline.<action>``)
TIMELINE_ACTIONS = (
    "push",
    "queue_command",
    "battery_saver",
    "offline",
    "network",
    "server_unreachable",
    "revoke_channel",
    "forget_channel",
    "block_pfn",
    "unblock_pfn",
    "wns_fault",
    "revoke_tokens",
    "no_internet",
)


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    meaning: str
    fields: dict[str, str]  # beyond COMMON


def _spec(name: str, meaning: str, **fields: str) -> EventSpec:
    return EventSpec(name, meaning, fields)


_EVENTS = [
    _spec(
        "wns.notify",
        "a sender's push reached the fake WNS (device_id: the channel's owner)",
        status="the HTTP status WNS answered",
        outcome="received, cached, dropped, or the error",
        msg_id="the X-WNS-Msg-ID (accepted pushes)",
        channel_id="the channel WNS resolved, if any",
        target="the path and query posted to",
    ),
    _spec(
        "wns.token",
        "a token request reached the fake WNS",
        status="the HTTP status",
        outcome="issued, or the OAuth error",
    ),
    _spec(
        "device.enroll_started",
        "the device starts MS-MDE2 enrollment: Discovery, Policy, Enrollment [MDE2]",
        discovery_url="the Discovery service it asks",
        attempt="1 for the first try, then counting retries",
    ),
    _spec(
        "device.enroll_failed",
        "enrollment failed; the device tries again later (5 min, doubling to a day)",
        stage="discovery, policy or enrollment",
        reason="soap-fault, http-<status>, malformed, certificate-mismatch, "
        "unsupported-policy, no-token, unreachable, timeout or tls",
        detail="what happened, in words",
        excerpt="the start of the server's answer (its bytes, as text)",
        attempt="which try failed",
        retry_in_ms="when the next try starts, ms from now",
        code="SOAP Fault Code (soap-fault)",
        subcode="SOAP Fault Subcode, e.g. Authentication (soap-fault) [MDE2 2.2.10]",
        hresult="the Windows error of the subcode, e.g. 0x80180002 (soap-fault)",
        error_type="DeviceEnrollmentServiceError ErrorType, if the server sent one",
    ),
    _spec(
        "device.enrolled",
        "the device enrolled and starts its first session",
        profile="OS",
        thumbprint="its client certificate's SHA-1 thumbprint (MS-MDE2 enrollment only)",
        server_url="the OMA-DM address the provisioning document gave (w7 ADDR)",
        provider_id="the DMClient ProviderID it gave",
        auth_policy="OnPremise, Federated or Certificate",
        ignored="settings in the document Windows does not take there (Push [DMC])",
    ),
    _spec(
        "device.wns_connection",
        "the device's persistent WNS connection went down or came back [PUSH]",
        connected="true or false",
        reason="ok, offline, no-internet, battery-saver or data-sense",
        battery="battery level, %",
    ),
    _spec("device.pfn_set", "a server set a well-formed PFN [DMC]", pfn="the PFN"),
    _spec("device.pfn_invalid", "a server set a malformed PFN: Push/Status 1 [DMC]", pfn="it"),
    _spec("device.pfn_cleared", "a server deleted the PFN: channel revoked, Status 4"),
    _spec(
        "device.pfn_hang",
        "the device stored the PFN and hung: no more packages in that session, no "
        "registration (section 0 pfn_hang) [PUSH]",
        pfn="the PFN",
    ),
    _spec(
        "device.channel",
        "WNS issued or renewed the device's channel",
        channel_uri="the ChannelURI",
        expires_ms="its expiry, virtual ms",
        new_uri="true when the URI changed",
        kind="registration or renewal",
    ),
    _spec(
        "device.registration_pending",
        "WNS is slower than the device's registration timeout: the channel comes later, "
        "with a session of its own (section 0)",
        delay_ms="how long WNS takes",
    ),
    _spec(
        "device.channel_refused",
        "WNS refused the PFN: Push/Status 3 [DMC]",
        pfn="the PFN",
        reason="unknown_pfn or blocked_pfn",
    ),
    _spec("device.channel_expired", "the channel's 30 days ran out", channel_uri="the URI"),
    _spec("device.renewal_attempt", "a renewal timer fired [PUSH]", state="lifecycle state"),
    _spec(
        "device.renewal_failed",
        "a renewal attempt failed",
        reason="silent (the group's failure mode), no-network or no-internet",
    ),
    _spec("device.renewal_hung", "renewal failure mode hang: no automatic renewal any more"),
    _spec(
        "device.renewal_skipped",
        "1607+: no network, the attempt is skipped; next in 4 h +/- 1 h [PUSH]",
        reason="no-network",
    ),
    _spec(
        "device.push_received",
        "a raw push reached the device",
        msg_id="the WNS X-WNS-Msg-ID",
        via="live or cache",
    ),
    _spec(
        "device.push_no_session",
        "a push arrived but started no session: Push/Status 7 for power or connectivity "
        "[DMC], or an OS profile that starts none",
        msg_id="the WNS Msg-ID",
        reason="offline, no-internet, server-unreachable, low-battery or os-profile",
        battery="battery level, % (not for os-profile)",
    ),
    _spec(
        "device.push_old_channel",
        "a push came over a channel the device has since renewed (still valid)",
        msg_id="the WNS Msg-ID",
        channel_uri="the older URI",
    ),
    _spec(
        "device.session_skipped",
        "a poll or retry timer fired but no session could start",
        trigger="poll or retry",
        reason="offline, no-internet, server-unreachable or low-battery",
    ),
    _spec("device.poll_schedule", "the server changed the Poll nodes [DMC]", plan="the plan"),
    _spec("session.start", "an OMA-DM session starts", **_SESSION, msg_id="the push, if any"),
    _spec(
        "session.end",
        "an OMA-DM session is over",
        **_SESSION,
        outcome="ended, server-fault, http-<status>, unreachable, timeout, or hung "
        "(pfn_hang: the device sent nothing more)",
        messages="messages the device sent",
        bytes="request and response bytes",
    ),
    _spec(
        "session.server_fault",
        "the server broke a rule; the offending bytes are kept",
        **_SESSION,
        rule="the rule (http-status, content-type, malformed, session-never-ends, ...)",
        detail="what was wrong",
        excerpt="the offending bytes, cut",
    ),
    _spec(
        "session.throttled",
        "the server answered HTTP 429 [MSMDM 3.1.6]",
        **_SESSION,
        retry_after_ms="the wait it asked for",
    ),
    _spec(
        "session.transport_error",
        "the server could not be reached",
        **_SESSION,
        kind="unreachable or timeout",
        detail="the error",
    ),
    _spec(
        "session.channel_reported",
        "the device told the server a ChannelURI it had not told it before",
        **_SESSION,
        channel_uri="the URI",
    ),
    _spec(
        "server.hook",
        "dmemu asked the server to act through its hooks file",
        line="the scenario line",
        hook="push, queue_command or register_device",
        loc_uri="queue_command's LocURI",
        status="the HTTP status (0: unreachable)",
        ok="the status is one the hook expects",
        error="the network error, if any",
    ),
    _spec(
        "timeline.skipped",
        "a timeline action could not be taken",
        line="the scenario line",
        reason="why",
    ),
    *(
        _spec(
            f"timeline.{action}",
            f"the timeline's {action} action ran",
            line="the scenario line",
            target="the devices it aimed at",
            devices="how many",
        )
        for action in TIMELINE_ACTIONS
    ),
]
CATALOGUE: dict[str, EventSpec] = {spec.name: spec for spec in _EVENTS}


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_event(name: str) -> str | None:
    """Why ``name`` is no event of the log, with the nearest name; None when it is one."""
    if name in CATALOGUE:
        return None
    return f"no event {name!r} in the event catalogue{_suggest(name, list(CATALOGUE))}"


def unknown_field(name: str, field: str) -> str | None:
    """Why ``field`` is not a field of event ``name``, with the nearest; None when it is."""
    spec = CATALOGUE[name]
    known = [*COMMON, *spec.fields]
    if field in known:
        return None
    return f"event {name!r} has no field {field!r}{_suggest(field, known)}"


def markdown() -> str:
    """``docs/events.md``: the catalogue as a page."""
    lines = [
        "# Event catalogue",
        "",
        "Every record of `events.jsonl` (and of the `count` expectations' `event:` and",
        "`where:`) is one of these. Every record has "
        + ", ".join(f"`{k}` ({v})" for k, v in COMMON.items())
        + ".",
        "Generated from `emulator/events/catalogue.py` (`pytest --regen-golden`); a test",
        "fails when the code emits an event or a field this page does not list.",
        "",
        "| event | meaning | fields |",
        "|---|---|---|",
    ]
    for spec in _EVENTS:
        fields = "<br>".join(f"`{k}`: {v}" for k, v in spec.fields.items()) or "-"
        lines.append(f"| `{spec.name}` | {spec.meaning} | {fields} |")
    return "\n".join(lines) + "\n"
