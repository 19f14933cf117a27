"""``dmemu demo``: a guided month of one channel's life against a real loopback fake WNS.

Owns: the walk-through script and its report. The world is a fake WNS on a loopback socket,
one device's connection, and the reference sender (:mod:`emulator.mdm.wns_sender`), all on one
virtual clock: token, push, the token's 24 h expiry (401, one refresh), an offline spell with
a cached push, and the channel's 30-day expiry (410).
Must not: be the only place a behaviour is tested; tests cover each step on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TextIO

import aiohttp

from emulator.clock import DAY, HOUR, MINUTE, VirtualClock, iso
from emulator.mdm.wns_sender import WnsSender
from emulator.wns.config import DEMO_APP
from emulator.wns.models import Channel, Delivery
from emulator.wns.server import start_wns
from emulator.wns.service import WnsConfig

DEVICE = "demo-device-0001"


@dataclass
class DemoReport:
    steps: list[dict[str, object]] = field(default_factory=list)
    requests: list[dict[str, object]] = field(default_factory=list)
    received: list[dict[str, object]] = field(default_factory=list)

    def ok(self) -> bool:
        return all(step["ok"] for step in self.steps)

    def to_json(self) -> str:
        data = {"steps": self.steps, "requests": self.requests, "received": self.received}
        return json.dumps(data, indent=1, sort_keys=True)


async def run_demo(out: TextIO, *, seed: int = 0) -> DemoReport:
    clock = VirtualClock()
    report = DemoReport()
    wns = await start_wns(WnsConfig(apps=(DEMO_APP,), seed=seed), clock)
    try:
        service = wns.service

        def on_push(channel: Channel, delivery: Delivery) -> None:
            report.received.append(
                {
                    "t": iso(delivery.delivered_ms),
                    "msg_id": delivery.push.msg_id,
                    "via": delivery.via,
                    "channel_id": channel.id,
                }
            )

        service.subscribe(DEVICE, on_push)
        channel = service.request_channel(DEVICE, DEMO_APP.pfn, clock.now())
        out.write(f"dmemu demo: fake WNS on {wns.url}, virtual clock from {iso(clock.now())}\n")
        out.write(f"  device {DEVICE} registered PFN {DEMO_APP.pfn}\n")
        out.write(f"  ChannelURI {channel.uri[:72]}...\n\n")

        async with aiohttp.ClientSession() as session:
            sender = WnsSender.to_local_wns(session, clock, DEMO_APP, wns.url)

            def record(title: str, ok: bool, detail: str, **fields: object) -> None:
                report.steps.append({"t": iso(clock.now()), "step": title, **fields, "ok": ok})
                mark = "ok " if ok else "FAIL"
                out.write(f"  [{mark}] {iso(clock.now())}  {title:<48} {detail}\n")

            async def step(title: str, expect: str) -> None:
                result = await sender.push(channel.uri)
                record(
                    title,
                    result.action == expect,
                    f"HTTP {result.status} {result.action:<9} token requests: "
                    f"{result.token_requests}",
                    status=result.status,
                    action=result.action,
                    msg_id=result.msg_id,
                    token_requests=result.token_requests,
                )

            await step("push (first token request)", "delivered")
            await clock.jump(2 * HOUR)
            await step("push 2 h later (cached token reused)", "delivered")
            await clock.jump(DAY)
            await step("push after 24 h (token refreshed ahead)", "delivered")
            service.tokens.revoke(DEMO_APP.sid)
            await step("push after WNS revoked the token (401, 1 retry)", "delivered")
            service.set_connection(DEVICE, "disconnected", clock.now())
            await step("push while Battery Saver dropped WNS", "delivered")
            await clock.jump(30 * MINUTE)
            delivered = service.set_connection(DEVICE, "connected", clock.now())
            record(
                "device reconnected: cached push delivered",
                delivered == 1 and report.received[-1]["via"] == "cache",
                f"{delivered} from the WNS cache",
                from_cache=delivered,
            )
            await clock.jump(31 * DAY)
            await step("push after the channel's 30 days (410)", "stop")

        report.requests = [
            {
                "t": iso(r.t_ms),
                "kind": r.kind,
                "status": r.status,
                "outcome": r.outcome,
                "msg_id": r.msg_id,
            }
            for r in service.records
        ]
    finally:
        await wns.stop()

    out.write("\nrequests the fake WNS served:\n")
    for r in report.requests:
        out.write(
            f"  {r['t']}  {r['kind']:<6} {r['status']}  {r['outcome']:<32} {r['msg_id'] or ''}\n"
        )
    out.write("\npushes the device received:\n")
    for p in report.received:
        out.write(f"  {p['t']}  {p['msg_id']}  via {p['via']}\n")
    verdict = "PASS" if report.ok() else "FAIL"
    out.write(
        f"\ndemo {verdict}: {sum(1 for s in report.steps if s['ok'])}/{len(report.steps)} "
        "steps as expected\n"
    )
    return report
