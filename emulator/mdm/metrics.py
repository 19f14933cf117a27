"""What the reference server tells ``/metrics``: sessions, commands by state, pushes by
what came of them, devices by channel state; and whether it is ready.

Owns: :class:`MdmCollector`, read from the server's store when scraped, and readiness.
Must not: serve HTTP (:mod:`emulator.health` does).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from emulator.mdm.server import ReferenceServer


class MdmCollector(Collector):
    def __init__(self, server: ReferenceServer) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        db = self.server.store.db
        (sessions,) = db.execute("SELECT COALESCE(SUM(sessions), 0) FROM devices").fetchone()
        yield CounterMetricFamily(
            "dmemu_mdm_sessions", "OMA-DM sessions devices started", value=sessions
        )
        yield GaugeMetricFamily(
            "dmemu_mdm_sessions_open",
            "Sessions open now (a reply sent, the device's next message awaited)",
            value=len(self.server.endpoint.sessions),
        )
        yield _by(
            db,
            GaugeMetricFamily,
            "dmemu_mdm_commands",
            "commands",
            "state",
            "Admin commands, by state (queued: not yet sent)",
        )
        yield _by(
            db,
            CounterMetricFamily,
            "dmemu_mdm_pushes",
            "pushes",
            "action",
            "Pushes the server sent or skipped, by what came of them (delivered, "
            "dropped, retry, stop, gave_up, no_channel ...)",
        )
        yield _by(
            db,
            GaugeMetricFamily,
            "dmemu_mdm_devices",
            "devices",
            "channel_state",
            "Devices the server knows, by channel state",
        )


def _by(
    db: sqlite3.Connection,
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    table: str,
    column: str,
    documentation: str,
) -> Metric:
    """A family with one sample per value of ``table.column``: how many rows have it."""
    family = kind(name, documentation, labels=[column])
    query = f"SELECT {column}, COUNT(*) FROM {table} GROUP BY {column}"  # noqa: S608 - ours
    for value, count in db.execute(query):
        family.add_metric([str(value)], count)
    return family


def mdm_ready(server: ReferenceServer) -> str | None:
    """None when the server can take sessions; the reason it cannot otherwise."""
    try:
        server.store.db.execute("SELECT 1").fetchone()
    except sqlite3.Error as exc:
        return f"its database cannot be read: {exc}"
    return None
