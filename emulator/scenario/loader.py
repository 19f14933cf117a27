"""Reading a scenario file: YAML, the published JSON Schema, then the checks a schema cannot
express, every mistake reported as ``file:line:column: field: message``, all at once.

Owns: schema validation (``scenario.schema.json``, Draft 2020-12, through jsonschema),
mapping each error's path back to its place in the file, the cross-references (a timeline
target names an existing group or device, an event falls within the run), time expressions
(``day 16``, ``day 2 09:00``, ``+36h``, ``+2d 09:00``), sizes (``500MB``), and building the
:class:`~emulator.scenario.model.Scenario`.
Must not: run anything or touch the network.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from emulator.clock import DAY, DEFAULT_EPOCH_MS, HOUR, MINUTE, parse_iso
from emulator.device.agent import DeviceGroup
from emulator.device.power import MB, NETWORK_PATTERNS, POWER_PROFILES, PowerConfig
from emulator.device.profiles import PROFILES
from emulator.enroll.keys import DEFAULT_POOL_SIZE
from emulator.events.catalogue import unknown_event, unknown_field
from emulator.scenario.model import (
    DEFAULT_EMAIL,
    EnrollSpec,
    Event,
    Expectation,
    GroupSpec,
    Scenario,
    Target,
)
from emulator.wns.channels import DEFAULT_RATE_LIMIT
from emulator.wns.config import DEMO_APP, normalize_sid, parse_rate
from emulator.wns.models import App
from emulator.yamlconf import (
    ConfigError,
    ConfigErrors,
    locate,
    not_a_mapping,
    parse_duration,
    read_yaml,
)

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")
DEFAULT_ENROLL_OVER_MS = HOUR
_AT = re.compile(
    r"^\s*(?:day\s+(?P<day>\d+)|\+\s*(?P<rel>\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)))"
    r"(?:\s+(?P<hh>\d{1,2}):(?P<mm>\d{2}))?\s*$"
)
_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?\s*$")
_BYTE_UNITS = {None: 1, "B": 1, "KB": 1_000, "MB": MB, "GB": 1_000 * MB}


#: the longest run a scenario may ask for: ten years of virtual time
MAX_DURATION_MS = 3650 * DAY


class ScenarioError(ConfigErrors):
    """Every mistake found in one scenario file, sorted by line (exit code 2, nothing run)."""


@cache
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


def parse_at(text: str) -> int:
    """``day N [HH:MM]`` or ``+DURATION [HH:MM]`` -> ms after the start."""
    match = _AT.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a time (use 'day 16', 'day 2 09:00' or '+36h')")
    base = (
        int(match["day"]) * 24 * HOUR if match["day"] is not None else parse_duration(match["rel"])
    )
    if match["hh"] is not None:
        hours, minutes = int(match["hh"]), int(match["mm"])
        if hours > 23:
            raise ValueError(f"{text!r}: {hours}:{minutes:02d} is not a time of day")
        base += hours * HOUR + minutes * MINUTE
    return base


def parse_bytes(value: str | int) -> int:
    if isinstance(value, int):
        return value
    match = _BYTES.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a size (use e.g. 500MB)")
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2)])


def load_scenario(path: Path) -> Scenario:
    """Read and check ``path`` in one pass; raise :class:`ScenarioError` listing every
    problem (duplicate keys, the schema's, and the meaning of what the schema let through)."""
    name = str(path)
    try:
        data, node, problems = read_yaml(path)
    except ConfigError as exc:
        raise ScenarioError([exc]) from None
    top = not_a_mapping(name, data, node, "a scenario (name, duration, fleet, ...)")
    if top is not None:
        raise ScenarioError([*problems, top])
    schema_errors = _schema_errors(data)
    problems += _schema_problems(name, schema_errors, node)
    checker = _Checker(name, node, {tuple(e.absolute_path) for e in schema_errors})
    scenario = checker.build(data)
    problems += checker.problems
    if problems or scenario is None:
        raise ScenarioError(problems)
    return scenario


# -- schema errors --------------------------------------------------------------------------
def _schema_errors(data: Any) -> list[ValidationError]:
    validator = Draft202012Validator(schema())
    return sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.path])


def _schema_problems(
    name: str, errors: list[ValidationError], node: yaml.Node | None
) -> list[ConfigError]:
    problems: list[ConfigError] = []
    seen: set[tuple[str, str]] = set()
    for error in errors:
        path = tuple(error.absolute_path)
        message = _message(error)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(
                error.schema.get("properties", {}) if isinstance(error.schema, dict) else ()
            )
            for key in sorted(k for k in error.instance if k not in known):
                problems.append(_problem(name, node, (*path, key), f"unknown key {key!r}"))
            continue
        key = (".".join(str(p) for p in path), message)
        if key in seen:
            continue
        seen.add(key)
        problems.append(_problem(name, node, path, message))
    return problems


def _message(error: ValidationError) -> str:
    """jsonschema's message, made specific where its own is vague."""
    schema_part = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "oneOf" and "description" in schema_part:
        return f"{error.instance!r} is not valid: expected {schema_part['description']}"
    if error.validator == "enum":
        options = ", ".join(repr(o) for o in schema_part.get("enum", []))
        return f"{error.instance!r} is not one of {options}"
    if error.validator == "pattern" and "description" in schema_part:
        return f"{error.instance!r} is not valid: expected {schema_part['description']}"
    return error.message


def _problem(
    name: str, node: yaml.Node | None, path: tuple[int | str, ...], message: str
) -> ConfigError:
    where = locate(node, path)
    return ConfigError(
        name,
        where[0] if where else None,
        ".".join(str(p) for p in path) or None,
        message,
        column=where[1] if where else None,
    )


# -- after the schema: meaning ------------------------------------------------------------
class _Checker:
    """The checks a schema cannot express. Parts the schema already refused (``broken``:
    the paths of its errors) are skipped, so every problem is said once, in one pass."""

    def __init__(
        self, name: str, node: yaml.Node | None, broken: set[tuple[int | str, ...]]
    ) -> None:
        self.name = name
        self.node = node
        self.broken = broken
        self.problems: list[ConfigError] = []

    def fail(self, path: tuple[int | str, ...], message: str) -> None:
        self.problems.append(_problem(self.name, self.node, path, message))

    def sound(self, path: tuple[int | str, ...]) -> bool:
        """The schema found nothing wrong at or under ``path``."""
        return not any(p[: len(path)] == path for p in self.broken)

    def line(self, path: tuple[int | str, ...]) -> int:
        where = locate(self.node, path)
        return where[0] if where else 0

    def _list(self, data: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
        """The entries of a top-level list the schema found sound, with their indexes."""
        raw = data.get(key)
        if not isinstance(raw, list):
            return []
        return [(i, item) for i, item in enumerate(raw) if self.sound((key, i))]

    def build(self, data: dict[str, Any]) -> Scenario | None:
        start = DEFAULT_EPOCH_MS
        if "start" in data and self.sound(("start",)):
            try:
                start = parse_iso(data["start"])
            except ValueError:
                self.fail(("start",), f"{data['start']!r} is not an ISO-8601 time")
        duration: int | None = None
        if "duration" in data and self.sound(("duration",)):
            duration = parse_duration(data["duration"])
            if duration <= 0:
                self.fail(("duration",), "the run must last longer than zero")
            elif duration > MAX_DURATION_MS:
                self.fail(
                    ("duration",),
                    f"{data['duration']!r} is longer than {MAX_DURATION_MS // DAY}d, the "
                    "longest run dmemu takes",
                )
        wns = data.get("wns", {}) if self.sound(("wns",)) else {}
        app = DEMO_APP
        if "app" in wns:
            spec = wns["app"]
            app = App(normalize_sid(spec["sid"]), spec["secret"], spec["pfn"])
        rate_limit: tuple[int, int] | None = DEFAULT_RATE_LIMIT
        if "rate_limit" in wns:
            try:
                rate_limit = parse_rate(wns["rate_limit"])
            except ValueError as exc:
                self.fail(("wns", "rate_limit"), str(exc))
        enroll = None
        if "enroll" in data and self.sound(("enroll",)):
            enroll = self._enroll(("enroll",), data["enroll"])
        groups = self._groups(self._list(data, "fleet"))
        names = {g.name for g in groups}
        ids: set[str] | None = {d for g in groups for d in g.device_ids()}
        fleet = data.get("fleet")
        if isinstance(fleet, list) and len(groups) < len(fleet):
            # a group the schema refused still has its name; its devices are unknown
            names |= {g["group"] for g in fleet if isinstance(g, dict) and "group" in g}
            ids = None
        timeline = [
            self._event(i, raw, names, ids, duration) for i, raw in self._list(data, "timeline")
        ]
        timeline.sort(key=lambda e: e.at_ms)  # stable: same time keeps file order
        expectations = [self._expectation(i, raw, names) for i, raw in self._list(data, "expect")]
        if self.broken or self.problems or duration is None:
            return None
        server = data.get("server", {})
        ttl = server.get("push_ttl")
        run_enroll = data.get("enroll") or {}
        return Scenario(
            path=self.name,
            name=data["name"],
            description=data.get("description", ""),
            seed=int(data.get("seed", 0)),
            start_ms=start,
            duration_ms=duration,
            app=app,
            groups=tuple(groups),
            timeline=tuple(timeline),
            expectations=tuple(expectations),
            wns_renewal=wns.get("renewal", "new"),
            wns_rate_limit=rate_limit,
            push_rate=int(server.get("push_rate", 12)),
            push_ttl_s=None if ttl is None else max(1, parse_duration(ttl) // 1000),
            enroll=enroll,
            key_pool=int(run_enroll.get("key_pool", DEFAULT_POOL_SIZE)),
        )

    def _groups(self, raw_groups: list[tuple[int, dict[str, Any]]]) -> list[GroupSpec]:
        out: list[GroupSpec] = []
        seen: set[str] = set()
        for i, raw in raw_groups:
            name = raw["group"]
            if name in seen:
                self.fail(("fleet", i, "group"), f"group {name!r} is defined twice")
            seen.add(name)
            power = PowerConfig(
                profile=POWER_PROFILES[raw.get("power", "plugged")],
                network=NETWORK_PATTERNS[raw.get("network", "always")],
                data_allotment=parse_bytes(raw["data_sense"]) if "data_sense" in raw else None,
                background_per_day=parse_bytes(raw.get("background_data", 0)),
            )
            if "battery_saver_below" in raw:
                power = replace(power, saver_threshold=float(raw["battery_saver_below"]))
            profile = PROFILES[raw.get("os", "win10-22h2")]
            exception = raw.get("battery_saver_exception", "blocked")
            if exception == "any_app" and not profile.saver_any_app:
                self.fail(
                    ("fleet", i, "battery_saver_exception"),
                    f"'any_app' is a setting of Windows 10/11 desktop editions [WNSOV], not "
                    f"of {profile.name}; use always_allowed",
                )
            power = replace(power, saver_exception=exception)
            failure = raw.get("renewal_failure", {"mode": "none", "rate": 0.0})
            if failure["mode"] == "pfn_hang" and not profile.may_hang_on_pfn:
                self.fail(
                    ("fleet", i, "renewal_failure", "mode"),
                    f"pfn_hang is a failure of Windows 8, 8.1 and 10 1511 [PUSH], not of "
                    f"{profile.name}",
                )
            hardware = raw.get("hardware", {})
            group = DeviceGroup(
                name=name,
                profile=profile,
                power=power,
                manufacturer=hardware.get("manufacturer", "Contoso"),
                model=hardware.get("model", "Surface Emulator 1"),
                lang=hardware.get("lang", "en-US"),
                sync_app_version=raw.get("sync_app_version"),
                renewal_failure=failure["mode"],
                renewal_failure_rate=float(failure["rate"]),
            )
            enroll_over = parse_duration(raw.get("enroll_over", DEFAULT_ENROLL_OVER_MS // 1000))
            enroll = None
            if "enroll" in raw:
                if "key_pool" in raw["enroll"]:
                    self.fail(
                        ("fleet", i, "enroll", "key_pool"),
                        "the key pool is the run's: set key_pool in the top-level enroll block",
                    )
                enroll = self._enroll(("fleet", i, "enroll"), raw["enroll"])
            out.append(
                GroupSpec(
                    name,
                    int(raw["count"]),
                    group,
                    enroll_over,
                    pfn_preset=bool(raw.get("pfn_preset", False)),
                    trap_channel=bool(raw.get("trap_channel", False)),
                    enroll=enroll,
                )
            )
        return out

    def _enroll(self, path: tuple[int | str, ...], raw: dict[str, Any]) -> EnrollSpec | None:
        """An enroll block: secrets read from the environment now, so a missing variable
        is a load error with the file and line, not a failed enrollment later."""
        auth = raw.get("auth", "on-premise")
        secrets: dict[str, str] = {}
        for name in ("password", "token"):
            env = raw.get(f"{name}_env")
            if env is None:
                continue
            if name in raw:
                self.fail((*path, f"{name}_env"), f"give {name} or {name}_env, not both")
            elif (value := os.environ.get(env)) is None:
                self.fail((*path, f"{name}_env"), f"the environment variable {env} is not set")
            else:
                secrets[name] = value
        certificate = None
        if auth == "certificate":
            cert = raw.get("certificate")
            if cert is None:
                self.fail((*path, "auth"), "auth certificate needs a certificate: {cert, key}")
            else:
                certificate = (cert["cert"], cert.get("key", cert["cert"]))
                for field_name, file in zip(("cert", "key"), certificate, strict=True):
                    if not Path(file).is_file():
                        self.fail((*path, "certificate", field_name), f"{file}: no such file")
        return EnrollSpec(
            discovery=raw.get("discovery"),
            email=raw.get("email", DEFAULT_EMAIL),
            auth=auth,
            username=raw.get("username", ""),
            password=secrets.get("password", raw.get("password", "")),
            token=secrets.get("token", raw.get("token")),
            certificate=certificate,
        )

    def _target(
        self,
        path: tuple[int | str, ...],
        raw: dict[str, Any],
        names: set[str],
        ids: set[str] | None,
    ) -> Target:
        target = Target(raw.get("group"), raw.get("device"), raw.get("fraction"))
        if target.group is not None and target.group not in names:
            self.fail((*path, "group"), f"no group named {target.group!r} in the fleet")
        if target.device is not None:
            if ids is not None and target.device not in ids:
                self.fail((*path, "device"), f"no device {target.device!r} in the fleet")
            if target.fraction is not None:
                self.fail((*path, "fraction"), "a fraction applies to a group, not a device")
        return target

    def _event(
        self,
        i: int,
        raw: dict[str, Any],
        names: set[str],
        ids: set[str] | None,
        duration: int | None,
    ) -> Event:
        path: tuple[int | str, ...] = ("timeline", i)
        at = 0
        try:
            at = parse_at(raw["at"])
        except ValueError as exc:
            self.fail((*path, "at"), str(exc))
        if duration is not None and at > duration:
            self.fail((*path, "at"), f"{raw['at']!r} is after the run's end")
        target = (
            self._target((*path, "target"), raw["target"], names, ids) if "target" in raw else None
        )
        params = {k: v for k, v in raw.items() if k not in ("at", "do", "target")}
        for key in ("for", "retry_after"):
            if key in params:
                params[key] = parse_duration(params[key])
        return Event(at, raw["do"], target, params, self.line(path))

    def _expectation(self, i: int, raw: dict[str, Any], names: set[str]) -> Expectation:
        path: tuple[int | str, ...] = ("expect", i)
        group = raw.get("group")
        if group is not None and group not in names:
            self.fail((*path, "group"), f"no group named {group!r} in the fleet")
        low, high = raw.get("min"), raw.get("max")
        if low is not None and high is not None and low > high:
            self.fail((*path, "max"), f"max {high} is below min {low}")
        kind = raw["expect"]
        event = raw.get("event")
        if event is not None:
            if (why := unknown_event(event)) is not None:
                self.fail((*path, "event"), why)
            else:
                for field in raw.get("where", {}):
                    if (why := unknown_field(event, field)) is not None:
                        self.fail((*path, "where", field), why)
        within = parse_duration(raw["within"]) if "within" in raw else None
        if kind == "push_starts_session" and within is None:
            within = 60_000
        return Expectation(
            kind=kind,
            name=raw.get("name") or _default_name(raw),
            line=self.line(path),
            group=group,
            within_ms=within,
            event=raw.get("event"),
            where=dict(raw.get("where", {})),
            min=low,
            max=high,
        )


def _default_name(raw: dict[str, Any]) -> str:
    kind = raw["expect"]
    scope = f" ({raw['group']})" if "group" in raw else ""
    if kind == "count":
        where = "".join(f" {k}={v}" for k, v in sorted(raw.get("where", {}).items()))
        bounds = " ".join(f"{b} {raw[b]}" for b in ("min", "max") if b in raw)
        return f"count {raw['event']}{where}: {bounds}{scope}"
    if kind == "push_starts_session":
        within = raw.get("within", "60s")
        return f"every push to a connected device starts a session within {within}{scope}"
    if kind == "no_push_after_gone":
        return f"no push to a channel after its 410{scope}"
    return f"each device reported its newest channel{scope}"
