"""Delivery over the device's connection and the offline cache, on the sans-I/O core.

[RAW] only one raw notification is cached (newest wins) and only with X-WNS-Cache-Policy:
cache; otherwise an offline device's raw push is dropped. [WNSHDR] X-WNS-TTL bounds it;
section 0: a cache period (default 30 days) bounds pushes without TTL.
"""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from emulator.clock import DAY, HOUR, MINUTE, VirtualClock
from emulator.wns.channels import ChannelRefused
from emulator.wns.errors import ChannelGone, InjectedFault, NotifyError
from emulator.wns.models import Channel, Delivery
from emulator.wns.service import Exchange, WnsService
from tests.conftest import APP_A, APP_B, make_service


class Device:
    """A subscriber that records what reaches it, as a device agent would."""

    def __init__(self, service: WnsService, device_id: str) -> None:
        self.got: list[tuple[str, str]] = []
        service.subscribe(device_id, self)

    def __call__(self, channel: Channel, delivery: Delivery) -> None:
        self.got.append((delivery.push.payload.decode(), delivery.via))


def send(
    service: WnsService, clock: VirtualClock, channel: Channel, body: str, **hdrs: str
) -> Exchange:
    token = service.tokens.issue("application/x-www-form-urlencoded", _form(), clock.now())
    headers = CIMultiDict(
        {
            "Authorization": f"Bearer {token.value}",
            "Content-Type": "application/octet-stream",
            "X-WNS-Type": "wns/raw",
        }
    )
    for key, value in hdrs.items():
        headers[key.replace("_", "-")] = value
    ex = Exchange()
    query = channel.uri.split("?", 1)[1]
    service.notify(
        "POST",
        query,
        headers,
        body.encode(),
        declared_length=len(body),
        now=clock.now(),
        ex=ex,
    )
    return ex


def answered(ex: Exchange) -> dict[str, str]:
    """The headers of the 200 the push got."""
    assert ex.accepted is not None
    return ex.accepted


def _form() -> bytes:
    from urllib.parse import urlencode

    return urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": APP_A.client_id,
            "client_secret": APP_A.secret,
            "scope": "notify.windows.com",
        }
    ).encode()


@pytest.fixture
def setup(clock: VirtualClock) -> tuple[WnsService, Channel, Device]:
    service = make_service(clock)
    device = Device(service, "dev-1")
    channel = service.request_channel("dev-1", APP_A.pfn, clock.now())
    return service, channel, device


def test_connected_device_receives_at_once(
    setup: tuple[WnsService, Channel, Device], clock: VirtualClock
) -> None:
    service, channel, device = setup
    ex = send(service, clock, channel, "one")
    assert ex.outcome == "received"
    assert device.got == [("one", "live")]
    assert channel.delivered[-1].push.msg_id == ex.msg_id


def test_offline_without_cache_policy_is_dropped(
    setup: tuple[WnsService, Channel, Device], clock: VirtualClock
) -> None:
    """[RAW] raw is not cached by default; [WASDK-3677] the description of the drop."""
    service, channel, device = setup
    service.set_connection("dev-1", "disconnected", clock.now())
    ex = send(service, clock, channel, "lost", X_WNS_RequestForStatus="true")
    assert answered(ex)["X-WNS-Status"] == "dropped"
    assert answered(ex)["X-WNS-Error-Description"] == (
        "Device is offline and X-WNS-Cache-Policy is no-cache"
    )
    assert answered(ex)["X-WNS-DeviceConnectionStatus"] == "disconnected"
    service.set_connection("dev-1", "connected", clock.now())
    assert device.got == []


def test_offline_cache_keeps_only_the_newest_and_delivers_on_reconnect(
    setup: tuple[WnsService, Channel, Device], clock: VirtualClock
) -> None:
    service, channel, device = setup
    service.set_connection("dev-1", "tempdisconnected", clock.now())
    first = send(service, clock, channel, "older", X_WNS_Cache_Policy="cache")
    clock.advance(MINUTE)
    send(service, clock, channel, "newer", X_WNS_Cache_Policy="cache")
    assert answered(first)["X-WNS-Status"] == "received"  # accepted; delivery pending
    assert [p.payload for p in channel.cached.values()] == [b"newer"]
    clock.advance(HOUR)
    assert service.set_connection("dev-1", "connected", clock.now()) == 1
    assert device.got == [("newer", "cache")]
    assert channel.cached == {}


def test_ttl_expires_a_cached_push(
    setup: tuple[WnsService, Channel, Device], clock: VirtualClock
) -> None:
    """[WNSHDR] X-WNS-TTL: seconds after WNS receives the request."""
    service, channel, device = setup
    service.set_connection("dev-1", "disconnected", clock.now())
    send(service, clock, channel, "short", X_WNS_Cache_Policy="cache", X_WNS_TTL="60")
    clock.advance(61_000)
    assert service.set_connection("dev-1", "connected", clock.now()) == 0
    assert device.got == []


def test_cache_period_bounds_pushes_without_ttl(clock: VirtualClock) -> None:
    """Section 0: dropped after a cache period (default 30 days, configurable)."""
    service = make_service(clock, cache_period_ms=2 * DAY)
    device = Device(service, "dev-1")
    channel = service.request_channel("dev-1", APP_A.pfn, clock.now())
    service.set_connection("dev-1", "disconnected", clock.now())
    send(service, clock, channel, "kept", X_WNS_Cache_Policy="cache")
    clock.advance(DAY)
    service.set_connection("dev-1", "connected", clock.now())
    service.set_connection("dev-1", "disconnected", clock.now())
    send(service, clock, channel, "stale", X_WNS_Cache_Policy="cache")
    clock.advance(2 * DAY)
    service.set_connection("dev-1", "connected", clock.now())
    assert device.got == [("kept", "cache")]


def test_toast_is_never_cached_offline(
    setup: tuple[WnsService, Channel, Device], clock: VirtualClock
) -> None:
    service, channel, _ = setup
    service.set_connection("dev-1", "disconnected", clock.now())
    ex = send(service, clock, channel, "<toast/>", X_WNS_Type="wns/toast", Content_Type="text/xml")
    assert answered(ex)["X-WNS-Status"] == "dropped"


def test_renewal_issues_a_new_uri_and_the_old_one_lives_out_its_30_days(
    setup: tuple[WnsService, Channel, Device], clock: VirtualClock
) -> None:
    """[PUSH] renewal after 15 days gives a new ChannelURI; the old URI was valid 30 days."""
    service, old, device = setup
    clock.advance(15 * DAY)
    new = service.request_channel("dev-1", APP_A.pfn, clock.now())
    assert new.uri != old.uri
    assert old.superseded_by == new.id
    assert service.registry.state(old, clock.now()) == "superseded"
    send(service, clock, old, "to-old")
    clock.advance(15 * DAY)
    with pytest.raises(ChannelGone):
        send(service, clock, old, "too late")
    send(service, clock, new, "to-new")
    assert device.got == [("to-old", "live"), ("to-new", "live")]


def test_renewal_can_extend_the_same_uri(clock: VirtualClock) -> None:
    service = make_service(clock, renewal="extend")
    first = service.request_channel("dev-1", APP_A.pfn, clock.now())
    clock.advance(15 * DAY)
    again = service.request_channel("dev-1", APP_A.pfn, clock.now())
    assert again is first
    assert first.expires_ms == clock.now() + 30 * DAY


def test_unknown_or_blocked_pfn_is_refused(clock: VirtualClock) -> None:
    """Push/Status 3 on the device: WNS refuses an invalid or revoked PFN [DMC]."""
    service = make_service(clock, blocked_pfns=(APP_B.pfn,))
    with pytest.raises(ChannelRefused) as unknown:
        service.request_channel("dev-1", "Nobody.Nothing_0000000000000", clock.now())
    assert unknown.value.reason == "unknown_pfn"
    with pytest.raises(ChannelRefused) as blocked:
        service.request_channel("dev-1", APP_B.pfn, clock.now())
    assert blocked.value.reason == "blocked_pfn"


def test_pfns_match_in_any_letter_case(clock: VirtualClock) -> None:
    """[WP81BLOG] "Convert the above PFN to lower case before sending it to the device": the
    fake WNS matches PFNs case-insensitively (section 0), for registration and blocking."""
    service = make_service(clock)
    lower = service.request_channel("dev-1", APP_A.pfn.lower(), clock.now())
    assert lower.pfn == APP_A.pfn
    upper = service.request_channel("dev-1", APP_A.pfn.upper(), clock.now())
    assert upper.superseded_by is None
    assert lower.superseded_by == upper.id  # the same app
    service.registry.block(APP_A.pfn.lower())
    assert service.registry.is_blocked(APP_A.pfn)
    with pytest.raises(ChannelRefused) as blocked:
        service.request_channel("dev-1", APP_A.pfn, clock.now())
    assert blocked.value.reason == "blocked_pfn"


def test_channel_uris_are_reproducible_for_a_seed(clock: VirtualClock) -> None:
    """Determinism: same seed, same ChannelURIs and Msg-IDs."""
    a = make_service(clock, seed=7).request_channel("d", APP_A.pfn, clock.now())
    b = make_service(clock, seed=7).request_channel("d", APP_A.pfn, clock.now())
    c = make_service(clock, seed=8).request_channel("d", APP_A.pfn, clock.now())
    assert a.uri == b.uri != c.uri


def test_a_faulty_subscriber_does_not_fail_the_sender(
    setup: tuple[WnsService, Channel, Device], clock: VirtualClock
) -> None:
    service, channel, _ = setup

    def broken(channel: Channel, delivery: Delivery) -> None:
        raise RuntimeError("device bug")

    service.subscribe("dev-1", broken)
    assert send(service, clock, channel, "x").outcome == "received"


def test_injected_faults_count_down_and_match_their_target(
    setup: tuple[WnsService, Channel, Device], clock: VirtualClock
) -> None:
    """Fault injection: status for the next N requests, per app or channel, Retry-After."""
    service, channel, _ = setup
    other = service.request_channel("dev-2", APP_B.pfn, clock.now())
    service.faults.add(status=503, count=2, channel_id=channel.id, retry_after_s=120)
    service.faults.add(status=500, count=1, sid=APP_B.sid)
    for _ in range(2):
        with pytest.raises(InjectedFault) as err:
            send(service, clock, channel, "x")
        assert err.value.status == 503
        assert err.value.extra_headers() == {"Retry-After": "120"}
    assert send(service, clock, channel, "x").outcome == "received"
    assert service.faults.faults[0].sid == APP_B.sid  # untouched by channel's requests
    assert not any(f.channel_id == other.id for f in service.faults.faults)


def test_latency_fault_is_reported_for_the_driver(
    setup: tuple[WnsService, Channel, Device], clock: VirtualClock
) -> None:
    service, channel, _ = setup
    service.faults.add(latency_ms=1500, count=1)
    assert send(service, clock, channel, "x").latency_ms == 1500
    assert send(service, clock, channel, "x").latency_ms == 0


def test_notify_errors_are_typed(
    setup: tuple[WnsService, Channel, Device], clock: VirtualClock
) -> None:
    service, channel, _ = setup
    with pytest.raises(NotifyError) as err:
        send(service, clock, channel, "x", X_WNS_Type="wns/nope")
    assert err.value.status == 400


@pytest.mark.parametrize("end", ["expiry", "revocation", "blocked PFN"])
def test_a_cached_push_never_crosses_a_dead_channel(
    setup: tuple[WnsService, Channel, Device], clock: VirtualClock, end: str
) -> None:
    """Section 0: a cached raw push is never delivered over a channel that has expired or
    been revoked (WNS answers 410 for it [WNSOV]); it is dropped with the channel. Seen in
    offline-31-days: a push cached on day 11 started a session on day 34."""
    service, channel, device = setup
    service.set_connection("dev-1", "disconnected", clock.now())
    clock.advance(20 * DAY)
    send(service, clock, channel, "stale", X_WNS_Cache_Policy="cache")
    if end == "expiry":
        clock.advance(11 * DAY)  # within the cache period, past the channel's 30 days
    elif end == "revocation":
        service.revoke_channel(channel)
    else:
        service.registry.blocked.add(channel.pfn)
    assert service.set_connection("dev-1", "connected", clock.now()) == 0
    assert device.got == []
    assert channel.cached == {}


def test_a_devices_identifiers_do_not_depend_on_other_devices(clock: VirtualClock) -> None:
    """Issue 19: every identifier comes from a per-device or per-channel stream, never a
    shared sequence, so a device's ChannelURIs, channel ids and Msg-IDs are the same
    whichever other devices a fake WNS serves, and in whatever order (shards rely on it)."""

    def story(service: WnsService, device: str) -> list[str]:
        first = service.request_channel(device, APP_A.pfn, clock.now())
        second = service.request_channel(device, APP_A.pfn, clock.now())  # a renewal
        return [first.uri, first.id, second.uri, second.id]

    alone = make_service(clock, seed=7)
    crowded = make_service(clock, seed=7)
    for other in ("x-1", "x-2", "x-3"):
        crowded.request_channel(other, APP_A.pfn, clock.now())
    assert story(alone, "dev-1") == story(crowded, "dev-1")
    assert story(make_service(clock, seed=8), "dev-1") != story(alone, "dev-1")
