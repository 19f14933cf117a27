"""OpenAPI (issue 20): the fake WNS and the reference server describe every HTTP route they
serve in an OpenAPI 3.1 document (`/_emulator/openapi.json`, `/admin/openapi.json`), and a
fuzzer driven by those documents (schemathesis) finds no 500, no crash and no answer outside
what the document says, error bodies included."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from emulator.clock import VirtualClock
from emulator.mdm.config import MdmConfig
from emulator.mdm.server import ReferenceServer
from emulator.wns.app import make_wns_app
from emulator.wns.config import DEMO_APP
from emulator.wns.service import WnsConfig, WnsService
from tests.conftest import APP_A
from tests.test_cli import _start, _stop

#: the answer is what the document says: no 5xx, documented statuses, content types, headers
#: and bodies (not "schema-valid data is accepted": a well-formed token request with a wrong
#: secret is refused, as it must be)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
UNDOCUMENTED = ("/_emulator", "/_emulator/", "/_emulator/{tail}", "/_emulator/openapi.json")


def served(app: web.Application, under: tuple[str, ...]) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or path in UNDOCUMENTED or path == "/admin/openapi.json":
            continue
        if path.startswith(under):
            routes.add(("*" if route.method == "*" else route.method, path))
    return routes


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, item in doc["paths"].items() for m in item}


async def fetch(app: web.Application, path: str, aiohttp_client: Any) -> dict[str, Any]:
    client = await aiohttp_client(app)
    resp = await client.get(path)
    assert resp.status == 200
    doc: dict[str, Any] = await resp.json()
    schemathesis.openapi.from_dict(doc).validate()  # a valid OpenAPI 3.1 document
    assert doc["openapi"] == "3.1.0"
    return doc


async def test_every_route_is_documented(aiohttp_client: Any, tmp_path: Path) -> None:
    """Each API's document lists exactly the routes it serves (the protocol endpoints, the
    control or admin API, health and metrics), so the two cannot drift apart."""
    clock = VirtualClock()
    wns_app = make_wns_app(WnsService(WnsConfig(apps=(APP_A,)), clock), clock)
    wns_doc = await fetch(wns_app, "/_emulator/openapi.json", aiohttp_client)
    wns_routes = served(wns_app, ("/",))
    direct = {("*", "/"), ("*", "/accesstoken.srf")}  # every method: 405 but POST
    assert documented(wns_doc) == (wns_routes - direct) | {
        ("POST", "/"),
        ("POST", "/accesstoken.srf"),
    }
    assert wns_routes >= direct

    server = ReferenceServer(MdmConfig(app=APP_A), clock, db=str(tmp_path / "mdm.db"))
    try:
        mdm_app = server.app()
        mdm_doc = await fetch(mdm_app, "/admin/openapi.json", aiohttp_client)
        admin = served(mdm_app, ("/admin/", "/healthz", "/readyz", "/metrics"))
        assert documented(mdm_doc) == admin
        assert all(
            "security" in op
            for item in mdm_doc["paths"].values()
            for op in item.values()
            if "admin" in op.get("tags", [])
        )
    finally:
        await server.close()


def demo_token(base_url: str) -> str:
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": f"ms-app://{DEMO_APP.sid}",
            "client_secret": DEMO_APP.secret,
            "scope": "notify.windows.com",
        }
    ).encode()
    with urllib.request.urlopen(f"{base_url}/accesstoken.srf", form, timeout=10) as resp:
        token: str = json.load(resp)["access_token"]
    return token


def issue_channel(base_url: str) -> dict[str, str]:
    body = json.dumps({"pfn": DEMO_APP.pfn}).encode()
    request = urllib.request.Request(f"{base_url}/_emulator/wns/channels", body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        uri = json.load(resp)["channel_uri"]
    return {"token": urllib.parse.unquote(urllib.parse.urlsplit(uri).query.split("=", 1)[1])}


def fuzz(
    base_url: str,
    doc_path: str,
    only: Callable[[str], bool],
    examples: int,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> Counter[int]:
    """Every operation whose path ``only`` takes, ``examples`` generated cases
    each, every case checked by schemathesis's default checks (no 5xx, statuses, content
    types, headers and bodies as documented). Returns the statuses answered."""
    with urllib.request.urlopen(base_url + doc_path, timeout=10) as resp:
        doc = json.load(resp)
    schema = schemathesis.openapi.from_dict(doc)
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        if not only(operation.path):
            continue

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            if query:
                case.query = {**(case.query or {}), **query}
            response = case.call_and_validate(
                base_url=base_url, timeout=10, checks=CHECKS, headers=headers
            )
            statuses[response.status_code] += 1

        check()
    return statuses


@pytest.mark.timeout(240)
def test_fuzzing_the_fake_wns_finds_no_server_error(tmp_path: Path) -> None:
    """schemathesis drives the token endpoint, ChannelURIs, health, metrics and the whole
    control API from the document: no 500 and no answer the document does not describe. The
    protocol endpoints and the control API are fuzzed on two servers, so faults the fuzzer
    injects through the control API (a 500 on purpose, a day of latency) never reach the
    protocol endpoints' run."""
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    protocol, ready = _start(tmp_path / "a", "--clock", "virtual")
    control, control_ready = _start(tmp_path / "b", "--clock", "virtual")
    try:
        doc = "/_emulator/openapi.json"
        token = demo_token(str(ready["url"]))  # so pushes get past 401 to the checks behind
        notify = {"Authorization": f"Bearer {token}"}
        channel = issue_channel(str(ready["url"]))  # a real ChannelURI's token
        tokens = fuzz(str(ready["url"]), doc, {"/accesstoken.srf"}.__contains__, 60)
        pushes = fuzz(str(ready["url"]), doc, {"/"}.__contains__, 80, notify, channel)
        health = fuzz(str(ready["url"]), doc, {"/healthz", "/readyz", "/metrics"}.__contains__, 5)
        steer = fuzz(str(control_ready["url"]), doc, lambda p: p.startswith("/_emulator/"), 25)
    finally:
        _stop(protocol)
        _stop(control)
    assert 400 in tokens, tokens
    assert len(pushes) >= 2, pushes  # past the token and the ChannelURI, to the headers
    assert set(health) == {200}, health
    assert {200, 201, 400, 404} <= set(steer), steer


@pytest.mark.timeout(240)
def test_fuzzing_the_admin_api_finds_no_server_error(tmp_path: Path) -> None:
    """The reference server's admin API, fuzzed from `/admin/openapi.json`, with an admin
    token set (the fuzzer presents it, as the document's security scheme says)."""
    proc, ready = _start(tmp_path, "--admin-token", "t0ken", command="mdm")
    try:
        bearer = {"Authorization": "Bearer t0ken"}
        admin = fuzz(str(ready["url"]), "/admin/openapi.json", lambda _: True, 30, bearer)
        anonymous = fuzz(
            str(ready["url"]), "/admin/openapi.json", lambda p: p.startswith("/admin/"), 3
        )
    finally:
        _stop(proc)
    assert {200, 400, 404} <= set(admin), admin
    assert 401 in anonymous, anonymous
