"""Scenarios and the runner (issue 5): every shipped scenario passes its expectations against
the reference server; a run is reproducible byte for byte; bad files are refused with
file:line:column errors, all at once, exit 2; a failed expectation is exit 1 with evidence."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import defusedxml.ElementTree as ET
import pytest

from emulator.cli import main
from emulator.events.catalogue import CATALOGUE, TIMELINE_ACTIONS, markdown, unknown_field
from emulator.reports.write import event_line
from emulator.runner import RunOptions, run_scenario
from emulator.scenario.expect import judge
from emulator.scenario.loader import ScenarioError, load_scenario, parse_at, schema
from tests.conftest import interrupt_dmemu

ROOT = Path(__file__).parents[1]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
QUIET = RunOptions(progress=False)

SMALL = """\
name: small
seed: 3
duration: 3d
fleet:
  - group: a
    count: 3
timeline:
  - {at: "day 1 10:00", do: push, target: {group: a}}
expect:
  - expect: push_starts_session
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
async def test_shipped_scenarios_pass_against_the_reference_server(path: Path) -> None:
    """Every scenario we ship holds its expectations against the reference server (issue 5;
    the big fleets run in bench/fleet_run.py, not here)."""
    scenario = load_scenario(path)
    result = await run_scenario(scenario, QUIET)
    verdicts = [
        judge(e, result.events, result.group_of, result.end_ms) for e in scenario.expectations
    ]
    failed = [(v.name, v.detail, v.evidence) for v in verdicts if not v.passed]
    assert failed == []
    assert verdicts, "a shipped scenario states what must hold"
    uncatalogued = {
        (e["event"], field)
        for e in result.events
        for field in ([""] if e["event"] not in CATALOGUE else e)
        if e["event"] not in CATALOGUE or unknown_field(e["event"], field)
    }
    assert uncatalogued == set(), "emulator/events/catalogue.py must list every event and field"


def test_event_catalogue_page_is_generated(golden: Callable[[str, str], None]) -> None:
    """docs/events.md is the catalogue as a page (regenerate with --regen-golden), and the
    timeline events it lists are the schema's actions."""
    golden("docs/events.md", markdown())
    event = schema()["$defs"]["event"]["properties"]["do"]["enum"]
    assert tuple(event) == TIMELINE_ACTIONS


@pytest.mark.parametrize(
    ("expectation", "says"),
    [
        (
            "{expect: count, event: device.channel_expird, max: 0}",
            "10:21: expect.0.event: no event 'device.channel_expird' in the event catalogue "
            "(did you mean 'device.channel_expired'?)",
        ),
        (
            "{expect: count, event: session.start, where: {triger: push}, max: 0}",
            "10:51: expect.0.where.triger: event 'session.start' has no field 'triger' "
            "(did you mean 'trigger'?)",
        ),
    ],
)
def test_expectations_name_catalogued_events_and_fields(
    tmp_path: Path, expectation: str, says: str
) -> None:
    """A typo in an expectation's event or where key used to pass silently (`max: 0` of an
    event that never exists); it is an error with a suggestion."""
    text = SMALL.replace("  - expect: push_starts_session\n", f"  - {expectation}\n")
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value) == f"{path}:{says}"


async def test_same_scenario_and_seed_give_the_same_event_log() -> None:
    """Principle 6: same scenario + same seed against the reference server = the same event
    log, byte for byte (no wall-clock field is in it)."""
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    first = "".join(map(event_line, (await run_scenario(scenario, QUIET)).events))
    second = "".join(map(event_line, (await run_scenario(scenario, QUIET)).events))
    assert first == second
    other = "".join(
        map(event_line, (await run_scenario(scenario, RunOptions(seed=7, progress=False))).events)
    )
    assert other != first  # the seed does matter


def test_run_writes_its_files_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dmemu run --out DIR` writes events.jsonl, summary.json (schema-versioned) and
    junit.xml with one test case per expectation; exit 0 when all hold."""
    out = tmp_path / "out"
    code = main(["run", str(write(tmp_path, SMALL)), "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert code == 0
    assert "PASS  every push to a connected device" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "dmemu.summary/1"
    assert summary["passed"] is True
    assert summary["pushes"]["by_wns_outcome"] == {"200 received": 3}
    assert summary["sessions"]["by_trigger"]["push"] == 3
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["t_ms"] for e in events] == sorted(e["t_ms"] for e in events)
    root = ET.parse(out / "junit.xml").getroot()
    cases = list(root.iter("testcase"))
    assert [c.get("name") for c in cases] == [summary["expectations"][0]["name"]]
    suite = next(root.iter("testsuite"))  # its time is the run's, not time="0"
    assert float(suite.get("time")) == summary["wall_seconds"] > 0
    assert float(cases[0].get("time")) > 0
    assert "(seed 3, 3 devices, 3 days" in text
    assert "1 token request" in text  # not "1 token requests"
    assert "0 expiries" in text  # not "0 expirys"


def test_failed_expectation_exits_1_with_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An expectation that does not hold fails the run (exit 1), names the events that broke
    it, and is a JUnit failure."""
    text = SMALL.replace(
        "expect:\n",
        "expect:\n  - {expect: count, event: session.start, where: {trigger: push}, max: 1}\n",
    )
    out = tmp_path / "out"
    code = main(["run", str(write(tmp_path, text)), "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "FAIL  count session.start trigger=push: max 1" in printed
    assert "a-0000" in printed
    failures = list(ET.parse(out / "junit.xml").getroot().iter("failure"))
    assert len(failures) == 1
    assert "session.start" in (failures[0].text or "")


BAD = [
    (
        "count: -1",
        "name: x\nduration: 1d\nfleet:\n  - {group: a, count: -1}\n",
        [":4:16: fleet.0.count:"],
    ),
    (
        "wrong type",
        "name: x\nduration: 1d\nfleet:\n  - {group: a, count: many}\n",
        [":4:16: fleet.0.count:"],
    ),
    (
        "unknown OS",
        "name: x\nduration: 1d\nfleet:\n  - {group: a, count: 1, os: win95}\n",
        [":4:26: fleet.0.os: 'win95' is not one of"],
    ),
    (
        "unknown key",
        "name: x\nduration: 1d\nspeed: 3\nfleet:\n  - {group: a, count: 1}\n",
        [":3:1: speed: unknown key 'speed'"],
    ),
    ("YAML syntax", "name: x\nfleet: [\n", [":3:1: invalid YAML"]),
    (
        "bad duration",
        "name: x\nduration: a month\nfleet:\n  - {group: a, count: 1}\n",
        [":2:1: duration: 'a month' is not valid: expected a duration"],
    ),
    (
        "several at once",
        "name: x\nduration: 1d\nfleet:\n  - {group: a, count: 0}\n"
        "  - {group: b, count: 1, power: solar}\n",
        [":4:16: fleet.0.count:", ":5:26: fleet.1.power:"],
    ),
    (
        "any_app on a phone",
        "name: x\nduration: 1d\nfleet:\n"
        "  - {group: a, count: 1, os: wp81, battery_saver_exception: any_app}\n",
        [":4:36: fleet.0.battery_saver_exception: 'any_app' is a setting of Windows 10/11"],
    ),
    (
        "pfn_hang on 1607",
        "name: x\nduration: 1d\nfleet:\n  - group: a\n    count: 1\n    os: win10-1607\n"
        "    renewal_failure: {mode: pfn_hang, rate: 0.5}\n",
        [":7:23: fleet.0.renewal_failure.mode: pfn_hang is a failure of Windows 8, 8.1"],
    ),
    (
        "unknown target",
        "name: x\nduration: 2d\nfleet:\n  - {group: a, count: 1}\ntimeline:\n"
        "  - {at: day 1, do: push, target: {group: b}}\n"
        "  - {at: day 9, do: push, target: {device: a-0000}}\n",
        [
            ":6:36: timeline.0.target.group: no group named 'b'",
            ":7:6: timeline.1.at: 'day 9' is after the run's end",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_scenarios_are_refused_with_positions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: list[str]
) -> None:
    """Bad scenario files name file:line:column and the field, every problem at once, exit 2,
    nothing run, no traceback (issue 5)."""
    path = write(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    for needle in expected:
        assert f"{path}{needle}" in err, err
    assert "Traceback" not in err
    assert main(["run", str(path), "--quiet"]) == 2
    assert "nothing was run" in capsys.readouterr().err


def test_duplicate_keys_are_an_error_with_both_lines(tmp_path: Path) -> None:
    """A key given twice in one mapping is a mistake (YAML would keep the last silently):
    the error names the second and the first line."""
    text = "name: x\nduration: 1d\nfleet:\n  - {group: a, count: 1}\nduration: 2d\n"
    with pytest.raises(ScenarioError) as err:
        load_scenario(write(tmp_path, text))
    assert [str(p).split(":", 1)[1] for p in err.value.problems] == [
        "5:1: duration: key 'duration' given twice (first on line 2); YAML would keep only this one"
    ]


def test_validate_lists_every_problem_at_once_sorted_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One pass, all errors, sorted: a schema error (line 5) does not hide a reference to an
    unknown group (line 7) or a time after the end (line 8), and duplicate keys come in
    their place."""
    text = (
        "name: x\n"
        "duration: 2d\n"
        "fleet:\n"
        "  - {group: a, count: 1}\n"
        "  - {group: b, count: many}\n"
        "timeline:\n"
        "  - {at: day 1, do: push, target: {group: c}}\n"
        "  - {at: day 9, do: push, target: {group: b}}\n"
        "seed: 1\n"
        "seed: 2\n"
    )
    path = write(tmp_path, text)
    assert main(["validate", str(path)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if str(path) in line]
    assert [line.split(str(path), 1)[1].split(":")[1] for line in lines] == ["5", "7", "8", "10"]
    assert "no group named 'c'" in lines[1]
    assert "after the run's end" in lines[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ":1:1: the file is empty: expected a scenario"),
        ("# only a comment\n", ":1:1: the file is empty: expected a scenario"),
        ("- a\n- b\n", ":1:1: the top level is a list: expected a scenario"),
        ("just words\n", ":1:1: the top level is a single value (str): expected a scenario"),
    ],
)
def test_empty_and_non_mapping_files_say_so_plainly(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}{expected}")


def test_duration_has_an_upper_bound(tmp_path: Path) -> None:
    """`duration: 100000d` used to run for ever (silently under --quiet): over ten years is
    refused."""
    text = "name: x\nduration: 100000d\nfleet:\n  - {group: a, count: 1}\n"
    with pytest.raises(ScenarioError) as err:
        load_scenario(write(tmp_path, text))
    assert "2:1: duration: '100000d' is longer than 3650d" in str(err.value)


def test_hooks_and_config_files_list_every_problem_in_plain_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hooks file (and a --config file) shows every mistake, sorted, in the project's
    words: no "Value error, ..." prefix, "required, but missing", "unknown key"."""
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text(
        "push:\n  method: POST\n  url: '{base}/x/{nope}'\n"
        "queue_command:\n  method: POST\n  colour: red\n"
    )
    argv = ["run", str(write(tmp_path, SMALL)), "--server", "http://127.0.0.1:9/x"]
    assert main([*argv, "--hooks", str(hooks), "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if str(hooks) in line]
    assert len(lines) == 3, err
    assert ":3:" in lines[0]
    assert "nope" in lines[0]
    assert "Value error" not in err
    assert "queue_command.colour: unknown key 'colour'" in err
    assert "queue_command.url: required, but missing" in err
    assert "3 problems; nothing was run" in err
    hooks.write_text("- push\n- queue_command\n")
    assert main([*argv, "--hooks", str(hooks), "--quiet"]) == 2
    assert f"{hooks}:1:1: the top level is a list: expected" in capsys.readouterr().err


def test_huge_file_and_alias_bomb_are_refused(tmp_path: Path) -> None:
    """A 50 MB file, and a 4 MB plain one (it took 49 s and 450 MB to fail), are refused
    before they are parsed; a YAML alias bomb before it is expanded."""
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(50 * 1024 * 1024)
    plain = tmp_path / "plain.yaml"
    plain.write_text("word " * (800 * 1024))
    with pytest.raises(ScenarioError) as err:
        load_scenario(plain)
    assert "larger than 1024 KiB" in str(err.value)
    with pytest.raises(ScenarioError) as err:
        load_scenario(big)
    assert "larger than" in str(err.value)
    lol = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(write(tmp_path, lol))
    assert "aliases are expanded" in str(err.value)


def test_time_expressions() -> None:
    """Timeline times: 'day N [HH:MM]' and '+DURATION [HH:MM]' from the start."""
    assert parse_at("day 16") == 16 * 86_400_000
    assert parse_at("day 2 09:30") == 2 * 86_400_000 + 9.5 * 3_600_000
    assert parse_at("+36h") == 36 * 3_600_000
    assert parse_at("+2d 09:00") == parse_at("day 2 09:00")
    with pytest.raises(ValueError, match="not a time of day"):
        parse_at("day 1 25:00")


def test_validate_lists_what_a_good_file_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *map(str, SHIPPED)]) == 0
    assert "quickstart: 22 devices in 6 groups" in capsys.readouterr().out


@pytest.mark.timeout(120)
def test_run_against_an_external_server_through_hooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dmemu run --server URL --hooks FILE` drives a server in another process over real
    HTTPS with a private CA (--server-ca: the reach probe, the sessions and the hook calls
    all trust it; the probe used to ignore it): devices authenticate as told
    (--device-auth), its hooks register them (this server only admits listed ones), they
    enroll (--enroll: MS-MDE2 at the server's Discovery service, then mutual TLS with the
    certificate it issued, which a server over TLS requires [MDE2][MSMDM 3.1]), it pushes
    them, time skips only after an idle window, and the expectations are judged the same
    way (issues 5, 18)."""
    import socket

    from emulator.hooks import REFERENCE_HOOKS
    from tests.test_cli import _start, _stop

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        wns_port = probe.getsockname()[1]
    listed = tmp_path / "devices.txt"
    listed.write_text("# none yet: the register_device hook adds them\n")
    wns_url = f"http://127.0.0.1:{wns_port}"
    gates = ["--devices", str(listed), "--device-token", "s3cret"]
    tls = ["--tls", "--tls-dir", str(tmp_path / "tls")]
    proc, ready = _start(tmp_path, "--wns-url", wns_url, *gates, *tls, command="mdm")
    try:
        assert str(ready["omadm_url"]).startswith("https://")
        argv = ["run", str(write(tmp_path, SMALL)), "--server", str(ready["omadm_url"])]
        argv += ["--device-auth", "bearer:s3cret", "--server-ca", str(ready["ca_file"])]
        argv += ["--hooks", str(REFERENCE_HOOKS), "--wns-port", str(wns_port), "--enroll"]
        code = main([*argv, "--idle-ms", "20", "--quiet", "--out", str(tmp_path / "out")])
    finally:
        _stop(proc)
    printed = capsys.readouterr().out
    assert code == 0, printed
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["server"] == ready["omadm_url"]
    assert summary["sessions"]["by_trigger"]["push"] == 3
    assert summary["pushes"]["by_wns_outcome"] == {"200 received": 3}
    lines = (tmp_path / "out" / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    enrolled = [e for e in events if e["event"] == "device.enrolled"]
    assert len(enrolled) == 3
    assert all(e["server_url"] == ready["omadm_url"] for e in enrolled)


def test_real_time_mode_at_a_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--rate X` runs the same world on the real-time clock at X emulated seconds per real
    second instead of skipping (architecture principle 2): a day at 43,200x takes 2 s, and the
    timeline and pushes happen on it."""
    text = (
        "name: fast\nseed: 1\nduration: 1d\nfleet:\n  - {group: a, count: 3}\n"
        "timeline:\n  - {at: '+10h', do: push, target: {group: a}}\n"
        "expect:\n  - {expect: count, event: session.start, where: {trigger: push}, min: 3}\n"
    )
    out = tmp_path / "out"
    code = main(
        ["run", str(write(tmp_path, text)), "--rate", "43200", "--quiet", "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"]["end"] == "2026-01-02T00:00:00.000Z"
    assert summary["sessions"]["by_trigger"]["push"] == 3


def test_durations_are_shown_for_people() -> None:
    from emulator.reports.text import human_ms

    assert [human_ms(v) for v in (None, 0, 850, 12_500, 420_000, 12_000_000, 428_400_000)] == [
        "-",
        "0 ms",
        "850 ms",
        "12.5 s",
        "7 min",
        "3 h 20 min",
        "4 d 23 h",
    ]


def test_device_auth_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--device-auth takes none, basic:USER:PASSWORD, bearer:TOKEN or cert:CERT[:KEY]; anything
    else, a missing certificate file, or auth without --server is bad input (exit 2)."""
    from emulator.device.driver import parse_auth

    assert parse_auth("basic:dev:p:w").password == "p:w"
    assert parse_auth("bearer:t").token == "t"
    assert parse_auth("cert:c.pem").key_file == "c.pem"
    path = str(write(tmp_path, SMALL))
    for bad, needle in (
        (["--device-auth", "magic"], "use none, basic"),
        (["--server", "http://x/", "--device-auth", "cert:/nope.pem"], "no such file"),
        (["--device-auth", "bearer:t"], "--device-auth is for --server"),
    ):
        assert main(["run", path, "--quiet", *bad]) == 2
        assert needle in capsys.readouterr().err


def test_asked_pushes_that_never_arrive_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """push_starts_session does not pass vacuously: the server was asked to push and no push
    arrived (here WNS revoked every channel behind the devices' backs, so pushes get 410)."""
    revoke = "  - {at: 'day 0 23:00', do: revoke_channel, target: {group: a}}\n"
    text = SMALL.replace("timeline:\n", "timeline:\n" + revoke)
    assert main(["run", str(write(tmp_path, text)), "--quiet"]) == 1
    assert "none arrived" in capsys.readouterr().out


async def test_off_a_terminal_progress_comes_as_lines() -> None:
    """A run whose output is not a terminal prints a progress line now and then (it printed
    nothing for minutes), with the summary's own figures: sessions started, pushes sent."""
    import io

    stream = io.StringIO()
    options = RunOptions(progress=None, progress_stream=stream, progress_every_s=0.0)
    result = await run_scenario(load_scenario(write_small()), options)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("dmemu: day 0/3:")
    assert lines[-1].startswith("dmemu: done at day 3.0/3:")
    starts = sum(1 for e in result.events if e["event"] == "session.start")
    assert lines[-1].endswith(f"3 devices, {starts} sessions, 3 pushes")


def write_small() -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "small.yaml"
    path.write_text(SMALL)
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_run_writes_what_it_has(tmp_path: Path, sig: str) -> None:
    """Ctrl-C (or SIGTERM, as a CI timeout sends) writes events.jsonl and summary.json marked
    incomplete instead of nothing, and exits 130 (a stop before the run: the test after
    this one)."""
    import signal

    out = tmp_path / "out"
    argv = ["run", str(ROOT / "scenarios" / "quickstart.yaml"), "--rate", "3600"]
    code, stdout, stderr = interrupt_dmemu(
        [*argv, "--out", str(out)], getattr(signal, sig), "running quickstart"
    )
    assert code == 130, stdout + stderr
    assert "INCOMPLETE (stopped at" in stdout
    assert "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False
    assert summary["passed"] is False
    assert (out / "events.jsonl").read_text().count("device.enrolled") > 0


async def test_a_stop_before_the_run_starts_is_exit_130(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Stopped while the world is still being built: nothing to keep, said in one line,
    exit 130, no traceback."""
    import asyncio

    from emulator.cli import build_parser
    from emulator.scenario import commands

    args = build_parser().parse_args(["run", str(write_small()), "--quiet"])
    task = asyncio.create_task(commands.run(args))
    await asyncio.sleep(0)
    task.cancel()
    assert await task == 130
    assert "interrupted before the run started" in capsys.readouterr().err


def test_resolution_puts_events_on_its_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dmemu run --resolution 1m` (issue 19): every event carries the end of its one-minute
    window, and the expectations still hold; with --rate it is refused (exit 2)."""
    out = tmp_path / "out"
    path = write(tmp_path, SMALL)
    code = main(["run", str(path), "--quiet", "--resolution", "1m", "--out", str(out)])
    assert code == 0, capsys.readouterr().out
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events
    assert all(e["t_ms"] % 60_000 == 0 for e in events)
    assert main(["run", str(path), "--quiet", "--resolution", "1m", "--rate", "100"]) == 2
    assert "--resolution is for the virtual clock" in capsys.readouterr().err


def test_memory_transport_gives_the_same_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--transport memory` (issue 19): devices reach the built-in server in process, the
    same SyncML bytes through the same endpoint logic, so the run logs the same events
    (within one millisecond of one device a hook's record may swap places with the session
    it caused, as the in-process answer comes at once); it is refused with --server."""
    logs = {}
    for transport in ("http", "memory"):
        out = tmp_path / transport
        argv = ["run", str(QUICKSTART_PATH), "--quiet", "--transport", transport]
        assert main([*argv, "--out", str(out)]) == 0, capsys.readouterr().out
        logs[transport] = sorted((out / "events.jsonl").read_text().splitlines())
    assert logs["http"] == logs["memory"]
    code = main(["run", str(QUICKSTART_PATH), "--transport", "memory", "--server", "http://x"])
    assert code == 2
    assert "--transport memory is for the built-in server" in capsys.readouterr().err


QUICKSTART_PATH = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml"
