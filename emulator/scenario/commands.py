"""``dmemu validate`` and ``dmemu run``: what the command line does with a scenario file.

Owns: printing every problem of a bad file (exit 2, nothing run), running a scenario and
printing its table, writing ``--out`` files, and the exit code (0 all expectations hold,
1 one failed, 2 bad input).
Must not: parse arguments (``cli.py``) or build the world (``runner.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from emulator.clock import DAY
from emulator.device.driver import parse_auth
from emulator.hooks import load_hooks
from emulator.reports.html import write_run_report
from emulator.reports.summary import Tally, build_summary
from emulator.reports.text import plural, render
from emulator.reports.write import event_line, write_summary
from emulator.runner import RunOptions, RunResult, ServerUnreachable, UnsupportedSetup, run_scenario
from emulator.scenario.expect import Judges
from emulator.scenario.loader import load_scenario
from emulator.scenario.model import EnrollSpec, Scenario
from emulator.serving import stop_on_sigterm
from emulator.shards.coordinator import run_sharded
from emulator.shards.hosts import ShardFailed
from emulator.sut.faketime import FaketimeMissing
from emulator.sut.launch import ServerCommand
from emulator.sut.process import ServerFailed
from emulator.yamlconf import ConfigError, print_problems

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: the shell's 128 + SIGINT


class UsageError(Exception):
    """A command-line mistake: one line on stderr, exit 2."""


#: What keeps a run's world from starting: said in one line, exit 2, nothing run.
WorldError = (
    ServerUnreachable,
    UnsupportedSetup,
    ServerFailed,
    ShardFailed,
    FaketimeMissing,
    OSError,
)


def world_error(exc: Exception) -> str:
    """The line a user sees when the world of ``run`` or ``conformance`` cannot start."""
    if isinstance(exc, OSError):
        return f"dmemu: error: cannot open a loopback port: {exc.strerror}"
    return f"dmemu: error: {exc}"


def _announcer(out: TextIO) -> Callable[[list[str]], None]:
    def announce(lines: list[str]) -> None:
        print("\n".join(lines), file=out, flush=True)

    return announce


def run_options(
    args: argparse.Namespace, err: TextIO, out: TextIO | None = None, **extra: Any
) -> RunOptions:
    """The options ``run`` and ``conformance`` share (--server, --hooks, --wns-port,
    --idle-ms, --provider-id, --quiet), checked; raises :class:`UsageError`."""
    hooks = load_hooks(args.hooks) if args.hooks else None  # ConfigErrors: every mistake
    if args.hooks and not args.server:
        raise UsageError("--hooks needs --server (the reference server has its own)")
    try:
        auth = parse_auth(args.device_auth, args.server_ca)
    except ValueError as exc:
        raise UsageError(f"--device-auth {exc}") from None
    for path in (args.server_ca, auth.cert_file, auth.key_file):
        if path and not Path(path).is_file():
            raise UsageError(f"no such file: {path}")
    if auth.kind != "none" and not args.server:
        raise UsageError("--device-auth is for --server (the reference server takes none)")
    server_cmd = None
    if args.server_cmd is not None:
        if not args.server:
            raise UsageError(
                "--server-cmd needs --server, the OMA-DM URL it serves "
                "(e.g. http://127.0.0.1:{port}/ManagementServer/MDM.svc)"
            )
        if args.server_ready_timeout <= 0:
            raise UsageError("--server-ready-timeout must be more than 0 seconds")
        log = args.out / "server.log" if getattr(args, "out", None) else None
        server_cmd = ServerCommand(
            args.server_cmd, args.server_ready, args.server_ready_timeout, log
        )
    elif args.server_ready is not None:
        raise UsageError("--server-ready is for --server-cmd")
    return RunOptions(
        enroll=enroll_option(args.enroll, args.enroll_auth, builtin=not args.server),
        tls_dir=args.tls_dir,
        device_auth=auth,
        server_url=args.server,
        hooks=hooks,
        idle_ms=args.idle_ms,
        wns_port=args.wns_port,
        wns_tls_dir=args.tls_dir if args.tls else None,
        rate=args.rate,
        announce=_announcer(out or sys.stdout),
        server_cmd=server_cmd,
        provider_id=args.provider_id,
        progress=False if args.quiet else None,
        progress_stream=err,
        **extra,
    )


def enroll_option(url: str | None, auth: str | None, *, builtin: bool) -> EnrollSpec | None:
    """``--enroll [URL]`` and ``--enroll-auth AUTH`` as an enroll block; raises UsageError."""
    if url is None:
        if auth is not None:
            raise UsageError("--enroll-auth is for --enroll")
        return None
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise UsageError(f"--enroll {url!r} is not an http(s) Discovery URL")
    kind, _, rest = (auth or "on-premise").partition(":")
    spec = EnrollSpec(discovery=url or None)
    if kind == "on-premise":
        user, sep, password = rest.partition(":")
        if rest and not sep:
            raise UsageError("--enroll-auth on-premise:USER:PASSWORD")
        if "@" in user:
            return replace(spec, email=user, password=password)
        return replace(spec, username=user, password=password)
    if kind == "federated":
        return replace(spec, auth="federated", token=rest or None)
    if kind == "certificate" and rest:
        if builtin:
            raise UsageError("the built-in server enrolls with on-premise or federated")
        cert, _, key = rest.partition(":")
        for path in (cert, key or cert):
            if not Path(path).is_file():
                raise UsageError(f"--enroll-auth: no such file: {path}")
        return replace(spec, auth="certificate", certificate=(cert, key or cert))
    raise UsageError(
        f"--enroll-auth {auth!r}: use on-premise:USER:PASSWORD, federated[:TOKEN] or "
        "certificate:CERT.pem[:KEY.pem]"
    )


async def _streamed(
    args: argparse.Namespace, scenario: Scenario, options: RunOptions, err: TextIO
) -> tuple[RunResult, dict[str, Any], list[Path]]:
    """A run (or a sharded run's merge) whose log is streamed: written to ``events.jsonl``,
    judged and counted as it goes, never held, so memory does not grow with the log."""
    group_of = {d: g.name for g in scenario.groups for d in g.device_ids()}
    judges = Judges(scenario.expectations, group_of)
    tally = Tally()
    with contextlib.ExitStack() as stack:
        log = None
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context((args.out / "events.jsonl").open("w", encoding="utf-8"))

        def sink(event: dict[str, Any]) -> None:
            judges.feed(event)
            tally.feed(event)
            if log is not None:
                log.write(event_line(event))

        if args.cluster is not None or args.workers > 1:
            result = await run_sharded(
                scenario,
                options,
                args.workers,
                cluster=args.cluster,
                err=err,
                log_level=args.log_level,
                sink=sink,
            )
        else:
            result = await run_scenario(scenario, replace(options, sink=sink))
    summary = build_summary(result, judges.verdicts(result.end_ms), tally)
    paths = []
    if args.out is not None:
        paths = [args.out / "events.jsonl", *write_summary(args.out, summary)]
        paths.append(write_run_report(args.out))  # reads the log back, as a stream
    return result, summary, paths


MIN_SHARD_DEVICES = 250  # fewer per shard and starting a process costs more than it saves


def workers_for(args: argparse.Namespace, scenario: Scenario) -> int | None:
    """How many shards ``--workers`` and ``--cluster`` ask for (None: one per CPU of the
    cluster); raises :class:`UsageError` for a combination that cannot be sharded."""
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.cluster is not None:
        if not (args.cluster == "ray-local" or args.cluster.startswith("ray://")):
            raise UsageError(f"--cluster {args.cluster!r}: use ray://HOST:PORT or ray-local")
        if not importlib.util.find_spec("ray"):
            raise UsageError("--cluster needs Ray: pip install 'dmemu[ray]'")
    unshardable = (
        "--rate"
        if args.rate is not None
        else "--server-cmd"
        if args.server_cmd is not None
        else None
    )
    if unshardable is not None:
        if (args.workers or 1) > 1 or args.cluster is not None:
            raise UsageError(
                f"--workers and --cluster shard a run on the virtual clock; {unshardable} "
                "runs one world (its server is bound to that world's clock)"
            )
        return 1
    if args.workers is not None or args.cluster is not None:
        workers: int | None = args.workers
        return workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, scenario.device_count // MIN_SHARD_DEVICES))


def validate(paths: list[Path], out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    code = EXIT_OK
    for path in paths:
        try:
            scenario = load_scenario(path)
        except ConfigError as exc:
            print_problems(exc, err)
            code = EXIT_USAGE
            continue
        print(
            f"{path}: ok ({scenario.name}: {plural(scenario.device_count, 'device')} in "
            f"{plural(len(scenario.groups), 'group')}, "
            f"{plural(len(scenario.timeline), 'timeline event')}, "
            f"{plural(len(scenario.expectations), 'expectation')})",
            file=out,
        )
    return code


async def run(
    args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    with stop_on_sigterm():
        try:
            return await _run(args, out, err)
        except asyncio.CancelledError:  # stopped before the run had anything to keep
            task = asyncio.current_task()
            if task is None or task.uncancel() > 0:
                raise
            print("dmemu: interrupted before the run started; nothing was written", file=err)
            return EXIT_INTERRUPTED


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        scenario = load_scenario(args.scenario)
        if args.resolution and args.rate is not None:
            raise UsageError("--resolution is for the virtual clock, not --rate")
        if args.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if args.transport == "memory" and args.server:
            raise UsageError("--transport memory is for the built-in server (not --server)")
        args.workers = workers_for(args, scenario)
        options = run_options(
            args,
            err,
            out,
            seed=args.seed,
            resolution_ms=args.resolution,
            concurrency=args.concurrency,
            transport=args.transport,
        )
    except ConfigError as exc:
        print_problems(exc, err)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"dmemu: error: {exc}", file=err)
        return EXIT_USAGE
    server = args.server or "the built-in reference server"
    print(
        f"running {scenario.name}: {plural(scenario.device_count, 'device')}, "
        f"{scenario.duration_ms / DAY:g} virtual days, against {server}",
        file=out,
        flush=True,
    )
    try:
        result, summary, paths = await _streamed(args, scenario, options, err)
    except WorldError as exc:
        print(world_error(exc), file=err)
        return EXIT_USAGE
    print(render(summary), file=out)
    if paths:
        print("wrote " + ", ".join(str(p) for p in paths), file=out)
        print(f"report: {paths[-1]} (open it in a browser)", file=out)
    if result.server_killed:  # its results stand, but the command must be fixed
        print(
            "dmemu: error: the --server-cmd server ignored SIGTERM and had to be killed; "
            "make it exit on SIGTERM",
            file=err,
        )
        return EXIT_USAGE
    if not result.complete:  # Ctrl-C or SIGTERM: what it had is written, marked incomplete
        print("dmemu: interrupted; the results so far are marked incomplete", file=err)
        return EXIT_INTERRUPTED
    return EXIT_OK if summary["passed"] else EXIT_FAILED
