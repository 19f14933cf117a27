"""The SyncML DM 1.2 message model as frozen dataclasses.

Owns: the shapes of SyncHdr, the commands Windows uses (Alert, Get, Add, Replace, Delete,
Exec, Atomic, Sequence, Status, Results), Item and Meta [MSMDM 2.2][OMADM].
Must not: parse, serialize or judge session rules (``codec.py`` and the session do).

Identifiers (SessionID, MsgID, CmdID, MsgRef, CmdRef) are kept as the text the peer sent:
the codec does not reject a missing or zero CmdID, so the session can answer it the way
Windows does (Status 400 for that command [OMADM]) instead of failing the whole message.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Meta:
    """``<Meta>`` with the ``syncml:metinf`` children Windows uses [MSMDM 2.2.5]."""

    format: str | None = None  # chr | int | bool | node | b64 ... [DMC]
    type: str | None = None  # e.g. text/plain, or an Alert 1224 type


@dataclass(frozen=True, slots=True)
class Item:
    """``<Item>``: Target/Source LocURI, optional Meta, Data last [MSMDM 2.2.5]."""

    target: str | None = None  # Target/LocURI
    source: str | None = None  # Source/LocURI
    meta: Meta | None = None
    data: str | None = None


@dataclass(frozen=True, slots=True)
class SyncHdr:
    """``<SyncHdr>``: VerDTD, VerProto, SessionID, MsgID, Target, Source, Meta? [MSMDM 2.2.2]."""

    session_id: str
    msg_id: str
    target: str  # client->server: server URL; server->client: device id
    source: str  # client->server: device id; server->client: server URL
    ver_dtd: str = "1.2"
    ver_proto: str = "DM/1.2"
    meta: Meta | None = None  # ignored by the device [OMADM]


@dataclass(frozen=True, slots=True)
class Alert:
    cmd_id: str | None
    data: str  # alert code: 1201 client-initiated, 1224 client event ... [MSMDM 2.2.7.2]
    items: tuple[Item, ...] = ()


@dataclass(frozen=True, slots=True)
class Get:
    cmd_id: str | None
    items: tuple[Item, ...] = ()
    meta: Meta | None = None


@dataclass(frozen=True, slots=True)
class Add:
    cmd_id: str | None
    items: tuple[Item, ...] = ()
    meta: Meta | None = None


@dataclass(frozen=True, slots=True)
class Replace:
    cmd_id: str | None
    items: tuple[Item, ...] = ()
    meta: Meta | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    cmd_id: str | None
    items: tuple[Item, ...] = ()
    meta: Meta | None = None


@dataclass(frozen=True, slots=True)
class Exec:
    cmd_id: str | None
    items: tuple[Item, ...] = ()
    meta: Meta | None = None


@dataclass(frozen=True, slots=True)
class Atomic:
    """All-or-nothing group; no nested Atomic, no Get inside [OMADM]."""

    cmd_id: str | None
    commands: tuple[Command, ...] = ()


@dataclass(frozen=True, slots=True)
class Sequence:
    """Commands executed in order [OMADM]."""

    cmd_id: str | None
    commands: tuple[Command, ...] = ()


@dataclass(frozen=True, slots=True)
class Status:
    """``(CmdID, MsgRef, CmdRef, Cmd, Data, Item*, TargetRef?, SourceRef?)`` [MSMDM 2.2.6.1]."""

    cmd_id: str | None
    msg_ref: str
    cmd_ref: str  # "0" for the SyncHdr
    cmd: str  # SyncHdr | Alert | Get | Add | ...
    data: str  # status code: 200, 212, 404, 405, 418, 500 ... [OMADM]
    items: tuple[Item, ...] = ()
    target_ref: str | None = None
    source_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Results:
    """``(CmdID, MsgRef, CmdRef, Cmd=Get, Meta?, Item+)`` [MSMDM 3.1.5.1.6]."""

    cmd_id: str | None
    msg_ref: str
    cmd_ref: str
    items: tuple[Item, ...]
    cmd: str = "Get"
    meta: Meta | None = None


Command = Alert | Get | Add | Replace | Delete | Exec | Atomic | Sequence | Status | Results
#: Commands whose children are Items (the rest are containers, Status or Results).
ITEM_COMMANDS = (Get, Add, Replace, Delete, Exec)


@dataclass(frozen=True, slots=True)
class Message:
    """One SyncML message: header, body commands in order, and whether Final closes it."""

    header: SyncHdr
    commands: tuple[Command, ...] = ()
    final: bool = True
