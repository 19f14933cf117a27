"""The reference server's memory: devices, queued commands and push results, in SQLite.

Owns: the schema, one :class:`DeviceRow` per device (kept in memory and written through, so
reads cost nothing at fleet scale), the command queue and the push log. A file path keeps
everything across restarts (the ChannelURIs a device reported survive); ``":memory:"`` is for
tests and in-process runs.
Must not: decide anything (the OMA-DM endpoint and the pusher do) or read the clock.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, first_seen INTEGER NOT NULL, sessions INTEGER NOT NULL,
    last_session_at INTEGER, last_session_id TEXT, last_origin TEXT,
    man TEXT, mod TEXT, dmv TEXT, lang TEXT, swv TEXT,
    pfn_state TEXT NOT NULL, reset_reason TEXT, poll_set INTEGER NOT NULL,
    channel_uri TEXT, channel_seen_at INTEGER, channel_state TEXT NOT NULL,
    channel_gone_reason TEXT, push_status TEXT,
    retry_at INTEGER, push_attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, verb TEXT NOT NULL,
    loc_uri TEXT NOT NULL, data TEXT, format TEXT, state TEXT NOT NULL,
    queued_at INTEGER NOT NULL, sent_at INTEGER, session_id TEXT, status TEXT, result TEXT,
    done_at INTEGER
);
CREATE INDEX IF NOT EXISTS commands_queue ON commands (device_id, state);
CREATE TABLE IF NOT EXISTS pushes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, at INTEGER NOT NULL,
    channel_uri TEXT, reason TEXT NOT NULL, http_status INTEGER NOT NULL, wns_status TEXT,
    msg_id TEXT, action TEXT NOT NULL, description TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pushes_device ON pushes (device_id, at);
CREATE TABLE IF NOT EXISTS ca (
    id INTEGER PRIMARY KEY CHECK (id = 1), cert_pem TEXT NOT NULL, key_pem TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
    thumbprint TEXT PRIMARY KEY, device_id TEXT NOT NULL, issued_at INTEGER NOT NULL,
    enrolled_by TEXT
);
"""


@dataclass(slots=True)
class DeviceRow:
    device_id: str  # SyncHdr Source LocURI of its sessions (DevId)
    first_seen: int  # emulated ms of its first session
    sessions: int = 0  # sessions started (package 1 received)
    last_session_at: int | None = None
    last_session_id: str | None = None
    last_origin: str | None = None  # UserAgentOrigin of the last session, when sent
    man: str | None = None  # ./DevInfo/Man, Mod, DmV, Lang from package 1 [DEVINFO]
    mod: str | None = None
    dmv: str | None = None
    lang: str | None = None
    swv: str | None = None  # ./DevDetail/SwV, read once [DEVDETAIL]
    pfn_state: str = "none"  # none | add_sent | replace_sent | set
    reset_reason: str | None = None  # why the PFN must be set again: 410 | 404 | status-5 | age
    poll_set: bool = False  # the Poll schedule was accepted (200)
    channel_uri: str | None = None  # newest ChannelURI the device reported [PUSH]
    channel_seen_at: int | None = None  # when that URI was first reported
    channel_state: str = "none"  # none | active | gone (404/410: never send again)
    channel_gone_reason: str | None = None
    push_status: str | None = None  # newest Push/Status reported [DMC]
    retry_at: int | None = None  # no push to the channel before this (406/5xx Retry-After)
    push_attempts: int = 0  # sends of the current push so far (back-off exponent)

    def public(self) -> dict[str, Any]:
        return asdict(self)

    def clear_backoff(self) -> None:
        """A push went through, or the channel changed: no wait, no attempts counted."""
        self.retry_at, self.push_attempts = None, 0


def _insert(table: str, columns: tuple[str, ...], verb: str = "INSERT") -> str:
    """An INSERT naming ``columns`` (our dataclass fields, never user input)."""
    marks = ", ".join("?" for _ in columns)
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({marks})"


_DEVICE_FIELDS = tuple(f.name for f in fields(DeviceRow))
_INSERT_DEVICE = _insert("devices", _DEVICE_FIELDS, "INSERT OR REPLACE")


@dataclass(frozen=True, slots=True)
class CommandRow:
    id: int
    device_id: str
    verb: str  # Get | Add | Replace | Delete | Exec
    loc_uri: str
    data: str | None
    format: str | None
    state: str  # queued | sent | done
    queued_at: int
    sent_at: int | None
    session_id: str | None
    status: str | None  # the device's SyncML status code
    result: str | None  # Results data of a Get
    done_at: int | None

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PushRow:
    id: int
    device_id: str
    at: int
    channel_uri: str | None
    reason: str  # admin | command | retry | ...
    http_status: int  # 0: nothing was sent
    wns_status: str | None
    msg_id: str | None
    action: str  # delivered | dropped | stop | retry | fix | refused | no_channel ...
    description: str

    def public(self) -> dict[str, Any]:
        return asdict(self)


_PUSH_FIELDS = tuple(f.name for f in fields(PushRow) if f.name != "id")
_INSERT_PUSH = _insert("pushes", _PUSH_FIELDS)


class StoreError(Exception):
    """The database file cannot be used: the reason, in words a user acts on."""


def _check_path(path: str) -> None:
    if path == ":memory:":
        return
    where = Path(path)
    if where.is_dir():
        raise StoreError(f"{path} is a directory, not a database file")
    if not where.parent.is_dir():
        raise StoreError(f"{path}: the directory {where.parent} does not exist")


class MdmStore:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        _check_path(self.path)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            if self.path != ":memory:":
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self.devices: dict[str, DeviceRow] = {}
            for row in self.db.execute("SELECT * FROM devices ORDER BY device_id"):
                values = dict(row)
                values["poll_set"] = bool(values["poll_set"])
                self.devices[row["device_id"]] = DeviceRow(**values)
        except (sqlite3.Error, TypeError) as exc:  # TypeError: a devices table of other columns
            raise StoreError(f"{self.path} is not a dmemu mdm SQLite database ({exc})") from None
        #: enrollment certificates: thumbprint -> the DeviceID it was issued to
        self.certificates: dict[str, str] = {
            r[0]: r[1] for r in self.db.execute("SELECT thumbprint, device_id FROM certificates")
        }
        #: devices that may have queued commands: every session reply asks, so the common
        #: answer ("none") must not cost a query
        self._may_have_queued = {
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT device_id FROM commands WHERE state = 'queued'"
            )
        }

    def close(self) -> None:
        self.db.close()

    # -- devices ------------------------------------------------------------------------
    def device(self, device_id: str) -> DeviceRow | None:
        return self.devices.get(device_id)

    def save(self, row: DeviceRow) -> None:
        self.devices[row.device_id] = row
        self.db.execute(_INSERT_DEVICE, tuple(getattr(row, f) for f in _DEVICE_FIELDS))

    # -- enrollment ---------------------------------------------------------------------
    def ca_pem(self) -> tuple[bytes, bytes] | None:
        """The enrollment CA's (certificate, private key) PEM, once made."""
        row = self.db.execute("SELECT cert_pem, key_pem FROM ca WHERE id = 1").fetchone()
        return (row[0].encode(), row[1].encode()) if row else None

    def save_ca(self, cert_pem: bytes, key_pem: bytes) -> None:
        self.db.execute(
            "INSERT INTO ca (id, cert_pem, key_pem) VALUES (1, ?, ?)",
            (cert_pem.decode(), key_pem.decode()),
        )

    def issued(self, thumbprint: str, device_id: str, now: int, enrolled_by: str) -> None:
        self.certificates[thumbprint] = device_id
        self.db.execute(
            "INSERT OR REPLACE INTO certificates VALUES (?, ?, ?, ?)",
            (thumbprint, device_id, now, enrolled_by),
        )

    # -- commands -----------------------------------------------------------------------
    def queue(
        self, device_id: str, verb: str, loc_uri: str, data: str | None, fmt: str | None, now: int
    ) -> CommandRow:
        cur = self.db.execute(
            "INSERT INTO commands (device_id, verb, loc_uri, data, format, state, queued_at) "
            "VALUES (?, ?, ?, ?, ?, 'queued', ?)",
            (device_id, verb, loc_uri, data, fmt, now),
        )
        self._may_have_queued.add(device_id)
        command = self.command(int(cur.lastrowid or 0))
        assert command is not None
        return command

    def queued(self, device_id: str) -> list[CommandRow]:
        """The device's commands waiting to go out, oldest first."""
        if device_id not in self._may_have_queued:
            return []
        found = self.commands(device_id, "queued")
        if not found:
            self._may_have_queued.discard(device_id)
        return found

    def command(self, command_id: int) -> CommandRow | None:
        row = self.db.execute("SELECT * FROM commands WHERE id = ?", (command_id,)).fetchone()
        return CommandRow(**dict(row)) if row else None

    def commands(self, device_id: str, state: str | None = None) -> list[CommandRow]:
        if state is None:
            rows = self.db.execute(
                "SELECT * FROM commands WHERE device_id = ? ORDER BY id", (device_id,)
            )
        else:
            rows = self.db.execute(
                "SELECT * FROM commands WHERE device_id = ? AND state = ? ORDER BY id",
                (device_id, state),
            )
        return [CommandRow(**dict(r)) for r in rows]

    def mark_sent(self, command_id: int, session_id: str, now: int) -> None:
        self.db.execute(
            "UPDATE commands SET state = 'sent', sent_at = ?, session_id = ? WHERE id = ?",
            (now, session_id, command_id),
        )

    def mark_status(self, command_id: int, status: str, now: int, *, done: bool) -> None:
        self.db.execute(
            "UPDATE commands SET status = ?, state = ?, done_at = ? WHERE id = ?",
            (status, "done" if done else "sent", now if done else None, command_id),
        )

    def mark_result(self, command_id: int, result: str, now: int) -> None:
        self.db.execute(
            "UPDATE commands SET result = ?, state = 'done', done_at = ? WHERE id = ?",
            (result, now, command_id),
        )

    def requeue_unanswered(self, session_id: str, device_id: str) -> None:
        """Commands sent in a session that ended without their Status go out again."""
        cur = self.db.execute(
            "UPDATE commands SET state = 'queued', sent_at = NULL, session_id = NULL "
            "WHERE device_id = ? AND session_id = ? AND state = 'sent' AND status IS NULL",
            (device_id, session_id),
        )
        if cur.rowcount:
            self._may_have_queued.add(device_id)

    # -- pushes -------------------------------------------------------------------------
    def log_push(self, row: PushRow) -> PushRow:
        cur = self.db.execute(_INSERT_PUSH, tuple(getattr(row, f) for f in _PUSH_FIELDS))
        return PushRow(**{**row.public(), "id": int(cur.lastrowid or 0)})

    def pushes(self, device_id: str) -> list[PushRow]:
        rows = self.db.execute("SELECT * FROM pushes WHERE device_id = ? ORDER BY id", (device_id,))
        return [PushRow(**dict(r)) for r in rows]

    def sent_since(self, device_id: str, since: int) -> int:
        """Pushes actually sent to WNS for a device after ``since`` (the D4 rate)."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM pushes WHERE device_id = ? AND at > ? AND http_status > 0",
            (device_id, since),
        ).fetchone()
        return int(row[0])
