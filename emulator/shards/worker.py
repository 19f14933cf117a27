"""A shard hosted as a local process: ``python -m emulator.shards.worker JOB.json DIR``.

Owns: the process end of the shard protocol over pipes. Each line on stdin is a request
(``{"op": "start" | "advance" | "finish", ...}``), each line on stdout its answer; the shard's
log goes to ``DIR/events.jsonl``, which the coordinator reads in place. Progress lines go to
stderr, which the coordinator relays. SIGTERM interrupts the shard (an advance under way ends
where it is); the coordinator then asks it to finish with what it has. If the coordinator
goes away (stdin closes), the shard finishes by itself. Exit 0 when the shard ran to its end,
130 when it was interrupted, 2 when it could not run (its last line says why).
Must not: judge or merge (the coordinator does).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from emulator.logs import configure_logging
from emulator.shards.runtime import ShardRuntime, dumps


async def serve(runtime: ShardRuntime) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    loop.add_signal_handler(signal.SIGTERM, runtime.interrupt)
    out = sys.stdout.buffer
    try:
        while line := await reader.readline():
            request = json.loads(line)
            op = request["op"]
            try:
                if op == "start":
                    reply: dict[str, Any] = await runtime.start()
                elif op == "advance":
                    reply = await runtime.advance(int(request["until"]))
                elif op == "finish":
                    reply = await runtime.finish()
                else:
                    reply = {"error": f"unknown op {op!r}"}
            except Exception as exc:
                out.write(dumps({"error": f"{type(exc).__name__}: {exc}"}))
                out.flush()
                print(f"dmemu: error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                return 2
            out.write(dumps(reply))
            out.flush()
            if op == "finish":
                return 0 if reply["complete"] else 130
        # the coordinator is gone: end with what there is
        if runtime.run is not None:
            runtime.interrupt()
            await runtime.finish()
        return 130
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await runtime.close()


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    configure_logging(job.get("log_level", "warning"))
    return asyncio.run(serve(ShardRuntime(job, Path(argv[1]))))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
