"""The ``dmemu`` command line.

Owns: argument parsing, turning user mistakes into one clear line and exit code 2, and running
the chosen command. Must not: hold protocol logic.

Commands: ``dmemu run`` and ``dmemu validate`` (scenarios), ``dmemu conformance`` (grade a
server), ``dmemu wns`` (a standalone fake WNS), ``dmemu mdm`` (the reference MDM server)
and ``dmemu demo`` (a guided walk-through).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import NoReturn

from emulator.clock import Clock, RealTimeClock, VirtualClock, WallClock, iso, parse_iso
from emulator.logs import configure_logging
from emulator.wns.config import DEMO_APP, WnsFile, build_config, parse_app_arg, parse_rate
from emulator.wns.models import App
from emulator.wns.service import WnsConfig
from emulator.yamlconf import ConfigError, load_model, parse_duration, print_problems

EXIT_USAGE = 2


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _app(text: str) -> App:
    try:
        return parse_app_arg(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _add_clock_args(parser: argparse.ArgumentParser, *, virtual: bool = True) -> None:
    """--rate and --start (and --clock where a virtual clock can be advanced from outside)."""
    if virtual:
        parser.add_argument(
            "--clock",
            choices=["real", "virtual"],
            default="real",
            help="real time (paced by --rate) or virtual (moves only when advanced)",
        )
    else:
        parser.set_defaults(clock="real")
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=1.0,
        help="real clock speed: emulated seconds per real second",
    )
    parser.add_argument("--start", help="emulated start time, ISO-8601 (default: now / 2026-01-01)")


def _add_tls_args(
    parser: argparse.ArgumentParser, what: str = "serve HTTPS", *, hosts: bool = True
) -> None:
    parser.add_argument("--tls", action="store_true", help=f"{what} with a local CA")
    parser.add_argument(
        "--tls-dir",
        type=Path,
        default=Path(".dmemu/tls"),
        help="where the CA is kept (created once, reused)",
    )
    if hosts:
        parser.add_argument(
            "--tls-host",
            action="append",
            default=[],
            help="extra host name for the certificate (repeatable)",
        )


def _add_world_args(parser: argparse.ArgumentParser) -> None:
    """What ``run`` and ``conformance`` share: the server under test and how devices reach it,
    the fake WNS's port, the time-skip idle window, progress and logs (see
    :func:`emulator.scenario.commands.run_options`)."""
    parser.add_argument("--server", help="an external MDM server's OMA-DM URL (default: built-in)")
    parser.add_argument("--hooks", type=Path, help="hooks file: how to ask --server to act")
    parser.add_argument(
        "--server-cmd",
        metavar="CMD",
        help="start the server under test on dmemu's clock (libfaketime); placeholders "
        "{port}, {wns_url}, {ca_file}; --server may use {port}",
    )
    parser.add_argument(
        "--server-ready",
        metavar="URL",
        help="with --server-cmd: polled until it answers (default: the --server URL)",
    )
    parser.add_argument(
        "--server-ready-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --server-cmd: how long to wait for it to answer (default 30)",
    )
    parser.add_argument(
        "--device-auth",
        default="none",
        metavar="AUTH",
        help="devices authenticate to --server with none, basic:USER:PASSWORD, bearer:TOKEN "
        "or cert:CERT.pem[:KEY.pem] (TLS client certificate)",
    )
    parser.add_argument("--server-ca", help="CA file to trust for an HTTPS --server")
    parser.add_argument(
        "--enroll",
        nargs="?",
        const="",
        metavar="URL",
        help="devices enroll (MS-MDE2) before their first session, at this Discovery URL "
        "(default: the server's own /EnrollmentServer/Discovery.svc)",
    )
    parser.add_argument(
        "--enroll-auth",
        metavar="AUTH",
        help="with --enroll: on-premise:USER:PASSWORD, federated[:TOKEN] (no token: the "
        "enroll_token hook) or certificate:CERT.pem[:KEY.pem] (default on-premise, any user)",
    )
    parser.add_argument(
        "--wns-port",
        type=int,
        default=0,
        help="port of the fake WNS (give an external server http://127.0.0.1:PORT)",
    )
    parser.add_argument(
        "--idle-ms",
        type=int,
        default=50,
        help="external server: real ms without WNS traffic before time skips (default 50)",
    )
    parser.add_argument(
        "--provider-id", default="dmemu", help="DMClient ProviderID of the devices' enrollment"
    )
    _add_tls_args(parser, "the fake WNS serves HTTPS (https:// ChannelURIs)", hosts=False)
    parser.add_argument(
        "--rate",
        type=_positive_float,
        help="run on the real-time clock at this factor instead of skipping time",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--log-level", default="warning", help="debug, info, warning or error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmemu", description="Device-side emulator of Windows MDM push."
    )
    parser.add_argument("--version", action="version", version=f"dmemu {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    wns = sub.add_parser(
        "wns",
        help="run a standalone fake WNS",
        description="Serve a fake Windows Push Notification Service: /accesstoken.srf, "
        "ChannelURIs, and the /_emulator control API.",
    )
    wns.add_argument("--config", type=Path, help="YAML file with apps and settings")
    wns.add_argument(
        "--app",
        type=_app,
        action="append",
        default=[],
        metavar="SID=SECRET=PFN",
        help="register an app (repeatable); without any, a demo app is served",
    )
    wns.add_argument("--host", default="127.0.0.1", help="address to listen on")
    wns.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    wns.add_argument("--public-url", help="base of ChannelURIs (default: the served URL)")
    wns.add_argument("--token-ttl", type=_duration, help="access token life (default 24h)")
    wns.add_argument("--channel-ttl", type=_duration, help="ChannelURI life (default 30d)")
    wns.add_argument("--cache-period", type=_duration, help="offline cache life (default 30d)")
    wns.add_argument("--renewal", choices=["new", "extend"], help="renewal: new URI or extend")
    wns.add_argument(
        "--rate-limit",
        metavar="N/DURATION",
        help="pushes per channel before 406, e.g. 600/60s, or off",
    )
    wns.add_argument("--seed", type=int, help="seed for tokens, ChannelURIs and Msg-IDs")
    _add_clock_args(wns)
    _add_tls_args(wns)
    wns.add_argument(
        "--ready-file", type=Path, help="write {url, port, ca_file} as JSON here once listening"
    )
    wns.add_argument("--log-level", default="info", help="debug, info, warning or error")

    mdm = sub.add_parser(
        "mdm",
        help="run the built-in reference MDM server",
        description="Serve the reference MDM server: the OMA-DM endpoint devices enroll with, "
        "a WNS sender, and a JSON admin API (push a device, queue a command).",
    )
    mdm.add_argument("--host", default="127.0.0.1", help="address to listen on")
    mdm.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    mdm.add_argument(
        "--app",
        type=_app,
        metavar="SID=SECRET=PFN",
        help="WNS app to push as, and the PFN given to devices (default: dmemu wns's demo app)",
    )
    mdm.add_argument(
        "--wns-url", help="base URL of a fake WNS (its token endpoint and its host, trusted)"
    )
    mdm.add_argument("--token-url", help="WNS token endpoint (default: the real one)")
    mdm.add_argument(
        "--trusted-host",
        action="append",
        default=[],
        help="host (or .suffix) ChannelURIs may be on (repeatable; default .notify.windows.com)",
    )
    mdm.add_argument("--wns-ca", help="CA file to trust for a fake WNS serving TLS")
    mdm.add_argument("--provider-id", default="dmemu", help="DMClient ProviderID (default dmemu)")
    mdm.add_argument("--db", default=":memory:", help="SQLite file (default: in memory)")
    mdm.add_argument(
        "--devices", type=Path, help="file of allowed device ids, one per line (default: any)"
    )
    mdm.add_argument("--device-token", help="require devices to send 'Bearer TOKEN'")
    mdm.add_argument("--admin-token", help="require 'Bearer TOKEN' on the admin API")
    mdm.add_argument(
        "--enroll-policy",
        choices=["OnPremise", "Federated"],
        default="OnPremise",
        help="the AuthPolicy its Discovery service answers (default OnPremise)",
    )
    mdm.add_argument(
        "--enroll-password",
        help="OnPremise: the password every enrolling user must give (default: any)",
    )
    mdm.add_argument(
        "--enroll-token",
        help="Federated: the token devices must present (default: one made at start); "
        "GET /admin/enrollment/token (the enroll_token hook) hands it out",
    )
    mdm.add_argument("--push-ttl", type=_duration, help="X-WNS-TTL on pushes, e.g. 1h")
    mdm.add_argument(
        "--push-rate", type=int, default=12, help="pushes per device per hour (default 12)"
    )
    mdm.add_argument(
        "--latency",
        type=_duration,
        default=0,
        metavar="DURATION",
        help="added to every response on the server's own clock, e.g. 20ms (default 0)",
    )
    _add_clock_args(mdm, virtual=False)  # its retries run on timers: it needs time to pass
    _add_tls_args(mdm)
    mdm.add_argument(
        "--ready-file",
        type=Path,
        help="write {url, omadm_url, port, ca_file} as JSON once listening",
    )
    mdm.add_argument("--log-level", default="info", help="debug, info, warning or error")

    run = sub.add_parser(
        "run",
        help="replay a scenario (YAML fleet, timeline, expectations) on virtual time",
        description="Build the scenario's world (fake WNS, fleet, and the reference server or "
        "--server), run it, print a summary; exit 0 when every expectation holds, 1 when one "
        "fails, 2 for bad input, 130 when stopped by Ctrl-C or SIGTERM (results so far kept).",
    )
    run.add_argument("scenario", type=Path, help="scenario file (YAML)")
    _add_world_args(run)
    run.add_argument(
        "--out", type=Path, help="write events.jsonl, summary.json, junit.xml, report.html here"
    )
    run.add_argument("--seed", type=int, help="override the scenario's seed")
    run.add_argument(
        "--resolution",
        type=_duration,
        default=0,
        metavar="DURATION",
        help="timers due in the same window of this length fire together, at its start, and "
        "their exchanges overlap, e.g. 1m (default 0: exact); see the README for the trade",
    )
    run.add_argument(
        "--transport",
        choices=["http", "memory"],
        default="http",
        help="how devices reach the built-in server: loopback HTTP (default), or in process "
        "(the same SyncML bytes, no sockets: faster)",
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="split the fleet into N shards, each a process with its own clock, fake WNS and "
        "(built-in) reference server; against --server they keep in lockstep (default: one "
        "per core, at most one per 250 devices; with --cluster, one per CPU of the cluster)",
    )
    run.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="host the shards as Ray actors: ray://HOST:PORT joins a Ray cluster, ray-local "
        "starts one on this machine for the run (needs the extra: pip install 'dmemu[ray]')",
    )
    run.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="with --resolution: sessions in flight at once (default 64)",
    )

    conf = sub.add_parser(
        "conformance",
        help="grade an MDM server's push handling (checks A1-E4 of conformance.md)",
        description="Run the conformance scenario against the reference server or --server, "
        "print a verdict per check; exit 0 when every MUST passes (and every SHOULD under "
        "--strict), 1 otherwise, 2 for bad input, 130 when stopped by Ctrl-C or SIGTERM.",
    )
    _add_world_args(conf)
    conf.add_argument("--only", help="check ids or names, comma-separated (e.g. A3,C5)")
    conf.add_argument("--strict", action="store_true", help="SHOULD checks fail the run too")
    conf.add_argument(
        "--out", type=Path, help="write conformance.json, junit.xml, events.jsonl, report.html here"
    )
    conf.add_argument(
        "--push-limit", type=int, default=12, help="D4: pushes per device per hour (default 12)"
    )

    validate = sub.add_parser("validate", help="check scenario files; exit 2 listing every problem")
    validate.add_argument("scenarios", type=Path, nargs="+", help="scenario files (YAML)")
    validate.add_argument("--log-level", default="warning", help=argparse.SUPPRESS)

    report = sub.add_parser(
        "report",
        help="(re)build DIR/report.html from a run's or a conformance run's files",
        description="Build report.html, one self-contained page (charts, per-device lanes, "
        "verdicts and evidence; nothing fetched at view time), from events.jsonl and "
        "summary.json, or from conformance.json. `dmemu run --out` and `dmemu conformance "
        "--out` write it already.",
    )
    report.add_argument("dir", type=Path, help="the --out directory of a run or conformance run")
    report.add_argument("--log-level", default="warning", help=argparse.SUPPRESS)

    demo = sub.add_parser(
        "demo",
        help="a guided month of channel life against a loopback fake WNS",
        description="Token, push, 24 h token expiry, offline cache, 30-day channel expiry, "
        "on a virtual clock over real loopback HTTP.",
    )
    demo.add_argument(
        "--json",
        type=Path,
        default=Path("reports/demo.json"),
        help="machine-readable report (default reports/demo.json)",
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--log-level", default="warning")
    return parser


def _version() -> str:
    try:
        return importlib.metadata.version("dmemu")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown (not installed)"


def _fail(message: str) -> NoReturn:
    print(f"dmemu: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _wns_config(args: argparse.Namespace) -> WnsConfig:
    file = WnsFile()
    if args.config is not None:
        file = load_model(args.config, WnsFile)
    given = {
        "token_ttl_ms": args.token_ttl,
        "channel_ttl_ms": args.channel_ttl,
        "cache_period_ms": args.cache_period,
        "renewal": args.renewal,
        "seed": args.seed,
    }
    overrides: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    if args.rate_limit is not None:  # given on the command line ("off" parses to None)
        try:
            overrides["rate_limit"] = parse_rate(args.rate_limit)
        except ValueError as exc:
            _fail(f"--rate-limit: {exc}")
    try:
        return build_config(file, args.app, **overrides)
    except ValueError as exc:
        _fail(str(exc))


def _mdm_clock(args: argparse.Namespace) -> Clock:
    """``dmemu mdm`` follows the host's wall clock, as an ordinary server does (so under
    ``--server-cmd`` it lives on dmemu's emulated time); ``--rate`` or ``--start`` pace its
    own clock instead."""
    if args.rate == 1.0 and not args.start:
        return WallClock()
    return _clock(args)


def _clock(args: argparse.Namespace) -> Clock:
    start = None
    if args.start:
        try:
            start = parse_iso(args.start)
        except ValueError:
            _fail(f"--start {args.start!r} is not an ISO-8601 time")
    if args.clock == "virtual":
        return VirtualClock() if start is None else VirtualClock(start)
    return RealTimeClock(args.rate, start_ms=start)


async def _serve_wns(args: argparse.Namespace, config: WnsConfig) -> int:
    from emulator.serving import settled_heap, stop_on_signal
    from emulator.tls import server_context
    from emulator.wns.server import start_wns

    stop = stop_on_signal()  # first: a stop signal during start-up is honoured too
    clock = _clock(args)
    ssl_context, ca_file = None, None
    if args.tls:
        ssl_context, ca_file = server_context([args.host, *args.tls_host], args.tls_dir)
    try:
        wns = await start_wns(
            config,
            clock,
            host=args.host,
            port=args.port,
            ssl_context=ssl_context,
            public_url=args.public_url,
        )
    except OSError as exc:
        print(
            f"dmemu: error: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    lines = [
        f"dmemu wns listening on {wns.url}",
        f"  clock:          {clock.mode}"
        + (f" x{clock.rate:g}" if clock.mode == "real" else "")
        + f", now {iso(clock.now())}",
        f"  token endpoint: {wns.token_url}",
        f"  channel base:   {wns.service.registry.base_url}/?token=...",
        f"  control API:    {wns.url}/_emulator/",
    ]
    if ca_file is not None:
        lines.append(f"  CA file:        {ca_file.resolve()}  (trust it in your sender)")
    for app in config.apps:
        secret = f" secret {app.secret}" if app == DEMO_APP else ""
        lines.append(f"  app {app.client_id}  PFN {app.pfn}{secret}")
    if args.ready_file:
        args.ready_file.write_text(
            json.dumps(
                {"url": wns.url, "port": wns.port, "ca_file": str(ca_file) if ca_file else None}
            )
        )
    print("\n".join(lines), flush=True)
    with settled_heap():
        await stop.wait()
    await wns.stop()
    print("dmemu wns stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configure_logging(args.log_level)
    except ValueError as exc:
        _fail(str(exc))
    try:
        if args.command == "wns":
            return asyncio.run(_serve_wns(args, _wns_config(args)))
        if args.command == "validate":
            from emulator.scenario.commands import validate

            return validate(args.scenarios)
        if args.command == "conformance":
            from emulator.conformance.command import conformance

            return asyncio.run(conformance(args))
        if args.command == "run":
            from emulator.scenario import commands

            return asyncio.run(commands.run(args))
        if args.command == "mdm":
            from emulator.mdm.serve import mdm_config, serve_mdm

            return asyncio.run(serve_mdm(args, _mdm_clock(args), mdm_config(args)))
        if args.command == "report":
            from emulator.reports.html import ReportError, write_report

            try:
                print(f"wrote {write_report(args.dir)}")
            except ReportError as exc:
                print(f"dmemu: error: {exc}", file=sys.stderr)
                return EXIT_USAGE
            return 0
        if args.command == "demo":
            from emulator.demo import run_demo

            report = asyncio.run(run_demo(sys.stdout, seed=args.seed))
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(report.to_json())
            print(f"machine-readable report: {args.json}")
            return 0 if report.ok() else 1
    except ConfigError as exc:
        print_problems(exc, sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
