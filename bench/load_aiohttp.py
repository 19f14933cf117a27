"""Fallback load generator (when wrk is not installed): keep-alive aiohttp client workers.

Usage: load_aiohttp.py URL SECONDS CONNECTIONS HEADERS_JSON BODY
Prints one JSON line: {"requests", "rps", "p50_ms", "p99_ms", "non_2xx"}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
from yarl import URL


async def run(url: str, seconds: float, connections: int, headers: dict[str, str], body: bytes):
    latencies: list[float] = []
    non_2xx = 0
    deadline = time.perf_counter() + seconds
    target = URL(url, encoded=True)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal non_2xx
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                async with session.post(target, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status >= 300:
                        non_2xx += 1
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker() for _ in range(connections)))
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "rps": n / seconds,
        "p50_ms": latencies[n // 2] * 1000 if n else 0.0,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        "non_2xx": non_2xx,
    }


def main() -> None:
    url, seconds, conns, headers, body = sys.argv[1:6]
    result = asyncio.run(run(url, float(seconds), int(conns), json.loads(headers), body.encode()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
