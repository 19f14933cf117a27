"""The reference server end to end over real loopback HTTP: fake WNS, reference MDM and a few
devices on one virtual clock (issue 4's done-when)."""

from __future__ import annotations

from pathlib import Path

from emulator.clock import DAY, HOUR, MINUTE, VirtualClock
from emulator.device.profiles import PROFILES
from tests.mdm_world import ref_world


async def test_enroll_push_command_renewal_and_recovery_after_410(clock: VirtualClock) -> None:
    """Enrollment sets PFN and polls [PUSH][DMC]; the server stores the ChannelURI; an admin
    push goes through WNS and wakes the device, whose session delivers a queued command; the
    day-15 renewal's new ChannelURI is picked up [PUSH][KI]; a device that failed to renew
    gets 410 at day 30 [WNSOV], its PFN is set again and push works on the new channel."""
    async with ref_world(clock) as w:
        w.enroll("dev-ok")
        w.enroll("dev-stuck", renewal_failure="silent", renewal_failure_rate=1.0)
        await w.run_for(10 * MINUTE)

        status, listing = await w.admin("GET", "/admin/devices")
        assert status == 200
        rows = {d["device_id"]: d for d in listing["devices"]}
        assert set(rows) == {"dev-ok", "dev-stuck"}
        for row in rows.values():
            assert row["pfn_state"] == "set"
            assert row["poll_set"] is True
            assert row["channel_state"] == "active"
            assert row["channel_uri"].startswith(w.wns.url)
            assert row["swv"] == PROFILES["win10-22h2"].swv
        first_uri = rows["dev-ok"]["channel_uri"]

        # a queued command goes out in the session the push triggers
        status, queued = await w.admin(
            "POST",
            "/admin/devices/dev-ok/commands",
            {"verb": "Get", "loc_uri": "./DevInfo/Mod"},
        )
        assert status == 201
        assert queued["push"]["action"] == "delivered"
        await w.run_for(MINUTE)
        push_session = w.events("session.start", "dev-ok")[-1]
        assert push_session["trigger"] == "push"
        assert push_session["msg_id"] == queued["push"]["msg_id"]
        cid = queued["command"]["id"]
        status, command = await w.admin("GET", f"/admin/devices/dev-ok/commands/{cid}")
        assert (command["state"], command["status"], command["result"]) == (
            "done",
            "200",
            "Surface Emulator 1",
        )

        # day 15: renewal, new URI reported in the renewal session and stored
        await w.run_for(16 * DAY)
        _, row = await w.admin("GET", "/admin/devices/dev-ok")
        assert row["channel_uri"] != first_uri
        assert (await w.push("dev-ok"))["action"] == "delivered"
        assert w.notifies("dev-ok")[-1].target == "/" + row["channel_uri"].split("/", 3)[3]

        # day 30: the stuck device's channel expires; the push gets 410
        await w.run_for(15 * DAY)
        gone = await w.push("dev-stuck")
        assert (gone["http_status"], gone["action"]) == (410, "stop")
        again = await w.push("dev-stuck")
        assert again["action"] == "no_channel"  # C5: nothing more to the dead channel
        await w.run_for(DAY + HOUR)  # the next daily poll resets the PFN
        _, stuck = await w.admin("GET", "/admin/devices/dev-stuck")
        assert stuck["channel_state"] == "active"
        assert stuck["channel_uri"] != gone["channel_uri"]
        assert (await w.push("dev-stuck"))["action"] == "delivered"
        await w.run_for(MINUTE)
        assert w.events("session.start", "dev-stuck")[-1]["trigger"] == "push"


async def test_restarted_server_keeps_devices_and_channels(
    clock: VirtualClock, tmp_path: Path
) -> None:
    """Storage is SQLite: a restarted server still knows its devices and their newest
    ChannelURIs, so it pushes at once and its devices' sessions carry on (issue 4)."""
    async with ref_world(clock, db=str(tmp_path / "mdm.sqlite")) as w:
        w.enroll("dev-1")
        await w.run_for(10 * MINUTE)
        await w.restart_mdm()
        _, row = await w.admin("GET", "/admin/devices/dev-1")
        assert (row["pfn_state"], row["channel_state"]) == ("set", "active")
        assert (await w.push("dev-1"))["action"] == "delivered"
        await w.run_for(MINUTE)
        ends = w.events("session.end", "dev-1")
        assert (ends[-1]["trigger"], ends[-1]["outcome"]) == ("push", "ended")
        assert len(w.events("device.pfn_set", "dev-1")) == 1  # the PFN was not set again
