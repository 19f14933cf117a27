"""``dmemu conformance``: arguments to options, the run, the table, the files, the exit code.

Must not: judge (the checks do) or build the world (``runner.py``).
"""

from __future__ import annotations

import argparse
import sys

from emulator.conformance.suite import render, run_conformance, select, write_report
from emulator.hooks import load_hooks
from emulator.runner import RunOptions
from emulator.scenario.loader import ScenarioError
from emulator.yamlconf import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


async def conformance(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        checks = select(args.only)
        hooks = load_hooks(args.hooks) if args.hooks else None
    except (ValueError, ConfigError) as exc:
        print(f"dmemu: error: {exc}", file=err)
        return EXIT_USAGE
    if args.hooks and not args.server:
        print("dmemu: error: --hooks needs --server (the reference server has its own)", file=err)
        return EXIT_USAGE
    if args.push_limit < 1:
        print("dmemu: error: --push-limit must be at least 1", file=err)
        return EXIT_USAGE
    options = RunOptions(
        server_url=args.server,
        hooks=hooks,
        idle_ms=args.idle_ms,
        wns_port=args.wns_port,
        provider_id=args.provider_id,
        progress=False if args.quiet else None,
        progress_stream=err,
    )
    target = args.server or "the built-in reference server"
    print(f"dmemu conformance: {len(checks)} checks against {target}", flush=True)
    try:
        report = await run_conformance(
            options, checks, strict=args.strict, push_limit=args.push_limit
        )
    except ScenarioError as exc:  # the shipped suite itself is broken: our bug, said plainly
        print(f"dmemu: error: the conformance scenario is invalid:\n{exc}", file=err)
        return EXIT_USAGE
    except OSError as exc:
        print(f"dmemu: error: cannot open a loopback port: {exc.strerror}", file=err)
        return EXIT_USAGE
    print(render(report))
    if args.out is not None:
        paths = write_report(args.out, report)
        print("wrote " + ", ".join(str(p) for p in paths))
    return EXIT_OK if report.passed() else EXIT_FAILED
