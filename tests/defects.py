"""Reference-server variants, each with exactly one defect a conformance check must catch.

Each entry is (check id, what is wrong, factory, checks whose verdict the defect changes by
necessity). A factory builds the reference server and swaps in a part that misbehaves in one
way, the way a vendor's server might.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict

from emulator.clock import HOUR, SECOND, Clock
from emulator.mdm.config import MdmConfig
from emulator.mdm.omadm import OmaDmEndpoint, ServerSession, _Writer
from emulator.mdm.pusher import Pusher
from emulator.mdm.server import ReferenceServer
from emulator.mdm.store import DeviceRow, PushRow
from emulator.mdm.wns_sender import PushResult, WnsSender
from emulator.syncml import Add, Command, Get, Item, Message, Replace, Status

Factory = Callable[[MdmConfig, Clock, AbstractResolver], ReferenceServer]


def _server(config: MdmConfig, clock: Clock, resolver: AbstractResolver) -> ReferenceServer:
    return ReferenceServer(config, clock, resolver=resolver)


def with_sender(cls: type[WnsSender]) -> Factory:
    def make(config: MdmConfig, clock: Clock, resolver: AbstractResolver) -> ReferenceServer:
        server = _server(config, clock, resolver)
        old = server.pusher.sender
        sender = cls(
            old.session,
            clock,
            token_url=old.token_url,
            client_id=old.client_id,
            client_secret=old.client_secret,
            trusted_hosts=old.trusted_hosts,
            ttl_s=old.ttl_s,
        )
        server.pusher.sender = sender
        return server

    return make


def with_pusher(cls: type[Pusher]) -> Factory:
    def make(config: MdmConfig, clock: Clock, resolver: AbstractResolver) -> ReferenceServer:
        server = _server(config, clock, resolver)
        p = server.pusher
        server.pusher = cls(p.config, p.store, p.clock, p.sender, p.log)
        return server

    return make


def with_endpoint(cls: type[OmaDmEndpoint]) -> Factory:
    def make(config: MdmConfig, clock: Clock, resolver: AbstractResolver) -> ReferenceServer:
        server = _server(config, clock, resolver)
        server.endpoint = cls(config, server.store, server.log)
        return server

    return make


def with_config(**changes: Any) -> Factory:
    def make(config: MdmConfig, clock: Clock, resolver: AbstractResolver) -> ReferenceServer:
        return _server(dataclasses.replace(config, **changes), clock, resolver)

    return make


# -- A ----------------------------------------------------------------------------------------
class OldScopeFirst(WnsSender):
    """A1: asks for a token with the retired scope s.notify.live.net first, then the right one."""

    tried = False

    def token_form(self) -> dict[str, str]:
        form = super().token_form()
        if not self.tried:
            self.tried = True
            form["scope"] = "s.notify.live.net"
        return form

    async def token(self, *, force: bool = False) -> tuple[str, int]:
        try:
            return await super().token(force=force)
        except Exception:
            return await super().token(force=True)


class ThreeHourTokens(WnsSender):
    """A2: keeps a token only three hours, though it lives 24."""

    async def token(self, *, force: bool = False) -> tuple[str, int]:
        if self._token and self.clock.now() > self._token_expires - 21 * HOUR:
            force = True
        return await super().token(force=force)


class LoopsOn401(WnsSender):
    """A3: resends with the refused token twice more before refreshing."""

    async def _post(self, uri: str, payload: bytes, token: str) -> tuple[int, CIMultiDict[str]]:
        status, headers = await super()._post(uri, payload, token)
        for _ in range(2):
            if status != 401:
                break
            status, headers = await super()._post(uri, payload, token)
        return status, headers


# -- B ----------------------------------------------------------------------------------------
class UppercaseEscapes(WnsSender):
    """B1: "normalizes" the ChannelURI's percent-escapes to upper case."""

    async def _post(self, uri: str, payload: bytes, token: str) -> tuple[int, CIMultiDict[str]]:
        import re

        fixed = re.sub(r"%[0-9a-f]{2}", lambda m: m.group(0).upper(), uri)
        return await super()._post(fixed, payload, token)


class RetryAs(Pusher):
    """Retries go out through a sender in another mode (set by the subclasses)."""

    mode = ""

    async def push(self, device_id: str, reason: str) -> PushRow:
        self.sender.retry_mode = self.mode if reason == "retry" else ""  # type: ignore[attr-defined]
        return await super().push(device_id, reason)


class ModalSender(WnsSender):
    retry_mode = ""

    def push_headers(self, token: str) -> dict[str, str]:
        headers = super().push_headers(token)
        if self.retry_mode == "text":
            headers["Content-Type"] = "text/plain"
        if self.retry_mode == "nocache":
            del headers["X-WNS-Cache-Policy"]
        return headers

    async def _post(self, uri: str, payload: bytes, token: str) -> tuple[int, CIMultiDict[str]]:
        if self.retry_mode == "empty":
            payload = b""
        return await super()._post(uri, payload, token)


class RetryText(RetryAs):
    mode = "text"  # B2: a retry sent as text/plain


class RetryEmpty(RetryAs):
    mode = "empty"  # B3: a retry with an empty body


def retry_defect(pusher: type[RetryAs]) -> Factory:
    def make(config: MdmConfig, clock: Clock, resolver: AbstractResolver) -> ReferenceServer:
        server = with_sender(ModalSender)(config, clock, resolver)
        p = server.pusher
        server.pusher = pusher(p.config, p.store, p.clock, p.sender, p.log)
        return server

    return make


class NoCachePolicy(WnsSender):
    """B4: no X-WNS-Cache-Policy (an offline device never gets the tap)."""

    def push_headers(self, token: str) -> dict[str, str]:
        headers = super().push_headers(token)
        del headers["X-WNS-Cache-Policy"]
        return headers


class TrustsAnyHost(WnsSender):
    """B5: pushes wherever the device says."""

    def trusted(self, channel_uri: str) -> bool:
        return True


# -- C ----------------------------------------------------------------------------------------
class NoPfnWhenChannel(OmaDmEndpoint):
    """C1: trusts a device that reports a channel in its first session and never sets its
    PFN; devices without one get it in their second session."""

    def _provision(self, session: ServerSession, row: DeviceRow, now: int) -> None:
        if row.sessions == 1 and row.pfn_state == "none":
            row.pfn_state = "deferred"
        super()._provision(session, row, now)

    def _on_results(self, session: ServerSession, row: DeviceRow, res: Any, now: int) -> None:
        super()._on_results(session, row, res, now)
        channel_read = any((i.source or "").endswith("/Push/ChannelURI") for i in res.items)
        if row.pfn_state == "deferred" and channel_read:
            row.pfn_state = "set" if row.channel_uri else "none"


class AddAfter418(OmaDmEndpoint):
    """C2: takes a 418 on Add PFN as "try again later" and Adds again next session."""

    def _on_status(self, session: ServerSession, row: DeviceRow, status: Status, now: int) -> None:
        purpose = session.purposes.get((status.msg_ref, status.cmd_ref), ("", None))[0]
        if purpose == "pfn-add" and status.data == "418":
            row.pfn_state = "none"
            return
        super()._on_status(session, row, status, now)


class QueryOnlyWhenIdle(OmaDmEndpoint):
    """C3: skips the ChannelURI query in sessions that carry queued commands."""

    def _send_commands(
        self, session: ServerSession, row: DeviceRow, out: _Writer, now: int
    ) -> bool:
        if self.store.commands(row.device_id, "queued"):
            session.follow_ups = [p for p in session.follow_ups if p[0] != "channel-get"]
        return super()._send_commands(session, row, out, now)


class FirstChannelForever(OmaDmEndpoint):
    """C4: keeps the first ChannelURI a device reported."""

    def _channel_reported(self, row: DeviceRow, uri: str, now: int) -> None:
        if row.channel_uri and row.channel_state == "active" and uri:
            return
        super()._channel_reported(row, uri, now)


class MixedCasePfn(OmaDmEndpoint):
    """C9: sends the PFN as the Store spells it, with upper-case letters."""

    def _pfn_command(self, verb: type[Add | Replace]) -> Command:
        cmd = super()._pfn_command(verb)
        item = dataclasses.replace(cmd.items[0], data=self.config.app.pfn)
        return dataclasses.replace(cmd, items=(item,))


class ChannelReadFirst(OmaDmEndpoint):
    """C10: reads the ChannelURI before it sets the PFN, so it learns the new channel only
    in a later session."""

    def _send_commands(
        self, session: ServerSession, row: DeviceRow, out: _Writer, now: int
    ) -> bool:
        planned = session.follow_ups
        if any(purpose.startswith("pfn-") for purpose, _ in planned):
            for purpose, cmd in planned:
                if purpose == "channel-get":
                    self._emit(session, out, purpose, None, cmd)
            session.follow_ups = [p for p in planned if p[0] != "channel-get"]
        return super()._send_commands(session, row, out, now)


class Ignores(Pusher):
    """Treats some WNS "stop" statuses as if the push had been delivered."""

    ignored: tuple[int, ...] = ()

    def _outcome(self, row: DeviceRow, uri: str, reason: str, result: PushResult) -> PushRow:
        if result.status in self.ignored:
            result = dataclasses.replace(result, action="delivered")
        return super()._outcome(row, uri, reason, result)


class Ignores410(Ignores):
    ignored = (410,)  # C5


class Ignores404(Ignores):
    ignored = (404,)  # C8


class NoResetAfterGone(OmaDmEndpoint):
    """C6: marks a 410 channel dead but never sets the PFN again (age resets stay)."""

    def _reset_reason(self, row: DeviceRow, now: int) -> str | None:
        reason = super()._reset_reason(row, now)
        return reason if reason == "age" else None


class NoProactiveReset(OmaDmEndpoint):
    """C7: no PFN reset for builds that may fail to renew."""

    def _reset_reason(self, row: DeviceRow, now: int) -> str | None:
        reason = super()._reset_reason(row, now)
        return None if reason == "age" else reason


# -- D ----------------------------------------------------------------------------------------
class IgnoresRetryAfter(Pusher):
    """D1: resends a throttled push after one second, whatever Retry-After says."""

    def _outcome(self, row: DeviceRow, uri: str, reason: str, result: PushResult) -> PushRow:
        if result.status == 406:
            result = dataclasses.replace(result, retry_at=self.clock.now() + SECOND)
            out = super()._outcome(row, uri, reason, result)
            row.retry_at = self.clock.now() + SECOND
            self._schedule(row)
            return out
        return super()._outcome(row, uri, reason, result)


class NeverRetries5xx(Pusher):
    """D2: gives up on the first 500/503."""

    def _outcome(self, row: DeviceRow, uri: str, reason: str, result: PushResult) -> PushRow:
        if result.status in (500, 503):
            result = dataclasses.replace(result, action="fix")
        return super()._outcome(row, uri, reason, result)


class RetriesForbidden(Pusher):
    """D3: retries a 403 like a 503."""

    def _outcome(self, row: DeviceRow, uri: str, reason: str, result: PushResult) -> PushRow:
        if result.status == 403:
            result = dataclasses.replace(result, action="retry")
        out = super()._outcome(row, uri, reason, result)
        if result.status == 403 and row.retry_at is not None:
            row.retry_at = self.clock.now() + SECOND
            self._schedule(row)
        return out


# -- E ----------------------------------------------------------------------------------------
def stops_polling(config: MdmConfig, clock: Clock, resolver: AbstractResolver) -> ReferenceServer:
    """E1: "push replaces polling": every Poll interval and count set to 0."""
    zeros = tuple((name, "0") for name, _ in config.poll)
    return _server(dataclasses.replace(config, poll=zeros), clock, resolver)


class SyncHdrStatusLast(OmaDmEndpoint):
    """E2: puts the Status for the SyncHdr last instead of first."""

    def handle(
        self,
        body: bytes,
        authorization: str,
        origin: str | None,
        now: int,
        client_cert: str | None = None,
    ) -> bytes:
        from emulator.syncml import parse, serialize

        reply = parse(super().handle(body, authorization, origin, now, client_cert))
        first, *rest = reply.commands
        return serialize(Message(reply.header, (*rest, first), reply.final))


class BatchesCommands(OmaDmEndpoint):
    """E3: sends queued commands only once they are an hour old."""

    def _send_commands(
        self, session: ServerSession, row: DeviceRow, out: _Writer, now: int
    ) -> bool:
        held = [c for c in self.store.commands(row.device_id, "queued") if now - c.queued_at < HOUR]
        for c in held:
            self.store.mark_sent(c.id, "held", now)
        try:
            return super()._send_commands(session, row, out, now)
        finally:
            if held:
                self.store.requeue_unanswered("held", row.device_id)


class NeverEnds(OmaDmEndpoint):
    """E4: keeps every device's first session going with one more Get."""

    def _send_commands(
        self, session: ServerSession, row: DeviceRow, out: _Writer, now: int
    ) -> bool:
        more = super()._send_commands(session, row, out, now)
        if session.session_id == "1":
            self._emit(session, out, "extra", None, Get(None, (Item(target="./DevInfo/Mod"),)))
            return True
        return more


#: check id -> (defect, factory, checks whose verdict changes by necessity)
DEFECTS: dict[str, tuple[str, Factory, dict[str, str]]] = {
    "A1": ("token request with the retired scope first", with_sender(OldScopeFirst), {}),
    "A2": ("a new token every three hours", with_sender(ThreeHourTokens), {}),
    "A3": ("resends twice with a refused token", with_sender(LoopsOn401), {}),
    "B1": ("percent-escapes upper-cased", with_sender(UppercaseEscapes), {}),
    "B2": ("retries sent as text/plain", retry_defect(RetryText), {}),
    "B3": ("retries sent with an empty body", retry_defect(RetryEmpty), {}),
    "B4": ("no X-WNS-Cache-Policy", with_sender(NoCachePolicy), {}),
    "B5": ("pushes to any host", with_sender(TrustsAnyHost), {}),
    # a server that never sends Add cannot be judged on 418
    "C1": (
        "no PFN for a device with a channel",
        with_endpoint(NoPfnWhenChannel),
        {"C2": "skipped"},
    ),
    "C2": ("Add PFN again after 418", with_endpoint(AddAfter418), {}),
    "C3": ("no ChannelURI query with queued commands", with_endpoint(QueryOnlyWhenIdle), {}),
    "C4": ("keeps the first ChannelURI", with_endpoint(FirstChannelForever), {}),
    # a server that ignores a 410 does not know to set the PFN again either
    "C5": ("keeps pushing after 410", with_pusher(Ignores410), {"C6": "warning"}),
    "C6": ("no PFN reset after 410", with_endpoint(NoResetAfterGone), {}),
    "C7": ("no proactive PFN reset", with_endpoint(NoProactiveReset), {}),
    "C8": ("keeps pushing after 404", with_pusher(Ignores404), {}),
    "C9": ("PFN with upper-case letters", with_endpoint(MixedCasePfn), {}),
    "C10": ("reads the ChannelURI before setting the PFN", with_endpoint(ChannelReadFirst), {}),
    "D1": ("ignores Retry-After on 406", with_pusher(IgnoresRetryAfter), {}),
    "D2": ("never retries 5xx", with_pusher(NeverRetries5xx), {}),
    "D3": ("retries 403", with_pusher(RetriesForbidden), {}),
    "D4": ("no push rate limit", with_config(pushes_per_hour=1000), {}),
    "E1": ("disables polling", stops_polling, {}),
    "E2": ("Status for the SyncHdr last", with_endpoint(SyncHdrStatusLast), {}),
    "E3": ("holds queued commands an hour", with_endpoint(BatchesCommands), {}),
    "E4": ("never ends the first session", with_endpoint(NeverEnds), {}),
}
