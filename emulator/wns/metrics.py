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

ROUTES = {"token": "/accesstoken.srf", "notify": "/"}  # the protocol endpoints, by kind


def request_counts(service: WnsService) -> Counter[tuple[str, str, int]]:
    """The protocol endpoints' requests by (route, method, status), for
    ``dmemu_http_requests_total`` (they are served ahead of the router's middleware)."""
    counts: Counter[tuple[str, str, int]] = Counter()
    for (kind, method, status, _), count in service.served.items():
        counts[(ROUTES[kind], method, status)] += count
    return counts


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
        outcomes: Counter[tuple[int, str]] = Counter()
        issued = 0
        for (kind, _, status, outcome), count in service.served.items():
            if kind == "notify":
                outcomes[(status, outcome or "none")] += count
            elif status == 200:
                issued += count
        for (status, outcome), count in sorted(outcomes.items()):
            pushes.add_metric([str(status), outcome], count)
        yield pushes
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
