"""The log's order: by (time, device, WNS before the device), the same every run.

Owns: the order key every log is sorted or merged by, a fake WNS request as a log record,
and :class:`InstantOrder`, which passes a stream of records on in that order while holding
only the current instant's (a run that streams its log never holds it).
Must not: write files or judge.

Devices that act at the same virtual millisecond may finish their HTTP exchanges in any real
order; ordering by device id within a millisecond makes the log the same every run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.wns.models import RequestRecord

Record = dict[str, Any]


def order_key(event: Record) -> tuple[int, str, int]:
    """(time, device, 0 for WNS's records: its acceptance precedes what the device did)."""
    rank = 0 if event["event"].startswith("wns.") else 1
    return (event["t_ms"], event.get("device_id") or "", rank)


def wns_event(record: RequestRecord, owner: str | None) -> Record:
    """A request the fake WNS served, as the log shows it (``owner``: the channel's device)."""
    if record.kind == "notify":
        return {
            "t_ms": record.t_ms,
            "event": "wns.notify",
            "device_id": owner,
            "status": record.status,
            "outcome": record.outcome,
            "msg_id": record.msg_id,
            "channel_id": record.channel_id,
            "target": record.target,
        }
    return {
        "t_ms": record.t_ms,
        "event": "wns.token",
        "device_id": None,
        "status": record.status,
        "outcome": record.outcome,
    }


class InstantOrder:
    """Records arrive as they happen; each instant's are passed to ``sink`` in the log's
    order once a later instant begins (and at :meth:`flush`). A record stamped with an
    instant already passed on (a request that waited on injected latency) goes at once."""

    def __init__(self, sink: Callable[[Record], None]) -> None:
        self.sink = sink
        self.held: list[Record] = []

    def add(self, record: Record) -> None:
        held = self.held
        if held and record["t_ms"] != held[0]["t_ms"]:
            if record["t_ms"] < held[0]["t_ms"]:
                self.sink(record)
                return
            self.flush()
        held.append(record)

    def flush(self) -> None:
        self.held.sort(key=order_key)
        for record in self.held:
            self.sink(record)
        self.held.clear()
