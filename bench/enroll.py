"""Enrollments per second against the in-process reference server, and where the time goes.

Enrolls ``--devices`` devices (MS-MDE2: GET and POST Discovery, GetPolicies,
RequestSecurityToken, the provisioning document) into the reference server on loopback, in
this one process (both sides share a core), ``--concurrency`` at a time, and prints the
enrollments per wall second, median of ``--runs``. Beside it, in the same run:

* the baseline: the same number of four-round-trip exchanges with a bare aiohttp handler
  (the HTTP floor an enrollment cannot go below on this machine), and the ratio;
* the share of an enrollment's time in key generation (the pool: derived cold, loaded warm,
  once per pool key, not per device), signing (the device's CSR, the CA's certificate),
  XML (building and parsing the four exchanges on both sides) and the rest (HTTP, aiohttp,
  the flow).

Target (issue 18): 10,000 devices enrolled in under 60 s of wall time on a 2-core machine.

    python bench/enroll.py [--devices 10000] [--runs 3] [--tls]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from emulator.clock import VirtualClock
from emulator.enroll.discovery import DISCOVERY_PATH, DiscoverRequest, DiscoverResult
from emulator.enroll.driver import Enroller
from emulator.enroll.flow import DeviceFacts, EnrollSettings
from emulator.enroll.keys import KeyPool, certificate_request, derive_key
from emulator.enroll.policy import Policy, PolicyRequest, get_policies_request
from emulator.enroll.provisioning import read_document, write_document
from emulator.enroll.security import Credentials
from emulator.enroll.wstep import TokenRequest, read_token_response, token_response
from emulator.logs import configure_logging
from emulator.mdm.ca import EnrollmentCa
from emulator.mdm.config import MdmConfig
from emulator.mdm.server import ReferenceServer, start_mdm
from emulator.mdm.store import MdmStore
from emulator.serving import listen
from emulator.tls import server_context
from emulator.wns.config import DEMO_APP

POOL = 16


async def enroll_fleet(devices: int, concurrency: int, tls: bool) -> float:
    """Seconds to enroll ``devices`` devices into a fresh in-process reference server."""
    clock = VirtualClock()
    server = ReferenceServer(MdmConfig(app=DEMO_APP, ca_key_label="bench-ca"), clock)
    context, trust = None, None
    if tls:
        context, ca_file = server_context(["127.0.0.1"], Path(tempfile.mkdtemp()) / "tls")
        trust = ssl.create_default_context(cafile=str(ca_file))
    running = await start_mdm(server, ssl_context=context)
    pool = KeyPool(POOL)
    pool.prepare()
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=trust if trust else True)
    async with aiohttp.ClientSession(connector=connector) as http:
        enroller = Enroller(http, pool, seed=1)
        settings = EnrollSettings(f"{running.url}{DISCOVERY_PATH}", "bench@contoso.com")
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await enroller.enroll(settings, DeviceFacts(f"d-{i:06d}", "en-US", "10.0.1"))

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(devices)))
        spent = time.perf_counter() - start
    await running.stop()
    return spent


async def bare_exchanges(count: int, concurrency: int) -> float:
    """Seconds for ``count`` x 4 POSTs of 2 KB to a handler that only reads the body."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"x" * 2048)

    app = web.Application()
    app.router.add_post("/", handle)
    served = await listen(app, "127.0.0.1", 0, None)
    body = b"y" * 2048
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                for _ in range(4):
                    async with http.post(served.url + "/", data=body) as resp:
                        await resp.read()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        spent = time.perf_counter() - start
    await served.runner.cleanup()
    return spent


def per_call(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def components(n: int) -> dict[str, float]:
    """Seconds per enrollment spent in each part, measured alone."""
    clock = VirtualClock()
    ca = EnrollmentCa(MdmStore(), clock.now(), key_label="bench-ca")
    key = KeyPool(POOL).key(0)
    csr = certificate_request("d-1", key, "sha256")
    issued = ca.issue(csr, "d-1", clock.now(), 2048, "u")
    creds = Credentials("OnPremise", "bench@contoso.com", "x")
    doc = write_document(ca.der, issued, "https://m/x", "dmemu", ())
    counter = iter(range(10**9))

    def xml() -> None:
        discover = DiscoverRequest("a@b.c", message_id="urn:uuid:1").to_bytes("x")
        DiscoverRequest.from_bytes(discover)
        result = DiscoverResult("OnPremise", "https://m/p", "https://m/e").to_bytes("u")
        DiscoverResult.from_bytes(result)
        PolicyRequest.from_bytes(get_policies_request("x", "u", creds))
        Policy.from_bytes(Policy().to_bytes("u"))
        request = TokenRequest(csr, (("DeviceID", "d-1"),), "u", creds).to_bytes("x")
        TokenRequest.from_bytes(request)
        read_document(read_token_response(token_response(doc, "u")))

    parts = {
        "CSR signing (device)": per_call(lambda: certificate_request("d-1", key, "sha256"), n),
        "certificate signing (CA)": per_call(
            lambda: ca.issue(csr, f"d-{next(counter)}", clock.now(), 2048, "u"), n
        ),
        "XML (4 exchanges, both sides)": per_call(xml, n),
    }
    with tempfile.TemporaryDirectory() as cold:
        start = time.perf_counter()
        derive_key("bench-cold", cache=Path(cold))
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        derive_key("bench-cold", cache=Path(cold))
        warm_s = time.perf_counter() - start
    parts["key pool, cold (once per pool key)"] = cold_s
    parts["key pool, warm (once per pool key)"] = warm_s
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--tls", action="store_true", help="the server over HTTPS")
    args = parser.parse_args()
    configure_logging("error")
    logging.getLogger("aiohttp").setLevel(logging.ERROR)

    enrolls, bares = [], []
    for _ in range(args.runs):
        enrolls.append(asyncio.run(enroll_fleet(args.devices, args.concurrency, args.tls)))
        bares.append(asyncio.run(bare_exchanges(args.devices, args.concurrency)))
    enroll_s, bare_s = statistics.median(enrolls), statistics.median(bares)
    spread = (max(enrolls) - min(enrolls)) / enroll_s
    per = enroll_s / args.devices
    print(
        f"devices {args.devices}, concurrency {args.concurrency}, runs {args.runs}, "
        f"{'HTTPS' if args.tls else 'HTTP'} on loopback, one process"
    )
    print(
        f"enrollment   {enroll_s:7.2f} s  {args.devices / enroll_s:8.0f} enrollments/s  "
        f"{per * 1000:.2f} ms each  (spread {spread:.0%}; target: 10,000 in < 60 s)"
    )
    print(
        f"baseline     {bare_s:7.2f} s  {args.devices / bare_s:8.0f} four-POST exchanges/s "
        f"(bare aiohttp handler)  ratio enrollment/baseline {enroll_s / bare_s:.2f}"
    )
    print(f"10,000 devices at this rate: {10_000 * per:.1f} s")
    parts = components(200)
    measured = {k: v for k, v in parts.items() if "pool" not in k}
    rest = per - sum(measured.values())
    print("where an enrollment's time goes (each part measured alone):")
    for name, seconds in measured.items():
        print(f"  {name:34s} {seconds * 1000:6.2f} ms  {seconds / per:5.0%}")
    print(f"  {'HTTP, aiohttp, the flow (the rest)':34s} {rest * 1000:6.2f} ms  {rest / per:5.0%}")
    for name, seconds in parts.items():
        if "pool" in name:
            print(
                f"  {name:34s} {seconds * 1000:6.1f} ms  "
                f"({POOL} keys: {POOL * seconds:.1f} s once per machine, then cached)"
            )


if __name__ == "__main__":
    main()
