"""What a conformance run recorded, indexed for the judges, and how a piece of it is shown.

Owns: :class:`Evidence` (WNS requests, trap requests, device SyncML exchanges, device events,
hook calls, and which device owns which ChannelURI) built once from a run, the session index
(each session's server commands, in order, with its trigger), and the JSON shape of one
piece of evidence: virtual time, device, ChannelURI, headers with secrets redacted, a body
excerpt, WNS Msg-ID, OMA-DM SessionID.
Must not: judge (``checks_*.py``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from emulator.clock import iso
from emulator.device.recording import Exchange
from emulator.runner import RunResult
from emulator.syncml import Command, Message, serialize
from emulator.syncml.codec import EXCERPT_BYTES
from emulator.wns.models import RequestRecord


@dataclass
class Session:
    """One device session as the device lived it."""

    device_id: str
    session_id: str
    start_ms: int
    trigger: str
    msg_id: str | None  # the push that started it, if any
    exchanges: list[Exchange] = field(default_factory=list)

    def server_commands(self) -> list[Command]:
        return [c for ex in self.exchanges if ex.reply is not None for c in ex.reply.commands]


class Evidence:
    def __init__(self, result: RunResult, *, push_limit: int = 12) -> None:
        self.result = result
        self.push_limit = push_limit  # D4: pushes per device per hour
        self.events = result.events
        self.group_of = result.group_of
        self.profile_of = {d: dev.group.profile.name for d, dev in result.devices.items()}
        self.notifies = [r for r in result.wns_records if r.kind == "notify"]
        #: the pushes to each ChannelURI (path and query, as posted), in order
        self.by_target: dict[str, list[RequestRecord]] = defaultdict(list)
        for r in self.notifies:
            self.by_target[r.target].append(r)
        self.tokens = [r for r in result.wns_records if r.kind == "token"]
        self.trap = result.trap_requests
        self.app = result.scenario.app
        #: every ChannelURI a device told the server, with its path+query as a sender posts it
        self.reported: dict[str, str] = {}  # path+query -> device id
        self.reported_at: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for e in self.events:
            if e["event"] == "session.channel_reported":
                uri = e["channel_uri"]
                self.reported[_path_query(uri)] = e["device_id"]
                self.reported_at[e["device_id"]].append((e["t_ms"], _path_query(uri)))
        self.sessions = self._sessions(result.exchanges)

    def _sessions(self, exchanges: list[Exchange]) -> list[Session]:
        by_key: dict[tuple[str, str], Session] = {}
        out: list[Session] = []
        for e in self.events:
            if e["event"] == "session.start":
                s = Session(e["device_id"], e["session_id"], e["t_ms"], e["trigger"], e["msg_id"])
                by_key[(s.device_id, s.session_id)] = s  # SessionIDs repeat only after 65535
                out.append(s)
        for ex in exchanges:
            found = by_key.get((ex.device_id, ex.session_id))
            if found is not None:
                found.exchanges.append(ex)
        return out

    def owner(self, record: RequestRecord) -> str | None:
        """The device a push was aimed at: the channel WNS resolved, else the ChannelURI as
        some device reported it."""
        owner = self.result.channel_owner.get(record.channel_id or "")
        return owner or self.reported.get(record.target)

    def of_event(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]

    def hooks_for(self, device_id: str, hook: str) -> list[int]:
        return [
            e["t_ms"]
            for e in self.events
            if e["event"] == "server.hook" and e["device_id"] == device_id and e["hook"] == hook
        ]


def _path_query(uri: str) -> str:
    """``http://host:port/?token=x`` -> ``/?token=x`` (what a WNS request's target holds)."""
    parts = urlsplit(uri)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def request_item(ev: Evidence, record: RequestRecord, rule: str) -> dict[str, Any]:
    """One WNS request as evidence (secrets redacted by the record's own view)."""
    shown = record.as_json()
    return {
        "t": iso(record.t_ms),
        "device": ev.owner(record),
        "kind": record.kind,
        "request": f"{record.method} {record.target}",
        "status": record.status,
        "msg_id": record.msg_id,
        "headers": shown["headers"],
        "body": str(shown["body"])[:EXCERPT_BYTES],
        "rule": rule,
    }


def session_item(session: Session, rule: str, message: Message | None = None) -> dict[str, Any]:
    """One OMA-DM session (and optionally the server message at fault) as evidence."""
    item: dict[str, Any] = {
        "t": iso(session.start_ms),
        "device": session.device_id,
        "session_id": session.session_id,
        "trigger": session.trigger,
        "msg_id": session.msg_id,
        "rule": rule,
    }
    if message is not None:
        item["message"] = serialize(message)[: EXCERPT_BYTES * 4].decode("utf-8", "replace")
    return item


def event_item(event: dict[str, Any], rule: str) -> dict[str, Any]:
    fields = {k: v for k, v in event.items() if k not in ("t_ms", "event", "device_id")}
    return {
        "t": iso(event["t_ms"]),
        "device": event.get("device_id"),
        "event": event["event"],
        **fields,
        "rule": rule,
    }
