"""Which shard a device belongs to, and how shards' logs become one.

Owns: the stable hash that assigns a device to a shard (the same on every platform and
Python version), and merging the shards' ordered event logs into the run's order: by
(time, device, WNS before device: :func:`emulator.events.order.order_key`), the world's
timeline records of the shards folded into one (their device counts summed).
Must not: start processes (``local.py``) or run worlds (``worker.py``).
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from emulator.events.order import order_key


def shard_of(device_id: str, shards: int) -> int:
    digest = hashlib.blake2b(device_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def share_of(count: int, index: int, shards: int) -> int:
    """Shard ``index``'s part of ``count`` things the run does once in all (a WNS fault for
    the next ``count`` requests): the parts add up to ``count``."""
    return count // shards + (1 if index < count % shards else 0)


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """A shard's events.jsonl, as the run's records (without the ISO ``t`` beside t_ms)."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            event = json.loads(line)
            event.pop("t", None)
            yield event


def merge(logs: Iterable[Iterable[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """The shards' logs as one, in the run's order, as a stream; a timeline record every
    shard wrote for the same action is one record, ``devices`` summed over the shards (the
    shards' copies come at the same instant, before the stream moves past it)."""
    held: list[dict[str, Any]] = []  # the current instant's world records, being folded
    folded: dict[tuple[str, object], dict[str, Any]] = {}
    for event in heapq.merge(*logs, key=order_key):
        world = event.get("device_id") is None  # these sort first within their instant
        if held and (not world or event["t_ms"] != held[0]["t_ms"]):
            yield from held
            held.clear()
            folded.clear()
        if not world:
            yield event
            continue
        if event["event"].startswith("timeline."):
            same = (event["event"], event.get("line"))
            first = folded.get(same)
            if first is not None:
                if "devices" in first:
                    first["devices"] += event.get("devices", 0)
                continue
            folded[same] = event
        held.append(event)
    yield from held
