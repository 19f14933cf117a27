"""Testing a vendor's MDM server with dmemu's pytest plugin (see docs/testing-with-pytest.md).

The server (``vendor_mdm.py``) runs in the test's own process and event loop; ``dmemu_run``
runs a fleet against it on a virtual month while the process's clock follows the run, so
the server's ``datetime.now()`` sees the month pass in a second or two of wall time.
"""

from __future__ import annotations

import socket

from emulator.hooks import HooksFile
from emulator.testing.plugin import Runner
from emulator.wns.config import DEMO_APP

from .vendor_mdm import VendorMdm

SCENARIO = """
name: vendor
seed: 1
duration: 34d
fleet:   # a build whose renewals fail: its channel expires at day 30
  - {group: stuck, count: 1, renewal_failure: {mode: silent, rate: 1.0}}
timeline:
  - {at: "day 1 10:00", do: push, target: {group: stuck}}
  - {at: "day 1 11:00", do: push, target: {group: stuck}}    # the same token
  - {at: "day 2 12:00", do: push, target: {group: stuck}}    # 26 h later: a new token
  - {at: "day 31 10:00", do: push, target: {group: stuck}}   # 410: the channel expired
  - {at: "day 31 11:00", do: push, target: {group: stuck}}   # not sent: that channel is gone
  - {at: "day 32 12:00", do: push, target: {group: stuck}}   # after the PFN was set again
  - {at: "day 33 09:00", do: wns_fault, status: 503, count: 1, retry_after: 600s}
  - {at: "day 33 10:00", do: push, target: {group: stuck}}   # 503: retried 600 s later
expect:
  - expect: no_push_after_gone
  - {expect: count, event: wns.notify, where: {status: 410}, min: 1, max: 1}
  - {expect: count, event: session.start, where: {trigger: push}, min: 4}
"""

HOOKS = HooksFile.model_validate(
    {
        "push": {
            "method": "POST",
            "url": "{base}/admin/devices/{device_id}/push",
            "expect": [200, 409],
        }
    }
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_tokens_410_and_pfn_reset_on_a_virtual_month(dmemu_run: Runner) -> None:
    wns_port = free_port()
    server = VendorMdm(
        token_url=f"http://127.0.0.1:{wns_port}/accesstoken.srf",
        client_id=DEMO_APP.client_id,
        client_secret=DEMO_APP.secret,
        pfn=DEMO_APP.pfn,
    )
    outcome = await dmemu_run(
        SCENARIO, app=server.app(), path="/omadm", hooks=HOOKS, wns_port=wns_port
    )
    assert outcome.passed, outcome.failures()
    tokens = outcome.events("wns.token")
    # day 1 (reused an hour later), day 2 (the first expired after 24 emulated hours), day 31
    # and day 32 (each lives 24 h; the server refreshes it only when it needs one)
    days = [t["t_ms"] // 86_400_000 - tokens[0]["t_ms"] // 86_400_000 for t in tokens]
    assert days == [0, 1, 30, 31]
    pfn_sets = outcome.events("device.pfn_set")
    gone = next(e for e in outcome.events("wns.notify") if e["status"] == 410)
    assert pfn_sets[-1]["t_ms"] > gone["t_ms"]  # the PFN was set again after the 410
    *_, unavailable, retried = outcome.events("wns.notify")
    assert unavailable["status"] == 503
    # its asyncio.sleep(600) ran on the run's clock: the retry is 600 s later to the ms
    assert retried["t_ms"] - unavailable["t_ms"] == 600_000
    assert (retried["status"], retried["outcome"]) == (200, "received")
