"""The conformance suite (issue 6): every check passes against the reference server, and each
fails against a server variant with exactly that defect, with evidence naming the offending
request or session, while the other checks keep their verdicts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import defusedxml.ElementTree as ET
import pytest
from aiohttp import web

from emulator.cli import main
from emulator.conformance.registry import markdown, ordered
from emulator.conformance.suite import Report, run_conformance, select
from emulator.mdm.omadm import OmaDmEndpoint
from emulator.mdm.wns_sender import WnsSender
from emulator.runner import RunOptions
from emulator.syncml import Status, parse
from tests.conftest import interrupt_dmemu
from tests.defects import DEFECTS, with_endpoint, with_sender

QUIET = RunOptions(progress=False)


async def _verdicts(options: RunOptions = QUIET) -> tuple[Report, dict[str, str]]:
    report = await run_conformance(options, ordered())
    return report, {c.id: v.status for c, v in report.rows}


async def test_every_check_passes_against_the_reference_server() -> None:
    """The reference server is the known-good baseline: all 26 checks pass (conformance.md)."""
    report, verdicts = await _verdicts()
    assert verdicts == {c.id: "passed" for c in ordered()}
    assert report.passed()
    assert len(verdicts) == 26


def test_conformance_page_is_generated(golden: Callable[[str, str], None]) -> None:
    """docs/conformance.md lists every check from the registry (regenerate with
    --regen-golden)."""
    golden("docs/conformance.md", markdown())


def test_every_check_has_a_defect_that_fails_it() -> None:
    """A check that cannot fail is a bug of the suite: each has a defective server."""
    assert sorted(DEFECTS) == sorted(c.id for c in ordered())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("check_id", sorted(DEFECTS))
async def test_check_fails_against_its_defect(check_id: str) -> None:
    """Against a server with exactly this defect the check fails (MUST) or warns (SHOULD),
    with evidence; every other check keeps its verdict (except ones the defect entails)."""
    _, factory, entailed = DEFECTS[check_id]
    report, verdicts = await _verdicts(RunOptions(progress=False, server_factory=factory))
    row = next((c, v) for c, v in report.rows if c.id == check_id)
    check, verdict = row
    assert verdict.status == ("failed" if check.level == "MUST" else "warning"), verdict
    assert verdict.evidence, "a failing check shows what it saw"
    assert all(e.get("rule", "").startswith(check_id) for e in verdict.evidence)
    others = {k: v for k, v in verdicts.items() if k != check_id}
    expected = {c.id: entailed.get(c.id, "passed") for c in ordered() if c.id != check_id}
    assert others == expected


def test_cli_writes_json_and_junit_and_exits_by_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dmemu conformance --out DIR` prints the table, writes conformance.json and junit.xml
    (one test case per check) and exits 0 when every MUST passes."""
    code = main(["conformance", "--quiet", "--only", "A1,c5,E4", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "A1 token-request" in out
    assert "PASSED: 3 passed" in out
    data = json.loads((tmp_path / "conformance.json").read_text())
    assert data["schema"] == "dmemu.conformance/1"
    assert [c["id"] for c in data["checks"]] == ["A1", "C5", "E4"]
    cases = list(ET.parse(tmp_path / "junit.xml").getroot().iter("testcase"))
    assert len(cases) == 3


def test_unknown_check_ids_are_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", "--only", "Z9"]) == 2
    assert "unknown check Z9" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown check"):
        select("A1,nope")


async def test_missing_hooks_skip_never_pass(aiohttp_server: Any) -> None:
    """Against an external server without hooks, checks that need the server to push are
    reported as skipped (no hook: push), never as passed (conformance.md)."""

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_found)
    server = await aiohttp_server(app)
    url = str(server.make_url("/ManagementServer/MDM.svc"))
    options = RunOptions(progress=False, server_url=url, idle_ms=0)
    report = await run_conformance(options, ordered())
    verdicts = {c.id: v for c, v in report.rows}
    assert verdicts["A1"].status == "skipped"
    assert verdicts["A1"].reason == "no hook: push"
    assert verdicts["E3"].reason == "no hook: queue_command, push"


@pytest.mark.timeout(180)
def test_external_server_over_http_through_hooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The suite grades a server in another process over real HTTP, asking it to act through
    its hooks file: the reference server run as `dmemu mdm` passes every check that does not
    measure its waits. Those (C7, D1-D4) run on its own real clock while virtual time leaps:
    they say so (skipped, with what they would have said) instead of passing, as a server
    reading Retry-After: 600 as 600 ms passed D1 on virtual time."""
    import socket

    from emulator.hooks import REFERENCE_HOOKS
    from tests.test_cli import _start, _stop

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        wns_port = probe.getsockname()[1]
    proc, ready = _start(tmp_path, "--wns-url", f"http://127.0.0.1:{wns_port}", command="mdm")
    try:
        argv = ["conformance", "--server", str(ready["omadm_url"]), "--quiet"]
        argv += ["--hooks", str(REFERENCE_HOOKS), "--wns-port", str(wns_port), "--idle-ms", "5"]
        code = main([*argv, "--out", str(tmp_path / "out")])
    finally:
        _stop(proc)
    assert code == 0, capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "conformance.json").read_text())
    verdicts = {c["id"]: c["verdict"] for c in data["checks"]}
    clocked = {"C7", "D1", "D2", "D3", "D4"}
    assert {k for k, v in verdicts.items() if v != "passed"} == clocked
    for check in data["checks"]:
        if check["id"] in clocked:
            assert check["verdict"] == "skipped"
            assert check["reason"].startswith("not judged: the server runs on its own clock")
    printed = capsys.readouterr().out
    assert "the server under test must be configured with:" in printed
    assert "dmemu-demo-secret" in printed
    assert "dmemu.demomdmpush_8wekyb3d8bbwe" in printed


def test_unreachable_server_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    """A --server that does not answer at all stops the run before it starts (exit 2)."""
    assert main(["conformance", "--server", "http://127.0.0.1:9/omadm", "--quiet"]) == 2
    assert "cannot reach --server http://127.0.0.1:9/omadm" in capsys.readouterr().err


class LowerCaseBearer(WnsSender):
    """A server that writes the scheme as the token endpoint's token_type spells it."""

    def push_headers(self, token: str) -> dict[str, str]:
        return {**super().push_headers(token), "Authorization": f"bearer {token}"}


class EmptyClose(OmaDmEndpoint):
    """Ends every session with an empty HTTP 200 body instead of a Status-only message."""

    def handle(
        self,
        body: bytes,
        authorization: str,
        origin: str | None,
        now: int,
        client_cert: str | None = None,
    ) -> bytes:
        reply = super().handle(body, authorization, origin, now, client_cert)
        commands = parse(reply).commands
        return b"" if all(isinstance(c, Status) for c in commands) else reply


async def test_b2_takes_the_bearer_scheme_in_any_letter_case() -> None:
    """RFC 7235: the auth scheme is case-insensitive (the fake WNS accepts `bearer`, and the
    token endpoint returns token_type "bearer"): B2 passes such a server."""
    options = RunOptions(progress=False, server_factory=with_sender(LowerCaseBearer))
    report = await run_conformance(options, select("A1,B2"))
    assert {c.id: v.status for c, v in report.rows} == {"A1": "passed", "B2": "passed"}


async def test_e4_fails_sessions_closed_by_an_empty_body() -> None:
    """[MSMDM 2.2.6.1] the server ends a session with a Status-only message: one that ends
    each with an empty HTTP 200 fails E4 with evidence (E2 fails too), not "skipped"."""
    options = RunOptions(progress=False, server_factory=with_endpoint(EmptyClose))
    report = await run_conformance(options, select("E2,E4"))
    verdicts = {c.id: v for c, v in report.rows}
    assert verdicts["E2"].status == "failed"
    assert verdicts["E4"].status == "failed"
    assert verdicts["E4"].evidence[0]["rule"].startswith("E4: not closed")
    assert verdicts["E4"].evidence[0]["event"] == "session.server_fault"


class TrustsWnsHostByName(WnsSender):
    """Trusts the fake WNS's address by host name, whatever the port (as a production server
    trusts *.notify.windows.com by name)."""

    def trusted(self, channel_uri: str) -> bool:
        return super().trusted(channel_uri) or urlsplit(channel_uri).hostname == "127.0.0.1"


async def test_b5_trap_is_not_on_the_wns_address() -> None:
    """The trap host listens on 127.0.0.2, not on the fake WNS's 127.0.0.1 with another port,
    so a server that trusts the WNS host by name is not failed for it (B5 [WNSOV])."""
    options = RunOptions(progress=False, server_factory=with_sender(TrustsWnsHostByName))
    report = await run_conformance(options, select("B5"))
    verdict = report.rows[0][1]
    assert verdict.status == "passed", verdict
    assert not report.result.trap_requests


class HttpsChannelsOnly(WnsSender):
    """Refuses a ChannelURI that is not HTTPS, as Fleet does [FLEET-WNS]."""

    def trusted(self, channel_uri: str) -> bool:
        return channel_uri.startswith("https://") and super().trusted(channel_uri)


@pytest.mark.timeout(120)
async def test_tls_grades_a_server_that_refuses_plain_http_channels(tmp_path: Path) -> None:
    """`dmemu conformance --tls`: the fake WNS serves HTTPS with a local CA, so a server that
    refuses non-HTTPS ChannelURIs can be graded (without it, it never pushes)."""
    factory = with_sender(HttpsChannelsOnly)
    plain = await run_conformance(RunOptions(progress=False, server_factory=factory), select("A1"))
    assert plain.rows[0][1].status != "passed"
    options = RunOptions(progress=False, server_factory=factory, wns_tls_dir=tmp_path / "tls")
    report = await run_conformance(options, ordered())
    assert {c.id: v.status for c, v in report.rows} == {c.id: "passed" for c in ordered()}
    channels = [e for e in report.result.events if e["event"] == "device.channel"]
    assert all(e["channel_uri"].startswith("https://") for e in channels)


@pytest.mark.timeout(60)
def test_an_interrupted_conformance_run_is_never_passed(tmp_path: Path) -> None:
    """SIGTERM (a CI timeout) stops `dmemu conformance` with what it saw: conformance.json
    is written, marked incomplete and not passed, and the exit code is 130."""
    import signal

    argv = ["conformance", "--rate", "3600", "--quiet", "--out", str(tmp_path)]
    code, _, err = interrupt_dmemu(argv, signal.SIGTERM, "dmemu conformance:")
    assert code == 130, err
    data = json.loads((tmp_path / "conformance.json").read_text())
    assert data["complete"] is False
    assert data["passed"] is False
