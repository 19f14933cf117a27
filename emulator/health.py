"""Health and metrics of what dmemu serves (``dmemu wns``, ``dmemu mdm``, a run's fake WNS).

Owns: ``GET /healthz`` (liveness: the process answers), ``GET /readyz`` (readiness: 200, or
503 with the reason it cannot serve yet), ``GET /metrics`` in the Prometheus text exposition
format (prometheus-client renders it), and the HTTP request counter every route feeds (route
template, method, status). What a server counts of its own (pushes, channels, sessions ...)
comes from its collectors, read from its state when scraped, so serving pays nothing for a
metric nobody reads.
Must not: know a server's internals (its collectors do, beside it).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from emulator.clock import Clock
from emulator.openapi import HEALTH, Operation
from emulator.serving import DIRECT_ROUTES, Handler

HEALTH_PATHS = ("/healthz", "/readyz", "/metrics")
#: (route template, method, status) -> requests answered
RequestCounts = Counter[tuple[str, str, int]]


class RequestCollector(Collector):
    """``dmemu_http_requests_total``: what the middleware counted, and what a server counts
    itself for routes served ahead of the router (the fake WNS's protocol endpoints)."""

    def __init__(self, counts: RequestCounts, *more: Callable[[], RequestCounts]) -> None:
        self.counts = counts
        self.more = more

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "dmemu_http_requests",
            "HTTP requests answered, by route template, method and status",
            labels=["route", "method", "status"],
        )
        total: RequestCounts = Counter(self.counts)
        for source in self.more:
            total.update(source())
        for (route, method, status), count in sorted(total.items()):
            family.add_metric([route, method, str(status)], count)
        yield family


class ClockCollector(Collector):
    """Where the server's clock is and how fast it runs (0: virtual, moved only when told)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "dmemu_clock_now_seconds",
            "The server's clock (emulated time), seconds since the epoch",
            value=self.clock.now() / 1000,
        )
        yield GaugeMetricFamily(
            "dmemu_clock_rate",
            "Emulated seconds per real second (0: a virtual clock that skips when told)",
            value=float(getattr(self.clock, "rate", None) or 0),
        )


def add_health_routes(
    app: web.Application,
    *,
    ready: Callable[[], str | None],
    collectors: Iterable[Collector],
    served: Iterable[Callable[[], RequestCounts]] = (),
) -> list[Operation]:
    """``/healthz``, ``/readyz`` (``ready()`` gives None when ready, else the reason) and
    ``/metrics`` on ``app``, and a middleware counting every request the router answers;
    returns their operations (for the app's OpenAPI document)."""
    counts: RequestCounts = Counter()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RequestCollector(counts, *served))
    for collector in collectors:
        registry.register(collector)
    app.middlewares.append(_counting(counts))

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        reason = ready()
        if reason is None:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready", "reason": reason}, status=503)

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    operations = [
        Operation(
            "GET", "/healthz", healthz, "Liveness: the process serves", {200: ("Alive", HEALTH)}
        ),
        Operation(
            "GET",
            "/readyz",
            readyz,
            "Readiness: whether it can serve, and if not why",
            {200: ("Ready", HEALTH), 503: ("Not ready, and the reason", HEALTH)},
        ),
        Operation(
            "GET",
            "/metrics",
            metrics,
            "Metrics in the Prometheus text exposition format",
            {200: ("The metrics", {"type": "text"})},
        ),
    ]
    for op in operations:
        app.router.add_route(op.method, op.path, op.handler)
    return [dataclasses.replace(op, tag="health") for op in operations]


def _counting(counts: RequestCounts) -> Middleware:
    @web.middleware
    async def counted(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.match_info
        route = info.route.resource.canonical if info.route.resource is not None else "unmatched"
        if route in request.app.get(DIRECT_ROUTES, {}):
            return await handler(request)  # counted by its server
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            counts[(route, request.method, exc.status)] += 1
            raise
        counts[(route, request.method, response.status)] += 1
        return response

    return counted
