"""How long report.html takes to build for a big run, and how big it is (issue 20).

Runs SCENARIO once (``--workers``, ``--transport memory``) into a temporary directory (or
takes an existing run's ``--dir``), then builds ``report.html`` ``--runs`` times and prints
the median build time beside the same-run baseline: one bare pass reading and parsing
``events.jsonl`` (the floor of any report built from the log), and the file's size by part
(plotly.js, the charts' data, the compressed lanes).

    python bench/report_build.py [--scenario scenarios/fleets/fleet-10000.yaml] [--days 30]
        [--dir RUN_DIR] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plotly.offline import get_plotlyjs  # noqa: E402

from bench.fleet_shards import scaled  # noqa: E402
from emulator.reports.html import run_figures, write_run_report  # noqa: E402


def parse_only(log: Path) -> float:
    started = time.monotonic()
    with log.open(encoding="utf-8") as lines:
        for line in lines:
            json.loads(line)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenario", type=Path, default=ROOT / "scenarios" / "fleets" / "fleet-10000.yaml"
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dir", type=Path, help="an existing run's --out directory")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.dir
        if out is None:
            out = Path(tmp) / "run"
            scenario = scaled(args.scenario, args.days, 1, Path(tmp))
            argv = ["run", str(scenario), "--workers", str(args.workers), "--transport", "memory"]
            subprocess.run(
                [sys.executable, "-m", "emulator.cli", *argv, "--quiet", "--out", str(out)],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        log = out / "events.jsonl"
        builds, floors = [], []
        for _ in range(args.runs):
            floors.append(parse_only(log))
            started = time.monotonic()
            path = write_run_report(out)
            builds.append(time.monotonic() - started)
        summary = json.loads((out / "summary.json").read_text())
        figures = run_figures(out, summary)
        size = path.stat().st_size
        text = path.read_text(encoding="utf-8")
        lanes = len(text.split('id="lanes-data"', 1)[1].split("</script>", 1)[0])
        charts = len(json.dumps(figures.aggregates(), separators=(",", ":")))
    build, floor = statistics.median(builds), statistics.median(floors)
    print(
        f"log:       {log.stat().st_size / 1e6:,.0f} MB, "
        f"{summary['events']:,} events, {summary['scenario']['devices']:,} devices"
    )
    print(
        f"build:     median {build:.1f} s of {len(builds)} (spread "
        f"{(max(builds) - min(builds)) / build:.0%}); baseline (read and parse the log "
        f"once) {floor:.1f} s; ratio {build / floor:.2f}"
    )
    print(
        f"file:      {size / 1e6:.1f} MB: plotly.js {len(get_plotlyjs()) / 1e6:.1f} MB, "
        f"charts' data {charts / 1e3:,.0f} kB, "
        f"lanes {lanes / 1e6:.1f} MB (gzip, base64)"
    )


if __name__ == "__main__":
    main()
