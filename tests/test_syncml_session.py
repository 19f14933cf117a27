"""OMA-DM session rules on the device side [MSMDM 2.2.6.1, 3.1.5]; conformance E2 and E4."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from emulator.syncml import Alert, Command, Get, Item, Message, Results, Status, parse
from emulator.syncml.session import MAX_ROUND_TRIPS, ClientSession, Outcome, check_reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "syncml"
SERVER = "https://mdm.example.test/ManagementServer/MDM.svc"
DEVICE = "6F1D2C3B4A5948576655443322110099"


def started() -> tuple[ClientSession, Message]:
    package1 = parse((FIXTURES / "client-package1.xml").read_bytes())
    session = ClientSession("12", DEVICE, SERVER)
    sent = session.start(package1.commands)
    return session, sent


def execute(cmd: Command) -> Outcome:
    if isinstance(cmd, Get):
        return Outcome("200", tuple(Item(source=i.target, data="x") for i in cmd.items))
    return Outcome("200")


def server_reply() -> Message:
    return parse((FIXTURES / "server-add-pfn-get-channel.xml").read_bytes())


def test_a_correct_server_reply_is_answered_status_by_status() -> None:
    """Status for SyncHdr first, one Status per server command in order, Results per Get."""
    session, sent = started()
    assert sent.header.msg_id == "1"
    reply = session.receive(server_reply(), execute)
    assert session.faults == []
    assert reply is not None
    assert reply.header.msg_id == "2"
    shape = [
        (type(c).__name__, getattr(c, "cmd_ref", None), getattr(c, "data", None))
        for c in reply.commands
    ]
    assert shape == [
        ("Status", "0", "200"),
        ("Status", "5", "200"),
        ("Status", "6", "200"),
        ("Results", "6", None),
    ]
    assert [c.cmd_id for c in reply.commands] == ["1", "2", "3", "4"]
    results = reply.commands[3]
    assert isinstance(results, Results)
    assert len(results.items) == 2


def test_a_status_only_reply_ends_the_session() -> None:
    """[MSMDM 2.2.6.1]: a server message with only Status ends the session (E4)."""
    session, _ = started()
    session.receive(server_reply(), execute)
    closing = Message(
        replace(server_reply().header, msg_id="2"), (Status("1", "2", "0", "SyncHdr", "200"),)
    )
    assert session.receive(closing, execute) is None
    assert session.ended


def test_commands_without_a_usable_cmdid_get_400() -> None:
    """[OMADM] missing CmdID: the client answers 400 for that command."""
    session, _ = started()
    reply = Message(
        server_reply().header,
        (
            Status("1", "1", "0", "SyncHdr", "200"),
            Get(None, (Item(target="./DevDetail/SwV"),)),
            Get("0", (Item(target="./DevDetail/SwV"),)),
        ),
    )
    answer = session.receive(reply, execute)
    assert answer is not None
    assert [c.data for c in answer.commands if isinstance(c, Status)] == ["200", "400", "400"]
    assert {f.rule for f in session.faults} >= {"cmdid"}


def test_rule_violations_are_recorded_as_the_servers_fault() -> None:
    _, sent = started()
    good = server_reply()
    bad = Message(
        good.header,
        (
            Get("1", (Item(target="./a"),)),  # not the SyncHdr Status first
            Status("1", "9", "2", "Replace", "200"),  # CmdID reused, wrong MsgRef/Cmd
            Status("3", "1", "7", "Get", "200"),  # CmdRef the device never sent
            Status("4", "1", "3", "Replace", "200"),
            Status("5", "1", "3", "Replace", "200"),  # two Status for one command
        ),
    )
    rules = [f.rule for f in check_reply(sent, bad)]
    for rule in (
        "synchdr-status-first",
        "cmdid-unique",
        "msgref",
        "cmdref",
        "one-status-per-command",
    ):
        assert rule in rules, rule
    assert check_reply(sent, good) == []


def test_a_session_that_never_ends_is_cut_and_reported() -> None:
    session, _ = started()
    for n in range(MAX_ROUND_TRIPS):
        answer = session.receive(
            Message(
                replace(server_reply().header, msg_id=str(n + 1)),
                (
                    Status("1", str(session.next_msg_id - 1), "0", "SyncHdr", "200"),
                    Alert("2", "1226"),
                ),
            ),
            lambda cmd: Outcome("200"),
        )
    assert answer is None
    assert session.ended
    assert session.faults[-1].rule == "session-never-ends"
