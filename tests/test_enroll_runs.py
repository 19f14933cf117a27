"""Enrollment in a run (issue 18): devices join the server through MS-MDE2 before their
first session, a failed enrollment is an event and a retry (never a crash), the log is the
same every run, and mistakes in the enroll settings are exit 2 with the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from emulator.cli import main
from emulator.clock import Clock
from emulator.mdm.config import MdmConfig
from emulator.mdm.enrollment import ENROLLMENT_PATH
from emulator.mdm.server import ReferenceServer
from emulator.runner import RunOptions, RunResult, run_scenario
from emulator.scenario.loader import ScenarioError, load_scenario

ENROLLING = """\
name: enrolling
seed: 5
duration: 2d
enroll: {email: ann@contoso.com, password: right, key_pool: 4}
fleet:
  - group: good
    count: 3
  - group: bad
    count: 1
    enroll: {email: bob@contoso.com, password: wrong}
timeline:
  - {at: '+20h', do: push, target: {group: good}}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def of(result: RunResult, name: str, device: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in result.events
        if e["event"] == name and (device is None or e["device_id"] == device)
    ]


async def test_devices_enroll_then_talk_over_mutual_tls(tmp_path: Path) -> None:
    """Each device of an enrolling group enrolls before its first session (enroll_started,
    then enrolled with its thumbprint and the provisioned address [MDE2 3.6]); its sessions
    then reach the built-in server, which over TLS serves only the certificate it issued;
    a group whose password is wrong gets the Authentication fault with its HRESULT and
    tries again 5, 10, 20 ... minutes later while the others run on (section 0)."""
    scenario = load_scenario(write(tmp_path, ENROLLING))
    result = await run_scenario(scenario, RunOptions(progress=False, tls_dir=tmp_path / "tls"))
    enrolled = of(result, "device.enrolled")
    assert sorted(e["device_id"] for e in enrolled) == ["good-0000", "good-0001", "good-0002"]
    assert {e["server_url"] for e in enrolled} == {
        "https://mdm.dmemu.test/ManagementServer/MDM.svc"
    }
    assert len({e["thumbprint"] for e in enrolled}) == 3
    first = {e["device_id"]: e for e in reversed(of(result, "session.start"))}
    assert all(first[f"good-000{i}"]["trigger"] == "enrollment" for i in range(3))
    ends = [e for e in of(result, "session.end") if e["device_id"].startswith("good")]
    assert ends
    assert {e["outcome"] for e in ends} == {"ended"}
    assert len(of(result, "session.start", "good-0000")) > 2  # polls and the push
    failed = of(result, "device.enroll_failed", "bad-0000")
    assert failed[0]["stage"] == "policy"
    assert failed[0]["subcode"] == "Authentication"
    assert failed[0]["hresult"] == "0x80180002"
    assert "wrong password for bob@contoso.com" in failed[0]["detail"]
    assert failed[0]["excerpt"].startswith("<s:Envelope")  # the server's own bytes
    assert [f["retry_in_ms"] // 60_000 for f in failed[:4]] == [5, 10, 20, 40]
    assert of(result, "session.start", "bad-0000") == []


async def test_a_seeded_enrolling_run_logs_the_same_every_time(tmp_path: Path) -> None:
    """Architecture principle 6: keys derive from the pool, the built-in CA from the seed,
    serials from the request: thumbprints and the whole log repeat byte for byte."""
    scenario = load_scenario(write(tmp_path, ENROLLING))
    runs = [
        await run_scenario(scenario, RunOptions(progress=False, tls_dir=tmp_path / "tls"))
        for _ in range(2)
    ]
    assert runs[0].events == runs[1].events


class FlakyEnrollment(ReferenceServer):
    """Answers the first two enrollment requests with HTTP 500 and a non-SOAP body."""

    failures = 2

    def app(self) -> web.Application:
        app = super().app()

        @web.middleware
        async def flaky(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path == ENROLLMENT_PATH and self.failures > 0:
                self.failures -= 1
                return web.Response(status=500, text="boom: the enrollment database is down")
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.append(flaky)
        return app


async def test_a_failed_enrollment_is_retried_and_the_run_goes_on(tmp_path: Path) -> None:
    """HTTP 500 from the Enrollment service: device.enroll_failed with the server's bytes,
    then the retry 5 minutes later fails again and the next, 10 minutes after that,
    enrolls; the device then runs as any other."""
    text = (
        "name: flaky\nseed: 1\nduration: 1d\nenroll: {key_pool: 2}\n"
        "fleet:\n  - {group: a, count: 1}\n"
    )

    def factory(config: MdmConfig, clock: Clock, resolver: AbstractResolver) -> ReferenceServer:
        return FlakyEnrollment(config, clock, resolver=resolver)

    options = RunOptions(progress=False, tls_dir=tmp_path / "tls", server_factory=factory)
    result = await run_scenario(load_scenario(write(tmp_path, text)), options)
    started = of(result, "device.enroll_started")
    failed = of(result, "device.enroll_failed")
    assert [e["attempt"] for e in started] == [1, 2, 3]
    assert [(f["stage"], f["reason"]) for f in failed] == [("enrollment", "http-500")] * 2
    assert failed[0]["excerpt"] == "boom: the enrollment database is down"
    assert started[2]["t_ms"] - started[0]["t_ms"] == 15 * 60_000
    assert of(result, "device.enrolled")[0]["t_ms"] == started[2]["t_ms"]
    assert len(of(result, "session.end")) > 1


async def test_federated_enrollment_takes_the_token_from_the_hook(tmp_path: Path) -> None:
    """Federated [MDE2 3.2]: no browser runs, so without a token in the scenario the device
    asks the hooks file's enroll_token (the built-in server's hands out its token)."""
    text = (
        "name: fed\nseed: 2\nduration: 1d\nenroll: {auth: federated, key_pool: 2}\n"
        "fleet:\n  - {group: a, count: 2}\n"
    )
    result = await run_scenario(
        load_scenario(write(tmp_path, text)), RunOptions(progress=False, tls_dir=tmp_path / "t")
    )
    assert [e["auth_policy"] for e in of(result, "device.enrolled")] == ["Federated"] * 2


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("{password: a, password_env: B}", "give password or password_env, not both"),
        ("{password_env: DMEMU_SURELY_UNSET}", "DMEMU_SURELY_UNSET is not set"),
        ("{auth: certificate}", "auth certificate needs a certificate"),
        ("{auth: certificate, certificate: {cert: /nonexistent.pem}}", "no such file"),
        ("{auth: kerberos}", "auth"),
        ("{email: not-an-address}", "email"),
    ],
)
def test_enroll_block_mistakes_name_file_and_line(tmp_path: Path, block: str, message: str) -> None:
    """A bad enroll block is an error at its line (exit 2), before anything runs."""
    text = f"name: x\nduration: 1d\nfleet:\n  - group: a\n    count: 1\n    enroll: {block}\n"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, text))
    shown = str(caught.value)
    assert ":6:" in shown
    assert message in shown


def test_key_pool_is_the_runs(tmp_path: Path) -> None:
    text = "name: x\nduration: 1d\nfleet:\n  - {group: a, count: 1, enroll: {key_pool: 3}}\n"
    with pytest.raises(ScenarioError, match="top-level enroll block"):
        load_scenario(write(tmp_path, text))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--enroll-auth", "federated"], "--enroll-auth is for --enroll"),
        (["--enroll", "ftp://x/Discovery.svc"], "not an http(s) Discovery URL"),
        (["--enroll", "--enroll-auth", "certificate:/x.pem"], "on-premise or federated"),
        (["--enroll", "--enroll-auth", "kerberos:x"], "use on-premise:USER:PASSWORD"),
    ],
)
def test_enroll_flags_mistakes_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    text = "name: x\nduration: 1d\nfleet:\n  - {group: a, count: 1}\n"
    code = main(["run", str(write(tmp_path, text)), "--quiet", *flags])
    assert code == 2
    assert message in capsys.readouterr().err


def test_run_with_enroll_writes_enrollments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dmemu run --enroll`: every group enrolls into the built-in server."""
    text = "name: x\nseed: 1\nduration: 1d\nfleet:\n  - {group: a, count: 2}\n"
    out = tmp_path / "out"
    code = main(["run", str(write(tmp_path, text)), "--quiet", "--enroll", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["auth_policy"] for e in events if e["event"] == "device.enrolled"] == [
        "OnPremise"
    ] * 2


async def test_quickstart_passes_with_every_device_enrolled(tmp_path: Path) -> None:
    """Issue 18's done-when: the quickstart's expectations all hold when its 22 devices
    enroll first and then run 45 days of sessions and pushes over mutual TLS."""
    from emulator.scenario.expect import judge_all
    from emulator.scenario.model import EnrollSpec

    scenario = load_scenario(Path(__file__).parents[1] / "scenarios" / "quickstart.yaml")
    options = RunOptions(progress=False, tls_dir=tmp_path / "tls", enroll=EnrollSpec())
    result = await run_scenario(scenario, options)
    assert len(of(result, "device.enrolled")) == 22
    verdicts = judge_all(scenario.expectations, result.events, result.group_of, result.end_ms)
    assert all(v.passed for v in verdicts), [v for v in verdicts if not v.passed]
