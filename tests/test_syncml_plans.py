"""Shape plans: a message of a shape read before parses exactly as the walk would parse it.

A plan only replays the codec's walk ([MSMDM 2.2] structure, protocol.md 3.8 shapes), so for
every command, optional field and text (padded, empty, escaped) the model must be the walk's.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.syncml import (
    Add,
    Alert,
    Atomic,
    Command,
    Delete,
    Exec,
    Get,
    Item,
    Message,
    Meta,
    Replace,
    Results,
    Sequence,
    Status,
    SyncHdr,
    codec,
    parse,
    plans,
    serialize,
)

#: Texts XML can carry (no control characters but tab and newline), often padded.
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cn")) | st.sampled_from(" \t\n<&>"),
    max_size=6,
)
OPTIONAL = st.none() | TEXT
META = st.none() | st.builds(Meta, OPTIONAL, OPTIONAL)
ITEMS = st.lists(st.builds(Item, OPTIONAL, OPTIONAL, META, OPTIONAL), max_size=3).map(tuple)
LEAVES = st.one_of(
    st.builds(Alert, OPTIONAL, TEXT, ITEMS),
    st.builds(Status, OPTIONAL, TEXT, TEXT, TEXT, TEXT, ITEMS, OPTIONAL, OPTIONAL),
    st.builds(Results, OPTIONAL, TEXT, TEXT, ITEMS, TEXT, META),
    *(st.builds(c, OPTIONAL, ITEMS, META) for c in (Get, Add, Replace, Delete, Exec)),
)
COMMANDS: st.SearchStrategy[Command] = st.one_of(
    LEAVES,
    st.builds(Atomic, OPTIONAL, st.lists(LEAVES, max_size=3).map(tuple)),
    st.builds(Sequence, OPTIONAL, st.lists(LEAVES, max_size=3).map(tuple)),
)
MESSAGES = st.builds(
    Message,
    st.builds(SyncHdr, TEXT, TEXT, TEXT, TEXT, TEXT, TEXT, META),
    st.lists(COMMANDS, max_size=4).map(tuple),
    st.booleans(),
)


@pytest.fixture(autouse=True)
def no_plans() -> Iterator[None]:
    plans.forget()
    yield
    plans.forget()


def walked(raw: bytes) -> Message:
    """The codec's walk alone: the reference every plan must reproduce."""
    return codec._message(ET.fromstring(raw))  # noqa: S314 - our own serializer's output


def refill(message: Message, texts: st.DataObject) -> Message:
    """The same message with every text replaced: a message of the same shape (a present
    text stays present, an absent one absent), as the next session's would be."""

    def swap(value: object) -> object:
        if isinstance(value, str):
            return texts.draw(TEXT)
        if isinstance(value, tuple):
            return tuple(swap(v) for v in value)
        if isinstance(value, bool) or value is None:
            return value
        cls = type(value)
        return cls(*(swap(getattr(value, f)) for f in cls.__slots__))  # type: ignore[attr-defined]

    out = swap(message)
    assert isinstance(out, Message)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MESSAGES, st.data())
def test_a_planned_message_parses_as_the_walk_parses_it(
    message: Message, texts: st.DataObject
) -> None:
    """Learned from one message, a plan reads another of the same shape as the walk does:
    every command, optional Target/Source/Meta/Data, stripped and raw texts [MSMDM 2.2]."""
    plans.forget()
    learned_from = serialize(message)
    for _ in range(2):  # a shape is learned on its second sighting
        assert parse(learned_from) == walked(learned_from)
    assert plans.planned() == 1
    other = serialize(refill(message, texts))
    assert parse(other) == walked(other)


def test_data_holding_markup_is_walked_every_time() -> None:
    """Markup inside Data is kept verbatim (a CSP's XML payload): its shape has no plan, so
    the second and third readings still carry the markup."""
    raw = (
        b'<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD>'
        b"<VerProto>DM/1.2</VerProto><SessionID>1</SessionID><MsgID>1</MsgID>"
        b"<Target><LocURI>d</LocURI></Target><Source><LocURI>s</LocURI></Source></SyncHdr>"
        b"<SyncBody><Replace><CmdID>2</CmdID><Item><Target><LocURI>./x</LocURI></Target>"
        b'<Data>lead <wap-provisioningdoc version="1.1"/> tail</Data></Item></Replace>'
        b"<Final /></SyncBody></SyncML>"
    )
    readings = [parse(raw) for _ in range(3)]
    assert plans.planned() == 0
    replace = readings[2].commands[0]
    assert isinstance(replace, Replace)
    assert replace.items[0].data == 'lead <wap-provisioningdoc version="1.1" /> tail'
    assert readings[0] == readings[1] == readings[2]


def test_an_empty_results_cmd_is_kept_as_sent() -> None:
    """Texts decide no shape: an empty Cmd in Results is read as empty (only a missing one
    means Get [MSMDM 3.1.5.1.6]), so a planned reading cannot differ from a walked one."""
    message = Message(
        SyncHdr("1", "2", "s", "d"),
        (Results("3", "1", "2", (Item(source="./x", data="v"),), cmd=""),),
    )
    raw = serialize(message)
    assert [parse(raw).commands[0] for _ in range(3)] == [message.commands[0]] * 3
    missing = raw.replace(b"<Cmd />", b"")
    results = parse(missing).commands[0]
    assert isinstance(results, Results)
    assert results.cmd == "Get"


@pytest.mark.parametrize("depth", [1_900, 90_000])
def test_deep_unknown_markup_sent_again_and_again_is_read_alike(depth: int) -> None:
    """Elements the walk does not read (unknown ones inside an Item) may nest deep within the
    size limit; learning their shape must not recurse through them, and every reading agrees."""
    deep = b"<F>" * depth + b"</F>" * depth
    raw = (
        b'<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD>'
        b"<VerProto>DM/1.2</VerProto><SessionID>1</SessionID><MsgID>1</MsgID>"
        b"<Target><LocURI>d</LocURI></Target><Source><LocURI>s</LocURI></Source></SyncHdr>"
        b"<SyncBody><Get><CmdID>2</CmdID><Item><Target><LocURI>./x</LocURI></Target>"
        + deep
        + b"</Item></Get><Final /></SyncBody></SyncML>"
    )
    readings = [parse(raw) for _ in range(3)]
    assert readings[0] == readings[1] == readings[2] == walked(raw)
