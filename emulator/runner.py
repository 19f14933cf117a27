"""``dmemu run``: build the world a scenario describes, run it on one clock, collect the log.

Owns: assembling the clock (virtual, or real time at ``--rate``), the fake WNS on loopback,
the server (the in-process reference server by default; ``--server URL`` with a hooks file
for an external one), the fleet with the aiohttp driver, enrollments spread over each group's
``enroll_over``, the timeline, the run in steps (:class:`ScenarioRun`: start, advance to
an instant, finish; the progress display is ``emulator/progress.py``), and the run's merged,
ordered event log (device events plus every request WNS served).
Must not: judge (``scenario/expect.py``) or format reports (``emulator/reports/``).

Time skips only when the world is quiet: no exchange of ours in flight, no request being
served (every route holds the clock busy), and with an external server also no inbound WNS
request for an idle window of real milliseconds, since that server may push on its own
schedule after answering a hook (architecture principle 2).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from emulator.clock import (
    DAY,
    Clock,
    IdleWindow,
    RealTimeClock,
    VirtualClock,
    wall_seconds,
)
from emulator.device.agent import Device
from emulator.device.driver import HttpTransport, ServerAuth
from emulator.device.fleet import Fleet
from emulator.device.recording import Exchange, RecordingTransport
from emulator.device.session import Transport
from emulator.enroll.discovery import DISCOVERY_PATH
from emulator.enroll.driver import Enroller
from emulator.enroll.identity import Identities
from emulator.enroll.keys import KeyPool
from emulator.events import EventLog
from emulator.events.order import InstantOrder, order_key, wns_event
from emulator.hooks import REFERENCE_HOOKS, HookClient, HookResult, HooksFile, load_hooks
from emulator.loopback import MDM_NAME, WNS_NAME, LoopbackNames
from emulator.mdm.app import OMADM_PATH
from emulator.mdm.config import MdmConfig
from emulator.mdm.inprocess import InProcessTransport
from emulator.mdm.server import ReferenceServer, RunningMdm, start_mdm
from emulator.progress import Progress
from emulator.scenario.actions import Timeline
from emulator.scenario.model import EnrollSpec, Scenario
from emulator.serving import settled_heap
from emulator.shards.split import shard_of
from emulator.sut.launch import ServerCommand, launch
from emulator.sut.process import GRACE_S, ServerProcess
from emulator.tls import server_context
from emulator.trap import TRAP_HOSTS, Trap, TrapRequest
from emulator.wns.config import DEMO_APP
from emulator.wns.models import RequestRecord
from emulator.wns.server import RunningWns, start_wns
from emulator.wns.service import WnsConfig

RECORD_LIMIT = 2_000_000
STREAMED_RECORDS = 1_000  # a run streaming its log keeps only the latest (control API)
#: the built-in server's Federated token when the scenario gives none (its enroll_token
#: hook hands it out)
FEDERATED_TOKEN = "dmemu-federated-token"  # noqa: S105 - a test token, not a secret  # WNS requests kept for the log (a 10,000-device month fits)


@dataclass(frozen=True, slots=True)
class RunOptions:
    server_url: str | None = None  # an external server's OMA-DM URL; None: reference server
    hooks: HooksFile | None = None  # how to ask the external server to act
    rate: float | None = None  # real time at this factor instead of the virtual clock
    seed: int | None = None  # overrides the scenario's seed
    idle_ms: int = 50  # external server: real ms without a WNS request before time skips
    progress: bool | None = None  # None: a bar on a terminal, else a line now and then
    progress_stream: TextIO | None = None
    progress_every_s: float = 10.0  # off a terminal: wall seconds between progress lines
    provider_id: str = "dmemu"  # the DMClient ProviderID devices are enrolled with
    wns_port: int = 0  # the fake WNS's port (an external server must be told where it is)
    #: the fake WNS serves HTTPS with the local CA kept here (ChannelURIs are https://, for a
    #: server that refuses others); None: plain HTTP
    wns_tls_dir: Path | None = None
    #: where the local CA is kept (the fake WNS's --tls, the built-in server's HTTPS when
    #: devices enroll)
    tls_dir: Path = Path(".dmemu/tls")
    #: told, once the world is up, what an external server must be configured with
    announce: Callable[[list[str]], None] | None = None
    #: start the server under test on the run's clock (--server-cmd); server_url may then
    #: hold {port}
    server_cmd: ServerCommand | None = None
    #: the virtual clock to run on (starting at the scenario's start), made beforehand by a
    #: caller that binds other things to it (the pytest plugin); None: a fresh one
    clock: VirtualClock | None = None
    device_auth: ServerAuth = field(default_factory=ServerAuth)  # devices' auth to the server
    record_exchanges: bool = False  # keep every SyncML exchange (conformance evidence)
    #: builds the in-process server (tests pass a variant with a known defect)
    server_factory: Callable[[MdmConfig, Clock, AbstractResolver], ReferenceServer] | None = None
    #: --enroll: every group enrolls (MS-MDE2); ``discovery`` None: the run's own server.
    #: A group's or the scenario's enroll block keeps its credentials and address.
    enroll: EnrollSpec | None = None
    #: --resolution: timers due in the same window of this many ms fire together and their
    #: exchanges overlap (0: exact, every instant on its own)
    resolution_ms: int = 0
    concurrency: int = 64  # --concurrency: sessions in flight at once within a window
    #: (index, count): this world holds only the devices of that shard (emulator.shards)
    shard: tuple[int, int] | None = None
    #: how devices reach the built-in server: "http" (loopback, as an external server is
    #: reached) or "memory" (in process, the same SyncML bytes, no sockets)
    transport: str = "http"
    #: stream the log: each record handed here as its instant ends, in the log's order,
    #: and none kept (the result's events are empty); None: the result holds the log
    sink: Callable[[dict[str, Any]], None] | None = None


@dataclass
class RunResult:
    scenario: Scenario
    seed: int
    server: str  # "reference" or the external URL
    start_ms: int
    end_ms: int
    events: list[dict[str, Any]]  # merged, ordered (see :func:`ordered_events`)
    devices: dict[str, Device]
    group_of: dict[str, str]  # device id -> group name
    wall_s: float = 0.0  # wall-clock seconds the run took (not part of the log)
    notes: list[str] = field(default_factory=list)  # what the run could not do (no hook ...)
    exchanges: list[Exchange] = field(default_factory=list)  # when record_exchanges
    wns_records: list[RequestRecord] = field(default_factory=list)  # every request WNS served
    trap_requests: list[TrapRequest] = field(default_factory=list)
    hook_results: list[HookResult] = field(default_factory=list)
    channel_owner: dict[str, str] = field(default_factory=dict)  # WNS channel id -> device
    complete: bool = True  # False: stopped early (Ctrl-C, SIGTERM); end_ms is where it stopped
    server_killed: bool = False  # the --server-cmd server ignored SIGTERM (exit 2)


class World:
    """Everything one run holds; closed by the exit stack of :func:`run_scenario`."""

    def __init__(
        self, scenario: Scenario, options: RunOptions, clock: VirtualClock | RealTimeClock
    ) -> None:
        self.scenario = scenario
        self.options = options
        self.clock = clock
        self.seed = scenario.seed if options.seed is None else options.seed
        #: a streamed log's records pass through here, each instant put in order
        self.order = InstantOrder(options.sink) if options.sink is not None else None
        self.events = EventLog(
            clock, keep=self.order is None, sink=self.order.add if self.order else None
        )
        self.wns: RunningWns
        self.mdm: RunningMdm | None = None
        self.fleet: Fleet
        self.hooks: HookClient | None = None
        self.server_url = ""
        self.group_of: dict[str, str] = {}
        self.notes: list[str] = []
        self.trap: Trap | None = None  # started when a group's channels are trapped
        self.wns_ca_file: str | None = None  # the CA a server must trust (--tls)
        self.sut: ServerProcess | None = None  # the server dmemu started (--server-cmd)
        self.recorder: RecordingTransport | None = None
        self.enroll_default: EnrollSpec | None = options.enroll or scenario.enroll
        self.discovery_url: str | None = None  # the run's own (--enroll URL or the server's)

    def server_settings(self) -> list[str]:
        """What the server under test must be configured with to take part in this run."""
        app, base = self.scenario.app, self.wns.url
        secret = (
            app.secret
            if app == DEMO_APP
            else "the scenario's wns.app.secret (not printed: secrets stay secret)"
        )
        lines = [
            "the server under test must be configured with:",
            f"  WNS token endpoint  {self.wns.token_url}",
            f"  WNS host to trust   {urlsplit(base).netloc}  (ChannelURIs {base}/?token=...)",
            f"  WNS app (SID)       {app.client_id}",
            f"  WNS client secret   {secret}",
            f"  PFN for devices     {app.pfn.lower()}  (in lower case [WP81BLOG])",
            f"  DMClient ProviderID {self.options.provider_id}",
        ]
        if self.wns_ca_file is not None:
            lines.append(f"  CA to trust for WNS {self.wns_ca_file}")
        return lines

    async def build(self, stack: AsyncExitStack) -> None:
        s, o = self.scenario, self.options
        wns_config = WnsConfig(
            apps=(s.app,),
            seed=self.seed,
            renewal=s.wns_renewal,
            rate_limit=s.wns_rate_limit,
            record_limit=RECORD_LIMIT if self.order is None else STREAMED_RECORDS,
        )
        external = o.server_url is not None
        # A stable ChannelURI host for the reference server (same log every run); an external
        # server has to reach WNS by its real address.
        ssl_context = None
        if o.wns_tls_dir is not None:
            ssl_context, ca_file = server_context(["127.0.0.1", WNS_NAME], o.wns_tls_dir)
            self.wns_ca_file = str(ca_file.resolve())
        scheme = "https" if ssl_context else "http"
        public = None if external else f"{scheme}://{WNS_NAME}"
        self.wns = await start_wns(
            wns_config, self.clock, port=o.wns_port, ssl_context=ssl_context, public_url=public
        )
        stack.push_async_callback(self.wns.stop)
        if self.order is not None:
            order, registry = self.order, self.wns.service.registry

            def streamed(record: RequestRecord) -> None:
                channel = registry.by_id.get(record.channel_id or "")
                order.add(wns_event(record, channel.device_id if channel else None))

            self.wns.service.on_record = streamed
        enrolling = self.enroll_default is not None or s.enrolls
        device_auth, mdm_tls = o.device_auth, None
        # the built-in server's stable name (devices log its address once they enroll)
        mdm_names = LoopbackNames({})
        if enrolling and not external:  # enrolled devices talk to it over mutual TLS
            mdm_tls, mdm_ca = server_context([MDM_NAME, "127.0.0.1", "localhost"], o.tls_dir)
            device_auth = replace(device_auth, ca_file=str(mdm_ca.resolve()))
        http_transport = HttpTransport(device_auth, timeout_s=30, resolver=mdm_names)
        stack.push_async_callback(http_transport.close)
        http = http_transport.client()  # probe and hooks: the devices' TLS settings too
        if external:
            assert o.server_url is not None
            if o.announce is not None:
                o.announce(self.server_settings())
            self.server_url = o.server_url
            if o.server_cmd is not None:
                self.server_url, self.sut = await launch(
                    o.server_cmd,
                    self.clock,
                    server_url=o.server_url,
                    wns_url=self.wns.url,
                    ca_file=self.wns_ca_file,
                    http=http,
                    stack=stack,
                )
            await _reachable(http, self.server_url)
            base = o.hooks.base_url if o.hooks and o.hooks.base_url else _origin(self.server_url)
            self.hooks = HookClient(o.hooks, base, http) if o.hooks else None
            if self.hooks is None:
                self.notes.append("no hooks file: timeline actions that ask the server are skipped")
            # anything the world did (a timer, a request WNS served) restarts the window
            window = IdleWindow(
                o.idle_ms, lambda: self.wns.service.requests_served + self.clock.fired
            )
            self.clock.add_quiet_check(window.settled)
        else:
            port = 443 if ssl_context else 80
            names = LoopbackNames({(WNS_NAME, port): ("127.0.0.1", self.wns.port)})
            config = MdmConfig(
                app=s.app,
                provider_id=o.provider_id,
                token_url=self.wns.token_url,
                trusted_hosts=(WNS_NAME,),
                wns_ca_file=self.wns_ca_file,
                push_ttl_s=s.push_ttl_s,
                pushes_per_hour=s.push_rate,
                ca_key_label=f"reference-ca-{self.seed}",  # same certificates every run
                **self._builtin_enrollment(),
            )
            factory = o.server_factory or _reference_server
            server = factory(config, self.clock, names)
            # every device presents the certificate it enrolled for, unless some groups
            # are assumed enrolled (they have none)
            self.mdm = await start_mdm(
                server,
                ssl_context=mdm_tls,
                require_client_cert=o.transport == "http"
                and (all(s.enroll_of(g) for g in s.groups) or bool(o.enroll)),
            )
            stack.push_async_callback(self.mdm.stop)
            self.server_url = self.mdm.omadm_url
            if mdm_tls is not None:
                mdm_names.names[(MDM_NAME, 443)] = ("127.0.0.1", self.mdm.port)
                self.server_url = f"https://{MDM_NAME}{OMADM_PATH}"
            self.hooks = HookClient(load_hooks(REFERENCE_HOOKS), self.mdm.url, http)
        if any(g.trap_channel for g in s.groups):
            self.trap = Trap(self.clock)
            trap_tls = None
            if o.wns_tls_dir is not None:  # as WNS does: a server refusing http:// still sees it
                trap_tls, _ = server_context(list(TRAP_HOSTS), o.wns_tls_dir)
            await self.trap.start(ssl_context=trap_tls)
            stack.push_async_callback(self.trap.stop)
        transport: Transport = http_transport
        if o.transport == "memory" and self.mdm is not None:
            transport = InProcessTransport(self.mdm.server)
        if o.record_exchanges:
            self.recorder = RecordingTransport(self.clock, transport)
            transport = self.recorder
        enroller, identities = None, None
        if enrolling:
            if o.enroll is not None and o.enroll.discovery:
                self.discovery_url = o.enroll.discovery
            else:
                self.discovery_url = _origin(self.server_url) + DISCOVERY_PATH
            pool = KeyPool(s.key_pool)
            pool.prepare()  # derived once per machine, then read from the cache
            hooks = self.hooks
            enroller = Enroller(
                http,
                pool,
                self.seed,
                token_source=hooks.enroll_token if hooks is not None else None,
                ca_file=device_auth.ca_file,
            )
            identities = Identities(device_auth.ca_file)
            stack.callback(identities.close)
        self.fleet = Fleet(
            self.clock,
            self.wns.service,
            transport,
            seed=self.seed,
            events=self.events,
            enroller=enroller,
            identities=identities,
            concurrency=o.concurrency,
        )

    def _builtin_enrollment(self) -> dict[str, Any]:
        """The built-in server's AuthPolicy and secrets: those of the run's enroll settings
        (the first group's own block when the run has none)."""
        specs = [self.scenario.enroll_of(g) for g in self.scenario.groups]
        spec = self.enroll_default or next((e for e in specs if e is not None), None)
        if spec is None:
            return {}
        if spec.auth == "certificate":
            raise UnsupportedSetup(
                "the built-in server enrolls devices with on-premise or federated "
                "credentials, not certificate (use --server for a server that takes them)"
            )
        if spec.auth == "federated":
            return {"enroll_policy": "Federated", "enroll_token": spec.token or FEDERATED_TOKEN}
        return {"enroll_policy": "OnPremise", "enroll_password": spec.password or None}

    async def register_devices(self) -> list[HookResult]:
        """Tell a server that needs it about every device before any enrolls (the optional
        ``register_device`` hook), one after another."""
        if self.hooks is None or not self.hooks.has("register_device"):
            return []
        results = []
        for device_id in self.fleet.devices:
            results.append(await self.hooks.call("register_device", device_id=device_id))
        return results

    def populate(self) -> None:
        """Add every device and schedule its enrollment (spread over ``enroll_over``)."""
        start = self.clock.now()
        shard = self.options.shard
        for spec in self.scenario.groups:
            enroll = self.scenario.enroll_of(spec) or self.options.enroll
            group = replace(
                spec.group,
                server_url=self.server_url,
                provider_id=self.options.provider_id,
                enroll=enroll.settings(self.discovery_url) if enroll is not None else None,
            )
            for index, device_id in enumerate(spec.device_ids()):
                if shard is not None and shard_of(device_id, shard[1]) != shard[0]:
                    continue  # another shard's: enrollment offsets stay the whole group's
                device = self.fleet.add(device_id, group)
                if spec.pfn_preset:
                    device.values[group.schema.pfn] = self.scenario.app.pfn
                if spec.trap_channel and self.trap is not None:
                    self.wns.service.base_for[device_id] = self.trap.url
                self.group_of[device_id] = spec.name
                self.clock.call_at(start + spec.enroll_offset(index), self.fleet.enroll, device)


class ServerUnreachable(Exception):
    """``--server`` does not answer at all (nothing was run)."""


class UnsupportedSetup(Exception):
    """The run asks for something the built-in world cannot be (nothing was run)."""


async def _reachable(http: aiohttp.ClientSession, url: str) -> None:
    """Fail fast when the external server is not there: any HTTP answer will do."""
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            await resp.read()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ServerUnreachable(
            f"cannot reach --server {url}: {type(exc).__name__}: {exc}"
        ) from None


def _reference_server(
    config: MdmConfig, clock: Clock, resolver: AbstractResolver
) -> ReferenceServer:
    return ReferenceServer(config, clock, resolver=resolver)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _hook_failures(results: list[HookResult]) -> list[str]:
    """One note for hook calls the server did not accept (the first one in full)."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return []
    first = failed[0]
    answer = first.error or f"HTTP {first.status}: {first.body[:200]!r}"
    return [
        f"{len(failed)} of {len(results)} hook calls failed; first: {first.name} "
        f"{first.method} {first.url} -> {answer}"
    ]


def ordered_events(world: World, channel_owner: dict[str, str]) -> list[dict[str, Any]]:
    """Device events and WNS requests in one list, in the log's order (events/order.py)."""
    merged: list[dict[str, Any]] = list(world.events.records)
    for record in world.wns.service.records:
        merged.append(wns_event(record, channel_owner.get(record.channel_id or "")))
    merged.sort(key=order_key)
    return merged


class ScenarioRun:
    """A run in steps: :meth:`start`, :meth:`advance` to an instant (as often as wanted),
    :meth:`finish`. :func:`run_scenario` advances once, to the end; a shard is advanced
    window by window when shards keep in lockstep (:mod:`emulator.shards`)."""

    def __init__(self, scenario: Scenario, options: RunOptions = RunOptions()) -> None:
        self.started = wall_seconds()
        self.scenario, self.options = scenario, options
        clock: VirtualClock | RealTimeClock
        if options.clock is not None:
            if options.rate is not None or options.clock.now() != scenario.start_ms:
                raise ValueError(
                    "RunOptions.clock: a virtual clock at the scenario's start, no rate"
                )
            clock = options.clock
        elif options.rate is None:
            clock = VirtualClock(scenario.start_ms, resolution_ms=options.resolution_ms)
        else:
            clock = RealTimeClock(options.rate, start_ms=scenario.start_ms)
        self.clock = clock
        self.world = World(scenario, options, clock)
        self.end = scenario.start_ms + scenario.duration_ms
        self.complete = True
        self.registrations: list[HookResult] = []
        self._stack = AsyncExitStack()
        self._timeline: Timeline | None = None
        self._progress: Progress | None = None

    async def start(self) -> None:
        """Build the world, register the devices and schedule the timeline (raises OSError
        if a port cannot be opened; the world is closed again then)."""
        await self._stack.__aenter__()
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start(self) -> None:
        world, options = self.world, self.options
        stream = options.progress_stream or sys.stderr
        if options.progress is None:
            mode: str | None = "bar" if stream.isatty() else "lines"
        else:
            mode = "bar" if options.progress else None
        await world.build(self._stack)
        world.populate()
        self._timeline = Timeline(world)
        self._progress = Progress(world, mode, stream, options.progress_every_s)
        progress = self._progress
        self._stack.callback(lambda: progress.close(self.complete))
        try:
            self.registrations = await world.register_devices()
        except asyncio.CancelledError:  # Ctrl-C while the server registers the devices
            task = asyncio.current_task()
            if task is None or task.uncancel() > 0:
                raise
            self.stop()
            return
        self._timeline.schedule()
        if mode is not None:  # no timers of its own otherwise (each firing is a round)
            self._progress.tick()

    async def advance(self, until: int) -> int | None:
        """Run up to ``until`` (at most the scenario's end); the next instant something is
        due after it, None when nothing is. Cancelled (Ctrl-C, SIGTERM), the run stops where
        it is and :meth:`finish` still gives what it has."""
        clock, until = self.clock, min(until, self.end)
        if not self.complete:
            return None
        try:
            with settled_heap():  # a big fleet is built once, then runs for many rounds
                if isinstance(clock, VirtualClock):
                    await clock.run_async(until)
                else:
                    await clock.sleep(until - clock.now())
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.uncancel() > 0:
                raise  # cancelled from elsewhere too: not ours to swallow
            self.stop()
            return None
        if not isinstance(clock, VirtualClock) or clock.now() >= self.end:
            return None
        return clock.next_due()

    def figures(self) -> dict[str, int]:
        """Where the run is: its virtual day and the progress figures (devices, sessions,
        pushes)."""
        progress = self._progress
        if progress is None:
            return {"day": 0, "days": max(1, self.scenario.duration_ms // DAY)}
        return {"day": progress.day(), "days": progress.days, **progress.figures()}

    def stop(self) -> None:
        """The run ends here, incomplete (its log ends at the clock's instant)."""
        self.complete = False
        self.end = min(self.end, self.clock.now())

    async def finish(self) -> RunResult:
        """Stop the world and return the result (the log, or with a sink what is left of it)."""
        world = self.world
        assert self._timeline is not None, "finish() after start()"
        if self._progress is not None:
            self._progress.close(self.complete)
        if world.sut is not None:  # stopped here (not only by the stack) to say how it went
            await world.sut.stop()
            if world.sut.killed:
                world.notes.append(f"the server ignored SIGTERM and was killed after {GRACE_S:g} s")
        channel_owner = {c.id: c.device_id for c in world.wns.service.registry.by_id.values()}
        if world.order is not None:
            world.order.flush()
            # the log ends here: a timer of a real-time clock that fires while the world is
            # torn down must not write into a sink its owner is about to close
            world.events.sink = None
            world.wns.service.on_record = None
            events: list[dict[str, Any]] = []
        else:
            events = ordered_events(world, channel_owner)
        hook_results = self.registrations + self._timeline.hook_results
        result = RunResult(
            scenario=self.scenario,
            seed=world.seed,
            server="reference" if world.mdm is not None else world.server_url,
            start_ms=self.scenario.start_ms,
            end_ms=self.end,  # a real-time clock overshoots by however long the last wake took
            events=events,
            devices=dict(world.fleet.devices),
            group_of=world.group_of,
            wall_s=wall_seconds() - self.started,
            notes=world.notes + self._timeline.notes + _hook_failures(hook_results),
            exchanges=world.recorder.exchanges if world.recorder else [],
            wns_records=list(world.wns.service.records),
            trap_requests=list(world.trap.requests) if world.trap else [],
            hook_results=hook_results,
            channel_owner=channel_owner,
            complete=self.complete,
            server_killed=world.sut is not None and world.sut.killed,
        )
        await self.close()
        return result

    async def close(self) -> None:
        await self._stack.aclose()


async def run_scenario(scenario: Scenario, options: RunOptions = RunOptions()) -> RunResult:
    """Run ``scenario`` to its end and return the merged log (raises OSError if a port
    cannot be opened)."""
    run = ScenarioRun(scenario, options)
    await run.start()
    try:
        await run.advance(run.end)
        return await run.finish()
    finally:
        await run.close()
