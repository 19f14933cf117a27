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


def _workers_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("PPid:"))
        if ppid == pid and b"emulator.shards.worker" in cmdline:
            found.append(int(entry.name))
    return found


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
