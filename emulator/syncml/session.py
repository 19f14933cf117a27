"""The client side of an OMA-DM session: message numbering, server-reply rules, answers.

Owns: MsgID numbering from 1 [MSMDM 2.2.3.6]; checking each server reply against what the
device sent (Status for the SyncHdr first, CmdIDs present, unique and non-zero, MsgRef and
CmdRef pointing at what was sent, one Status per device command [MSMDM 2.2.6.1]) and recording
every violation as the server's fault; building the device's answer (Status for the SyncHdr,
one Status per server command in order, Results for each successful Get [MSMDM 3.1.5.2],
400 for a command without a usable CmdID [OMADM]); ending when the server sends only Status.
Must not: execute commands (the CSP tree does, through ``execute``) or do I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from emulator.syncml.model import (
    Atomic,
    Command,
    Get,
    Item,
    Message,
    Results,
    Sequence,
    Status,
    SyncHdr,
)

MAX_ROUND_TRIPS = 32  # a server still sending commands after this many replies never ends


@dataclass(frozen=True, slots=True)
class Outcome:
    """What executing one server command gave: status code, Results items for a Get, and for
    Atomic/Sequence the outcomes of the inner commands, in order."""

    status: str
    items: tuple[Item, ...] = ()
    inner: tuple[Outcome, ...] = ()


Execute = Callable[[Command], Outcome]


@dataclass(frozen=True, slots=True)
class ServerFault:
    """A rule the server's message broke: which message, which rule, what exactly."""

    msg_id: str  # the server message's MsgID
    rule: str  # short id, e.g. "synchdr-status-first"
    detail: str


@dataclass
class ClientSession:
    """One OMA-DM session as the device runs it."""

    session_id: str
    device_id: str
    server_url: str
    next_msg_id: int = 1
    last_sent: Message | None = None
    faults: list[ServerFault] = field(default_factory=list)
    ended: bool = False
    round_trips: int = 0

    def _header(self) -> SyncHdr:
        header = SyncHdr(
            session_id=self.session_id,
            msg_id=str(self.next_msg_id),
            target=self.server_url,
            source=self.device_id,
        )
        self.next_msg_id += 1
        return header

    def start(self, commands: tuple[Command, ...]) -> Message:
        """Package 1: the device's opening message (Alerts, DevInfo Replace ...)."""
        message = Message(self._header(), commands)
        self.last_sent = message
        return message

    def receive(self, reply: Message, execute: Execute) -> Message | None:
        """Take the server's reply; return the device's answer, or None when the session ends."""
        assert self.last_sent is not None, "start() the session first"
        self.round_trips += 1
        self.faults.extend(check_reply(self.last_sent, reply))
        if not any(not isinstance(c, Status | Results) for c in reply.commands):
            self.ended = True  # Status-only reply: the session is over [MSMDM 2.2.6.1]
            return None
        if self.round_trips >= MAX_ROUND_TRIPS:
            self.faults.append(
                ServerFault(
                    reply.header.msg_id,
                    "session-never-ends",
                    f"still sending commands after {self.round_trips} replies",
                )
            )
            self.ended = True
            return None
        answer = Message(self._header(), tuple(self._answer(reply, execute)))
        self.last_sent = answer
        return answer

    def _answer(self, reply: Message, execute: Execute) -> list[Command]:
        msg_ref = reply.header.msg_id
        out: list[Command] = []
        ids = _Ids()
        out.append(Status(ids.next(), msg_ref, "0", "SyncHdr", "200"))
        for cmd in reply.commands:
            if isinstance(cmd, Status | Results):
                continue  # the server's own Status/Results are not answered
            self._answer_one(cmd, msg_ref, execute, ids, out)
        return out

    def _answer_one(
        self, cmd: Command, msg_ref: str, execute: Execute, ids: _Ids, out: list[Command]
    ) -> None:
        name = type(cmd).__name__
        if not _usable_id(cmd.cmd_id):
            out.append(Status(ids.next(), msg_ref, cmd.cmd_id or "", name, "400"))
            return
        assert cmd.cmd_id is not None
        outcome = execute(cmd)
        out.append(Status(ids.next(), msg_ref, cmd.cmd_id, name, outcome.status))
        if isinstance(cmd, Atomic | Sequence):
            for inner, result in zip(cmd.commands, outcome.inner, strict=False):
                if inner.cmd_id is not None:
                    out.append(
                        Status(
                            ids.next(), msg_ref, inner.cmd_id, type(inner).__name__, result.status
                        )
                    )
                    if isinstance(inner, Get) and result.status == "200":
                        out.append(Results(ids.next(), msg_ref, inner.cmd_id, result.items))
        elif isinstance(cmd, Get) and outcome.status == "200":
            out.append(Results(ids.next(), msg_ref, cmd.cmd_id, outcome.items))


class _Ids:
    """CmdIDs of a message the device writes: "1", "2", ... (unique, never "0")."""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return str(self.n)


def _usable_id(cmd_id: str | None) -> bool:
    return bool(cmd_id) and cmd_id != "0"


def walk(commands: Iterable[Command]) -> list[Command]:
    """Commands in order, with those inside Atomic and Sequence after their container."""
    out: list[Command] = []
    for cmd in commands:
        out.append(cmd)
        if isinstance(cmd, Atomic | Sequence):
            out.extend(walk(cmd.commands))
    return out


def check_reply(sent: Message, reply: Message) -> list[ServerFault]:
    """Every rule of [MSMDM 2.2.6.1] / conformance E2 the server's reply breaks."""
    faults: list[ServerFault] = []
    mid = reply.header.msg_id

    def fault(rule: str, detail: str) -> None:
        faults.append(ServerFault(mid, rule, detail))

    if reply.header.session_id != sent.header.session_id:
        fault(
            "session-id",
            f"SessionID {reply.header.session_id!r} is not the device's {sent.header.session_id!r}",
        )
    first = reply.commands[0] if reply.commands else None
    if not (isinstance(first, Status) and first.cmd == "SyncHdr" and first.cmd_ref == "0"):
        fault("synchdr-status-first", "the first command is not the Status for the SyncHdr")
    seen: set[str] = set()
    for cmd in walk(reply.commands):
        if not _usable_id(cmd.cmd_id):
            fault("cmdid", f"{type(cmd).__name__} has CmdID {cmd.cmd_id!r} (missing or zero)")
        elif cmd.cmd_id in seen:
            fault("cmdid-unique", f"CmdID {cmd.cmd_id} is used twice")
        else:
            seen.add(cmd.cmd_id)  # type: ignore[arg-type]
    sent_ids = {c.cmd_id: type(c).__name__ for c in walk(sent.commands)}
    statused: list[str] = []
    for status in (c for c in reply.commands if isinstance(c, Status)):
        if status.msg_ref != sent.header.msg_id:
            fault(
                "msgref",
                f"Status {status.cmd_id} has MsgRef {status.msg_ref!r}, the device "
                f"sent MsgID {sent.header.msg_id!r}",
            )
        if status.cmd_ref == "0":
            continue
        if status.cmd_ref not in sent_ids:
            fault(
                "cmdref",
                f"Status {status.cmd_id} refers to CmdRef {status.cmd_ref}, which "
                "the device did not send",
            )
        elif sent_ids[status.cmd_ref] != status.cmd:
            fault(
                "cmdref",
                f"Status {status.cmd_id} says Cmd {status.cmd} for CmdRef "
                f"{status.cmd_ref}, a {sent_ids[status.cmd_ref]}",
            )
        statused.append(status.cmd_ref)
    expected = [
        c.cmd_id
        for c in sent.commands
        if not isinstance(c, Status | Results) and c.cmd_id is not None
    ]
    for cmd_id in expected:
        count = statused.count(cmd_id)
        if count != 1:
            fault(
                "one-status-per-command",
                f"{count} Status for the device's {sent_ids[cmd_id]} {cmd_id}, expected 1",
            )
    return faults
