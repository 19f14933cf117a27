"""Fleet scale: memory per idle device and device events per second on the virtual clock.

Phase 1 builds N idle devices (PFN set, channel issued by the fake WNS core, timers armed)
and prints the growth of the process's RSS per device (baseline: RSS before building, same
run). Phase 2 runs a day of polls for a smaller fleet against an in-memory OMA-DM server that
parses every device message and answers with Status only (the full SyncML path on both
sides), and prints device events/s; its baseline, measured in the same run, is the bare
scheduler firing the same number of no-op timers, so the ratio says what device logic costs.
It also prints the events/s of the devices' own time, leaving out the time spent in the
in-memory server (in a real run the server is another process), and a second baseline: the
sessions/s of the SyncML codec alone, each session's two messages written and read once.
Targets (issue 3): 100,000 devices within 1 GB (<= 10 KB each); >= 50,000 device events/s.

    python bench/fleet_memory.py [--devices 100000] [--poll-devices 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from ssl import SSLContext

from emulator.clock import DAY, VirtualClock
from emulator.device.agent import DeviceGroup
from emulator.device.fleet import Fleet
from emulator.device.session import Reply, package1
from emulator.events import EventLog
from emulator.logs import configure_logging
from emulator.syncml import CONTENT_TYPE, Message, Status, SyncHdr, parse, serialize
from emulator.syncml.session import ClientSession
from emulator.wns.models import App
from emulator.wns.service import WnsConfig, WnsService

APP = App(sid="S-1-15-2-1-2-3", secret="s", pfn="Contoso.MdmPush_8wekyb3d8bbwe")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class StatusOnlyServer:
    """Parses each device message and ends the session with Status for everything, and keeps
    the time it spends doing so: in a real run the server is another process."""

    def __init__(self) -> None:
        self.spent = 0.0  # seconds of wall time inside post()

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, tls: SSLContext | None = None
    ) -> Reply:
        t0 = time.perf_counter()
        try:
            return self.answer(url, body)
        finally:
            self.spent += time.perf_counter() - t0

    def answer(self, url: str, body: bytes) -> Reply:
        msg = parse(body)
        statuses = [Status("1", msg.header.msg_id, "0", "SyncHdr", "200")]
        for i, cmd in enumerate(msg.commands, start=2):
            statuses.append(
                Status(str(i), msg.header.msg_id, cmd.cmd_id or "", type(cmd).__name__, "200")
            )
        header = SyncHdr(msg.header.session_id, msg.header.msg_id, msg.header.source, url)
        return Reply(
            200, {"Content-Type": CONTENT_TYPE}, serialize(Message(header, tuple(statuses)))
        )


def build(n: int, clock: VirtualClock, server: StatusOnlyServer | None = None) -> Fleet:
    wns = WnsService(WnsConfig(apps=(APP,), base_url="https://wns.test"), clock)
    server = server or StatusOnlyServer()
    fleet = Fleet(clock, wns, server, seed=1, events=EventLog(clock, keep=False))
    group = DeviceGroup(provider_id="dmemu", server_url="https://mdm.test/omadm")
    pfn_path = group.schema.pfn
    now = clock.now()
    for i in range(n):
        device = fleet.add(f"{i:032X}", group)
        device.values[pfn_path] = APP.pfn
        device.state, device.pfn, device.enrolled = "registering", APP.pfn, True
        channel = wns.request_channel(device.device_id, APP.pfn, now)
        device.on_registered(channel.uri, channel.expires_ms, now)  # its actions: see adopt
        fleet.adopt(device)  # rearm as after a restart: power, poll, expiry and renewal
    return fleet


def memory(n: int) -> float:
    gc.collect()
    before = rss_bytes()
    clock = VirtualClock()
    fleet = build(n, clock)
    gc.collect()
    per = (rss_bytes() - before) / n
    del fleet
    return per


async def day_of_polls(n: int) -> tuple[float, float, int, float]:
    """(wall s, of which in the server s, device events, sessions/s)"""
    clock = VirtualClock()
    server = StatusOnlyServer()
    fleet = build(n, clock, server)
    start_events = sum(fleet.events.counts.values())
    t0 = time.perf_counter()
    fired = await clock.run_async(clock.now() + DAY)
    wall = time.perf_counter() - t0
    events = sum(fleet.events.counts.values()) - start_events
    return wall, server.spent, fired + events, fleet.sessions_run / wall


def codec_floor(sessions: int) -> float:
    """Sessions/s of the SyncML codec alone: a poll session's two messages (package 1 and the
    Status-only reply) each written and read once, as the fleet does, with no device or
    server logic, no clock and no event log around them."""
    clock = VirtualClock()
    device = next(iter(build(1, clock).devices.values()))
    package = package1(device, ClientSession("1", device.device_id, device.group.server_url))
    body = serialize(package)
    reply = parse(StatusOnlyServer().answer(device.group.server_url, body).body)
    answer = serialize(reply)
    for _ in range(2):  # as in the fleet, each shape has been read before
        parse(body), parse(answer)
    t0 = time.perf_counter()
    for _ in range(sessions):
        parse(serialize(package))
        parse(serialize(reply))
    return sessions / (time.perf_counter() - t0)


def bare_timers(count: int) -> float:
    clock = VirtualClock()
    for i in range(count):
        clock.call_at(clock.now() + i % 86_400_000, lambda: None)
    t0 = time.perf_counter()
    clock.run(clock.now() + DAY)
    return count / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--poll-devices", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    configure_logging("warning")
    per_device = memory(args.devices)
    total_mb = per_device * args.devices / 1e6
    print(
        f"memory: {args.devices} idle devices, {per_device / 1024:.2f} KB each, "
        f"{total_mb:.0f} MB total (target <= 10 KB, <= 1 GB)"
    )
    rates, ratios, sessions, own, floors = [], [], [], [], []
    for r in range(args.rounds):
        wall, in_server, events, sps = asyncio.run(day_of_polls(args.poll_devices))
        rate = events / wall
        bare = bare_timers(events)
        floor = codec_floor(round(sps * wall))
        rates.append(rate)
        ratios.append(rate / bare)
        sessions.append(sps)
        own.append(events / (wall - in_server))
        floors.append(floor)
        print(
            f"round {r + 1}: {events} device events in {wall:.2f} s = {rate:,.0f}/s "
            f"({sps:,.0f} sessions/s; {in_server / wall:.0%} of the time in the server); "
            f"bare scheduler {bare:,.0f} timers/s; codec alone {floor:,.0f} sessions/s"
        )
    print(
        f"median: {statistics.median(rates):,.0f} device events/s (target >= 50,000), "
        f"{statistics.median(sessions):,.0f} OMA-DM sessions/s, "
        f"{statistics.median(ratios):.3f}x the bare scheduler; "
        f"{statistics.median(own):,.0f} device events per second of the devices' own time "
        "(the in-memory server's left out)"
    )
    print(
        f"codec alone: {statistics.median(floors):,.0f} sessions/s, so at most "
        f"{statistics.median(floors) * events / (sps * wall):,.0f} device events/s with the "
        "SyncML of both sides and nothing else"
    )


if __name__ == "__main__":
    main()
