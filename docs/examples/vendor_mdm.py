"""A small MDM server as a vendor might write it (not dmemu code): OMA-DM sessions that set
the push PFN and read the ChannelURI, and an admin endpoint that pushes a device through WNS.

It keeps a WNS access token until 5 minutes before it expires (read from ``datetime.now``),
refreshes it once on a 401, retries a 406 or 503 once its Retry-After has passed
(``asyncio.sleep``), sets the PFN again after a 410, and never pushes to a ChannelURI that
answered 410. ``test_vendor_mdm.py`` beside it tests that with dmemu's pytest plugin.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import defusedxml.ElementTree as ET
from aiohttp import web

SYNCML = "{SYNCML:SYNCML1.2}"
CONTENT_TYPE = "application/vnd.syncml.dm+xml"


@dataclass
class Device:
    channel: str | None = None  # the newest ChannelURI the device reported
    gone: bool = False  # WNS answered 410 for it: never push to it again
    needs_pfn: bool = True  # set the PFN in the next session


@dataclass
class VendorMdm:
    token_url: str
    client_id: str  # ms-app://<Package SID>
    client_secret: str
    pfn: str
    provider_id: str = "dmemu"
    devices: dict[str, Device] = field(default_factory=dict)
    token: str | None = None
    token_expires: datetime | None = None
    http: aiohttp.ClientSession | None = None
    retries: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def push_node(self) -> str:
        return f"./Device/Vendor/MSFT/DMClient/Provider/{self.provider_id}/Push"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/omadm", self.omadm)
        app.router.add_post("/admin/devices/{device_id}/push", self.push)
        app.cleanup_ctx.append(self._client)
        return app

    async def _client(self, app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as self.http:  # on the server's own event loop
            yield
        for task in self.retries:
            task.cancel()

    # -- OMA-DM -----------------------------------------------------------------------------
    async def omadm(self, request: web.Request) -> web.Response:
        root = ET.fromstring(await request.read())
        header = root.find(f"{SYNCML}SyncHdr")
        session = header.findtext(f"{SYNCML}SessionID")
        msg_id = header.findtext(f"{SYNCML}MsgID")
        device_id = header.findtext(f"{SYNCML}Source/{SYNCML}LocURI")
        target = header.findtext(f"{SYNCML}Target/{SYNCML}LocURI")
        device = self.devices.setdefault(device_id, Device())
        out = [_status(1, msg_id, "0", "SyncHdr")]
        for cmd in root.find(f"{SYNCML}SyncBody"):
            name = cmd.tag.removeprefix(SYNCML)
            if name in ("Final",):
                continue
            if name == "Results":
                for item in cmd.findall(f"{SYNCML}Item"):
                    source = item.findtext(f"{SYNCML}Source/{SYNCML}LocURI") or ""
                    data = item.findtext(f"{SYNCML}Data") or ""
                    if source.endswith("/Push/ChannelURI") and data and data != device.channel:
                        device.channel, device.gone = data, False
            if name == "Status":
                if cmd.findtext(f"{SYNCML}Cmd") == "Replace":
                    device.needs_pfn = cmd.findtext(f"{SYNCML}Data") != "200"
                continue
            out.append(_status(len(out) + 1, msg_id, cmd.findtext(f"{SYNCML}CmdID"), name))
        if msg_id == "1":  # package 1: the PFN if needed, then read the channel
            if device.needs_pfn:
                out.append(
                    f"<Replace><CmdID>{len(out) + 1}</CmdID><Item><Target><LocURI>"
                    f"{self.push_node}/PFN</LocURI></Target><Meta><Format xmlns='syncml:metinf'>"
                    f"chr</Format></Meta><Data>{self.pfn.lower()}</Data></Item></Replace>"
                )
            out.append(
                f"<Get><CmdID>{len(out) + 1}</CmdID><Item><Target><LocURI>"
                f"{self.push_node}/ChannelURI</LocURI></Target></Item></Get>"
            )
        body = (
            f"<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><VerDTD>1.2</VerDTD>"
            f"<VerProto>DM/1.2</VerProto><SessionID>{session}</SessionID><MsgID>{msg_id}</MsgID>"
            f"<Target><LocURI>{device_id}</LocURI></Target><Source><LocURI>{target}</LocURI>"
            f"</Source></SyncHdr><SyncBody>{''.join(out)}<Final/></SyncBody></SyncML>"
        )
        return web.Response(body=body.encode(), content_type=CONTENT_TYPE)

    # -- pushes -----------------------------------------------------------------------------
    async def push(self, request: web.Request) -> web.Response:
        device = self.devices.get(request.match_info["device_id"])
        if device is None or device.channel is None or device.gone:
            return web.json_response({"pushed": False, "why": "no usable channel"}, status=409)
        status, retry_after = await self._send(device)
        if retry_after is not None:  # 406/503: try again once Retry-After has passed
            self.retries.append(asyncio.create_task(self._retry_later(device, retry_after)))
        return web.json_response({"pushed": status == 200, "wns_status": status})

    async def _send(self, device: Device) -> tuple[int, int | None]:
        assert device.channel is not None
        status, retry_after = await self._post(device.channel, await self._token())
        if status == 401:  # the token was refused: one refresh, one resend
            status, retry_after = await self._post(device.channel, await self._token(force=True))
        if status in (404, 410):
            device.gone, device.needs_pfn = True, True
        return status, retry_after if status in (406, 503) else None

    async def _retry_later(self, device: Device, seconds: int) -> None:
        await asyncio.sleep(seconds)
        if device.channel is not None and not device.gone:
            await self._send(device)

    async def _token(self, *, force: bool = False) -> str:
        now = datetime.now(UTC)
        if not force and self.token and self.token_expires and now < self.token_expires:
            return self.token
        assert self.http is not None
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scope": "notify.windows.com",
        }
        async with self.http.post(self.token_url, data=form) as resp:
            answer = json.loads(await resp.text())
        self.token = answer["access_token"]
        lifetime = timedelta(seconds=int(answer.get("expires_in", 86400)))
        self.token_expires = now + lifetime - timedelta(minutes=5)
        return self.token

    async def _post(self, channel: str, token: str) -> tuple[int, int | None]:
        assert self.http is not None
        headers = {
            "Authorization": f"Bearer {token}",
            "X-WNS-Type": "wns/raw",
            "Content-Type": "application/octet-stream",
            "X-WNS-Cache-Policy": "cache",
        }
        async with self.http.post(channel, data=b"sync", headers=headers) as resp:
            wait = resp.headers.get("Retry-After")
            return resp.status, int(wait) if wait and wait.isdigit() else None


def _status(cmd_id: int, msg_ref: str | None, cmd_ref: str | None, cmd: str) -> str:
    return (
        f"<Status><CmdID>{cmd_id}</CmdID><MsgRef>{msg_ref}</MsgRef><CmdRef>{cmd_ref}</CmdRef>"
        f"<Cmd>{cmd}</Cmd><Data>200</Data></Status>"
    )
