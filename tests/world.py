"""In-memory link for device tests: fake WNS core + fleet + a scripted MDM peer, no sockets.

``ScriptedMdm`` is the smallest honest OMA-DM server: Status for the SyncHdr first, one Status
per device command, Gets ChannelURI and Status in every session (as [PUSH] tells servers to),
plus whatever a test queues for a device; a Status-only reply ends the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import Any
from urllib.parse import urlencode

from emulator.clock import VirtualClock
from emulator.device.agent import DeviceGroup
from emulator.device.fleet import Fleet
from emulator.device.session import Reply
from emulator.syncml import (
    CONTENT_TYPE,
    Command,
    Get,
    Item,
    Message,
    Meta,
    Replace,
    Results,
    Status,
    SyncHdr,
    parse,
    serialize,
)
from emulator.wns.models import Push
from emulator.wns.service import Exchange, WnsConfig, WnsService
from tests.conftest import APP_A, APP_B

PROVIDER = "dmemu"
PUSH_NODE = f"./Device/Vendor/MSFT/DMClient/Provider/{PROVIDER}/Push"
SERVER = "https://mdm.test/omadm"


def replace_pfn(pfn: str = APP_A.pfn, cmd_id: str = "10") -> Replace:
    return Replace(cmd_id, (Item(target=f"{PUSH_NODE}/PFN", meta=Meta(format="chr"), data=pfn),))


@dataclass
class SessionSeen:
    device_id: str
    session_id: str
    headers: dict[str, str]
    url: str
    messages: list[Message] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # our CmdID -> device status
    results: dict[str, str] = field(default_factory=dict)  # LocURI -> data


class ScriptedMdm:
    def __init__(self) -> None:
        self.queued: dict[str, list[Command]] = {}
        self.sessions: list[SessionSeen] = []
        self.open: dict[tuple[str, str], SessionSeen] = {}
        self.channel_uri: dict[str, str] = {}  # newest ChannelURI each device reported
        self.override: Callable[[SessionSeen, Message], Reply | None] | None = None

    def queue(self, device_id: str, *commands: Command) -> None:
        self.queued.setdefault(device_id, []).extend(commands)

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, tls: SSLContext | None = None
    ) -> Reply:
        msg = parse(body)
        key = (msg.header.source, msg.header.session_id)
        seen = self.open.get(key)
        if seen is None:
            seen = SessionSeen(msg.header.source, msg.header.session_id, dict(headers), url)
            self.open[key] = seen
            self.sessions.append(seen)
        seen.messages.append(msg)
        if self.override is not None and (reply := self.override(seen, msg)) is not None:
            return reply
        out: list[Command] = [Status("1", msg.header.msg_id, "0", "SyncHdr", "200")]
        n = 1
        for cmd in msg.commands:
            if isinstance(cmd, Status):
                seen.statuses[cmd.cmd_ref] = cmd.data
            elif isinstance(cmd, Results):
                for item in cmd.items:
                    seen.results[item.source or ""] = item.data or ""
                    if (item.source or "").endswith("/Push/ChannelURI") and item.data:
                        self.channel_uri[seen.device_id] = item.data
            if not isinstance(cmd, Status | Results):
                n += 1
                out.append(
                    Status(str(n), msg.header.msg_id, cmd.cmd_id or "", type(cmd).__name__, "200")
                )
        if msg.header.msg_id == "1":
            commands = [
                *self.queued.pop(seen.device_id, []),
                Get(
                    "90",
                    (Item(target=f"{PUSH_NODE}/ChannelURI"), Item(target=f"{PUSH_NODE}/Status")),
                ),
            ]
            out.extend(commands)
        else:
            del self.open[key]
        reply = Message(
            SyncHdr(msg.header.session_id, msg.header.msg_id, msg.header.source, SERVER), tuple(out)
        )
        return Reply(200, {"Content-Type": CONTENT_TYPE}, serialize(reply))


class World:
    """Clock, fake WNS core, fleet and scripted server, linked in memory."""

    def __init__(self, seed: int = 7, **wns: Any) -> None:
        self.clock = VirtualClock()
        self.wns = WnsService(
            WnsConfig(apps=(APP_A, APP_B), base_url="https://wns.test", **wns), self.clock
        )
        self.mdm = ScriptedMdm()
        self.fleet = Fleet(self.clock, self.wns, self.mdm, seed=seed)

    def token(self) -> str:
        """A fresh access token for app A (tokens live 24 h on the clock)."""
        return self.wns.token(
            "POST",
            "application/x-www-form-urlencoded",
            urlencode(
                {
                    "grant_type": "client_credentials",
                    "client_id": APP_A.client_id,
                    "client_secret": APP_A.secret,
                    "scope": "notify.windows.com",
                }
            ).encode(),
            self.clock.now(),
            Exchange(),
        ).value

    def group(self, **kw: Any) -> DeviceGroup:
        return DeviceGroup(provider_id=PROVIDER, server_url=SERVER, **kw)

    def push(self, channel_uri: str, body: bytes = b"sync") -> Push:
        """A sender's raw push, straight into the WNS core (raises NotifyError)."""
        headers = {
            "Authorization": f"Bearer {self.token()}",
            "X-WNS-Type": "wns/raw",
            "Content-Type": "application/octet-stream",
            "X-WNS-Cache-Policy": "cache",
        }
        return self.wns.notify(
            "POST",
            channel_uri.partition("?")[2],
            headers,
            body,
            declared_length=len(body),
            now=self.clock.now(),
            ex=Exchange(),
        )

    async def run_for(self, ms: int) -> None:
        await self.clock.run_async(self.clock.now() + ms)

    def events(self, name: str, device_id: str | None = None) -> list[dict[str, Any]]:
        return self.fleet.events.of(name, device_id)
