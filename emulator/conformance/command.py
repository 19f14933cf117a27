"""``dmemu conformance``: arguments to options, the run, the table, the files, the exit code.

Must not: judge (the checks do) or build the world (``runner.py``).
"""

from __future__ import annotations

import argparse
import sys

from emulator.conformance.suite import render, run_conformance, select, write_report
from emulator.scenario.commands import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    WorldError,
    run_options,
    world_error,
)
from emulator.scenario.loader import ScenarioError
from emulator.serving import stop_on_sigterm


async def conformance(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        checks = select(args.only)
        options = run_options(args, err)
        if args.push_limit < 1:
            raise UsageError("--push-limit must be at least 1")
    except (ValueError, UsageError) as exc:
        print(f"dmemu: error: {exc}", file=err)
        return EXIT_USAGE
    target = args.server or "the built-in reference server"
    print(f"dmemu conformance: {len(checks)} checks against {target}", flush=True)
    try:
        with stop_on_sigterm():
            report = await run_conformance(
                options, checks, strict=args.strict, push_limit=args.push_limit
            )
    except ScenarioError as exc:  # the shipped suite itself is broken: our bug, said plainly
        print(f"dmemu: error: the conformance scenario is invalid:\n{exc}", file=err)
        return EXIT_USAGE
    except WorldError as exc:
        print(world_error(exc), file=err)
        return EXIT_USAGE
    print(render(report))
    if args.out is not None:
        paths = write_report(args.out, report)
        print("wrote " + ", ".join(str(p) for p in paths))
        print(f"report: {paths[-1]} (open it in a browser)")
    if not report.result.complete:  # Ctrl-C or SIGTERM: verdicts on what it saw, kept
        print("dmemu: interrupted; the verdicts rest on a partial run", file=err)
        return EXIT_INTERRUPTED
    return EXIT_OK if report.passed() else EXIT_FAILED
