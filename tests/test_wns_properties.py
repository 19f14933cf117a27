"""Properties: no header value or body, however malformed, yields an unhandled error; and
headers are read as sent, whatever their order, spelling and repeats.

[WNSHDR] a malformed request gets a protocol status (400/401/404/413 ...), never a 500 the
emulator did not choose. Two levels: the sans-I/O core with any header values, and a real
socket where bytes go through aiohttp's own HTTP parser first.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from emulator.clock import VirtualClock
from emulator.wns.errors import NotifyError
from emulator.wns.notify import RULED, collect
from emulator.wns.server import RunningWns, start_wns
from emulator.wns.service import Exchange, WnsConfig, WnsService
from tests.conftest import APP_A, APP_B

HEADER_NAMES = [
    "Authorization",
    "Content-Type",
    "Content-Length",
    "X-WNS-Type",
    "X-WNS-Cache-Policy",
    "X-WNS-TTL",
    "X-WNS-RequestForStatus",
    "X-WNS-Tag",
    "X-WNS-Group",
    "X-WNS-Match",
    "X-WNS-SuppressPopup",
    "X-WNS-PRIORITY",
    "MS-CV",
    "Transfer-Encoding",
    "X-Other",
]
GOOD_VALUES = [
    "wns/raw",
    "wns/tile",
    "application/octet-stream",
    "text/xml",
    "cache",
    "no-cache",
    "Cache",
    "60",
    "true",
    "false",
    "1",
    "4",
    "Tag1",
    "",
]
header_value = st.one_of(st.sampled_from(GOOD_VALUES), st.text(max_size=40))
wire_value = st.one_of(
    st.sampled_from(GOOD_VALUES),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)
headers_strategy = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_value), max_size=12)
body_strategy = st.one_of(st.binary(max_size=64), st.binary(min_size=4990, max_size=5010))


@pytest.fixture(scope="module")
def core() -> tuple[WnsService, VirtualClock, str, str]:
    clock = VirtualClock()
    service = WnsService(WnsConfig(apps=(APP_A, APP_B), rate_limit=None), clock)
    channel = service.request_channel("dev", APP_A.pfn, clock.now())
    form = (
        f"grant_type=client_credentials&client_id={APP_A.client_id}"
        "&client_secret=secret%2BA%2F%3D&scope=notify.windows.com"
    )
    token = service.tokens.issue("application/x-www-form-urlencoded", form.encode(), clock.now())
    return service, clock, channel.uri.split("?", 1)[1], token.value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=headers_strategy,
    body=body_strategy,
    with_auth=st.booleans(),
    method=st.sampled_from(["POST", "POST", "POST", "GET", "DELETE"]),
)
def test_core_only_raises_protocol_errors(
    core: tuple[WnsService, VirtualClock, str, str],
    headers: list[tuple[str, str]],
    body: bytes,
    with_auth: bool,
    method: str,
) -> None:
    service, clock, query, token = core
    multi: CIMultiDict[str] = CIMultiDict()
    if with_auth:
        multi.add("Authorization", f"Bearer {token}")
    for name, value in headers:
        multi.add(name, value)
    error: NotifyError | None = None
    try:
        service.notify(
            method,
            query,
            multi,
            body,
            declared_length=len(body),
            now=clock.now(),
            ex=Exchange(),
        )
    except NotifyError as err:
        error = err
    if error is not None:
        assert 400 <= error.status < 500
        assert error.description


def _read_in_one_pass(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """What each header judge must see, read the plain way: one pass in arrival order."""
    ruled: dict[str, str] = {}
    first: dict[str, str] = {}
    repeated = None
    for name, value in pairs:
        key = name.lower()
        if key in RULED or key == "authorization":
            if key in ruled or key in first:
                repeated = repeated or key
            else:
                (ruled if key in RULED else first)[key] = value
        elif key in ("ms-cv", "transfer-encoding"):
            first.setdefault(key, value)
    return {
        "ruled": ruled,
        "authorization": first.get("authorization"),
        "ms_cv": first.get("ms-cv"),
        "transfer_encoding": first.get("transfer-encoding"),
        "repeated": repeated,
    }


spelled_name = st.sampled_from(HEADER_NAMES).flatmap(
    lambda name: st.sampled_from([name, name.lower(), name.upper()])
)


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(spelled_name, header_value), max_size=12), as_dict=st.booleans())
def test_headers_are_read_where_they_sit(pairs: list[tuple[str, str]], as_dict: bool) -> None:
    """[WNSHDR] names are case-insensitive and each header comes once: the judges see the
    first Authorization, MS-CV and Transfer-Encoding, every ruled header's value by name,
    and the first once-only name sent twice. The layout memoized per list of names reads
    exactly what one plain pass reads, for a multidict (repeats kept; its keys() lists a
    repeated name once) and for a plain dict."""
    multi: CIMultiDict[str] = CIMultiDict()
    for name, value in pairs:
        multi.add(name, value)
    headers: Any = dict(multi.items()) if as_dict else multi
    expected = _read_in_one_pass(list(headers.items()))
    layout, values = collect(headers)
    assert (
        dict(zip(layout.ruled_names, layout.pick_ruled(values), strict=True)) == expected["ruled"]
    )
    assert list(layout.ruled_names) == list(expected["ruled"])  # in request order
    assert values[layout.authorization_at] == expected["authorization"]
    assert values[layout.ms_cv_at] == expected["ms_cv"]
    assert values[layout.transfer_encoding_at] == expected["transfer_encoding"]
    assert layout.repeated == expected["repeated"]


class ServerThread:
    """A fake WNS on a real loopback socket, in its own thread and event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.wns: RunningWns | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        config = WnsConfig(apps=(APP_A,), rate_limit=None)
        self.wns = self.loop.run_until_complete(start_wns(config, VirtualClock()))
        self.ready.set()
        self.loop.run_forever()

    def call(self, fn: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(_as_coro(fn), self.loop).result(10)

    def stop(self) -> None:
        assert self.wns is not None
        asyncio.run_coroutine_threadsafe(self.wns.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _as_coro(fn: Any) -> Any:
    return fn()


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[ServerThread, str, str]]:
    server = ServerThread()
    server.thread.start()
    assert server.ready.wait(10)
    wns = server.wns
    assert wns is not None
    channel = server.call(lambda: wns.service.request_channel("dev", APP_A.pfn, wns.clock.now()))
    form = (
        f"grant_type=client_credentials&client_id={APP_A.client_id}"
        "&client_secret=secret%2BA%2F%3D&scope=notify.windows.com"
    ).encode()
    token = server.call(
        lambda: (
            wns.service.tokens.issue(
                "application/x-www-form-urlencoded", form, wns.clock.now()
            ).value
        )
    )
    yield server, channel.uri.split("/", 3)[3], token
    server.stop()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.lists(st.tuples(st.sampled_from(HEADER_NAMES), wire_value), max_size=10),
    body=body_strategy,
)
def test_socket_level_requests_never_get_an_unhandled_500(
    live: tuple[ServerThread, str, str], headers: list[tuple[str, str]], body: bytes
) -> None:
    server, target, token = live
    assert server.wns is not None
    conn = http.client.HTTPConnection("127.0.0.1", server.wns.port, timeout=10)
    try:
        conn.putrequest("POST", target, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {token}")
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            conn.putheader(name, value)
        if "content-length" not in names and "transfer-encoding" not in names:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        resp.read()
    except (http.client.HTTPException, ConnectionError):
        return  # the HTTP layer refused to parse or closed: not an application error
    finally:
        conn.close()
    assert resp.status != 500, resp.getheaders()
    assert resp.status == 200 or resp.getheader("X-WNS-Error-Description") or resp.status == 400
