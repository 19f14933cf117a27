"""A whole fleet run against the built-in server, split into shards (issue 19).

Runs ``dmemu run SCENARIO --workers N --transport memory`` ``--runs`` times and prints the
median wall time, sessions per second, and each shard's peak memory (what a worker reports)
beside the largest peak of any process of the run. The same-run baseline is the same
scenario on ``--baseline-workers`` (default 1) workers, so the ratio is what sharding buys
on this machine. ``--ray`` runs it a third way, on a local Ray instance with as many actors
(``--cluster ray-local``); ``--against REV`` a fourth, with the code of git revision REV
(e.g. the main branch before a change), checked out beside this tree, in the same session.
Targets: ``fleets/fleet-10000`` for 30 days under 150 s with the whole run under 1 GB;
100,000 devices for 7 days on 2 workers completes (``--scale 10 --days 7``, ``--no-baseline``:
a single process would take most of an hour).

    python bench/fleet_shards.py [--scenario scenarios/fleets/fleet-10000.yaml] [--days 30]
        [--scale 1] [--workers 2] [--transport memory] [--runs 3] [--no-baseline]
        [--ray] [--against REV]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARD_LINE = re.compile(r"shard (\d+)/\d+: ([\d.]+) s, peak memory (\d+) MB")


def scaled(path: Path, days: int | None, scale: int, into: Path) -> Path:
    data = yaml.safe_load(path.read_text())
    if days is not None:
        data["duration"] = f"{days}d"
        data["timeline"] = [
            e for e in data.get("timeline", []) if int(str(e["at"]).split()[1]) < days
        ]
    for group in data["fleet"]:
        group["count"] *= scale
    out = into / path.name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def one_run(
    scenario: Path,
    workers: int,
    transport: str,
    out: Path,
    *,
    extra: tuple[str, ...] = (),
    tree: Path = ROOT,
) -> dict[str, Any]:
    started = time.monotonic()
    argv = ["run", str(scenario), "--workers", str(workers), "--transport", transport, *extra]
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator.cli", *argv, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    summary = json.loads((out / "summary.json").read_text())
    shards = [(float(s), int(mb)) for _, s, mb in SHARD_LINE.findall(stderr)]
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "wall_s": wall,
        "sessions": summary["sessions"]["started"],
        "passed": summary["passed"],
        "shards": shards,
        "max_process_mb": usage.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario", type=Path, default=ROOT / "scenarios" / "fleets" / "fleet-10000.yaml"
    )
    parser.add_argument("--days", type=int)
    parser.add_argument("--scale", type=int, default=1, help="multiply every group's count")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-workers", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--transport", default="memory", choices=["memory", "http"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ray", action="store_true", help="also on local Ray (as many actors)")
    parser.add_argument("--against", metavar="REV", help="also with the code of git revision REV")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scenario = scaled(args.scenario, args.days, args.scale, work)
        tree = work / "against"
        if args.against:
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), args.against],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
        runs, bases, rays, olds = [], [], [], []
        try:
            for i in range(args.runs):  # interleaved: the machine's noise hits each alike
                runs.append(one_run(scenario, args.workers, args.transport, work / f"r{i}"))
                if not args.no_baseline:
                    base = work / f"b{i}"
                    bases.append(one_run(scenario, args.baseline_workers, args.transport, base))
                if args.ray:
                    ray_out, ray = work / f"y{i}", ("--cluster", "ray-local")
                    rays.append(one_run(scenario, args.workers, args.transport, ray_out, extra=ray))
                if args.against:
                    old = work / f"o{i}"
                    olds.append(one_run(scenario, args.workers, args.transport, old, tree=tree))
        finally:
            if args.against:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False
                )
        devices = sum(g["count"] for g in yaml.safe_load(scenario.read_text())["fleet"])
    walls = [r["wall_s"] for r in runs]
    wall = statistics.median(walls)
    last = runs[-1]
    print(
        f"scenario:   {args.scenario.name} x{args.scale} ({devices:,} devices), "
        f"{args.days or 'all'} days, transport {args.transport}"
    )
    print(
        f"sharded:    {args.workers} workers, median {wall:.1f} s of {len(runs)} runs "
        f"(spread {(max(walls) - min(walls)) / wall:.0%}), {last['sessions'] / wall:,.0f} "
        f"sessions/s, {last['sessions']:,} sessions, "
        f"{'passed' if all(r['passed'] for r in runs) else 'FAILED'}"
    )
    for index, (seconds, mb) in enumerate(last["shards"], start=1):
        print(f"  shard {index}: {seconds:.1f} s, peak {mb} MB")
    total = sum(mb for _, mb in last["shards"])
    print(
        f"  memory: shards together {total} MB at most; largest process "
        f"{last['max_process_mb']:.0f} MB"
    )
    if bases:
        base = statistics.median(b["wall_s"] for b in bases)
        print(
            f"baseline:   {args.baseline_workers} worker(s), median {base:.1f} s; "
            f"speed-up {base / wall:.2f}x"
        )
    if rays:
        ray_wall = statistics.median(r["wall_s"] for r in rays)
        shards = ", ".join(f"{mb} MB" for _, mb in rays[-1]["shards"])
        print(
            f"local Ray:  {args.workers} actors, median {ray_wall:.1f} s "
            f"({ray_wall / wall:.2f}x the local processes' time), "
            f"{rays[-1]['sessions'] / ray_wall:,.0f} sessions/s, actors' peaks {shards}, "
            f"{'passed' if all(r['passed'] for r in rays) else 'FAILED'}"
        )
    if olds:
        old_wall = statistics.median(o["wall_s"] for o in olds)
        print(
            f"{args.against}: median {old_wall:.1f} s with its code, same flags; this tree "
            f"takes {wall / old_wall:.2f}x its time"
        )


if __name__ == "__main__":
    main()
