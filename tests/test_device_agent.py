"""Device agent flows in memory: fake WNS core, fleet and a scripted MDM peer, no sockets."""

from __future__ import annotations

import itertools

import pytest

from emulator.clock import DAY, HOUR, MINUTE
from emulator.device.agent import Device, SessionEnd
from emulator.device.power import MB, POWER_PROFILES, PowerConfig
from emulator.device.profiles import PROFILES
from emulator.device.session import Reply
from emulator.syncml import CONTENT_TYPE, Add, Delete, Item, Meta, Replace
from emulator.wns.errors import NotifyError
from tests.conftest import APP_A
from tests.world import PUSH_NODE, World, replace_pfn


async def enrolled(world: World, device_id: str = "dev-1", **group: object) -> str:
    """Enroll a device whose first session sets the PFN; return its ChannelURI."""
    device = world.fleet.add(device_id, world.group(**group))  # type: ignore[arg-type]
    world.mdm.queue(device_id, replace_pfn())
    world.fleet.enroll(device)
    await world.run_for(MINUTE)
    return world.mdm.channel_uri[device_id]


async def test_pfn_channel_push_session() -> None:
    """PFN set -> WNS channel -> the same session reports it [WP81BLOG] (no extra session);
    a raw push starts a session carrying the push's Msg-ID [PUSH]; package 1 is Alert 1201 +
    1224 + DevInfo (protocol.md 3.4)."""
    world = World()
    uri = await enrolled(world)
    assert uri.startswith("https://wns.test/?token=")
    push = world.push(uri)
    await world.run_for(MINUTE)
    started = world.events("session.start", "dev-1")
    assert [s["trigger"] for s in started] == ["enrollment", "push"]
    assert started[-1]["msg_id"] == push.msg_id
    session = world.mdm.sessions[-1]
    first = session.messages[0]
    assert [getattr(c, "data", None) for c in first.commands[:2]] == ["1201", "1224"]
    assert session.url == "https://mdm.test/omadm?mode=Machine&Platform=WoA"
    assert session.headers["User-Agent"] == "MSFT OMA DM Client/1.2.0.1"
    assert session.headers["Content-Type"].startswith(CONTENT_TYPE)
    assert session.results[f"{PUSH_NODE}/Status"] == "0"


async def test_channel_uri_is_read_in_the_session_that_set_the_pfn() -> None:
    """[WP81BLOG] "During the same OMA-DM session the MDM server requests the URI which gets
    delivered by DMClient": Replace PFN then Get ChannelURI in one message answers the new
    ChannelURI and Push/Status 0, and no extra session follows (section 0)."""
    world = World()
    device = world.fleet.add("dev-1", world.group())
    world.mdm.queue("dev-1", replace_pfn())
    world.fleet.enroll(device)
    await world.run_for(HOUR)
    first = world.mdm.sessions[0]
    assert first.statuses["10"] == "200"
    assert first.results[f"{PUSH_NODE}/ChannelURI"] == device.channel_uri
    assert first.results[f"{PUSH_NODE}/Status"] == "0"
    triggers = [s["trigger"] for s in world.events("session.start", "dev-1")]
    assert "registration" not in triggers


async def test_a_slow_wns_registration_comes_with_a_later_session() -> None:
    """Section 0: only when WNS answers after the registration timeout (5 s) does the Get in
    that session read empty with Push/Status 4; the channel then arrives with a session of
    its own."""
    world = World()
    device = await enroll_with_wns_latency(world, 8_000)
    first = world.mdm.sessions[0]
    assert first.results[f"{PUSH_NODE}/ChannelURI"] == ""
    assert first.results[f"{PUSH_NODE}/Status"] == "4"
    started = world.events("session.start", "dev-1")
    assert [s["trigger"] for s in started] == ["enrollment", "registration"]
    assert started[1]["t_ms"] - started[0]["t_ms"] == 8_000
    assert world.mdm.channel_uri["dev-1"] == device.channel_uri


async def test_a_registration_within_the_timeout_is_read_in_session() -> None:
    """A WNS answer inside the registration timeout is still read in the same session."""
    world = World()
    await enroll_with_wns_latency(world, 3_000)
    assert world.mdm.sessions[0].results[f"{PUSH_NODE}/Status"] == "0"


async def enroll_with_wns_latency(world: World, latency_ms: int) -> Device:
    """Enroll dev-1, whose first session sets the PFN, with WNS answering its registration
    after ``latency_ms`` (a control-API ``register`` fault)."""
    world.wns.faults.add(target="register", latency_ms=latency_ms, count=1)
    device = world.fleet.add("dev-1", world.group())
    world.mdm.queue("dev-1", replace_pfn())
    world.fleet.enroll(device)
    await world.run_for(MINUTE)
    return device


async def test_user_agent_origin_only_from_version_4() -> None:
    """UserAgentOrigin (3 for a push) is sent only with SyncApplicationVersion >= 4.0
    [MSMDM 3.1.7.2]."""
    world = World()
    uri = await enrolled(world, sync_app_version="4.0")
    world.push(uri)
    await world.run_for(MINUTE)
    assert world.mdm.sessions[-1].headers["UserAgentOrigin"] == "3"
    plain = World()
    await enrolled(plain)
    assert "UserAgentOrigin" not in plain.mdm.sessions[-1].headers


async def test_renewal_at_day_15_reports_new_uri() -> None:
    """The device renews after 15 days and starts a session that reports the new URI
    [PUSH][KI]; the old URI keeps working until its own expiry."""
    world = World()
    first = await enrolled(world)
    await world.run_for(15 * DAY)
    renewals = world.events("device.channel", "dev-1")
    assert [r["kind"] for r in renewals] == ["registration", "renewal"]
    assert renewals[1]["t_ms"] == renewals[0]["t_ms"] + 15 * DAY
    assert world.mdm.channel_uri["dev-1"] != first
    triggers = [s["trigger"] for s in world.events("session.start", "dev-1")]
    assert "renewal" in triggers
    world.push(first)  # superseded, not expired: still delivered


async def test_add_pfn_twice_is_418_in_a_session() -> None:
    """Add PFN on a device that has one answers 418; the server must Replace (protocol.md 4)."""
    world = World()
    await enrolled(world)
    item = Item(target=f"{PUSH_NODE}/PFN", meta=Meta(format="chr"), data=APP_A.pfn)
    world.mdm.queue("dev-1", Add("11", (item,)))
    world.fleet.devices["dev-1"].timers  # noqa: B018 - poll timer runs the next session
    await world.run_for(20 * MINUTE)
    assert any(s.statuses.get("11") == "418" for s in world.mdm.sessions)


async def test_each_device_polls_by_its_own_poll_nodes() -> None:
    """Polls follow the device's own DMClient Poll nodes [DMC]: once the server sets dev-1's
    first set to 7 minutes x infinite (NumberOfFirstRetries 0), dev-1 polls every 7 minutes
    from that session while dev-2 keeps the default 15 minutes x 10; once the Poll node is
    deleted, dev-1 falls back to the 24-hour schedule."""
    world = World()
    await enrolled(world, "dev-1")
    await enrolled(world, "dev-2")
    poll_node = PUSH_NODE.rsplit("/", 1)[0] + "/Poll"
    every_7 = tuple(
        Item(target=f"{poll_node}/{name}", meta=Meta(format="int"), data=value)
        for name, value in (("IntervalForFirstSetOfRetries", "7"), ("NumberOfFirstRetries", "0"))
    )
    world.mdm.queue("dev-1", Replace("20", every_7))
    await world.run_for(HOUR)
    world.mdm.queue("dev-1", Delete("21", (Item(target=poll_node),)))
    await world.run_for(2 * DAY)

    def poll_gaps(device_id: str) -> list[int]:
        starts = [
            s["t_ms"] for s in world.events("session.start", device_id) if s["trigger"] == "poll"
        ]
        return [(b - a) // MINUTE for a, b in itertools.pairwise(starts)]

    # dev-1's first poll (15 minutes in) carries the Replace, the eighth the Delete
    assert poll_gaps("dev-1") == [7] * 7 + [24 * 60]
    assert poll_gaps("dev-2") == [15] * 9 + [24 * 60]  # 10 polls, then the 24-hour fallback
    plans = [e["plan"] for e in world.events("device.poll_schedule", "dev-1")]
    assert plans == ["7 min x inf", "1440 min x inf"]


def _attempts(world: World) -> list[int]:
    start = world.events("device.enrolled")[0]["t_ms"]
    return [(e["t_ms"] - start) // MINUTE for e in world.events("device.renewal_attempt")]


# Exact renewal-attempt minutes for seed 7 over 60 days; the device is offline from day 14
# to day 32, so the day-15 renewal fails and the channel expires at day 30.
EXPECTED = {  # (first four attempts in minutes, number of attempts)
    "wp81": ([21600, 23040, 24480, 25920], 15),
    "win81": ([21600, 23040, 24480, 25920], 15),
    "win10-1511": ([21600, 21824, 22120, 22375], 96),
    "win10-1607": ([21600, 21824, 22120, 22375], 100),
    "win10-22h2": ([21600, 21824, 22120, 22375], 100),
    "win11-no-session": ([21600, 21824, 22120, 22375], 100),
}


@pytest.mark.parametrize("profile", sorted(PROFILES))
async def test_profile_renewal_schedule(profile: str) -> None:
    """Each OS profile's [PUSH] renewal rule over 60 virtual days with an offline spell:
    wp81 (and win81) retry daily and give up after expiry; 1511 retries 4 h +/- 1 h, then
    1 day +/- 4 h after expiry; 1607+ skip without a network and retry in 4 h +/- 1 h."""
    world = World()
    await enrolled(world, profile=PROFILES[profile])
    device = world.fleet.devices["dev-1"]
    await world.run_for(14 * DAY)
    world.fleet.go_offline(device, world.clock.now() + 18 * DAY)
    await world.run_for(46 * DAY)
    attempts = _attempts(world)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert attempts[0] == 15 * 24 * 60  # 15 days left [PUSH]
    channels = world.events("device.channel", "dev-1")
    if profile in ("wp81", "win81"):
        assert all(g == 24 * 60 for g in gaps)
        assert len(channels) == 1
        assert device.state == "expired"
        assert device.push_status == 5
    else:
        assert channels[-1]["t_ms"] > world.events("device.enrolled")[0]["t_ms"] + 32 * DAY
        assert device.state == "active"
        under = [g for a, g in zip(attempts, gaps, strict=False) if a < 30 * 24 * 60 - 5 * 60]
        assert all(3 * 60 <= g <= 5 * 60 for g in under)
    if profile == "win10-1511":
        after = [g for a, g in zip(attempts, gaps, strict=False) if 30 * 24 * 60 < a < 32 * 24 * 60]
        assert after
        assert all(20 * 60 <= g <= 28 * 60 for g in after)
    assert (attempts[:4], len(attempts)) == EXPECTED[profile]


async def test_jitter_is_reproducible_per_seed() -> None:
    """Same seed, same times; another seed, other times (per-device stream from the run seed)."""
    runs = []
    for seed in (7, 7, 8):
        world = World(seed=seed)
        await enrolled(world, profile=PROFILES["win10-1511"])
        world.fleet.go_offline(world.fleet.devices["dev-1"], world.clock.now() + 20 * DAY)
        await world.run_for(20 * DAY)
        runs.append(_attempts(world))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


async def test_battery_saver_drops_and_restores_connection() -> None:
    """Battery Saver drops the WNS connection [PUSH]; a cached push arrives on reconnect
    and starts its session."""
    world = World()
    power = PowerConfig(profile=POWER_PROFILES["heavy-use"])
    uri = await enrolled(world, power=power)
    await world.run_for(17 * HOUR + 30 * MINUTE)  # 17:31, battery below 20 %
    device = world.fleet.devices["dev-1"]
    assert device.state == "disconnected"
    assert not device.connected
    push = world.push(uri)
    assert world.wns.registry.find_by_query(uri.partition("?")[2]).cached  # type: ignore[union-attr]
    await world.run_for(6 * HOUR)
    drops = world.events("device.wns_connection", "dev-1")
    assert [(d["connected"], d["reason"]) for d in drops[-2:]] == [
        (False, "battery-saver"),
        (True, "ok"),
    ]
    received = world.events("device.push_received", "dev-1")
    assert received[-1]["msg_id"] == push.msg_id
    assert received[-1]["via"] == "cache"
    assert world.events("session.start", "dev-1")[-1]["msg_id"] == push.msg_id


async def test_data_sense_allotment_drops_connection_until_next_month() -> None:
    """Data Sense over the monthly allotment drops the WNS connection [PUSH] until the
    allotment resets with the month."""
    world = World()
    power = PowerConfig(data_allotment=50 * MB, background_per_day=5 * MB)
    await enrolled(world, power=power)
    await world.run_for(12 * DAY)
    device = world.fleet.devices["dev-1"]
    assert not device.connected
    reasons = [(d["connected"], d["reason"]) for d in world.events("device.wns_connection")]
    assert (False, "data-sense") in reasons
    await world.run_for(25 * DAY)  # into February
    assert device.connected


async def test_offline_31_days_expiry_410_then_pfn_reset() -> None:
    """Offline past 30 days: the channel expires (Status 5), a push gets 410; the server
    re-sets the PFN and the device gets a new, working channel [PUSH][KB3170699]."""
    world = World()
    uri = await enrolled(world, profile=PROFILES["wp81"])
    device = world.fleet.devices["dev-1"]
    world.fleet.go_offline(device, world.clock.now() + 31 * DAY)
    await world.run_for(31 * DAY + HOUR)
    assert device.state == "expired"
    assert device.push_status == 5
    with pytest.raises(NotifyError) as gone:
        world.push(uri)
    assert gone.value.status == 410
    world.mdm.queue("dev-1", replace_pfn(APP_A.pfn))  # the same PFN again
    await world.run_for(DAY)
    fresh = world.mdm.channel_uri["dev-1"]
    assert fresh != uri
    assert device.state == "active"
    world.push(fresh)


async def test_win11_push_logged_without_session() -> None:
    """win11-no-session: the push is received and logged, no session starts (section 0)."""
    world = World()
    uri = await enrolled(world, profile=PROFILES["win11-no-session"])
    push = world.push(uri)
    await world.run_for(MINUTE)
    assert world.events("device.push_no_session")[-1]["msg_id"] == push.msg_id
    assert all(s["trigger"] != "push" for s in world.events("session.start"))


async def test_push_on_captive_network_sets_status_7() -> None:
    """A push that cannot start a session for connectivity gives Push/Status 7 [DMC]; the
    next session reports it to the server, and clears it."""
    world = World()
    uri = await enrolled(world)
    device = world.fleet.devices["dev-1"]
    world.fleet.set_server_reachable(device, False)
    world.push(uri)
    await world.run_for(MINUTE)
    assert device.push_status == 7
    world.fleet.set_server_reachable(device, True)
    await world.run_for(16 * MINUTE)
    assert world.mdm.sessions[-1].results[f"{PUSH_NODE}/Status"] == "7"
    assert device.push_status == 0


@pytest.mark.parametrize(
    ("cause", "reason"), [("server", "server-unreachable"), ("battery", "low-battery")]
)
async def test_status_7_says_why(cause: str, reason: str) -> None:
    """Push/Status 7 covers "power or connectivity limitations" [DMC]; the event log names
    the cause: a push blocked by an unreachable server at a full battery is not "power", and
    a poll skipped for the same cause says the same."""
    world = World()
    power = PowerConfig(profile=POWER_PROFILES["heavy-use"], saver_threshold=0.0)
    uri = await enrolled(world, power=power)
    device = world.fleet.devices["dev-1"]
    if cause == "server":
        world.fleet.set_server_reachable(device, False)
    else:  # heavy-use sits at 4 % (under the 5 % critical level) from 19:00 to 20:00
        await world.run_for(19 * HOUR + 30 * MINUTE - world.clock.now() % DAY)
    world.push(uri)
    await world.run_for(20 * MINUTE)
    blocked = world.events("device.push_no_session", "dev-1")[-1]
    assert blocked["reason"] == reason
    assert device.push_status == 7
    if cause == "server":  # the 15-minute polls still run
        skipped = world.events("device.session_skipped", "dev-1")[-1]
        assert (skipped["trigger"], skipped["reason"]) == ("poll", reason)


BAD_REPLIES = {
    "bad-nesting": b"<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr></SyncML>",
    "xml-bomb": b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
    b"<SyncML>&b;</SyncML>",
    "external-entity": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<SyncML>&e;</SyncML>",
    "10-MB": b"<SyncML>" + b"x" * (10 * 1024 * 1024) + b"</SyncML>",
}


@pytest.mark.parametrize("kind", sorted(BAD_REPLIES))
async def test_malformed_server_xml_is_a_recorded_fault(kind: str) -> None:
    """Malformed SyncML from the server is recorded as the server's fault with the offending
    bytes; the device keeps running and its next session works."""
    world = World()
    await enrolled(world)
    world.mdm.override = lambda seen, msg: Reply(
        200, {"Content-Type": CONTENT_TYPE}, BAD_REPLIES[kind]
    )
    await world.run_for(16 * MINUTE)
    fault = world.events("session.server_fault")[-1]
    assert fault["rule"] == "malformed"
    assert fault["excerpt"]
    assert world.events("session.end")[-1]["outcome"] == "server-fault"
    world.mdm.override = None
    await world.run_for(15 * MINUTE)
    assert world.events("session.end")[-1]["outcome"] == "ended"


async def test_missing_cmdid_is_answered_400_and_recorded() -> None:
    """A server command without CmdID: the device answers 400 for it [OMADM] and the
    session records the server's fault."""
    world = World()
    await enrolled(world)
    bad = Add(None, (Item(target=f"{PUSH_NODE}/PFN", data=APP_A.pfn),))
    world.mdm.queue("dev-1", bad)
    await world.run_for(16 * MINUTE)
    assert any(f["rule"] == "cmdid" for f in world.events("session.server_fault"))
    assert world.fleet.devices["dev-1"].state == "active"


async def test_http_429_retry_after_is_honoured() -> None:
    """HTTP 429 with Retry-After: the device retries after that delay [MSMDM 3.1.6]."""
    world = World()
    await enrolled(world)
    calls = {"n": 0}

    def throttle(seen: object, msg: object) -> Reply | None:
        calls["n"] += 1
        return Reply(429, {"Retry-After": "120"}, b"") if calls["n"] == 1 else None

    world.mdm.override = throttle
    await world.run_for(15 * MINUTE + 3 * MINUTE)
    ends = world.events("session.end")
    throttled = next(e for e in ends if e["outcome"] == "http-429")
    retry = world.events("session.start")[-1]
    assert retry["trigger"] == "retry"
    assert retry["t_ms"] == throttled["t_ms"] + 120_000


def test_session_end_record_is_plain_data() -> None:
    """SessionEnd is a frozen value (the runtime passes it back to the core)."""
    end = SessionEnd("poll", True, "ended")
    assert (end.trigger, end.ok, end.retry_after) == ("poll", True, None)


@pytest.mark.parametrize(
    ("exception", "connected"),
    [("blocked", False), ("any_app", True), ("always_allowed", True)],
)
async def test_battery_saver_exceptions_keep_the_connection(
    exception: str, connected: bool
) -> None:
    """[WNSOV] Battery Saver disables push "but there are a couple exceptions": "Allow push
    notifications from any app" (Windows 10 desktop) and the "Always allowed" list keep the
    WNS connection (section 0)."""
    world = World()
    await enrolled(world, power=PowerConfig(saver_exception=exception))
    device = world.fleet.devices["dev-1"]
    world.fleet.set_battery_saver(device, True)
    assert device.connected is connected
    assert world.wns.registry.endpoint("dev-1").status == (
        "connected" if connected else "disconnected"
    )


async def test_low_battery_status_7_is_reachable_with_an_exception() -> None:
    """Item of issue 16: with the defaults Battery Saver (20 %) cuts the connection long before
    the 5 % critical level, so a push never arrives on a flat battery; with an exception it
    does, and gives Push/Status 7 for low battery [DMC]."""
    world = World()
    power = PowerConfig(profile=POWER_PROFILES["heavy-use"], saver_exception="always_allowed")
    uri = await enrolled(world, power=power)
    device = world.fleet.devices["dev-1"]
    await world.run_for(19 * HOUR + 30 * MINUTE - world.clock.now() % DAY)
    assert device.connected
    world.push(uri)
    await world.run_for(MINUTE)
    assert world.events("device.push_no_session", "dev-1")[-1]["reason"] == "low-battery"
    assert device.push_status == 7


async def test_1607_attempts_renewal_on_a_network_without_internet() -> None:
    """[PUSH] 1607+ "check for network connectivity before retrying. We don't check for
    internet connectivity": with a network but no internet the attempt is made and fails;
    with no network at all it is skipped."""
    world = World()
    await enrolled(world, profile=PROFILES["win10-1607"])
    device = world.fleet.devices["dev-1"]
    await world.run_for(15 * DAY - HOUR)
    world.fleet.set_internet(device, False)
    await world.run_for(2 * HOUR)
    assert world.events("device.renewal_failed", "dev-1")[-1]["reason"] == "no-internet"
    assert world.events("device.renewal_skipped", "dev-1") == []
    world.fleet.set_internet(device, True)
    world.fleet.go_offline(device, world.clock.now() + 6 * HOUR)  # the retry: 4 h +/- 1 h
    await world.run_for(6 * HOUR)
    assert world.events("device.renewal_skipped", "dev-1")[-1]["reason"] == "no-network"


async def test_pfn_hang_stores_the_pfn_and_sends_nothing_more() -> None:
    """Section 0 pfn_hang [PUSH] "It can also potentially hang when setting the PFN": the PFN
    is stored, the session sends no further package (the server sees it abandoned), nothing
    registers (Status 4); 1511's next renewal attempt (1 day +/- 4 h) registers and reports
    the channel in a session of its own."""
    world = World()
    group = {"profile": PROFILES["win10-1511"], "renewal_failure": "pfn_hang"}
    device = world.fleet.add("dev-1", world.group(**group, renewal_failure_rate=1.0))
    world.mdm.queue("dev-1", replace_pfn())
    world.fleet.enroll(device)
    await world.run_for(MINUTE)
    assert [e["outcome"] for e in world.events("session.end", "dev-1")] == ["hung"]
    assert len(world.mdm.sessions[0].messages) == 1  # package 1, then nothing
    assert device.configured_pfn() == APP_A.pfn
    assert device.push_status == 4
    assert world.events("device.pfn_hang", "dev-1")
    await world.run_for(28 * HOUR)
    channel = world.events("device.channel", "dev-1")[0]
    assert channel["kind"] == "registration"
    assert 20 * HOUR <= channel["t_ms"] - world.events("device.pfn_hang")[0]["t_ms"] <= 28 * HOUR
    registration = [
        s for s in world.events("session.start", "dev-1") if s["t_ms"] == channel["t_ms"]
    ]
    assert [s["trigger"] for s in registration] == ["registration"]
    assert world.mdm.channel_uri["dev-1"] == device.channel_uri
