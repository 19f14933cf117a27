"""What the fake WNS tells ``/metrics``: pushes by outcome, channels by state, tokens
issued, and its protocol endpoints' requests (served ahead of the router, so counted here).

Owns: :class:`WnsCollector`, read from the service's state when scraped, and readiness.
Must not: serve HTTP (:mod:`emulator.health` does).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from emulator.clock import Clock
from emulator.wns.channels import LIVE_STATES
from emulator.wns.service import WnsService


class WnsCollector(Collector):
    def __init__(self, service: WnsService, clock: Clock) -> None:
        self.service = service
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        service = self.service
        pushes = CounterMetricFamily(
            "dmemu_wns_pushes",
            "Notifications answered, by HTTP status and WNS outcome (received, cached, "
            "dropped, channelthrottled, error ...)",
            labels=["status", "outcome"],
        )
        for (status, outcome), count in sorted(service.push_outcomes.items()):
            pushes.add_metric([str(status), outcome or "none"], count)
        yield pushes
        issued = sum(
            n
            for (route, _, status), n in service.served.items()
            if route == "/accesstoken.srf" and status == 200
        )
        yield CounterMetricFamily(
            "dmemu_wns_tokens_issued", "Access tokens issued [WNSHDR 2.1]", value=issued
        )
        now, registry = self.clock.now(), service.registry
        states = Counter(registry.state(c, now) for c in registry.by_id.values())
        channels = GaugeMetricFamily(
            "dmemu_wns_channels", "Channels the service knows, by state", labels=["state"]
        )
        for state in ("active", "superseded", "expired", "revoked", "blocked"):
            channels.add_metric([state], states.get(state, 0))
        yield channels
        yield GaugeMetricFamily(
            "dmemu_wns_channels_live",
            "Channels a push would reach (active, not expired, revoked or blocked)",
            value=sum(states.get(state, 0) for state in LIVE_STATES),
        )


def wns_ready(service: WnsService) -> str | None:
    """None when the service can answer pushes; the reason it cannot otherwise."""
    return None if service.config.apps else "no WNS app is configured"
