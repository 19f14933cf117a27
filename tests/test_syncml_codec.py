"""SyncML DM codec: real message shapes round-trip; hostile input is a precise, named fault.

[MSMDM 2.2] message structure; protocol.md 3.8 example packages; issue 3's malformed cases
(bad nesting, XML bomb, external entity, 10 MB body, missing CmdID).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.syncml import (
    Add,
    Alert,
    Atomic,
    Get,
    Item,
    Message,
    Meta,
    Replace,
    Results,
    Status,
    SyncHdr,
    SyncMLError,
    parse,
    serialize,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "syncml"
PUSH = "./Device/Vendor/MSFT/DMClient/Provider/FakeMDM/Push"


def test_client_package_1_parses_as_windows_sends_it() -> None:
    """Package 1: Alert 1201 + Alert 1224 LoginStatus + one Replace of DevInfo [MSMDM 4]."""
    msg = parse((FIXTURES / "client-package1.xml").read_bytes())
    assert msg.header == SyncHdr(
        session_id="12",
        msg_id="1",
        target="https://mdm.example.test/ManagementServer/MDM.svc",
        source="6F1D2C3B4A5948576655443322110099",
    )
    alert, login, replace = msg.commands
    assert alert == Alert("1", "1201")
    assert isinstance(login, Alert)
    assert login.items[0].meta == Meta(type="com.microsoft/MDM/LoginStatus")
    assert login.items[0].data == "none"
    assert isinstance(replace, Replace)
    assert [i.source for i in replace.items][:2] == ["./DevInfo/DevId", "./DevInfo/Man"]
    assert msg.final


def test_server_commands_and_device_results_parse() -> None:
    server = parse((FIXTURES / "server-add-pfn-get-channel.xml").read_bytes())
    statuses = [c for c in server.commands if isinstance(c, Status)]
    assert (statuses[0].cmd_ref, statuses[0].cmd, statuses[0].data) == ("0", "SyncHdr", "200")
    add = next(c for c in server.commands if isinstance(c, Add))
    assert add.items[0] == Item(
        target=f"{PUSH}/PFN",
        meta=Meta(format="chr", type="text/plain"),
        data="Contoso.FakeMdmPush_8wekyb3d8bbwe",
    )
    get = next(c for c in server.commands if isinstance(c, Get))
    assert [i.target for i in get.items] == [f"{PUSH}/ChannelURI", f"{PUSH}/Status"]
    reply = parse((FIXTURES / "device-reply-results.xml").read_bytes())
    results = next(c for c in reply.commands if isinstance(c, Results))
    assert (results.cmd_ref, results.cmd) == ("6", "Get")
    assert [i.data for i in results.items] == [
        "https://127.0.0.1:8443/?token=AwYAAAB-fake-token",
        "0",
    ]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.xml")))
def test_fixtures_round_trip(name: str) -> None:
    """What we write parses back to the same message."""
    msg = parse((FIXTURES / name).read_bytes())
    assert parse(serialize(msg)) == msg


def test_written_messages_use_the_windows_namespaces() -> None:
    msg = Message(
        SyncHdr("1", "1", "dev", "https://mdm"),
        (
            Atomic("2", (Replace("3", (Item(target="./a", meta=Meta(format="int"), data="1"),)),)),
            Status("4", "1", "0", "SyncHdr", "200"),
        ),
    )
    xml = serialize(msg).decode()
    assert xml.startswith('<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD>')
    assert '<Format xmlns="syncml:metinf">int</Format>' in xml
    assert xml.endswith("<Final /></SyncBody></SyncML>")
    assert parse(xml) == msg


def test_missing_cmdid_is_left_for_the_session_to_answer() -> None:
    """[OMADM] missing CmdID -> the client returns Status 400 for that command, so the codec
    keeps the message and reports CmdID as absent."""
    xml = _wrap("<Get><Item><Target><LocURI>./DevDetail/SwV</LocURI></Target></Item></Get>")
    (get,) = parse(xml).commands
    assert isinstance(get, Get)
    assert get.cmd_id is None


def _wrap(body: str) -> str:
    return (
        '<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2'
        "</VerProto><SessionID>1</SessionID><MsgID>1</MsgID><Target><LocURI>d</LocURI></Target>"
        f"<Source><LocURI>s</LocURI></Source></SyncHdr><SyncBody>{body}<Final/></SyncBody></SyncML>"
    )


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    '<SyncML xmlns="SYNCML:SYNCML1.2">&lol2;</SyncML>'
)
EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    '<SyncML xmlns="SYNCML:SYNCML1.2">&xxe;</SyncML>'
)


@pytest.mark.parametrize(
    ("raw", "path", "phrase"),
    [
        (BOMB, "SyncML", "forbidden XML construct"),
        (EXTERNAL, "SyncML", "forbidden XML construct"),
        (  # a DTD declaring no entity at all is refused too
            '<!DOCTYPE SyncML SYSTEM "http://www.openmobilealliance.org/tech/DTD/x.dtd">'
            + _wrap(""),
            "SyncML",
            "forbidden XML construct",
        ),
        (_wrap("<Alert><CmdID>1</CmdID><Data>&undeclared;</Data></Alert>"), "SyncML", "undefined"),
        ("<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr></SyncML>", "SyncML", "not well-formed"),
        ("<Envelope/>", "Envelope", "root element must be SyncML"),
        ("<SyncML><SyncHdr/><SyncBody/></SyncML>", "SyncML", "namespace"),
        (
            _wrap("<Get><CmdID>1</CmdID><CmdID>2</CmdID></Get>"),
            "SyncML/SyncBody/Get[1]/CmdID",
            "at most once",
        ),
        (
            _wrap("<Add><CmdID>1</CmdID></Add><Frobnicate/>"),
            "SyncML/SyncBody/Frobnicate[1]",
            "not a SyncML DM command",
        ),
        (
            _wrap(
                "<Status><CmdID>1</CmdID><MsgRef>1</MsgRef><Cmd>Get</Cmd><Data>200</Data></Status>"
            ),
            "SyncML/SyncBody/Status[1]",
            "missing CmdRef",
        ),
        (
            _wrap(
                "<Replace><CmdID>1</CmdID><Item><Target><LocURI><b/></LocURI></Target></Item>"
                "</Replace>"
            ),
            "SyncML/SyncBody/Replace[1]/Item[1]/Target/LocURI",
            "must contain text",
        ),
        (  # the data walk would otherwise recurse once per level (RecursionError)
            _wrap(
                "<Replace><CmdID>1</CmdID><Item><Target><LocURI>./x</LocURI></Target><Data>"
                + "<a>" * 5000
                + "</a>" * 5000
                + "</Data></Item></Replace>"
            ),
            "SyncML/SyncBody/Replace[1]/Item[1]/Data",
            "nested deeper than 64",
        ),
        (
            _wrap("<Atomic><CmdID>1</CmdID>" * 10 + "</Atomic>" * 10),
            "SyncML/SyncBody/Atomic[1]" + "/Atomic[1]" * 8,
            "nested deeper",
        ),
    ],
)
def test_malformed_messages_name_the_element(raw: str, path: str, phrase: str) -> None:
    with pytest.raises(SyncMLError) as err:
        parse(raw)
    assert err.value.path == path
    assert phrase in err.value.problem
    assert err.value.excerpt  # the offending bytes travel with the fault


@pytest.mark.parametrize(
    ("encoding", "phrase"),
    [("utf-16", "forbidden XML construct"), ("utf-32", "not well-formed")],  # expat has no UTF-32
)
def test_dtd_in_a_wide_encoding_is_refused(encoding: str, phrase: str) -> None:
    """No DTD, in any encoding the parser reads [OMADM]: a UTF-16 or UTF-32 document spells
    ``<!DOCTYPE`` in other bytes than ASCII, and its entity bomb is refused all the same."""
    raw = f'<?xml version="1.0" encoding="{encoding}"?>{BOMB.partition("?>")[2]}'
    with pytest.raises(SyncMLError, match=phrase):
        parse(raw.encode(encoding))


def test_unreadable_encoding_is_the_peers_fault() -> None:
    """A document declaring an encoding expat cannot read is malformed, not an emulator crash
    (pyexpat raises ValueError for multi-byte encodings without a byte-order mark)."""
    raw = '<?xml version="1.0" encoding="utf-16-be"?>' + _wrap("")
    with pytest.raises(SyncMLError, match="unreadable encoding") as err:
        parse(raw.encode("utf-16-be"))
    assert err.value.excerpt


def test_dtd_text_inside_data_is_data() -> None:
    """Only a real DTD is forbidden [OMADM]: markup-like text a CDATA section carries in Data
    (a CSP payload may be XML) reaches the command verbatim."""
    payload = '<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>'
    assert _replaced_data(f"<![CDATA[{payload}]]>") == payload


def _replaced_data(content: str) -> str | None:
    """The Data a server's Replace carries, read from ``<Data>{content}</Data>``."""
    message = parse(
        _wrap(
            "<Replace><CmdID>1</CmdID><Item><Target><LocURI>./Vendor/x</LocURI></Target>"
            f"<Data>{content}</Data></Item></Replace>"
        )
    )
    (replace,) = message.commands
    assert isinstance(replace, Replace)
    return replace.items[0].data


@pytest.mark.parametrize(
    ("markup", "kept"),
    [
        (  # inherits the message's default namespace: written back without a prefix
            '<wap-provisioningdoc version="1.1"><characteristic type="A">'
            '<parm name="p" value="1"/></characteristic></wap-provisioningdoc>',
            '<wap-provisioningdoc version="1.1"><characteristic type="A">'
            '<parm name="p" value="1" /></characteristic></wap-provisioningdoc>',
        ),
        (  # declares its own: keeps it
            '<policy xmlns="urn:example:p"><x>1</x></policy>',
            '<ns0:policy xmlns:ns0="urn:example:p"><ns0:x>1</ns0:x></ns0:policy>',
        ),
    ],
)
def test_markup_inside_data_is_kept_as_written(markup: str, kept: str) -> None:
    """A CSP payload sent as markup inside Data (not escaped, not CDATA) reaches the command
    as the server wrote it, so a later Get returns it unchanged [MSMDM 2.2.5]: its elements
    inherit SYNCML:SYNCML1.2 but carry no namespace prefix of ElementTree's making."""
    assert _replaced_data(markup) == kept


def test_ten_megabyte_body_is_refused_before_parsing() -> None:
    with pytest.raises(SyncMLError, match="exceeds"):
        parse(b"<SyncML>" + b" " * (10 * 1024 * 1024) + b"</SyncML>")
