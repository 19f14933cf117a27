"""SyncML DM XML codec: defensive parsing into :mod:`emulator.syncml.model`, and writing.

Owns: turning untrusted bytes into a :class:`Message` (defusedxml: no DTD, no entities, no
external references; a size limit; a nesting limit) with errors that name the element path,
and writing messages the way Windows shapes them: root ``xmlns="SYNCML:SYNCML1.2"``, Meta
children in ``syncml:metinf`` [MSMDM 2.2][OMADM].
Must not: judge session rules (MsgID order, one Status per command ...): the session does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # writing only; parsing goes through defusedxml

import defusedxml
import defusedxml.ElementTree as SafeET

from emulator.syncml.model import (
    ITEM_COMMANDS,
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
)

CONTENT_TYPE = "application/vnd.syncml.dm+xml"  # [MSMDM 2.1] the XML encoding
MAX_MESSAGE_BYTES = 1024 * 1024  # far above any DM package; refuses a 10 MB body outright
MAX_NESTING = 8  # Atomic/Sequence depth (Windows itself refuses nested Atomic [OMADM])
SYNCML_NS = "SYNCML:SYNCML1.2"
ACCEPTED_NS = ("syncml:syncml1.2", "syncml:syncml1.1")  # 1.1 for DM 1.1.2 [MSMDM 2.2.4.1]
METINF_NS = "syncml:metinf"
EXCERPT_BYTES = 200


class SyncMLError(Exception):
    """A message that is not valid SyncML DM: where (element path) and what, plus the
    offending bytes, so a report can show the peer's fault exactly."""

    def __init__(self, path: str, problem: str, excerpt: bytes = b"") -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.excerpt = excerpt[:EXCERPT_BYTES]


# -- parsing -------------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _ns(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in el if _local(child.tag) == name]


def _one(el: ET.Element, name: str, path: str, *, required: bool = True) -> ET.Element | None:
    found = _children(el, name)
    if len(found) > 1:
        raise SyncMLError(f"{path}/{name}", f"appears {len(found)} times, at most once allowed")
    if not found:
        if required:
            raise SyncMLError(path, f"missing {name}")
        return None
    return found[0]


def _text(el: ET.Element, name: str, path: str, *, required: bool = True) -> str | None:
    child = _one(el, name, path, required=required)
    if child is None:
        return None
    if len(child):
        raise SyncMLError(f"{path}/{name}", "must contain text, not elements")
    return (child.text or "").strip()


def _locuri(el: ET.Element, name: str, path: str) -> str | None:
    holder = _one(el, name, path, required=False)
    if holder is None:
        return None
    return _text(holder, "LocURI", f"{path}/{name}")


def _data(el: ET.Element, path: str) -> str | None:
    data = _one(el, "Data", path, required=False)
    if data is None:
        return None
    # Data is text; embedded markup (some CSP payloads) is kept verbatim as a string.
    inner = "".join(ET.tostring(child, encoding="unicode") for child in data)
    return (data.text or "") + inner


def _meta(el: ET.Element, path: str) -> Meta | None:
    meta = _one(el, "Meta", path, required=False)
    if meta is None:
        return None
    where = f"{path}/Meta"
    return Meta(
        format=_text(meta, "Format", where, required=False),
        type=_text(meta, "Type", where, required=False),
    )


def _items(el: ET.Element, path: str) -> tuple[Item, ...]:
    items = []
    for n, item in enumerate(_children(el, "Item"), 1):
        where = f"{path}/Item[{n}]"
        items.append(
            Item(
                target=_locuri(item, "Target", where),
                source=_locuri(item, "Source", where),
                meta=_meta(item, where),
                data=_data(item, where),
            )
        )
    return tuple(items)


def _cmd_id(el: ET.Element, path: str) -> str | None:
    return _text(el, "CmdID", path, required=False)


def _status(el: ET.Element, path: str) -> Status:
    return Status(
        cmd_id=_cmd_id(el, path),
        msg_ref=_text(el, "MsgRef", path) or "",
        cmd_ref=_text(el, "CmdRef", path) or "",
        cmd=_text(el, "Cmd", path) or "",
        data=_text(el, "Data", path) or "",
        items=_items(el, path),
        target_ref=_text(el, "TargetRef", path, required=False),
        source_ref=_text(el, "SourceRef", path, required=False),
    )


def _results(el: ET.Element, path: str) -> Results:
    return Results(
        cmd_id=_cmd_id(el, path),
        msg_ref=_text(el, "MsgRef", path) or "",
        cmd_ref=_text(el, "CmdRef", path) or "",
        cmd=_text(el, "Cmd", path, required=False) or "Get",
        meta=_meta(el, path),
        items=_items(el, path),
    )


_ITEM_CMDS: dict[str, type[Get | Add | Replace | Delete | Exec]] = {
    c.__name__: c for c in ITEM_COMMANDS
}


#: Children of SyncBody / Atomic / Sequence that are not commands themselves.
_NOT_COMMANDS = frozenset({"Final", "CmdID", "Meta", "NoResp"})


def _commands(parent: ET.Element, path: str, depth: int) -> tuple[Command, ...]:
    if depth > MAX_NESTING:
        raise SyncMLError(path, f"commands nested deeper than {MAX_NESTING}")
    out: list[Command] = []
    counts: dict[str, int] = {}
    for el in parent:
        name = _local(el.tag)
        if name in _NOT_COMMANDS:
            continue
        counts[name] = counts.get(name, 0) + 1
        where = f"{path}/{name}[{counts[name]}]"
        if name in _ITEM_CMDS:
            out.append(_ITEM_CMDS[name](_cmd_id(el, where), _items(el, where), _meta(el, where)))
        elif name == "Alert":
            data = _text(el, "Data", where) or ""
            out.append(Alert(_cmd_id(el, where), data, _items(el, where)))
        elif name in ("Atomic", "Sequence"):
            group = Atomic if name == "Atomic" else Sequence
            out.append(group(_cmd_id(el, where), _commands(el, where, depth + 1)))
        elif name == "Status":
            out.append(_status(el, where))
        elif name == "Results":
            out.append(_results(el, where))
        else:
            raise SyncMLError(where, "is not a SyncML DM command")
    return tuple(out)


def parse(raw: bytes | str) -> Message:
    """Parse one SyncML DM message; raise :class:`SyncMLError` for anything malformed."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if len(data) > MAX_MESSAGE_BYTES:
        raise SyncMLError(
            "SyncML", f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}", data
        )
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise SyncMLError(
            "SyncML", f"forbidden XML construct: {type(exc).__name__}", data
        ) from None
    except ET.ParseError as exc:
        raise SyncMLError("SyncML", f"not well-formed XML: {exc}", data) from None
    try:
        return _message(root)
    except SyncMLError as exc:  # attach the offending bytes for the report
        raise SyncMLError(exc.path, exc.problem, data) from None


def _message(root: ET.Element) -> Message:
    if _local(root.tag) != "SyncML":
        raise SyncMLError(_local(root.tag), "the root element must be SyncML")
    if _ns(root.tag).lower() not in ACCEPTED_NS:
        raise SyncMLError("SyncML", f"namespace {_ns(root.tag)!r} is not {SYNCML_NS!r}")
    hdr = _children(root, "SyncHdr")
    body = _children(root, "SyncBody")
    if len(hdr) != 1 or len(body) != 1:
        raise SyncMLError("SyncML", "needs exactly one SyncHdr and one SyncBody")
    where = "SyncML/SyncHdr"
    header = SyncHdr(
        ver_dtd=_text(hdr[0], "VerDTD", where) or "",
        ver_proto=_text(hdr[0], "VerProto", where) or "",
        session_id=_text(hdr[0], "SessionID", where) or "",
        msg_id=_text(hdr[0], "MsgID", where) or "",
        target=_locuri(hdr[0], "Target", where) or "",
        source=_locuri(hdr[0], "Source", where) or "",
        meta=_meta(hdr[0], where),
    )
    commands = _commands(body[0], "SyncML/SyncBody", 0)
    return Message(header=header, commands=commands, final=bool(_children(body[0], "Final")))


# -- writing -------------------------------------------------------------------------------
def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def _write_meta(parent: ET.Element, meta: Meta | None) -> None:
    if meta is None:
        return
    el = _sub(parent, "Meta")
    for tag, value in (("Format", meta.format), ("Type", meta.type)):
        if value is not None:
            _sub(el, tag, value).set("xmlns", METINF_NS)


def _write_items(parent: ET.Element, items: tuple[Item, ...]) -> None:
    for item in items:
        el = _sub(parent, "Item")
        for tag, uri in (("Target", item.target), ("Source", item.source)):
            if uri is not None:
                _sub(_sub(el, tag), "LocURI", uri)
        _write_meta(el, item.meta)
        if item.data is not None:
            _sub(el, "Data", item.data)


def _write_command(parent: ET.Element, cmd: Command) -> None:
    el = _sub(parent, type(cmd).__name__)
    if cmd.cmd_id is not None:
        _sub(el, "CmdID", cmd.cmd_id)
    if isinstance(cmd, Status):
        for tag, value in (("MsgRef", cmd.msg_ref), ("CmdRef", cmd.cmd_ref), ("Cmd", cmd.cmd)):
            _sub(el, tag, value)
        if cmd.target_ref is not None:
            _sub(el, "TargetRef", cmd.target_ref)
        if cmd.source_ref is not None:
            _sub(el, "SourceRef", cmd.source_ref)
        _sub(el, "Data", cmd.data)
        _write_items(el, cmd.items)
    elif isinstance(cmd, Results):
        for tag, value in (("MsgRef", cmd.msg_ref), ("CmdRef", cmd.cmd_ref), ("Cmd", cmd.cmd)):
            _sub(el, tag, value)
        _write_meta(el, cmd.meta)
        _write_items(el, cmd.items)
    elif isinstance(cmd, Alert):
        _sub(el, "Data", cmd.data)
        _write_items(el, cmd.items)
    elif isinstance(cmd, Atomic | Sequence):
        for inner in cmd.commands:
            _write_command(el, inner)
    else:
        _write_meta(el, cmd.meta)
        _write_items(el, cmd.items)


def serialize(message: Message) -> bytes:
    """Write a message as UTF-8 XML shaped like Windows' own (protocol.md 3.8)."""
    root = ET.Element("SyncML")
    root.set("xmlns", SYNCML_NS)
    hdr = _sub(root, "SyncHdr")
    h = message.header
    for tag, value in (
        ("VerDTD", h.ver_dtd),
        ("VerProto", h.ver_proto),
        ("SessionID", h.session_id),
        ("MsgID", h.msg_id),
    ):
        _sub(hdr, tag, value)
    _sub(_sub(hdr, "Target"), "LocURI", h.target)
    _sub(_sub(hdr, "Source"), "LocURI", h.source)
    _write_meta(hdr, h.meta)
    body = _sub(root, "SyncBody")
    for cmd in message.commands:
        _write_command(body, cmd)
    if message.final:
        _sub(body, "Final")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False))
