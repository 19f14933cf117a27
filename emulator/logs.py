"""Structured logging: JSON lines stamped with emulated time, secrets redacted.

Owns: structlog configuration for the CLI and tests, the clock stamp, and the redaction
rules (architecture principle 9: client secrets and tokens never reach logs or reports).
Must not: decide what is logged; components log their own events.

A component gets its logger with :func:`get_logger` (``name`` plus the clock it runs on). The
clock rides along as a bound value and the stamping processor turns it into ``t`` (ISO-8601)
and ``t_ms`` at the moment of the event, so each world's events carry its own emulated time.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

from emulator.clock import Clock, iso

#: Keys whose values are secrets wherever they appear in an event or a record.
SECRET_KEYS = frozenset(
    {"client_secret", "access_token", "authorization", "password", "secret", "bearer"}
)


def fingerprint(secret: str) -> str:
    """A stable, non-reversible stand-in for a secret, so records can still be correlated."""
    digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"<redacted sha256:{digest}>"


def redact_authorization(value: str) -> str:
    """``Bearer abc`` -> ``Bearer <redacted ...>``: keep the scheme, hide the credential."""
    scheme, _, credential = value.partition(" ")
    if not credential:
        return fingerprint(value)
    return f"{scheme} {fingerprint(credential)}"


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with every secret-named field replaced by a fingerprint."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            lowered = str(key).lower()
            if lowered == "authorization" and isinstance(item, str):
                out[key] = redact_authorization(item)
            elif lowered in SECRET_KEYS and isinstance(item, str):
                out[key] = fingerprint(item)
            else:
                out[key] = redact(item)
        return out
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def _stamp(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    clock: Clock | None = event.pop("_clock", None)
    if clock is not None:
        now = clock.now()
        event["t"] = iso(now)
        event["t_ms"] = now
    return event


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in SECRET_KEYS or isinstance(event[key], Mapping | list | tuple):
            event[key] = redact({key: event[key]})[key]
    return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the moment of writing (it may be swapped)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Send JSON lines at ``level`` and above to ``stream`` (stderr by default)."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _stamp,
            _redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(stream or _CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def get_logger(name: str, clock: Clock) -> Any:
    """A logger for component ``name`` whose events carry ``clock``'s time."""
    return structlog.get_logger(name).bind(component=name, _clock=clock)
