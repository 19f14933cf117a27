"""Instructions per push of the fake WNS against a bare aiohttp handler, counted by callgrind.

Wall-clock throughput on a shared machine moves by 20% from one minute to the next, which
hides the effect of most changes to the push path. ``valgrind --tool=callgrind`` counts the
instructions a process executes instead: the same for the same work, whatever else the
machine does. Each server runs under callgrind with counting switched on only while wrk
drives keep-alive raw pushes at it (the bare handler is sent the same requests as the fake
WNS); the figure is instructions per push, and the ratio bare / fake WNS is the throughput
the fake WNS would have relative to the bare handler if both ran at the same instructions
per cycle. They do not quite: the fake WNS runs more distinct code and keeps a window of
request records, so it misses the caches more (``--cache-sim`` shows by how much), and
``wns_throughput.py`` remains the figure of record. Use this one to compare changes.

    python bench/wns_instructions.py [--seconds 15] [--connections 32] [--cache-sim]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wns_throughput import load_wrk, request_shape, start_bare, start_wns

#: Events callgrind reports in its totals line, in order, with --cache-sim=yes.
CACHE_EVENTS = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")


def totals(out_file: Path) -> list[int]:
    """The ``totals:`` (or ``summary:``) line of a callgrind output file."""
    text = out_file.read_text()
    found = re.search(r"^(?:totals|summary):\s+([\d ]+)$", text, re.M)
    if found is None:
        raise RuntimeError(f"no totals in {out_file}")
    return [int(n) for n in found.group(1).split()]


def measure(kind: str, seconds: float, conns: int, cache_sim: bool, work: Path) -> dict[str, Any]:
    out_file = work / f"callgrind.{kind}.out"
    launcher = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--cache-sim={'yes' if cache_sim else 'no'}",
        f"--callgrind-out-file={out_file}",
        f"--log-file={work / f'valgrind.{kind}.log'}",
    ]
    if kind == "wns":
        proc, url, headers = start_wns(launcher, timeout=180)
    else:
        proc, url, headers = start_bare(request_shape(), launcher, timeout=180)
    try:
        load_wrk(url, headers, 2, conns)  # warm-up, not counted
        subprocess.run(
            ["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True
        )
        result = load_wrk(url, headers, seconds, conns)
        subprocess.run(  # writes what the load cost as a part file, <out>.1
            ["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True
        )
    finally:
        proc.terminate()
        proc.wait(timeout=180)
    pushes = result["requests"]
    counts = totals(out_file.with_name(out_file.name + ".1"))
    names = CACHE_EVENTS if cache_sim else CACHE_EVENTS[:1]
    return {"pushes": pushes, **{n: c / pushes for n, c in zip(names, counts, strict=False)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--cache-sim", action="store_true", help="also count cache misses")
    args = parser.parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_control", "wrk") if not shutil.which(tool)]
    if missing:
        sys.exit(f"needs {', '.join(missing)} (Debian packages valgrind and wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        rows = {
            kind: measure(kind, args.seconds, args.connections, args.cache_sim, Path(tmp))
            for kind in ("bare", "wns")
        }
    for kind, label in (("bare", "bare aiohttp handler"), ("wns", "fake WNS (dmemu wns)")):
        row = rows[kind]
        extra = "".join(f"  {name} {row[name]:,.0f}" for name in CACHE_EVENTS[1:] if name in row)
        print(f"{label:<22} {row['Ir']:>9,.0f} instructions/push over {row['pushes']:,}{extra}")
    print(f"ratio bare / fake WNS instructions: {rows['bare']['Ir'] / rows['wns']['Ir']:.3f}")


if __name__ == "__main__":
    main()
