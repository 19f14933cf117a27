"""Shared fixtures: a virtual clock, a fake WNS app with two apps, and request helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from emulator.clock import VirtualClock
from emulator.logs import configure_logging
from emulator.wns.app import make_wns_app
from emulator.wns.models import App
from emulator.wns.service import WnsConfig, WnsService

APP_A = App(sid="S-1-15-2-111-222-333", secret="secret+A/=", pfn="Contoso.MdmPush_8wekyb3d8bbwe")
APP_B = App(sid="S-1-15-2-444-555-666", secret="secret-B", pfn="Fabrikam.MdmPush_1a2b3c4d5e6f7")

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    configure_logging("warning")  # also undoes a CLI test's configuration


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def make_service(clock: VirtualClock, **overrides: Any) -> WnsService:
    config = WnsConfig(apps=(APP_A, APP_B), base_url="http://wns.test", **overrides)
    return WnsService(config, clock)


@pytest.fixture
def service(clock: VirtualClock) -> WnsService:
    return make_service(clock)


@pytest.fixture
async def wns(aiohttp_client: AiohttpClient, service: WnsService, clock: VirtualClock) -> Any:
    client = await aiohttp_client(make_wns_app(service, clock))
    return client


def token_form(app: App = APP_A, **changes: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": app.client_id,
        "client_secret": app.secret,
        "scope": "notify.windows.com",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v != "<drop>"}


async def get_token(client: TestClient[Any, Any], app: App = APP_A) -> str:
    resp = await client.post("/accesstoken.srf", data=token_form(app))
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["access_token"])


def raw_headers(token: str, **extra: str) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/octet-stream",
        "X-WNS-Type": "wns/raw",
    }
    headers.update(extra)
    return headers


def channel_path(uri: str) -> URL:
    """The path+query of a ChannelURI, byte for byte (the test client supplies the host)."""
    return URL("/" + uri.split("://", 1)[1].split("/", 1)[1], encoded=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite golden files (fixtures/, docs/) from the current code instead of comparing",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """``golden(path, text)``: the file at ``path`` (from the repo root) must hold ``text``;
    with ``--regen-golden`` it is rewritten instead."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    regen = bool(request.config.getoption("--regen-golden"))

    def check(path: str, text: str) -> None:
        target = root / path
        if regen:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            return
        assert target.exists(), f"{path} missing: run pytest --regen-golden"
        assert target.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run pytest --regen-golden"
        )

    return check


def interrupt_dmemu(
    argv: list[str], sig: int, first_line: str, *, settle_s: float = 1.0
) -> tuple[int, str, str]:
    """Run ``dmemu ARGV`` in a process, wait for its first line of output (which must start
    with ``first_line``) and ``settle_s`` more, send it ``sig``; return its exit code,
    stdout and stderr. It is killed if it outlives the test."""
    import os
    import subprocess
    import sys
    import threading
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(first_line), line
        threading.Event().wait(settle_s)  # into the run
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, line + stdout, stderr


@pytest.fixture
async def make_client(
    clock: VirtualClock, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> AsyncIterator[Callable[..., Awaitable[TestClient[Any, Any]]]]:
    """Builds reference servers (``MdmConfig`` fields as keywords) mounted on test clients,
    closing them all after the test."""
    from emulator.mdm.config import MdmConfig
    from emulator.mdm.server import ReferenceServer

    servers: list[ReferenceServer] = []

    async def make(**config: Any) -> TestClient[Any, Any]:
        server = ReferenceServer(MdmConfig(app=APP_A, **config), clock)
        servers.append(server)
        return await aiohttp_client(server.app())

    yield make
    for server in servers:
        await server.close()
