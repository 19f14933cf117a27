"""The reference server's OMA-DM endpoint: one SyncML message in, the server's reply out.

Owns: admitting a device (optional device list, optional bearer token), the server side of a
session (Status for the SyncHdr first, one Status per device command in order, unique
non-zero CmdIDs [MSMDM 2.2.6.1]; a Status-only reply ends the session), and the management
each session carries:

* package 1: DevInfo stored [DEVINFO]; PFN set with Add at first, Replace after a 418 and for
  every later reset [OMADM][PUSH] (conformance C1, C2); the poll schedule once (E1); SwV read
  once (to know builds that may fail to renew); queued admin commands; and a Get of
  ``Push/ChannelURI`` and ``Push/Status`` in every session (C3) [PUSH][KI], after any PFN
  write, so the session that set the PFN reads the new channel [WP81BLOG] (C10);
* the PFN is set again when the channel was refused (404/410, C6), reported expired
  (Push/Status 5), or, on 8.1/1511 builds, has aged past the proactive-reset age (C7)
  [KB3170699];
* the newest ChannelURI a device reports replaces the stored one (C4).

Must not: do I/O or read the clock (``now`` comes in), or send pushes (``pusher.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from emulator.mdm.config import MdmConfig, bearer_problem, renewal_may_fail
from emulator.mdm.store import DeviceRow, MdmStore
from emulator.syncml import (
    Add,
    Command,
    Delete,
    Exec,
    Get,
    Item,
    Message,
    Meta,
    Replace,
    Results,
    Status,
    SyncHdr,
    SyncMLError,
    parse,
    serialize,
)

VERBS: dict[str, type[Get | Add | Replace | Delete | Exec]] = {
    "Get": Get,
    "Add": Add,
    "Replace": Replace,
    "Delete": Delete,
    "Exec": Exec,
}
MAX_DEVICE_ID = 256  # DevId is a GUID on Windows [DEVINFO]; anything longer is not a device
MAX_SERVER_MESSAGES = 8  # a session this server runs never needs more (E4)


class Refused(Exception):
    """A request the endpoint will not serve: its HTTP status and the reason sent back."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class ServerSession:
    """One open session, kept between the device's messages."""

    device_id: str
    session_id: str
    server_url: str  # the Target LocURI the device addressed (our Source in replies)
    last_seen: int
    messages: int = 0  # replies sent so far
    #: (our MsgID, our CmdID) -> (why we sent it, admin command id): read back from the
    #: device's Status MsgRef/CmdRef
    purposes: dict[tuple[str, str], tuple[str, int | None]] = field(default_factory=dict)
    follow_ups: list[tuple[str, Command]] = field(default_factory=list)  # for the next reply


class _Writer:
    """CmdIDs of one server message: "1", "2" ... (unique, never "0")."""

    def __init__(self) -> None:
        self.n = 0
        self.commands: list[Command] = []

    def next_id(self) -> str:
        self.n += 1
        return str(self.n)


class OmaDmEndpoint:
    def __init__(self, config: MdmConfig, store: MdmStore, log: Any) -> None:
        self.config = config
        self.store = store
        self.log = log  # structlog logger bound to the server's clock
        self.sessions: dict[tuple[str, str], ServerSession] = {}
        self._next_sweep = 0
        #: served over TLS: every request must come with the certificate issued to its device
        self.require_client_cert = False
        #: devices allowed to enroll (None: any); the admin API adds to it
        self.allowed: set[str] | None = (
            None if config.allowed_devices is None else set(config.allowed_devices)
        )

    # -- the one entry point ------------------------------------------------------------
    def handle(
        self,
        body: bytes,
        authorization: str,
        origin: str | None,
        now: int,
        client_cert: str | None = None,
    ) -> bytes:
        """Answer one client message; raises :class:`Refused` for a request not served.
        ``client_cert``: the thumbprint of the TLS client certificate, if one came."""
        try:
            msg = parse(body)
        except SyncMLError as exc:
            raise Refused(400, f"malformed SyncML: {exc}") from None
        device_id = msg.header.source
        self._admit(device_id, authorization, client_cert)
        self._sweep(now)
        key = (device_id, msg.header.session_id)
        if msg.header.msg_id == "1":
            session = self._open(msg, origin, now)
        elif (found := self.sessions.get(key)) is not None:
            session = found
        else:
            raise Refused(
                400,
                f"session {msg.header.session_id} of device {device_id} is not open here: "
                f"MsgID {msg.header.msg_id} without a MsgID 1 (start a new session)",
            )
        session.last_seen = now
        row = self.store.devices[device_id]
        out = _Writer()
        out.commands.append(Status(out.next_id(), msg.header.msg_id, "0", "SyncHdr", "200"))
        for cmd in msg.commands:
            if isinstance(cmd, Status):
                self._on_status(session, row, cmd, now)
            elif isinstance(cmd, Results):
                self._on_results(session, row, cmd, now)
            else:
                name = type(cmd).__name__
                out.commands.append(
                    Status(out.next_id(), msg.header.msg_id, cmd.cmd_id or "", name, "200")
                )
        if msg.header.msg_id == "1":
            self._provision(session, row, now)
        ended = not self._send_commands(session, row, out, now)
        session.messages += 1
        self.store.save(row)
        reply = Message(
            SyncHdr(msg.header.session_id, str(session.messages), device_id, session.server_url),
            tuple(out.commands),
        )
        if ended:
            self._close(key, session)
        return serialize(reply)

    # -- admission and session bookkeeping ----------------------------------------------
    def _admit(self, device_id: str, authorization: str, client_cert: str | None) -> None:
        if not device_id or len(device_id) > MAX_DEVICE_ID:
            raise Refused(400, "the SyncHdr Source LocURI (the device id) is empty or too long")
        if self.require_client_cert:  # the certificate issued at enrollment [MSMDM 3.1]
            if client_cert is None:
                raise Refused(403, "a client certificate issued at enrollment is required")
            owner = self.store.certificates.get(client_cert)
            if owner is None:
                raise Refused(403, f"client certificate {client_cert} was not issued here")
            if owner != device_id:
                raise Refused(
                    403, f"client certificate {client_cert} was issued to {owner}, not {device_id}"
                )
        if (problem := bearer_problem(authorization, self.config.device_token)) is not None:
            raise Refused(401, f"device authentication failed: {problem}")
        if self.allowed is not None and device_id not in self.allowed:
            raise Refused(403, f"device {device_id!r} is not on this server's device list")

    def _open(self, msg: Message, origin: str | None, now: int) -> ServerSession:
        device_id = msg.header.source
        row = self.store.device(device_id)
        if row is None:
            row = DeviceRow(device_id=device_id, first_seen=now)
            self.log.info("mdm.device_enrolled", device_id=device_id)
        row.sessions += 1
        row.last_session_at, row.last_session_id = now, msg.header.session_id
        row.last_origin = origin
        for cmd in msg.commands:
            if isinstance(cmd, Replace):
                for item in cmd.items:
                    leaf = (item.source or "").rpartition("/DevInfo/")[2]
                    if leaf in ("Man", "Mod", "DmV", "Lang"):
                        setattr(row, leaf.lower(), item.data)
        self.store.save(row)
        key = (device_id, msg.header.session_id)
        if (stale := self.sessions.pop(key, None)) is not None:
            self._close(key, stale)
        session = ServerSession(device_id, msg.header.session_id, msg.header.target, now)
        self.sessions[key] = session
        return session

    def _close(self, key: tuple[str, str], session: ServerSession) -> None:
        self.sessions.pop(key, None)
        if any(command_id is not None for _, command_id in session.purposes.values()):
            self.store.requeue_unanswered(session.session_id, session.device_id)

    def _sweep(self, now: int) -> None:
        """Forget sessions idle past the limit (their unanswered commands go out again)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.config.session_idle_ms // 2
        limit = now - self.config.session_idle_ms
        for key, session in list(self.sessions.items()):
            if session.last_seen < limit:
                self.log.info(
                    "mdm.session_abandoned", device_id=key[0], session_id=session.session_id
                )
                self._close(key, session)

    # -- what the device told us --------------------------------------------------------
    def _on_status(self, session: ServerSession, row: DeviceRow, status: Status, now: int) -> None:
        purpose, command_id = session.purposes.get((status.msg_ref, status.cmd_ref), ("", None))
        code = status.data
        if purpose == "pfn-add":
            if code == "200":
                self._pfn_set(row)
            elif code == "418":  # already exists: Replace, never Add again [OMADM] (C2)
                row.pfn_state = "replace_sent"
                session.follow_ups.append(("pfn-replace", self._pfn_command(Replace)))
                session.follow_ups.append(("channel-get", self._channel_get()))  # C10
            else:
                row.pfn_state = "none"
                self.log.warning("mdm.pfn_refused", device_id=row.device_id, status=code)
        elif purpose == "pfn-replace":
            if code == "200":
                self._pfn_set(row)
            else:
                self.log.warning("mdm.pfn_refused", device_id=row.device_id, status=code)
        elif purpose == "poll":
            row.poll_set = code == "200"
        elif purpose in VERBS and command_id is not None:
            # a successful Get is done once its Results arrive [MSMDM 3.1.5.2]
            self.store.mark_status(
                command_id, code, now, done=not (purpose == "Get" and code == "200")
            )

    def _pfn_set(self, row: DeviceRow) -> None:
        """The device accepted the PFN: it revokes its old channel and registers again
        (section 0), so nothing is pushed until it reports the new ChannelURI."""
        row.pfn_state = "set"
        row.push_status = None
        row.reset_reason = None
        row.channel_state = "none"
        row.clear_backoff()

    def _on_results(self, session: ServerSession, row: DeviceRow, res: Results, now: int) -> None:
        purpose, command_id = session.purposes.get((res.msg_ref, res.cmd_ref), ("", None))
        if purpose == "Get" and command_id is not None:
            data = "\n".join(item.data or "" for item in res.items)
            self.store.mark_result(command_id, data, now)
            return
        for item in res.items:
            source = item.source or ""
            if source.endswith("/Push/ChannelURI"):
                self._channel_reported(row, item.data or "", now)
            elif source.endswith("/Push/Status"):
                row.push_status = item.data
            elif source.endswith("/DevDetail/SwV"):
                row.swv = item.data

    def _channel_reported(self, row: DeviceRow, uri: str, now: int) -> None:
        if not uri or uri == row.channel_uri:
            if uri and row.channel_state == "none" and row.pfn_state == "set":
                row.channel_state = "active"  # the same URI, re-registered (extend)
            return
        row.channel_uri, row.channel_seen_at = uri, now
        row.channel_state, row.channel_gone_reason = "active", None
        row.clear_backoff()
        self.log.info("mdm.channel_stored", device_id=row.device_id, channel_uri=uri)

    # -- what we ask of the device ------------------------------------------------------
    def _pfn_command(self, verb: type[Add | Replace]) -> Command:
        item = Item(
            target=f"{self.config.push_node}/PFN",
            meta=Meta(format="chr", type="text/plain"),
            data=self.config.app.pfn.lower(),  # [WP81BLOG] "Convert ... to lower case" (C9)
        )
        return verb(None, (item,))

    def _reset_reason(self, row: DeviceRow, now: int) -> str | None:
        if row.pfn_state != "set":
            return None
        if row.channel_state == "gone":
            return row.channel_gone_reason or "gone"  # after 404/410 (C6)
        if row.push_status == "5":
            return "status-5"  # the device says its channel expired [DMC]
        age = now - row.channel_seen_at if row.channel_seen_at is not None else 0
        if (
            row.channel_state == "active"
            and renewal_may_fail(row.swv)
            and age >= self.config.proactive_reset_after_ms
        ):
            return "age"  # 8.1/1511 may not have renewed: set PFN before day 30 (C7)
        return None

    def _provision(self, session: ServerSession, row: DeviceRow, now: int) -> None:
        """Package 1's management: PFN, poll schedule, SwV, then the channel query."""
        plan = session.follow_ups
        if row.pfn_state in ("none", "add_sent"):
            row.pfn_state = "add_sent"
            plan.append(("pfn-add", self._pfn_command(Add)))
        elif row.pfn_state == "replace_sent":  # a 418 earlier, never confirmed: Replace (C2)
            plan.append(("pfn-replace", self._pfn_command(Replace)))
        elif (reason := self._reset_reason(row, now)) is not None:
            row.pfn_state, row.reset_reason = "replace_sent", reason
            self.log.info("mdm.pfn_reset", device_id=row.device_id, reason=reason)
            plan.append(("pfn-replace", self._pfn_command(Replace)))
        if not row.poll_set:
            items = tuple(
                Item(target=f"{self.config.poll_node}/{name}", meta=Meta(format="int"), data=v)
                for name, v in self.config.poll
            )
            plan.append(("poll", Replace(None, items)))
        if row.swv is None:
            plan.append(("swv", Get(None, (Item(target="./DevDetail/SwV"),))))
        plan.append(("channel-get", self._channel_get()))

    def _channel_get(self) -> Get:
        """Push/ChannelURI and Push/Status: in every session (C3), and after the PFN in the
        session that set it, which reads the new channel [WP81BLOG] (C10)."""
        push = self.config.push_node
        return Get(None, (Item(target=f"{push}/ChannelURI"), Item(target=f"{push}/Status")))

    def _send_commands(
        self, session: ServerSession, row: DeviceRow, out: _Writer, now: int
    ) -> bool:
        """Add this reply's commands; False when there are none (the session ends)."""
        if session.messages >= MAX_SERVER_MESSAGES:
            return False
        planned, session.follow_ups = session.follow_ups, []
        channel_get = [p for p in planned if p[0] == "channel-get"]
        for purpose, cmd in [p for p in planned if p[0] != "channel-get"]:
            self._emit(session, out, purpose, None, cmd)
        for queued in self.store.queued(row.device_id):
            verb = VERBS[queued.verb]
            meta = Meta(format=queued.format) if queued.format else None
            item = Item(target=queued.loc_uri, meta=meta, data=queued.data)
            self._emit(session, out, queued.verb, queued.id, verb(None, (item,)))
            self.store.mark_sent(queued.id, session.session_id, now)
        for purpose, cmd in channel_get:
            self._emit(session, out, purpose, None, cmd)
        return len(out.commands) > _status_count(out.commands)

    def _emit(
        self,
        session: ServerSession,
        out: _Writer,
        purpose: str,
        command_id: int | None,
        cmd: Command,
    ) -> None:
        cmd_id = out.next_id()
        session.purposes[(str(session.messages + 1), cmd_id)] = (purpose, command_id)
        out.commands.append(dataclasses.replace(cmd, cmd_id=cmd_id))


def _status_count(commands: list[Command]) -> int:
    return sum(1 for c in commands if isinstance(c, Status))
