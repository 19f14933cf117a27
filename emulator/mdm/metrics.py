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
        commands = GaugeMetricFamily(
            "dmemu_mdm_commands",
            "Admin commands, by state (queued: not yet sent)",
            labels=["state"],
        )
        for state, count in db.execute("SELECT state, COUNT(*) FROM commands GROUP BY state"):
            commands.add_metric([state], count)
        yield commands
        pushes = CounterMetricFamily(
            "dmemu_mdm_pushes",
            "Pushes the server sent or skipped, by what came of them (delivered, dropped, "
            "retry, stop, gave_up, no_channel ...)",
            labels=["action"],
        )
        for action, count in db.execute("SELECT action, COUNT(*) FROM pushes GROUP BY action"):
            pushes.add_metric([action], count)
        yield pushes
        devices = GaugeMetricFamily(
            "dmemu_mdm_devices",
            "Devices the server knows, by channel state",
            labels=["channel_state"],
        )
        query = "SELECT channel_state, COUNT(*) FROM devices GROUP BY channel_state"
        for state, count in db.execute(query):
            devices.add_metric([state], count)
        yield devices


def mdm_ready(server: ReferenceServer) -> str | None:
    """None when the server can take sessions; the reason it cannot otherwise."""
    try:
        server.store.db.execute("SELECT 1").fetchone()
    except sqlite3.Error as exc:
        return f"its database cannot be read: {exc}"
    return None
