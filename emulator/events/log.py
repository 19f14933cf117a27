"""The event log: every device and session action as data, stamped with virtual time.

Owns: one record per event (``t_ms``, ``event``, ``device_id`` and the event's fields, with
correlation ids such as ``msg_id`` and ``session_id``), kept in memory for expectations and
reports (or handed to a sink as they happen, for a run that streams its log), and mirrored
to the structlog log.
Must not: read time other than through the clock it was given, or hold secrets (devices do
not see any).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator.clock import Clock
from emulator.logs import get_logger


class EventLog:
    def __init__(
        self,
        clock: Clock,
        *,
        keep: bool = True,
        sink: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.clock = clock
        self.keep = keep
        self.sink = sink
        self.records: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.log = get_logger("events", clock)

    def emit(self, event: str, device_id: str | None = None, **fields: Any) -> None:
        now = self.clock.now()
        record = {"t_ms": now, "event": event, "device_id": device_id, **fields}
        self.counts[event] = self.counts.get(event, 0) + 1
        if self.keep:
            self.records.append(record)
        if self.sink is not None:
            self.sink(record)
        self.log.debug(event, device_id=device_id, **fields)

    def of(self, event: str, device_id: str | None = None) -> list[dict[str, Any]]:
        """Kept records of one event (and one device)."""
        return [
            r
            for r in self.records
            if r["event"] == event and (device_id is None or r["device_id"] == device_id)
        ]
