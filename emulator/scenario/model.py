"""A scenario once loaded: the fleet as device groups, the timeline, the expectations.

Owns: the plain records the loader builds and the runner reads, with a comment per field,
and the device ids a group expands to.
Must not: read files (``loader.py``) or run anything (``emulator/runner.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulator.device.agent import DeviceGroup
from emulator.enroll.discovery import discovery_url
from emulator.enroll.flow import EnrollSettings
from emulator.enroll.keys import DEFAULT_POOL_SIZE
from emulator.wns.channels import DEFAULT_RATE_LIMIT
from emulator.wns.models import App

#: the scenario's words for the AuthPolicies [MDE2 3.1]
AUTH_POLICIES = {"on-premise": "OnPremise", "federated": "Federated", "certificate": "Certificate"}


DEFAULT_EMAIL = "user@dmemu.test"


@dataclass(frozen=True, slots=True)
class EnrollSpec:
    """An ``enroll:`` block (the run's, or a group's own): secrets already read from the
    environment, never printed."""

    discovery: str | None = None  # None: derived from email, or the run's server (--enroll)
    email: str = DEFAULT_EMAIL
    auth: str = "on-premise"  # a key of AUTH_POLICIES
    username: str = ""
    password: str = field(default="", repr=False)
    token: str | None = field(default=None, repr=False)
    certificate: tuple[str, str] | None = None  # (cert file, key file)

    def settings(self, run_discovery: str | None) -> EnrollSettings:
        """Where and how the devices enroll: this block's discovery URL, else the run's
        (``--enroll URL``, or the run's own server), else the one the e-mail gives."""
        url = self.discovery or run_discovery or discovery_url(self.email)
        return EnrollSettings(
            discovery_url=url,
            email=self.email,
            policy=AUTH_POLICIES[self.auth],
            username=self.username,
            password=self.password,
            token=self.token,
            client_cert=self.certificate,
        )


@dataclass(frozen=True, slots=True)
class GroupSpec:
    name: str  # the group's name; device ids are "<name>-0000", "<name>-0001" ...
    count: int
    group: DeviceGroup  # what its devices share (OS profile, power, failure modes ...)
    enroll_over_ms: int  # enrollments spread evenly over this span from the start
    pfn_preset: bool = False  # enrolls with the PFN already set (conformance C2)
    trap_channel: bool = False  # ChannelURIs on the trap host (conformance B5)
    enroll: EnrollSpec | None = None  # its own enroll block, else the run's (Scenario.enroll)

    def device_ids(self) -> list[str]:
        width = max(4, len(str(self.count - 1)))
        return [f"{self.name}-{i:0{width}d}" for i in range(self.count)]

    def enroll_offset(self, index: int) -> int:
        return self.enroll_over_ms * index // self.count


@dataclass(frozen=True, slots=True)
class Target:
    group: str | None = None  # every device of a group ...
    device: str | None = None  # ... or one device
    fraction: float | None = None  # the first fraction of the group's devices (deterministic)

    def describe(self) -> str:
        if self.device is not None:
            return self.device
        share = f"{self.fraction:.0%} of " if self.fraction is not None else ""
        return f"{share}group {self.group}"


@dataclass(frozen=True, slots=True)
class Event:
    at_ms: int  # offset from the start
    action: str  # push | queue_command | battery_saver | offline | network | ...
    target: Target | None
    params: dict[str, Any]  # the action's own fields (for, on, verb, status ...)
    line: int  # where it is in the file (reports point at it)


@dataclass(frozen=True, slots=True)
class Expectation:
    kind: str  # push_starts_session | no_push_after_gone | newest_channel_reported | count
    name: str  # shown in reports and as the JUnit test case name
    line: int
    group: str | None = None  # only this group's devices
    within_ms: int | None = None  # push_starts_session: the bound
    event: str | None = None  # count: the event name
    where: dict[str, Any] = field(default_factory=dict)  # count: field filters
    min: int | None = None
    max: int | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    path: str
    name: str
    description: str
    seed: int
    start_ms: int
    duration_ms: int
    app: App  # the WNS app the server pushes as, and the PFN devices are given
    groups: tuple[GroupSpec, ...]
    timeline: tuple[Event, ...]  # ordered by time, then by position in the file
    expectations: tuple[Expectation, ...]
    wns_renewal: str = "new"
    wns_rate_limit: tuple[int, int] | None = DEFAULT_RATE_LIMIT  # per channel; None: unlimited
    push_rate: int = 12
    push_ttl_s: int | None = None
    enroll: EnrollSpec | None = None  # the top-level enroll block: every group's default
    key_pool: int = DEFAULT_POOL_SIZE  # RSA keys enrolling devices draw from

    def enroll_of(self, group: GroupSpec) -> EnrollSpec | None:
        return group.enroll or self.enroll

    @property
    def enrolls(self) -> bool:
        return any(self.enroll_of(g) is not None for g in self.groups)

    @property
    def device_count(self) -> int:
        return sum(g.count for g in self.groups)

    def group(self, name: str) -> GroupSpec | None:
        return next((g for g in self.groups if g.name == name), None)
