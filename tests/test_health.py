"""Health and metrics (issue 20): `dmemu wns` and `dmemu mdm` (and a run's fake WNS) answer
`/healthz`, `/readyz` and `/metrics`, in the Prometheus text format, whose counters move
with the traffic a CI pipeline drives through them."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from emulator.clock import MINUTE, VirtualClock
from tests.mdm_world import ref_world


async def scrape(http: aiohttp.ClientSession, base: str) -> dict[tuple[str, frozenset[Any]], float]:
    """Every sample of ``base``/metrics, read back by prometheus-client's own parser (so the
    exposition is well formed), keyed by name and labels."""
    async with http.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_move_with_the_traffic(clock: VirtualClock) -> None:
    """A device enrolls, an operator queues a command (the server pushes it through WNS) and
    the device's session fetches it: the fake WNS counts a token issued, a push received, a
    live channel and its protocol requests by route and status; the reference server counts
    the sessions, the push by what came of it, the command by state and its admin requests;
    both say where their clock is and that it is virtual (rate 0)."""
    async with ref_world(clock) as w:
        wns0, mdm0 = await scrape(w.http, w.wns.url), await scrape(w.http, w.mdm.url)
        assert sample(wns0, "dmemu_wns_pushes_total", status="200", outcome="received") == 0
        w.enroll("dev-a")
        await w.run_for(10 * MINUTE)
        status, _ = await w.admin(
            "POST", "/admin/devices/dev-a/commands", {"verb": "Get", "loc_uri": "./DevInfo/Mod"}
        )
        assert status == 201
        await w.run_for(MINUTE)
        wns, mdm = await scrape(w.http, w.wns.url), await scrape(w.http, w.mdm.url)

    assert sample(wns, "dmemu_wns_pushes_total", status="200", outcome="received") == 1
    assert sample(wns, "dmemu_wns_tokens_issued_total") == 1
    assert sample(wns, "dmemu_wns_channels_live") == 1
    assert sample(wns, "dmemu_wns_channels", state="active") == 1
    assert sample(wns, "dmemu_http_requests_total", route="/", method="POST", status="200") == 1
    token_route = {"route": "/accesstoken.srf", "method": "POST", "status": "200"}
    assert sample(wns, "dmemu_http_requests_total", **token_route) == 1
    assert sample(wns, "dmemu_clock_now_seconds") == clock.now() / 1000
    assert sample(wns, "dmemu_clock_rate") == 0

    assert sample(mdm, "dmemu_mdm_sessions_total") - sample(mdm0, "dmemu_mdm_sessions_total") >= 2
    assert sample(mdm, "dmemu_mdm_pushes_total", action="delivered") == 1
    assert sum(v for (n, labels), v in mdm.items() if n == "dmemu_mdm_commands") == 1
    assert sample(mdm, "dmemu_mdm_commands", state="queued") == 0  # sent in the push's session
    assert sample(mdm, "dmemu_mdm_devices", channel_state="active") == 1
    queued = {"route": "/admin/devices/{device_id}/commands", "method": "POST", "status": "201"}
    assert sample(mdm, "dmemu_http_requests_total", **queued) == 1
    assert sample(mdm, "dmemu_clock_now_seconds") == clock.now() / 1000


async def test_health_and_readiness(clock: VirtualClock) -> None:
    """`/healthz` answers while the process lives; `/readyz` is 200 while the server can
    serve and 503 with the reason when it cannot (the reference server's database gone)."""
    async with ref_world(clock) as w:
        for base in (w.wns.url, w.mdm.url):
            for path, status in (("/healthz", "ok"), ("/readyz", "ready")):
                async with w.http.get(base + path) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["status"] == status
        w.server.store.db.close()
        async with w.http.get(w.mdm.url + "/readyz") as resp:
            assert resp.status == 503
            body = await resp.json()
        async with w.http.get(w.mdm.url + "/healthz") as resp:
            assert resp.status == 200
    assert body["status"] == "not ready"
    assert "database cannot be read" in body["reason"]
