"""The push lifecycle definition, its compiled table, and its published diagram."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from statemachine.exceptions import TransitionNotAllowed

from emulator.device.docs import lifecycle_page
from emulator.device.lifecycle import (
    EVENTS,
    STATUS,
    PushLifecycle,
    TransitionRefused,
    fire,
)

STATES = [s.id for s in PushLifecycle.states]


@pytest.mark.parametrize("state", STATES)
def test_compiled_table_matches_the_library(state: str) -> None:
    """The per-device table gives, for every (state, event), what python-statemachine does."""
    machine = PushLifecycle()
    for event in sorted(EVENTS):
        machine.current_state_value = state
        try:
            machine.send(event)
            expected: str | None = machine.current_state_value
        except TransitionNotAllowed:
            expected = None
        try:
            got: str | None = fire(state, event)
        except TransitionRefused:
            got = None
        assert got == expected, (state, event)


def test_status_values_follow_section_0() -> None:
    """4 until a channel is issued, 0 while valid, 5 expired, 1 malformed PFN, 3 refused."""
    state = "no_pfn"
    seen = [STATUS[state]]
    for event in ("set_pfn", "registered", "connection_lost", "expire", "set_pfn", "refused"):
        state = fire(state, event)
        seen.append(STATUS[state])
    assert seen == [4, 4, 0, 0, 5, 4, 3]
    assert STATUS[fire("active", "set_invalid_pfn")] == 1


def test_expiry_needs_a_channel() -> None:
    """A device without a channel cannot expire."""
    with pytest.raises(TransitionRefused, match="'expire' is not allowed in state 'no_pfn'"):
        fire("no_pfn", "expire")


def test_diagram_in_docs_is_current(golden: Callable[[str, str], None]) -> None:
    """docs/push-lifecycle.md is rendered from the definition and must not drift."""
    golden("docs/push-lifecycle.md", lifecycle_page())
