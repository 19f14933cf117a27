"""Raw-push throughput of the fake WNS against a bare aiohttp handler, measured in one run.

Each round starts the fake WNS (`dmemu wns`, rate limit off, records on, as a vendor runs
it) and the bare handler in turn, each pinned to CPU 0, and drives keep-alive POSTs at it
from a separate load process pinned to CPU 1: wrk when installed, else an aiohttp client.
The bare handler is sent byte for byte the request the fake WNS gets (a real ChannelURI's
path and query, a real token), so the ratio prices the WNS's work, not its long URLs.
Shared machines are noisy, so rounds alternate and the figure that matters is the ratio of
medians (target: fake WNS >= 0.7x the bare handler); the median of the per-round ratios is
printed beside it. No timing assertion lives in tests.

    python bench/wns_throughput.py [--rounds 5] [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SID = "S-1-15-2-1234567890-1234567890-1234567890-123456789-1234567890-1234567890-123456789"
SECRET = "dmemu-demo-secret"
PFN = "Dmemu.DemoMdmPush_8wekyb3d8bbwe"
BODY = "wake-up"


def pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() != 1 else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def start_wns(
    launcher: list[str] | None = None, timeout: float = 20
) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    """``dmemu wns`` on a free port (run by ``launcher``, pinned to CPU 0 by default), a
    channel and a token: (process, ChannelURI, the headers of a raw push)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *(pinned(0) if launcher is None else launcher),
            PY,
            "-m",
            "emulator.cli",
            "wns",
            "--port",
            str(port),
            "--rate-limit",
            "off",
            "--log-level",
            "warning",
            "--clock",
            "virtual",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    wait_port(port, timeout)
    base = f"http://127.0.0.1:{port}"
    req = urllib.request.Request(
        f"{base}/_emulator/wns/channels",
        json.dumps({"pfn": PFN}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        uri = json.load(resp)["channel_uri"]
    form = urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": f"ms-app://{SID}",
            "client_secret": SECRET,
            "scope": "notify.windows.com",
        }
    ).encode()
    with urllib.request.urlopen(f"{base}/accesstoken.srf", form, timeout=timeout) as resp:
        token = json.load(resp)["access_token"]
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/octet-stream",
        "X-WNS-Type": "wns/raw",
        "X-WNS-Cache-Policy": "cache",
    }
    return proc, uri, headers


def request_shape() -> Shape:
    """The path, query and headers a sender sends the fake WNS: a real ChannelURI's and a
    real access token's. The bare handler is sent the same bytes, so the two servers parse
    the same requests and the ratio prices only the fake WNS's work."""
    proc, uri, headers = start_wns()
    proc.terminate()
    proc.wait(timeout=20)
    parts = urllib.parse.urlsplit(uri)
    return f"{parts.path}?{parts.query}", headers


Shape = tuple[str, dict[str, str]]  # path?query, headers


def start_bare(
    shape: Shape | None = None, launcher: list[str] | None = None, timeout: float = 20
) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    """The bare handler, and the request to send it: ``shape``, or a short one by default."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *(pinned(0) if launcher is None else launcher),
            PY,
            str(ROOT / "bench" / "bare_server.py"),
            str(port),
        ]
    )
    wait_port(port, timeout)
    target, headers = shape or (
        "/",
        {
            "Authorization": "Bearer x",
            "Content-Type": "application/octet-stream",
            "X-WNS-Type": "wns/raw",
            "X-WNS-Cache-Policy": "cache",
        },
    )
    return proc, f"http://127.0.0.1:{port}{target}", headers


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load_wrk(url: str, headers: dict[str, str], seconds: float, conns: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\n')
        script.write(f"wrk.body = {json.dumps(BODY)}\n")
        for name, value in headers.items():
            script.write(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n")
    try:
        out = subprocess.run(
            [
                *pinned(1),
                "wrk",
                "-t1",
                f"-c{conns}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    p50 = re.match(r"([\d.]+)(us|ms|s)", lat["50"])
    p99 = re.match(r"([\d.]+)(us|ms|s)", lat["99"])
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "requests": requests,
        "p50_ms": _ms(*p50.groups()),
        "p99_ms": _ms(*p99.groups()),  # type: ignore[union-attr]
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def load_aiohttp(url: str, headers: dict[str, str], seconds: float, conns: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            *pinned(1),
            PY,
            str(ROOT / "bench" / "load_aiohttp.py"),
            url,
            str(seconds),
            str(conns),
            json.dumps(headers),
            BODY,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out))


def measure(kind: str, load: Any, seconds: float, conns: int, shape: Shape) -> dict[str, Any]:
    proc, url, headers = start_wns() if kind == "wns" else start_bare(shape)
    try:
        load(url, headers, 1.0, conns)  # warm-up
        return dict(load(url, headers, seconds, conns))
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None
    load = load_wrk if use_wrk else load_aiohttp
    print(
        f"load generator: {'wrk' if use_wrk else 'aiohttp client (wrk not installed)'}; "
        f"{args.rounds} rounds x {args.seconds:g} s, {args.connections} keep-alive connections; "
        f"server on CPU 0, load on CPU 1"
    )
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "wns": []}
    shape = request_shape()
    for r in range(args.rounds):
        for kind in ("bare", "wns") if r % 2 == 0 else ("wns", "bare"):
            res = measure(kind, load, args.seconds, args.connections, shape)
            results[kind].append(res)
            print(
                f"  round {r + 1} {kind:<4} {res['rps']:>9.0f} pushes/s  p50 {res['p50_ms']:.2f} ms"
                f"  p99 {res['p99_ms']:.2f} ms  non-2xx {res['non_2xx']}",
                flush=True,
            )
    summary: dict[str, Any] = {}
    for kind, rows in results.items():
        rps = [row["rps"] for row in rows]
        summary[kind] = {
            "rps_median": statistics.median(rps),
            "rps_min": min(rps),
            "rps_max": max(rps),
            "p50_ms_median": statistics.median(row["p50_ms"] for row in rows),
            "p99_ms_median": statistics.median(row["p99_ms"] for row in rows),
            "non_2xx": sum(row["non_2xx"] for row in rows),
        }
    ratio = summary["wns"]["rps_median"] / summary["bare"]["rps_median"]
    ratios = [w["rps"] / b["rps"] for w, b in zip(results["wns"], results["bare"], strict=True)]
    print()
    for kind, label in (("bare", "bare aiohttp handler"), ("wns", "fake WNS (dmemu wns)")):
        s = summary[kind]
        spread = (s["rps_max"] - s["rps_min"]) / s["rps_median"] * 100
        print(
            f"{label:<22} median {s['rps_median']:>8.0f} pushes/s (spread {spread:.0f}%), "
            f"p50 {s['p50_ms_median']:.2f} ms, p99 {s['p99_ms_median']:.2f} ms"
        )
    print(
        f"ratio fake WNS / bare: {ratio:.2f}x (per-round ratios "
        f"{', '.join(f'{x:.2f}' for x in ratios)}, median {statistics.median(ratios):.2f}); "
        "target >= 0.70x"
    )
    if summary["wns"]["non_2xx"]:
        print(f"WARNING: {summary['wns']['non_2xx']} fake WNS responses were not 2xx")
    print(json.dumps({"summary": summary, "ratio": ratio, "round_ratios": ratios}, sort_keys=True))


if __name__ == "__main__":
    main()
