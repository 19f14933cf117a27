"""Device state survives a restart: SQLite keeps what the server has stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.clock import DAY, MINUTE
from emulator.device.store import DeviceStore, StoreError
from tests.world import World, replace_pfn


async def test_restart_keeps_channel_and_renews_on_schedule(tmp_path: Path) -> None:
    """A restarted emulator reloads identity, PFN, ChannelURI, expiry and poll state, so the
    URI the server stored keeps working and the day-15 renewal still happens [PUSH]."""
    world = World()
    device = world.fleet.add("dev-1", world.group())
    world.mdm.queue("dev-1", replace_pfn())
    world.fleet.enroll(device)
    await world.run_for(2 * DAY)
    store = DeviceStore(tmp_path / "fleet.sqlite")
    assert store.save(world.fleet.devices.values()) == 1
    store.close()

    again = World()  # a new process: same WNS channels would be restored by the WNS store
    again.clock.advance(world.clock.now() - again.clock.now())
    again.wns.registry = world.wns.registry
    restored = DeviceStore(tmp_path / "fleet.sqlite").load(
        {"default": again.group()}, again.clock.now()
    )
    (copy,) = restored
    assert (copy.pfn, copy.channel_uri, copy.channel_expiry, copy.state) == (
        device.pfn,
        device.channel_uri,
        device.channel_expiry,
        device.state,
    )
    assert copy.values == device.values
    assert copy.rng.state == device.rng.state
    again.fleet.adopt(copy)
    await again.run_for(13 * DAY + MINUTE)
    assert [e["kind"] for e in again.events("device.channel")] == ["renewal"]


def test_unknown_group_is_a_clear_error(tmp_path: Path) -> None:
    """Loading devices of a group the run does not define names the device and group."""
    world = World()
    world.fleet.add("dev-1", world.group())
    store = DeviceStore(tmp_path / "f.sqlite")
    store.save(world.fleet.devices.values())
    with pytest.raises(StoreError, match="dev-1 belongs to group 'default'"):
        store.load({}, 0)


def test_network_and_battery_saver_switches_survive_a_restart(tmp_path: Path) -> None:
    """A device switched to a network without internet, or to Battery Saver by hand, is
    still so after a restart (both were lost: only the captive-server switch was kept)."""
    world = World()
    device = world.fleet.add("dev-1", world.group())
    device.power.internet = False
    device.power.saver_forced = True
    device.power.server_reachable = False
    store = DeviceStore(tmp_path / "f.sqlite")
    store.save(world.fleet.devices.values())
    (copy,) = store.load({"default": world.group()}, world.clock.now())
    assert (copy.power.internet, copy.power.saver_forced, copy.power.server_reachable) == (
        False,
        True,
        False,
    )
