"""Logs are data: JSON lines stamped with emulated time; secrets never appear (principle 9)."""

from __future__ import annotations

import io
import json

from emulator.clock import HOUR, VirtualClock
from emulator.logs import configure_logging, fingerprint, get_logger, redact


def test_events_are_json_lines_stamped_with_the_emulated_clock() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    clock = VirtualClock()
    log = get_logger("wns", clock)
    log.info("wns.channel_issued", device_id="d1")
    clock.advance(HOUR)
    log.info("wns.connection", device_id="d1", status="disconnected")
    log.debug("wns.push_accepted")  # below the level: not written
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first == {
        "component": "wns",
        "device_id": "d1",
        "event": "wns.channel_issued",
        "level": "info",
        "t": "2026-01-01T00:00:00.000Z",
        "t_ms": clock.now() - HOUR,
    }
    assert second["t"] == "2026-01-01T01:00:00.000Z"


def test_secrets_are_fingerprinted_wherever_they_appear() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    log = get_logger("wns", VirtualClock())
    log.info(
        "x",
        client_secret="s3cret",
        headers={"Authorization": "Bearer tok123"},
        form=[{"access_token": "tok123"}],
    )
    line = stream.getvalue()
    assert "s3cret" not in line
    assert "tok123" not in line
    event = json.loads(line)
    assert event["client_secret"] == fingerprint("s3cret")
    assert event["headers"]["Authorization"] == f"Bearer {fingerprint('tok123')}"


def test_fingerprints_are_stable_for_correlation() -> None:
    assert fingerprint("a") == fingerprint("a") != fingerprint("b")
    assert redact({"Secret": "x", "nested": {"password": "y"}, "ok": 1}) == {
        "Secret": fingerprint("x"),
        "nested": {"password": fingerprint("y")},
        "ok": 1,
    }
