"""The timeline of a running scenario: each event fired at its virtual time on its targets.

Owns: choosing target devices (a group, the first fraction of a group, one device), carrying
out each action on the fleet, the fake WNS or, through the server's hooks, the server, and
logging what was done (``timeline.*`` events) or why not (``timeline.skipped``).
Must not: judge outcomes or build the world.

Server actions run one device after another, awaiting each hook: pushes then reach WNS in a
fixed order, so Msg-IDs and the event log are the same every run (principle 6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulator.device.agent import Device
from emulator.hooks import HookResult
from emulator.scenario.model import Event, Target
from emulator.shards.split import share_of

if TYPE_CHECKING:
    from emulator.runner import World

SERVER_ACTIONS = ("push", "queue_command")  # each asked of the server by the hook of its name


class Timeline:
    def __init__(self, world: World) -> None:
        self.world = world
        self.notes: list[str] = []
        self.hook_results: list[HookResult] = []  # every hook call, in order

    def schedule(self) -> None:
        start = self.world.clock.now()
        for event in self.world.scenario.timeline:
            self.world.clock.call_at(start + event.at_ms, self._fire, event)

    def _fire(self, event: Event) -> None:
        self.world.clock.spawn(self._run(event), name=f"timeline-{event.line}")

    def targets(self, target: Target | None) -> list[Device]:
        if target is None:
            return []
        devices = self.world.fleet.devices
        if target.device is not None:
            ids = [target.device]
        else:
            spec = self.world.scenario.group(target.group or "")
            if spec is None:
                return []
            ids = spec.device_ids()
            if target.fraction is not None:
                ids = ids[: max(1, round(len(ids) * target.fraction))]
        # a shard's world holds only its devices: the others are another shard's targets
        return [devices[d] for d in ids if d in devices]

    def _emit(self, event: Event, name: str, device_id: str | None = None, **fields: Any) -> None:
        self.world.events.emit(name, device_id, line=event.line, **fields)

    async def _run(self, event: Event) -> None:
        devices = self.targets(event.target)
        target = event.target.describe() if event.target else "all"
        self._emit(event, f"timeline.{event.action}", target=target, devices=len(devices))
        if event.action in SERVER_ACTIONS:
            await self._ask_server(event, devices)
        else:
            self._world_action(event, devices)

    async def _ask_server(self, event: Event, devices: list[Device]) -> None:
        hooks = self.world.hooks
        hook = event.action
        if hooks is None or not hooks.has(hook):
            note = f"line {event.line}: {event.action} skipped (no hook: {hook})"
            if note not in self.notes:
                self.notes.append(note)
            self._emit(event, "timeline.skipped", reason=f"no hook: {hook}")
            return
        p = event.params
        for device in [d for d in devices for _ in range(int(p.get("repeat", 1)))]:
            result = await hooks.call(  # has() was checked: no HookMissing here
                hook,
                device_id=device.device_id,
                verb=p.get("verb"),
                loc_uri=p.get("loc_uri"),
                data=p.get("data"),
                format=p.get("format"),
            )
            self.hook_results.append(result)
            self._emit(
                event,
                "server.hook",
                device.device_id,
                hook=hook,
                loc_uri=p.get("loc_uri"),
                status=result.status,
                ok=result.ok,
                error=result.error,
            )

    def _world_action(self, event: Event, devices: list[Device]) -> None:
        w = self.world
        fleet, service, now, p = w.fleet, w.wns.service, w.clock.now(), event.params
        action = event.action
        if action == "battery_saver":
            for device in devices:
                fleet.set_battery_saver(device, bool(p["enabled"]))
        elif action == "network":
            for device in devices:
                fleet.set_network(device, bool(p["enabled"]))
        elif action == "offline":
            for device in devices:
                fleet.go_offline(device, now + int(p["for"]))
        elif action == "server_unreachable":
            for device in devices:
                fleet.set_server_reachable(device, False)
                if "for" in p:
                    w.clock.call_at(now + int(p["for"]), fleet.set_server_reachable, device, True)
        elif action == "no_internet":  # the link stays up: 1607 attempts and fails [PUSH]
            for device in devices:
                fleet.set_internet(device, False)
                if "for" in p:
                    w.clock.call_at(now + int(p["for"]), fleet.set_internet, device, True)
        elif action == "revoke_channel":
            for device in devices:
                for channel in service.registry.channels_of(device.device_id):
                    if not channel.revoked:
                        service.revoke_channel(channel)
        elif action == "forget_channel":
            for device in devices:
                for channel in service.registry.channels_of(device.device_id):
                    service.forget_channel(channel)
        elif action == "revoke_tokens":
            service.tokens.revoke(w.scenario.app.sid, now)
        elif action in ("block_pfn", "unblock_pfn"):
            pfn = w.scenario.app.pfn
            if action == "block_pfn":
                service.registry.block(pfn)
            else:
                service.registry.unblock(pfn)
        elif action == "wns_fault":
            if event.target is not None and not devices:
                return  # its targets live on other shards
            channels: list[str | None] = [
                c.id for d in devices for c in service.registry.channels_of(d.device_id)[-1:]
            ]
            count = p.get("count")
            if not channels and count is not None and w.options.shard is not None:
                count = share_of(int(count), *w.options.shard)  # the run's count, not each's
                if count == 0:
                    return
            retry_after = p.get("retry_after")
            for channel_id in channels or [None]:
                service.faults.add(
                    status=int(p["status"]),
                    count=count,
                    channel_id=channel_id,
                    retry_after_s=None if retry_after is None else max(1, retry_after // 1000),
                    description=f"scenario line {event.line}",
                )
