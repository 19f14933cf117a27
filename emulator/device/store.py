"""Device state in SQLite, so a restarted emulator keeps the ChannelURIs a server has stored.

Owns: the ``devices`` table (one row per device: identity, group, lifecycle state, PFN,
ChannelURI and expiry, Push/Status overlay, poll progress, CSP values, power state, random
stream), saving a fleet in one transaction and rebuilding devices from it.
Must not: arm timers (``Fleet.adopt`` does, through ``Device.resume``) or read the clock.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from emulator.device.agent import Device, DeviceGroup

SCHEMA_VERSION = 1
_COLUMNS = (
    "device_id",
    "group_name",
    "state",
    "pfn",
    "channel_uri",
    "channel_expiry",
    "push_blocked",
    "hung",
    "enrolled",
    "poll_anchor",
    "polls_done",
    "session_seq",
    "rng_state",
    "csp_values",
    "power",
)

# Built from the constant column list above, never from input.
_INSERT = f"INSERT OR REPLACE INTO devices ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"  # noqa: E501, S608
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM devices ORDER BY rowid"  # noqa: S608


class StoreError(Exception):
    pass


class DeviceStore:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self.db = sqlite3.connect(str(path))
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY, group_name TEXT, "
            "state TEXT, pfn TEXT, channel_uri TEXT, channel_expiry INTEGER, push_blocked INTEGER,"
            " hung INTEGER, enrolled INTEGER, poll_anchor INTEGER, polls_done INTEGER, "
            "session_seq INTEGER, rng_state TEXT, csp_values TEXT, power TEXT)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        self.db.commit()

    def save(self, devices: Iterable[Device]) -> int:
        rows = [_row(d) for d in devices]
        with self.db:
            self.db.executemany(_INSERT, rows)
        return len(rows)

    def load(self, groups: Mapping[str, DeviceGroup], now: int) -> list[Device]:
        out: list[Device] = []
        for row in self.db.execute(_SELECT):
            group = groups.get(row[1])
            if group is None:
                raise StoreError(
                    f"device {row[0]} belongs to group {row[1]!r}, which this run does not define"
                )
            out.append(_device(row, group, now))
        return out

    def close(self) -> None:
        self.db.close()


def _row(d: Device) -> tuple[object, ...]:
    p = d.power
    power = {
        "cycle_start": p.cycle_start,
        "data_base": p.data_base,
        "data_base_at": p.data_base_at,
        "offline_until": p.offline_until,
        "switched_off": p.switched_off,
        "server_reachable": p.server_reachable,
        "internet": p.internet,
        "saver_forced": p.saver_forced,
    }
    return (
        d.device_id,
        d.group.name,
        d.state,
        d.pfn,
        d.channel_uri,
        d.channel_expiry,
        int(d.push_blocked),
        int(d.hung),
        int(d.enrolled),
        d.poll_anchor,
        d.polls_done,
        d.session_seq,
        str(d.rng.state),
        json.dumps(d.values, sort_keys=True),
        json.dumps(power, sort_keys=True),
    )


def _device(row: tuple[Any, ...], group: DeviceGroup, now: int) -> Device:
    (
        device_id,
        _group,
        state,
        pfn,
        channel_uri,
        channel_expiry,
        push_blocked,
        hung,
        enrolled,
        poll_anchor,
        polls_done,
        session_seq,
        rng_state,
        csp_values,
        power,
    ) = row
    d = Device(device_id, group, int(rng_state), now)
    d.state, d.pfn, d.channel_uri, d.channel_expiry = state, pfn, channel_uri, channel_expiry
    d.push_blocked, d.hung, d.enrolled = bool(push_blocked), bool(hung), bool(enrolled)
    d.poll_anchor, d.polls_done, d.session_seq = poll_anchor, polls_done, session_seq
    d.values = json.loads(csp_values)
    for key, value in json.loads(power).items():
        setattr(d.power, key, value)
    return d
