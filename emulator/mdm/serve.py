"""``dmemu mdm``: the reference server as its own process, on real time.

Owns: turning the parsed command line into an :class:`~emulator.mdm.config.MdmConfig` (user
mistakes become :class:`~emulator.yamlconf.ConfigError`, exit 2), serving until SIGINT or
SIGTERM, and the start-up banner and ready file.
Must not: hold protocol logic.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import Any
from urllib.parse import urlsplit

from emulator.clock import Clock, iso
from emulator.enroll.discovery import DISCOVERY_PATH
from emulator.mdm.config import MdmConfig
from emulator.mdm.server import ReferenceServer, start_mdm
from emulator.mdm.store import StoreError
from emulator.serving import settled_heap, stop_on_signal
from emulator.tls import server_context
from emulator.wns.config import DEMO_APP
from emulator.yamlconf import ConfigError

MAX_DEVICE_LIST_BYTES = 16 * 1024 * 1024


def _allowed(args: argparse.Namespace) -> frozenset[str] | None:
    if args.devices is None:
        return None
    name = str(args.devices)
    try:
        raw = args.devices.read_bytes()
    except OSError as exc:
        raise ConfigError(name, None, None, f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_DEVICE_LIST_BYTES:
        raise ConfigError(name, None, None, f"larger than {MAX_DEVICE_LIST_BYTES} bytes")
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(name, None, None, f"not UTF-8 text ({exc.reason})") from None
    ids = set()
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if any(c.isspace() for c in text):
            raise ConfigError(name, number, None, f"device id {text!r} contains spaces")
        ids.add(text)
    return frozenset(ids)


def mdm_config(args: argparse.Namespace) -> MdmConfig:
    """The server's configuration from ``dmemu mdm``'s arguments."""
    trusted = tuple(args.trusted_host)
    token_url = args.token_url
    if args.wns_url:
        parts = urlsplit(args.wns_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("--wns-url", None, None, f"{args.wns_url!r} is not an http(s) URL")
        token_url = token_url or f"{args.wns_url.rstrip('/')}/accesstoken.srf"
        trusted = trusted or (parts.netloc,)
    if args.push_rate < 1:
        raise ConfigError("--push-rate", None, None, "must be at least 1 push per hour")
    optional: dict[str, Any] = {}
    if token_url:
        optional["token_url"] = token_url
    if trusted:
        optional["trusted_hosts"] = trusted
    return MdmConfig(
        app=args.app or DEMO_APP,
        provider_id=args.provider_id,
        push_ttl_s=None if args.push_ttl is None else max(1, args.push_ttl // 1000),
        pushes_per_hour=args.push_rate,
        allowed_devices=_allowed(args),
        device_token=args.device_token,
        admin_token=args.admin_token,
        wns_ca_file=args.wns_ca,
        latency_ms=args.latency,
        enroll_policy=args.enroll_policy,
        enroll_password=args.enroll_password,
        enroll_token=args.enroll_token
        or (secrets.token_urlsafe(24) if args.enroll_policy == "Federated" else None),
        **optional,
    )


def _enrollment_words(config: MdmConfig) -> str:
    if config.enroll_policy == "Federated":
        return "Federated; the token: GET /admin/enrollment/token"
    password = "the --enroll-password" if config.enroll_password else "any password"
    return f"OnPremise, any user with {password}"


def _clock_words(clock: Clock) -> str:
    if clock.mode == "wall":
        return "the host's wall clock (under dmemu --server-cmd: dmemu's)"
    return f"real x{clock.rate:g}"


async def serve_mdm(args: argparse.Namespace, clock: Clock, config: MdmConfig) -> int:
    stop = stop_on_signal()  # first: a stop signal during start-up is honoured too
    try:
        server = ReferenceServer(config, clock, db=args.db)
    except StoreError as exc:
        raise ConfigError("--db", None, None, str(exc)) from None
    ssl_context, ca_file = None, None
    if args.tls:
        ssl_context, ca_file = server_context([args.host, *args.tls_host], args.tls_dir)
    try:
        running = await start_mdm(server, host=args.host, port=args.port, ssl_context=ssl_context)
    except OSError as exc:
        await server.close()
        print(
            f"dmemu: error: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2  # as every command: a setting the user can change (cli.EXIT_USAGE)
    lines = [
        f"dmemu mdm listening on {running.url}",
        f"  clock:       {_clock_words(clock)}, now {iso(clock.now())}",
        f"  OMA-DM:      {running.omadm_url}   (ProviderID {config.provider_id})",
        f"  enrollment:  {running.url}{DISCOVERY_PATH}   ({_enrollment_words(config)})",
        f"  admin API:   {running.url}/admin/devices",
        f"  WNS:         token {config.token_url}; trusted {', '.join(config.trusted_hosts)}",
        f"  app:         {config.app.client_id}  PFN {config.app.pfn}",
        f"  database:    {args.db}",
    ]
    if config.latency_ms:
        lines.append(f"  latency:     {config.latency_ms} ms added to every response")
    if ca_file is not None:
        lines.append(f"  CA file:     {ca_file.resolve()}  (devices: --server-ca)")
        lines.append("  OMA-DM over TLS serves only the client certificate issued at enrollment")
    if args.ready_file:
        ready = {"url": running.url, "omadm_url": running.omadm_url, "port": running.port}
        ready["ca_file"] = str(ca_file.resolve()) if ca_file else None
        args.ready_file.write_text(json.dumps(ready))
    print("\n".join(lines), flush=True)
    with settled_heap():
        await stop.wait()
    await running.stop()
    print("dmemu mdm stopped", flush=True)
    return 0
