"""A whole fleet run against the reference server in its own process, over loopback HTTP.

Starts ``dmemu mdm`` (the reference server, real time, pinned to CPU 0) and runs ``dmemu run``
on a fleet scenario against it (``--server`` with the reference hooks file, pinned to CPU 1),
then prints OMA-DM sessions per wall second, pushes per second, total wall time and each
process's peak memory. Beside it, in the same run, two baselines from a bare aiohttp handler
on one core under the aiohttp load client: its requests per second with 32 connections, and
with one request in flight at a time. The second bounds a run on the virtual clock, where
sessions at different instants never overlap and each session's two or more round trips
follow one another: half of it is the most sessions/s bare HTTP allows with no work at all.
Target (issue 5): at least 1,500 sessions/s for ``fleets/fleet-1000.yaml`` over 90 days.
It also prints each process's CPU time per session: where a session's wall time goes.

    python bench/fleet_run.py [--scenario scenarios/fleets/fleet-1000.yaml] [--days 90]

``--days`` shortens the run (timeline events past the end are dropped) for a quick look.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from emulator.yamlconf import parse_duration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wns_throughput import PY, ROOT, free_port, load_aiohttp, pinned, start_bare, wait_port

HOOKS = ROOT / "emulator" / "mdm" / "hooks.yaml"


def shortened(path: Path, days: int | None, into: Path) -> Path:
    if days is None:
        return path
    data = yaml.safe_load(path.read_text())
    data["duration"] = f"{days}d"
    data["timeline"] = [e for e in data.get("timeline", []) if int(str(e["at"]).split()[1]) < days]
    out = into / path.name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def wait_rusage(proc: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    """Reap ``proc``: (exit status, peak RSS in MB, CPU seconds, user and system)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def baselines(seconds: float) -> tuple[float, float]:
    """The bare aiohttp handler on one core under the aiohttp load client: (requests/s with 32
    connections, requests/s with one request in flight at a time).

    The second is the floor that matters here: on the virtual clock, sessions at different
    instants never overlap and a session's round trips follow one another, so a fleet run is
    this ping-pong plus the work of the emulator and the server.
    """
    proc, url, headers = start_bare()
    try:
        load_aiohttp(url, headers, 1.0, 32)
        parallel = float(load_aiohttp(url, headers, seconds, 32)["rps"])
        sequential = float(load_aiohttp(url, headers, seconds, 1)["rps"])
        return parallel, sequential
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def fleet_run(
    scenario: Path, work: Path, latency: str = "0", resolution: str = "0", workers: int = 1
) -> dict[str, Any]:
    wns_port = free_port()
    mdm_port = free_port()
    mdm = subprocess.Popen(
        [
            *pinned(0),
            PY,
            "-m",
            "emulator.cli",
            "mdm",
            "--port",
            str(mdm_port),
            "--wns-url",
            f"http://127.0.0.1:{wns_port}",
            "--log-level",
            "warning",
            "--latency",
            latency,
            "--trusted-host",  # every shard's fake WNS, on ports from wns_port up
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    wait_port(mdm_port)
    out = work / "out"
    started = time.monotonic()
    run = subprocess.Popen(
        [
            *pinned(1),
            PY,
            "-m",
            "emulator.cli",
            "run",
            str(scenario),
            "--server",
            f"http://127.0.0.1:{mdm_port}/ManagementServer/MDM.svc",
            "--hooks",
            str(HOOKS),
            "--wns-port",
            str(wns_port),
            "--idle-ms",
            "0",  # the reference server pushes within the hook's request: nothing to wait for
            "--quiet",
            "--resolution",
            resolution,
            "--workers",
            str(workers),
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    code, run_mb, run_cpu = wait_rusage(run)
    wall = time.monotonic() - started
    mdm.terminate()
    _, mdm_mb, mdm_cpu = wait_rusage(mdm)
    summary = json.loads((out / "summary.json").read_text())
    round_trips, instants = 0, set()
    with (out / "events.jsonl").open() as events:
        for line in events:
            event = json.loads(line)
            if event["event"] == "session.end":
                round_trips += event["messages"]
                instants.add(event["t_ms"])
    return {
        "round_trips": round_trips,
        "instants": len(instants),  # distinct instants (windows) with a session
        "exit": code,
        "wall_s": wall,
        "sessions": summary["sessions"]["started"],
        "pushes": summary["pushes"]["sent"],
        "passed": summary["passed"],
        "emulator_peak_mb": run_mb,
        "server_peak_mb": mdm_mb,
        "emulator_cpu_s": run_cpu,
        "server_cpu_s": mdm_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario", type=Path, default=ROOT / "scenarios" / "fleets" / "fleet-1000.yaml"
    )
    parser.add_argument("--days", type=int, help="shorten the run to this many days")
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    parser.add_argument("--latency", default="0", help="dmemu mdm --latency, e.g. 20ms")
    parser.add_argument("--resolution", default="0", help="dmemu run --resolution, e.g. 1m")
    parser.add_argument(
        "--workers", type=int, default=1, help="dmemu run --workers (shards in lockstep)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scenario = shortened(args.scenario, args.days, work)
        bare, sequential = baselines(args.baseline_seconds)
        result = fleet_run(scenario, work, args.latency, args.resolution, args.workers)
    per_s = result["sessions"] / result["wall_s"]
    print(
        f"scenario:          {args.scenario.name}"
        + (f" (first {args.days} days)" if args.days else "")
    )
    print(f"baseline:          bare aiohttp handler {bare:,.0f} requests/s on one core")
    print(
        f"sequential floor:  {sequential:,.0f} requests/s with one in flight, so at most "
        f"{sequential / 2:,.0f} sessions/s of two round trips with no work on either side"
    )
    print(
        f"fleet run:         {result['sessions']:,} sessions, {result['pushes']:,} pushes "
        f"in {result['wall_s']:.1f} s wall (exit {result['exit']}, "
        f"expectations {'passed' if result['passed'] else 'FAILED'})"
    )
    print(
        f"sessions/s:        {per_s:,.0f}  (target 1,500; {per_s / bare:.3f}x the bare "
        f"handler's requests/s; {per_s / (sequential / 2):.2f}x the sequential floor)"
    )
    print(f"pushes/s:          {result['pushes'] / result['wall_s']:,.1f}")
    latency_s = parse_duration(args.latency) / 1000
    if latency_s:
        per_session = result["round_trips"] / max(1, result["sessions"])
        floor = result["instants"] * per_session * latency_s
        print(
            f"latency floor:     {result['instants']:,} instants with a session (resolution "
            f"{args.resolution}) x {per_session:.1f} round trips x {latency_s * 1000:g} ms = "
            f"{floor:,.0f} s: each instant waits for its slowest session before time moves "
            f"on ({result['round_trips']:,} round trips one after another: "
            f"{result['round_trips'] * latency_s:,.0f} s)"
        )
    print(
        f"peak memory:       emulator {result['emulator_peak_mb']:.0f} MB, "
        f"reference server {result['server_peak_mb']:.0f} MB"
    )
    sessions = max(1, result["sessions"])
    busy = (result["emulator_cpu_s"] + result["server_cpu_s"]) / result["wall_s"]
    print(
        f"CPU per session:   emulator {result['emulator_cpu_s'] / sessions * 1000:.2f} ms, "
        f"reference server {result['server_cpu_s'] / sessions * 1000:.2f} ms "
        f"({busy:.2f} cores busy on average: the two take turns, a session's round trips "
        "being sequential on the virtual clock)"
    )


if __name__ == "__main__":
    main()
