"""The push channel lifecycle of one device, as a python-statemachine definition.

Owns: the states a device's DMClient push goes through, the events that move it, and the
Push/Status value each state reads as (protocol.md section 0 and 1.2 [DMC]).
Must not: schedule timers, talk to WNS or keep per-device state.

Theory of operation (fleet scale). :class:`PushLifecycle` is the single definition: states,
transitions, diagram (``docs/push-lifecycle.md``). A python-statemachine 3.x instance costs
about 12.7 KB and each ``send`` about 100 us (measured on this machine), too much for 100,000
devices. So a device keeps only its state id (a short string in its slotted record), and
:func:`fire` looks up the target in :data:`TRANSITIONS`, a table compiled once from the
definition. The machine has no guards or callbacks, so the table is exact; a test checks it
against the library's own interpreter for every (state, event) pair.

Decisions (section 0): Status 4 from PFN set until a channel is issued; 0 while the channel is
valid (connected or not); 5 once it expired; 1 for a malformed PFN; 3 when WNS refuses the PFN.
Status 7 (a push arrived but power or connectivity kept the session from starting) is a flag
the agent lays over a valid channel's 0, cleared by the next session.
"""

from __future__ import annotations

from statemachine import State, StateMachine


class PushLifecycle(StateMachine):
    """DMClient push channel: from PFN to a valid ChannelURI, through expiry and renewal."""

    no_pfn = State("No PFN", initial=True)
    registering = State("Registering")
    active = State("Active")
    disconnected = State("Disconnected")
    expired = State("Expired")
    invalid_pfn = State("Invalid PFN")
    failed = State("Failed")

    # the server may write or delete PFN whatever the state (section 0)
    set_pfn = registering.from_.any()
    set_invalid_pfn = invalid_pfn.from_.any()
    clear_pfn = no_pfn.from_.any()
    # a channel from WNS: first registration, renewal (new or extended URI), or after expiry
    registered = (
        registering.to(active)
        | active.to.itself()
        | disconnected.to(active)
        | expired.to(active)
        | failed.to(active)
    )
    refused = (
        registering.to(failed)
        | active.to(failed)
        | disconnected.to(failed)
        | expired.to(failed)
        | failed.to.itself()
    )
    connection_lost = active.to(disconnected)
    connection_restored = disconnected.to(active)
    expire = active.to(expired) | disconnected.to(expired)


#: Push/Status per state [DMC] (section 0).
STATUS = {
    "no_pfn": 4,
    "registering": 4,
    "active": 0,
    "disconnected": 0,
    "expired": 5,
    "invalid_pfn": 1,
    "failed": 3,
}
CHANNEL_VALID = frozenset({"active", "disconnected"})
INITIAL = "no_pfn"


def _compile() -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for state in PushLifecycle.states:
        for transition in state.transitions:
            for event in transition.events:
                table[(state.id, str(event))] = transition.target.id
    return table


#: (state id, event) -> target state id, compiled from :class:`PushLifecycle`.
TRANSITIONS = _compile()
EVENTS = frozenset(event for _, event in TRANSITIONS)


class TransitionRefused(Exception):
    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"push lifecycle: {event!r} is not allowed in state {state!r}")
        self.state = state
        self.event = event


def fire(state: str, event: str) -> str:
    """The state after ``event``; :class:`TransitionRefused` when the definition forbids it."""
    target = TRANSITIONS.get((state, event))
    if target is None:
        raise TransitionRefused(state, event)
    return target


def can_fire(state: str, event: str) -> bool:
    return (state, event) in TRANSITIONS


def diagram() -> str:
    """The lifecycle as a Mermaid state diagram (rendered by python-statemachine)."""
    return f"{PushLifecycle:mermaid}"
