"""Shards (issue 19): a run split over worker processes tells every device's story exactly
as one process does, merges into one ordered log, and never leaves a worker behind, whether
it ends well, a worker dies or the run is interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.shards.split import merge, shard_of
from tests.conftest import interrupt_dmemu

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


def device_stories(path: Path) -> tuple[dict[str, list[str]], list[str]]:
    stories: dict[str, list[str]] = defaultdict(list)
    world: list[str] = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("device_id"):
            stories[event["device_id"]].append(line)
        elif event["event"] != "wns.token":  # the servers' own traffic may differ
            world.append(line)
    return stories, world


def test_every_device_tells_the_same_story_on_1_2_or_4_shards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every random draw and identifier comes from a per-device or per-channel stream: a
    device's own events are identical byte for byte whatever the number of shards, the
    timeline's records fold into one, the expectations hold, and the same shard count gives
    the same events.jsonl every run."""
    runs = {}
    for workers in (1, 2, 4, 2):
        out = tmp_path / f"w{workers}-{len(runs)}"
        argv = ["run", str(QUICKSTART), "--quiet", "--workers", str(workers), "--out", str(out)]
        assert main(argv) == 0, capsys.readouterr().out
        runs[out.name] = out / "events.jsonl"
    one, one_world = device_stories(runs["w1-0"])
    for name in ("w2-1", "w4-2"):
        stories, world = device_stories(runs[name])
        assert stories == one
        assert world == one_world
    assert runs["w2-1"].read_bytes() == runs["w2-3"].read_bytes()


def test_merge_orders_by_time_device_and_folds_the_timeline() -> None:
    a = [
        {"t_ms": 1, "event": "timeline.push", "device_id": None, "line": 9, "devices": 2},
        {"t_ms": 2, "event": "session.start", "device_id": "b"},
    ]
    b = [
        {"t_ms": 1, "event": "timeline.push", "device_id": None, "line": 9, "devices": 3},
        {"t_ms": 2, "event": "wns.notify", "device_id": "a"},
        {"t_ms": 2, "event": "session.start", "device_id": "a"},
    ]
    merged = list(merge([a, b]))
    assert [(e["event"], e.get("device_id")) for e in merged] == [
        ("timeline.push", None),
        ("wns.notify", "a"),
        ("session.start", "a"),
        ("session.start", "b"),
    ]
    assert merged[0]["devices"] == 5
    assert {shard_of(f"d-{i}", 4) for i in range(100)} == {0, 1, 2, 3}


def _processes() -> Iterator[tuple[int, int, bytes, bool]]:
    """Every process now: pid, parent pid, command line, and whether it is a zombie."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("PPid:"))
        yield int(entry.name), ppid, cmdline, "State:\tZ" in status


def _workers_of(pid: int) -> list[int]:
    return [
        child
        for child, ppid, cmdline, _ in _processes()
        if ppid == pid and b"emulator.shards.worker" in cmdline
    ]


def _any_worker_alive(pids: list[int]) -> bool:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if "State:\tZ" not in state:
            alive.append(pid)
    return bool(alive)


BIG = """\
name: big
seed: 4
duration: 60d
fleet:
  - {group: a, count: 300, enroll_over: 6h}
"""


@pytest.mark.timeout(120)
def test_a_worker_that_dies_fails_the_run_naming_its_shard(tmp_path: Path) -> None:
    """A worker killed mid-run: exit 2 naming the shard and its devices, the other shards
    stopped, no process left behind."""
    scenario = tmp_path / "big.yaml"
    scenario.write_text(BIG)
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator.cli", "run", str(scenario), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    workers: list[int] = []
    try:
        for _ in range(200):  # until both workers are up
            workers = _workers_of(proc.pid)
            if len(workers) == 2:
                break
            threading.Event().wait(0.05)
        assert len(workers) == 2
        threading.Event().wait(0.5)
        os.kill(workers[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, stderr
    assert "was killed by signal 9" in stderr
    assert "devices (a-0" in stderr
    assert "the other shards were stopped" in stderr
    for _ in range(100):  # reaped within 5 s
        if not _any_worker_alive(workers):
            break
        threading.Event().wait(0.05)
    assert not _any_worker_alive(workers)


@pytest.mark.timeout(120)
def test_ctrl_c_stops_every_shard_with_what_it_has(tmp_path: Path) -> None:
    """Ctrl-C on a sharded run: each worker stops with what it has, the merged results are
    written marked incomplete, exit 130."""
    scenario = tmp_path / "big.yaml"
    scenario.write_text(BIG)
    out = tmp_path / "out"
    argv = ["run", str(scenario), "--workers", "2", "--quiet", "--out", str(out)]
    code, stdout, stderr = interrupt_dmemu(argv, signal.SIGINT, "running big", settle_s=2.0)
    assert code == 130, stdout + stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False
    assert (out / "events.jsonl").stat().st_size > 0


SIX = """\
name: six
seed: 3
duration: 3d
fleet:
  - group: a
    count: 6
timeline:
  - {at: "day 1 10:00", do: push, target: {group: a}}
  - {at: "day 2 10:00", do: wns_fault, status: 503, count: 3}
  - {at: "day 2 10:01", do: push, target: {group: a}}
expect:
  - expect: push_starts_session
"""


@pytest.mark.timeout(120)
def test_shards_keep_in_lockstep_against_an_external_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against an external server the shards advance together, window by window; each
    serves its devices' ChannelURIs on its own port, and the server, told one token
    endpoint, pushes to every shard with the token it got there (a run's tokens are good on
    all its shards). Its devices get pushed and start sessions as on one worker, and a
    `wns_fault` for the next 3 requests fails 3 of the run's, not 3 on each shard."""
    import socket

    from emulator.hooks import REFERENCE_HOOKS
    from tests.test_cli import _start, _stop

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        wns_port = probe.getsockname()[1]
    scenario = tmp_path / "six.yaml"
    scenario.write_text(SIX)
    assert {shard_of(f"a-{i:04d}", 2) for i in range(6)} == {0, 1}  # both shards have some
    wns = ["--wns-url", f"http://127.0.0.1:{wns_port}", "--trusted-host", "127.0.0.1"]
    proc, ready = _start(tmp_path, *wns, command="mdm")
    try:
        argv = ["run", str(scenario), "--server", str(ready["omadm_url"]), "--workers", "2"]
        argv += ["--hooks", str(REFERENCE_HOOKS), "--wns-port", str(wns_port), "--idle-ms", "20"]
        code = main([*argv, "--quiet", "--out", str(tmp_path / "out")])
    finally:
        _stop(proc)
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0, printed + captured.err
    assert f"the shards' WNS     127.0.0.1:{wns_port}, 127.0.0.1:{wns_port + 1}" in printed
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    pushes = summary["pushes"]["by_wns_outcome"]
    assert pushes["503"] == 3, pushes  # the run's next 3 requests, not 3 on each shard
    assert pushes["200 received"] == summary["sessions"]["by_trigger"]["push"] == 9, pushes


@pytest.mark.timeout(240)
def test_a_run_on_local_ray_tells_the_same_story(tmp_path: Path) -> None:
    """`--cluster ray-local` hosts the shards as Ray actors through the same shard protocol:
    the same scenario and seed give the same events.jsonl, byte for byte, as the same number
    of local worker processes (so every device's story is the one it has on 1 worker), and
    the Ray cluster the run started is stopped with it."""
    logs = {}
    for name, hosting in (("local", []), ("ray", ["--cluster", "ray-local"])):
        out = tmp_path / name
        argv = ["run", str(QUICKSTART), "--workers", "2", "--quiet", "--out", str(out)]
        done = subprocess.run(
            [sys.executable, "-m", "emulator.cli", *argv, *hosting],
            capture_output=True,
            text=True,
            timeout=200,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        logs[name] = (out / "events.jsonl").read_bytes()
    assert logs["ray"] == logs["local"]
    for _ in range(100):  # Ray's own processes end with the run that started them
        if not _ray_processes():
            break
        threading.Event().wait(0.1)
    assert _ray_processes() == []


def _ray_processes() -> list[str]:
    return [
        cmdline.decode(errors="replace")[:80]
        for _, _, cmdline, zombie in _processes()
        if (b"raylet" in cmdline or b"gcs_server" in cmdline) and not zombie
    ]


def test_how_many_shards_a_run_gets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """By default one shard per core, but at most one per 250 devices (a process costs more
    than it saves below that); --rate and --server-cmd run one world, so asking to shard them
    is bad input, as are --workers 0 and a --cluster that is not ray://HOST:PORT or
    ray-local."""
    import argparse

    from emulator.scenario.commands import UsageError, workers_for

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)

    def args(**given: object) -> argparse.Namespace:
        base: dict[str, object] = {"workers": None, "cluster": None, "rate": None}
        return argparse.Namespace(**{**base, "server_cmd": None, **given})

    class Fleet:
        def __init__(self, devices: int) -> None:
            self.device_count = devices

    assert workers_for(args(), Fleet(22)) == 1  # type: ignore[arg-type]
    assert workers_for(args(), Fleet(1000)) == 2  # type: ignore[arg-type]
    assert workers_for(args(workers=3), Fleet(22)) == 3  # type: ignore[arg-type]
    assert workers_for(args(cluster="ray-local"), Fleet(22)) is None  # type: ignore[arg-type]
    assert workers_for(args(rate=10.0), Fleet(1000)) == 1  # type: ignore[arg-type]
    for bad, said in (
        ({"workers": 0}, "--workers must be at least 1"),
        ({"cluster": "localhost:6379"}, "use ray://HOST:PORT or ray-local"),
        ({"workers": 2, "rate": 10.0}, "--rate runs one world"),
        ({"workers": 2, "server_cmd": "srv"}, "--server-cmd runs one world"),
    ):
        with pytest.raises(UsageError, match=said):
            workers_for(args(**bad), Fleet(1000))  # type: ignore[arg-type]


def test_a_fault_for_the_next_requests_is_the_runs_not_each_shards() -> None:
    """A `wns_fault` with a count and no target answers the run's next `count` requests:
    split among the shards, the parts add up to it (each shard's server pushes only to its
    own fake WNS)."""
    from emulator.shards.split import share_of

    for count in (0, 1, 3, 7, 100):
        for shards in (1, 2, 3, 4):
            parts = [share_of(count, i, shards) for i in range(shards)]
            assert sum(parts) == count
            assert max(parts) - min(parts) <= 1
