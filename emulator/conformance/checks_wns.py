"""Checks on what the server sends to WNS: authentication (A), the raw push (B), rates and
errors (D) [WNSOV][WNSHDR][RAW][PUSH]. Each judge reads the requests the fake WNS (and the
trap listener) recorded; see ``conformance.md`` for the rules.
"""

from __future__ import annotations

import itertools
from urllib.parse import parse_qs

from emulator.clock import HOUR, MINUTE, SECOND, iso
from emulator.conformance.evidence import Evidence, request_item
from emulator.conformance.registry import Verdict, broken, check, passed, skipped
from emulator.reports.text import plural
from emulator.retry_after import retry_after_ms
from emulator.wns.models import RAW_LIMIT_BYTES, RequestRecord

TOKEN_LIFE_SLACK = 60 * MINUTE  # a token refreshed within an hour of its 24 h end is reuse


def _header(record: RequestRecord, name: str) -> str | None:
    lower = name.lower()
    return next((v for k, v in record.headers if k.lower() == lower), None)


# -- A. WNS authentication --------------------------------------------------------------------
@check(
    "A1",
    "token-request",
    "MUST",
    "token request is a form-encoded POST to /accesstoken.srf with grant_type="
    "client_credentials, client_id=ms-app://<PackageSID>, the app's client_secret, "
    "scope=notify.windows.com",
    ("WNSOV", "WNSHDR"),
    "the first push",
)
def token_request(ev: Evidence) -> Verdict:
    if not ev.tokens:
        return skipped("the server requested no token (it pushed nothing)")
    want = {
        "grant_type": "client_credentials",
        "client_id": ev.app.client_id,
        "client_secret": ev.app.secret,
        "scope": "notify.windows.com",
    }
    bad = []
    for r in ev.tokens:
        ctype = (_header(r, "Content-Type") or "").split(";")[0].strip().lower()
        form = {k: v[0] for k, v in parse_qs(r.body.decode("latin-1")).items()}
        wrong = [k for k, v in want.items() if form.get(k) != v]
        if r.method != "POST" or r.target.split("?")[0] != "/accesstoken.srf":
            wrong.insert(0, f"{r.method} {r.target}")
        if ctype != "application/x-www-form-urlencoded":
            wrong.insert(0, f"Content-Type {ctype or '(none)'}")
        if wrong:
            bad.append(request_item(ev, r, "A1: wrong " + ", ".join(wrong)))
    if bad:
        return broken(f"{len(bad)} of {len(ev.tokens)} token requests malformed", bad)
    return passed(f"{len(ev.tokens)} token requests, all well-formed")


@check(
    "A2",
    "token-reuse",
    "SHOULD",
    "one token serves many pushes until it expires or is rejected",
    ("WNSOV",),
    "several pushes within 24 h",
)
def token_reuse(ev: Evidence) -> Verdict:
    if len(ev.notifies) < 2:
        return skipped("fewer than two pushes were made")
    rejected = [r.seq for r in ev.notifies if r.status == 401]  # arrival order, not time
    issued = [r for r in ev.tokens if r.status == 200]  # a refused request issued nothing
    bad = []
    for before, after in itertools.pairwise(issued):
        expired = after.t_ms - before.t_ms >= 24 * HOUR - TOKEN_LIFE_SLACK
        was_rejected = any(before.seq < seq < after.seq for seq in rejected)
        if not (expired or was_rejected):
            bad.append(request_item(ev, after, "A2: new token while the last one was valid"))
    if bad:
        return broken(
            f"{len(ev.tokens)} token requests for {len(ev.notifies)} pushes; "
            f"{len(bad)} while the previous token was still valid",
            bad,
        )
    return passed(
        f"{plural(len(ev.tokens), 'token request')} served {plural(len(ev.notifies), 'push')}"
    )


@check(
    "A3",
    "token-refresh-once",
    "MUST",
    "after a 401 the server gets a new token and resends at most once; it never loops on 401",
    ("WNSOV",),
    "token expiry (24 h virtual) and a revoked token",
)
def token_refresh_once(ev: Evidence) -> Verdict:
    if not any(r.status == 401 for r in ev.notifies):
        return skipped("no push was answered 401")
    bad = []
    for target, records in ev.by_target.items():
        run: list[RequestRecord] = []
        for r in records:
            if r.status != 401:
                run = []
                continue
            run.append(r)
            if len(run) > 2:
                bad.append(request_item(ev, r, f"A3: 401 number {len(run)} in a row to {target}"))
            elif len(run) == 2 and _header(run[0], "Authorization") == _header(r, "Authorization"):
                bad.append(request_item(ev, r, "A3: resent with the token WNS had just refused"))
    if bad:
        return broken("the server resent after 401 without a new token, or looped", bad)
    refused = sum(1 for r in ev.notifies if r.status == 401)
    return passed(f"{plural(refused, 'push')} answered 401, each followed by one refresh at most")


# -- B. The raw push request ------------------------------------------------------------------
@check(
    "B1",
    "exact-channel",
    "MUST",
    "POSTs to the ChannelURI exactly as the device reported it (opaque, unmodified)",
    ("WNSOV",),
    "any push",
)
def exact_channel(ev: Evidence) -> Verdict:
    if not ev.notifies:
        return skipped("the server pushed nothing")
    bad = [
        request_item(ev, r, "B1: no device reported this ChannelURI")
        for r in ev.notifies
        if r.target not in ev.reported
    ]
    if bad:
        return broken(f"{len(bad)} pushes to a URI no device reported", bad)
    return passed(f"{len(ev.notifies)} pushes, each to a ChannelURI exactly as reported")


@check(
    "B2",
    "raw-headers",
    "MUST",
    "X-WNS-Type: wns/raw, Content-Type: application/octet-stream, Authorization: Bearer "
    "<token>, Content-Length equal to the body's bytes",
    ("RAW", "WNSHDR"),
    "any push",
)
def raw_headers(ev: Evidence) -> Verdict:
    if not ev.notifies:
        return skipped("the server pushed nothing")
    bad = []
    for r in ev.notifies:
        wrong = []
        if _header(r, "X-WNS-Type") != "wns/raw":
            wrong.append(f"X-WNS-Type {_header(r, 'X-WNS-Type')!r}")
        ctype = (_header(r, "Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/octet-stream":
            wrong.append(f"Content-Type {ctype or '(none)'!r}")
        scheme, _, credential = (_header(r, "Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():  # RFC 7235: any letter case
            wrong.append("Authorization is not a Bearer token")
        length = _header(r, "Content-Length")
        if length != str(len(r.body)):
            wrong.append(f"Content-Length {length!r} for {len(r.body)} bytes")
        if wrong:
            bad.append(request_item(ev, r, "B2: " + "; ".join(wrong)))
    if bad:
        return broken(f"{len(bad)} of {len(ev.notifies)} pushes with wrong headers", bad)
    return passed(f"{len(ev.notifies)} pushes with the raw-push headers")


@check(
    "B3",
    "raw-body",
    "MUST",
    "body present, not empty, at most 5000 bytes",
    ("RAW", "WNSHDR"),
    "any push",
)
def raw_body(ev: Evidence) -> Verdict:
    if not ev.notifies:
        return skipped("the server pushed nothing")
    bad = [
        request_item(ev, r, f"B3: body of {len(r.body)} bytes")
        for r in ev.notifies
        if not 0 < len(r.body) <= RAW_LIMIT_BYTES
    ]
    if bad:
        return broken(f"{len(bad)} pushes with an empty or oversized body", bad)
    return passed(f"{len(ev.notifies)} pushes with 1..{RAW_LIMIT_BYTES}-byte bodies")


@check(
    "B4",
    "cache-policy",
    "SHOULD",
    "X-WNS-Cache-Policy: cache so an offline device still gets the tap on reconnect",
    ("PUSH",),
    "any push",
)
def cache_policy(ev: Evidence) -> Verdict:
    if not ev.notifies:
        return skipped("the server pushed nothing")
    bad = [
        request_item(ev, r, f"B4: X-WNS-Cache-Policy {_header(r, 'X-WNS-Cache-Policy')!r}")
        for r in ev.notifies
        if (_header(r, "X-WNS-Cache-Policy") or "").lower() != "cache"
    ]
    if bad:
        return broken(f"{len(bad)} pushes not cached for offline devices", bad)
    return passed(f"{len(ev.notifies)} pushes ask WNS to cache")


@check(
    "B5",
    "trusted-domain",
    "MUST",
    "never POSTs to a ChannelURI outside the trusted WNS domain",
    ("WNSOV",),
    "a device that reports a ChannelURI on a trap host the emulator listens on",
)
def trusted_domain(ev: Evidence) -> Verdict:
    trapped = {g.name for g in ev.result.scenario.groups if g.trap_channel}
    reported = [
        e
        for e in ev.of_event("session.channel_reported")
        if ev.group_of.get(e["device_id"]) in trapped
    ]
    if not reported:
        return skipped("no device reported a ChannelURI on the trap host")
    if ev.trap:
        bad = [
            {
                "t": iso(r.t_ms),
                "request": f"{r.method} {r.target}",
                "headers": r.headers,
                "body_bytes": r.body_bytes,
                "rule": "B5: a request reached the trap host, which is not WNS",
            }
            for r in ev.trap
        ]
        return broken(f"{len(ev.trap)} requests sent to an untrusted host", bad)
    return passed("the trap host's ChannelURI was never contacted")


# -- D. Rates and errors ----------------------------------------------------------------------
def _after(records: list[RequestRecord], i: int) -> list[RequestRecord]:
    return records[i + 1 :]


@check(
    "D1",
    "throttle-406",
    "MUST",
    "after 406 with Retry-After, nothing is sent to that channel before it elapses",
    ("WNSHDR",),
    "fault: throttle a channel",
    server_clock="waits",
)
def throttle_406(ev: Evidence) -> Verdict:
    bad, seen = [], 0
    for records in ev.by_target.values():
        for i, r in enumerate(records):
            if r.status != 406:
                continue
            seen += 1
            wait = retry_after_ms(r.response_headers.get("Retry-After"))
            early = [x for x in _after(records, i) if x.t_ms < r.t_ms + wait]
            bad += [
                request_item(
                    ev,
                    x,
                    f"D1: {(x.t_ms - r.t_ms) // SECOND}s after a 406 asking for {wait // SECOND}s",
                )
                for x in early
            ]
    if not seen:
        return skipped("no push was answered 406")
    if bad:
        return broken(f"{len(bad)} pushes before Retry-After had elapsed", bad)
    return passed(f"{seen} throttled pushes, Retry-After honoured")


@check(
    "D2",
    "unavailable-503",
    "SHOULD",
    "500/503 are retried with back-off, honouring Retry-After when present",
    ("WNSHDR",),
    "fault: WNS unavailable",
    server_clock="waits",
)
def unavailable_503(ev: Evidence) -> Verdict:
    bad, seen = [], 0
    for records in ev.by_target.values():
        for i, r in enumerate(records):
            if r.status not in (500, 503):
                continue
            seen += 1
            rest = _after(records, i)
            if not rest:
                bad.append(request_item(ev, r, f"D2: never retried after {r.status}"))
                continue
            gap = rest[0].t_ms - r.t_ms
            header = r.response_headers.get("Retry-After")
            floor = retry_after_ms(header) if header is not None else SECOND
            if gap < floor:
                bad.append(request_item(ev, rest[0], f"D2: retried {gap} ms after {r.status}"))
    if not seen:
        return skipped("no push was answered 500 or 503")
    if bad:
        return broken("5xx not retried, or retried without back-off", bad)
    return passed(f"{seen} pushes answered 5xx, each retried after a wait")


@check(
    "D3",
    "no-blind-retry",
    "MUST",
    "a request answered 400, 403 or 413 is not resent unchanged more than once",
    ("WNSHDR",),
    "fault: 403 for one channel",
    server_clock="waits",
)
def no_blind_retry(ev: Evidence) -> Verdict:
    bad, seen = [], 0
    for records in ev.by_target.values():
        device = ev.owner(records[0])
        asked = _asked(records, ev.hooks_for(device, "push") if device else [])
        for i, r in enumerate(records):
            if r.status not in (400, 403, 413):
                continue
            seen += 1
            # the server's own resends of it: the pushes no hook call asked for, up to the
            # next one asked for (a burst of asks at one instant is not a resend)
            same = []
            for x in records[i + 1 :]:
                if asked[x.seq]:
                    break
                if x.body == r.body:
                    same.append(x)
            if len(same) > 1:
                bad += [request_item(ev, x, f"D3: resent unchanged after {r.status}") for x in same]
    if not seen:
        return skipped("no push was answered 400, 403 or 413")
    if bad:
        return broken("pushes refused as malformed or forbidden were resent blindly", bad)
    return passed(f"{seen} refused pushes, none resent blindly")


def _asked(records: list[RequestRecord], asks: list[int]) -> dict[int, bool]:
    """For each push (by record seq), whether a hook call asked for it: every ask answers
    the first push at or after it that no earlier ask took."""
    pending = sorted(asks)
    out: dict[int, bool] = {}
    k = 0
    for r in records:
        out[r.seq] = k < len(pending) and pending[k] <= r.t_ms
        if out[r.seq]:
            k += 1
    return out


@check(
    "D4",
    "push-rate",
    "SHOULD",
    "absent failures, at most 12 pushes per device per hour",
    ("PUSH",),
    "burst of admin actions",
    server_clock="waits",
)
def push_rate(ev: Evidence) -> Verdict:
    limit = ev.push_limit
    bad = []
    for records in ev.by_target.values():
        ok = [r for r in records if r.status == 200]
        for i, r in enumerate(ok):
            window = [x for x in ok[i:] if x.t_ms < r.t_ms + HOUR]
            if len(window) > limit:
                bad.append(request_item(ev, window[limit], f"D4: push {limit + 1} within an hour"))
                break
    if not ev.notifies:
        return skipped("the server pushed nothing")
    if bad:
        return broken(f"more than {limit} pushes per device per hour", bad)
    return passed(f"no device got more than {limit} pushes in an hour")
