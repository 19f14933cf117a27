"""Fault injection for the fake WNS: forced statuses and added latency.

Owns: the list of armed faults and matching them to a request (target endpoint, app, channel).
Must not: build responses; the service raises and the driver waits.

A fault with a ``status`` answers the next ``count`` matching requests with that status (and
``Retry-After`` when given); a fault with only ``latency_ms`` delays matching requests. A fault
with no ``count`` stays until removed. Faults are matched in the order they were added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Fault:
    id: str  # handle for the control API ("f-0001")
    target: str  # "notify" (channel POSTs), "token" (/accesstoken.srf), "register" (devices)
    status: int | None  # forced HTTP status, or None for latency only
    remaining: int | None  # requests left to affect; None = until removed
    sid: str | None  # only requests for this app's channels (or token requests of this app)
    channel_id: str | None  # only requests to this channel
    retry_after_s: int | None  # Retry-After header to add
    latency_ms: int  # emulated delay before answering
    description: str | None  # X-WNS-Error-Description / error_description override
    hits: int = 0  # requests affected so far

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "status": self.status,
            "remaining": self.remaining,
            "sid": self.sid,
            "channel_id": self.channel_id,
            "retry_after_s": self.retry_after_s,
            "latency_ms": self.latency_ms,
            "description": self.description,
            "hits": self.hits,
        }


class FaultBook:
    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self._next = 1

    def add(
        self,
        *,
        target: str = "notify",
        status: int | None = None,
        count: int | None = None,
        sid: str | None = None,
        channel_id: str | None = None,
        retry_after_s: int | None = None,
        latency_ms: int = 0,
        description: str | None = None,
    ) -> Fault:
        fault = Fault(
            id=f"f-{self._next:04d}",
            target=target,
            status=status,
            remaining=count,
            sid=sid,
            channel_id=channel_id,
            retry_after_s=retry_after_s,
            latency_ms=latency_ms,
            description=description,
        )
        self._next += 1
        self.faults.append(fault)
        return fault

    def remove(self, fault_id: str) -> bool:
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        return len(self.faults) != before

    def clear(self) -> int:
        count = len(self.faults)
        self.faults.clear()
        return count

    def take(
        self, target: str, sid: str | None, channel_id: str | None
    ) -> tuple[int, Fault | None]:
        """Consume the faults matching a request: (total latency ms, first status fault)."""
        if not self.faults:
            return 0, None
        latency = 0
        status_fault: Fault | None = None
        for fault in self.faults:
            if fault.target != target:
                continue
            if fault.sid is not None and fault.sid != sid:
                continue
            if fault.channel_id is not None and fault.channel_id != channel_id:
                continue
            if fault.status is not None and status_fault is not None:
                continue  # one status per request; later status faults wait their turn
            fault.hits += 1
            latency += fault.latency_ms
            if fault.status is not None:
                status_fault = fault
            if fault.remaining is not None:
                fault.remaining -= 1
        self.faults = [f for f in self.faults if f.remaining is None or f.remaining > 0]
        return latency, status_fault
