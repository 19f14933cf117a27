"""--server-cmd: dmemu starts the server under test on its own clock (libfaketime), waits
until it answers, keeps its log, and always stops it (issue 17, part 1)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.clock import DAY
from emulator.hooks import REFERENCE_HOOKS
from tests.conftest import interrupt_dmemu
from tests.test_scenarios import SMALL, write

HERE = Path(__file__).parent
PY = sys.executable
MDM_CMD = f"{PY} -m emulator.cli mdm --port {{port}} --wns-url {{wns_url}} --log-level info"
OMADM = "http://127.0.0.1:{port}/ManagementServer/MDM.svc"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


@pytest.mark.timeout(120)
def test_the_reference_server_runs_on_emulated_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dmemu run --server-cmd "dmemu mdm ..."`: the server reads dmemu's clock (its banner
    and log carry the scenario's 2026-01 instants, not today's date), the run passes, its
    output is kept in --out as server.log, and it is stopped at the end."""
    out = tmp_path / "out"
    argv = ["run", str(write(tmp_path, SMALL)), "--server", OMADM, "--server-cmd", MDM_CMD]
    argv += ["--hooks", str(REFERENCE_HOOKS), "--idle-ms", "5", "--quiet", "--out", str(out)]
    code = main(argv)
    printed = capsys.readouterr().out
    assert code == 0, printed
    log = (out / "server.log").read_text()
    assert "now 2026-01-01T00:00:00" in log  # the scenario's start, read through libfaketime
    stamps = [json.loads(line)["t"] for line in log.splitlines() if line.startswith("{")]
    assert stamps
    assert all(t.startswith("2026-01-0") for t in stamps), stamps[-3:]
    assert max(stamps) >= "2026-01-02"  # and it moved with the run's virtual days
    assert "dmemu mdm stopped" in log  # SIGTERM: an orderly stop


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (f"{PY} -c 'import sys; print(\"no config\"); sys.exit(3)'", "exited with code 3"),
        (f"{PY} -c 'import time; time.sleep(60)'", "did not answer"),
        ("no-such-program-dmemu --port {port}", "cannot run 'no-such-program-dmemu'"),
        (f"{PY} x.py {{nope}}", "unknown placeholder"),
        (f"{PY} -c 'unbalanced", "No closing quotation"),
    ],
)
def test_a_server_that_does_not_come_up_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, says: str
) -> None:
    """A server command that exits at once, never answers, cannot be run or names an
    unknown placeholder: one clear message with the end of its log, exit 2, nothing run."""
    argv = ["run", str(write(tmp_path, SMALL)), "--server", OMADM, "--server-cmd", command]
    code = main([*argv, "--server-ready-timeout", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert says in err
    assert "Traceback" not in err
    if "exited" in says:
        assert "| no config" in err  # the last lines of its output


@pytest.mark.timeout(60)
def test_a_server_that_ignores_sigterm_is_killed_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that ignores SIGTERM is killed after the grace period, said plainly, exit 2;
    no process is left behind."""
    pid_file = tmp_path / "pid"
    command = f"{PY} {HERE / 'sut' / 'stubborn.py'} {{port}} {pid_file} ignore-term"
    argv = ["run", str(write(tmp_path, SMALL)), "--server", OMADM, "--server-cmd", command]
    code = main([*argv, "--idle-ms", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "ignored SIGTERM and had to be killed" in err
    assert not alive(int(pid_file.read_text()))


def test_no_server_is_left_behind_after_an_error(tmp_path: Path) -> None:
    """A run that fails after the server started (its readiness URL never answers) still
    stops it: no process is left behind."""
    pid_file = tmp_path / "pid"
    command = f"{PY} {HERE / 'sut' / 'stubborn.py'} {{port}} {pid_file}"
    argv = ["run", str(write(tmp_path, SMALL)), "--server-cmd", command, "--quiet"]
    argv += ["--server", "http://127.0.0.1:{port}/x", "--server-ready", "http://127.0.0.1:9/"]
    assert main([*argv, "--server-ready-timeout", "1"]) == 2
    assert not alive(int(pid_file.read_text()))


def test_missing_libfaketime_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("emulator.sut.faketime.CANDIDATES", ())
    monkeypatch.delenv("DMEMU_LIBFAKETIME", raising=False)
    argv = ["run", str(write(tmp_path, SMALL)), "--server", OMADM, "--server-cmd", "true"]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "libfaketime, which is not installed: apt-get install faketime" in err


@pytest.mark.timeout(120)
def test_conformance_judges_a_started_server_on_emulated_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dmemu conformance --server-cmd "dmemu mdm ..."` grades every check for real: the
    server's clock reads follow the virtual month (C7's proactive reset before day 30), and
    its waits (D1-D4) are measured on a second, two-hour run paced in real time with the
    server's clock and sleeps at the same rate. All 26 pass, no warning."""
    argv = ["conformance", "--server", OMADM, "--server-cmd", MDM_CMD, "--quiet"]
    argv += ["--hooks", str(REFERENCE_HOOKS), "--idle-ms", "5", "--out", str(tmp_path)]
    code = main(argv)
    assert code == 0, capsys.readouterr().out
    data = json.loads((tmp_path / "conformance.json").read_text())
    assert {c["id"]: c["verdict"] for c in data["checks"]} == {
        c["id"]: "passed" for c in data["checks"]
    }
    assert len(data["checks"]) == 26
    assert (tmp_path / "server.log").exists()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("check", "verdict"),
    [("D1", "failed"), ("D2", "warning"), ("D4", "warning")],
)
def test_a_started_server_that_waits_wrong_fails_the_check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    check: str,
    verdict: str,
) -> None:
    """Standalone servers with one defect each, started by --server-cmd: one that resends a
    throttled push after a second whatever Retry-After says (D1), one that never retries a
    503 (D2), one with no hourly push limit (D4). Each fails its check (a SHOULD warns) on
    the paced waits run; on virtual time alone their waits would span leaps of time."""
    monkeypatch.setenv("PYTHONPATH", str(HERE.parent))
    command = f"{PY} {HERE / 'sut' / 'defective_mdm.py'} {check} {{port}} {{wns_url}}"
    argv = ["conformance", "--server", OMADM, "--server-cmd", command, "--only", check]
    argv += ["--hooks", str(REFERENCE_HOOKS), "--idle-ms", "5", "--quiet", "--strict"]
    assert main([*argv, "--out", str(tmp_path)]) == 1
    (found,) = json.loads((tmp_path / "conformance.json").read_text())["checks"]
    assert found["verdict"] == verdict, found
    assert found["evidence"][0]["rule"].startswith(check)


@pytest.mark.timeout(60)
def test_a_node_server_reads_emulated_time(tmp_path: Path) -> None:
    """libfaketime binds any dynamically linked server, not only Python: a Node server run
    by --server-cmd logs what Date.now() returned for each request, and every value lies in
    the run's emulated days (January 2026), not in today's real date."""
    node = shutil.which("node")
    assert node, "node is on every machine of this project's kind (CI included)"
    out = tmp_path / "out"
    command = f"{node} {HERE / 'sut' / 'clock_server.js'} {{port}}"
    argv = ["run", str(write(tmp_path, SMALL)), "--server", "http://127.0.0.1:{port}/omadm"]
    main([*argv, "--server-cmd", command, "--idle-ms", "5", "--quiet", "--out", str(out)])
    seen = [json.loads(line)["now"] for line in (out / "server.log").read_text().splitlines()]
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    sessions = [e for e in events if e["event"] == "session.start"]
    assert len(seen) > len(sessions) > 3  # the readiness probes and every session's POST
    start, end = sessions[0]["t_ms"], sessions[-1]["t_ms"]
    posts = seen[-len(sessions) :]
    assert all(abs(t - s["t_ms"]) < 5_000 for t, s in zip(posts, sessions, strict=True))
    assert end - start > DAY  # and it followed the run across its virtual days


def test_the_time_file_speaks_libfaketime(tmp_path: Path) -> None:
    """The two forms the child's libfaketime reads: an offset from the host clock that puts it
    at the virtual instant, and a start-at time with a speed for --rate."""
    from emulator.clock import host_epoch_ms
    from emulator.sut.faketime import TimeFile

    times = TimeFile(tmp_path / "t.rc")
    times.running(1_767_225_600_000, 3600.0)
    assert (tmp_path / "t.rc").read_text() == "@2026-01-01 00:00:00 x3600\n"
    times.follow(1_767_225_600_000)
    offset = float((tmp_path / "t.rc").read_text())
    assert abs(host_epoch_ms() / 1000 + offset - 1_767_225_600) < 1.0
    env = times.env(Path("/lib/libfaketime.so.1"))
    assert env["FAKETIME_TIMESTAMP_FILE"] == str(tmp_path / "t.rc")
    assert env["FAKETIME_NO_CACHE"] == "1"


@pytest.mark.timeout(60)
def test_ctrl_c_stops_the_started_server_too(tmp_path: Path) -> None:
    """Ctrl-C during a run stops the server dmemu started (and the run exits 130 with what it
    had): no process is left behind."""
    import signal

    pid_file = tmp_path / "pid"
    command = f"{PY} {HERE / 'sut' / 'stubborn.py'} {{port}} {pid_file}"
    argv = ["run", str(write(tmp_path, SMALL)), "--server", OMADM, "--server-cmd", command]
    argv += ["--rate", "3600", "--quiet", "--out", str(tmp_path)]
    code, _, err = interrupt_dmemu(argv, signal.SIGINT, "running small", settle_s=1.5)
    assert code == 130, err
    assert not alive(int(pid_file.read_text()))
    assert json.loads((tmp_path / "summary.json").read_text())["complete"] is False
