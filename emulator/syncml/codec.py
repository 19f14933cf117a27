"""SyncML DM XML codec: defensive parsing into :mod:`emulator.syncml.model`, and writing.

Owns: turning untrusted bytes into a :class:`Message` (defusedxml: no DTD, no entities, no
external references; a size limit; a nesting limit) with errors that name the element path,
and writing messages the way Windows shapes them: root ``xmlns="SYNCML:SYNCML1.2"``, Meta
children in ``syncml:metinf`` [MSMDM 2.2][OMADM].
Must not: judge session rules (MsgID order, one Status per command ...): the session does.
"""

from __future__ import annotations

import codecs
import copy
import functools
import re
import xml.etree.ElementTree as ET
from xml.parsers.expat import ExpatError

import defusedxml
from defusedxml.ElementTree import DefusedXMLParser

from emulator.syncml import plans
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
MAX_DATA_DEPTH = 64  # markup inside Data (a CSP's XML payload); far above any real one
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
# The walk (``_message`` and below) is the one reader of the rules. It decides from tags and
# structure only and copies texts into the model (stripped, or raw for Data), which is what
# lets ``plans`` replay it for a message shaped like one read before; keep it that way.
# Every element's children are indexed by local name once (``_kids``), so reading a command's
# CmdID, Meta, Items ... costs one dict lookup each instead of a scan of its children.
Kids = dict[str, list[ET.Element]]


@functools.lru_cache(maxsize=1024)  # a message repeats a few dozen tags many times over
def _local(tag: str) -> str:
    """``{namespace}Name`` -> ``Name``."""
    return tag[tag.rfind("}") + 1 :] if tag[:1] == "{" else tag


def _ns(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _kids(el: ET.Element) -> Kids:
    out: Kids = {}
    for child in el:
        name = _local(child.tag)
        found = out.get(name)
        if found is None:
            out[name] = [child]
        else:
            found.append(child)
    return out


def _one(kids: Kids, name: str, path: str) -> ET.Element:
    """The child ``name``, present once: missing or repeated, the message is malformed."""
    found = kids.get(name)
    if found is None:
        raise SyncMLError(path, f"missing {name}")
    if len(found) > 1:
        raise SyncMLError(f"{path}/{name}", f"appears {len(found)} times, at most once allowed")
    return found[0]


def _text(kids: Kids, name: str, path: str, *, required: bool = True) -> str | None:
    found = kids.get(name)
    if found is None and not required:
        return None
    child = found[0] if found is not None and len(found) == 1 else _one(kids, name, path)
    if len(child):
        raise SyncMLError(f"{path}/{name}", "must contain text, not elements")
    return plans.stripped(child.text)


def _locuri(kids: Kids, name: str, path: str) -> str | None:
    if name not in kids:  # an Item has a Target, a Source, or both
        return None
    return _text(_kids(_one(kids, name, path)), "LocURI", f"{path}/{name}")


def _data(kids: Kids, path: str) -> str | None:
    if "Data" not in kids:
        return None
    data = _one(kids, "Data", path)
    if not len(data):
        return data.text or ""
    # Data is text; embedded markup (some CSP payloads) is kept as a string, written back by
    # ElementTree's recursive serializer, so its depth is bounded first.
    if _depth(data) > MAX_DATA_DEPTH:
        raise SyncMLError(f"{path}/Data", f"markup nested deeper than {MAX_DATA_DEPTH} levels")
    return (data.text or "") + "".join(_as_written(child, _ns(data.tag)) for child in data)


def _as_written(element: ET.Element, inherited: str) -> str:
    """Markup inside Data as the peer wrote it: its elements inherit the message's default
    namespace, which ElementTree would otherwise spell as an ``ns0:`` prefix on every tag.
    Elements of another namespace keep it (ElementTree declares it on them)."""
    element = copy.deepcopy(element)
    qualified = f"{{{inherited}}}"
    for node in element.iter():
        if node.tag.startswith(qualified):
            node.tag = node.tag[len(qualified) :]
    return ET.tostring(element, encoding="unicode")


def _depth(el: ET.Element) -> int:
    """Levels of elements below ``el`` (iterative: the markup is untrusted)."""
    deepest = 0
    level: list[tuple[ET.Element, int]] = [(el, 0)]
    while level:
        node, depth = level.pop()
        deepest = max(deepest, depth)
        level.extend((child, depth + 1) for child in node)
    return deepest


def _meta(kids: Kids, path: str) -> Meta | None:
    if "Meta" not in kids:
        return None
    meta = _one(kids, "Meta", path)
    where = f"{path}/Meta"
    inner = _kids(meta)
    return Meta(
        format=_text(inner, "Format", where, required=False),
        type=_text(inner, "Type", where, required=False),
    )


def _items(kids: Kids, path: str) -> tuple[Item, ...]:
    items = []
    for n, item in enumerate(kids.get("Item", ()), 1):
        where = f"{path}/Item[{n}]"
        inner = _kids(item)
        items.append(
            Item(
                target=_locuri(inner, "Target", where),
                source=_locuri(inner, "Source", where),
                meta=_meta(inner, where),
                data=_data(inner, where),
            )
        )
    return tuple(items)


def _cmd_id(kids: Kids, path: str) -> str | None:
    return _text(kids, "CmdID", path, required=False)


def _status(kids: Kids, path: str) -> Status:
    return Status(
        cmd_id=_cmd_id(kids, path),
        msg_ref=_text(kids, "MsgRef", path) or "",
        cmd_ref=_text(kids, "CmdRef", path) or "",
        cmd=_text(kids, "Cmd", path) or "",
        data=_text(kids, "Data", path) or "",
        items=_items(kids, path),
        target_ref=_text(kids, "TargetRef", path, required=False),
        source_ref=_text(kids, "SourceRef", path, required=False),
    )


def _results(kids: Kids, path: str) -> Results:
    cmd = _text(kids, "Cmd", path, required=False)
    return Results(
        cmd_id=_cmd_id(kids, path),
        msg_ref=_text(kids, "MsgRef", path) or "",
        cmd_ref=_text(kids, "CmdRef", path) or "",
        cmd="Get" if cmd is None else cmd,  # as sent when present (texts decide no shape)
        meta=_meta(kids, path),
        items=_items(kids, path),
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
        kids = _kids(el)
        if name == "Status":
            out.append(_status(kids, where))
        elif name in _ITEM_CMDS:
            out.append(
                _ITEM_CMDS[name](_cmd_id(kids, where), _items(kids, where), _meta(kids, where))
            )
        elif name == "Results":
            out.append(_results(kids, where))
        elif name == "Alert":
            data = _text(kids, "Data", where) or ""
            out.append(Alert(_cmd_id(kids, where), data, _items(kids, where)))
        elif name in ("Atomic", "Sequence"):
            group = Atomic if name == "Atomic" else Sequence
            out.append(group(_cmd_id(kids, where), _commands(el, where, depth + 1)))
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
        _screen(data)
        root = ET.fromstring(data)  # noqa: S314 - screened above: no DTD, so no entities
    except defusedxml.DefusedXmlException as exc:
        raise SyncMLError(
            "SyncML", f"forbidden XML construct: {type(exc).__name__}", data
        ) from None
    except (ExpatError, ET.ParseError) as exc:
        raise SyncMLError("SyncML", f"not well-formed XML: {exc}", data) from None
    except ValueError as exc:  # pyexpat: "multi-byte encodings are not supported"
        raise SyncMLError("SyncML", f"unreadable encoding: {exc}", data) from None
    try:
        return plans.read(root, _message)
    except SyncMLError as exc:  # attach the offending bytes for the report
        raise SyncMLError(exc.path, exc.problem, data) from None


#: Handlers defusedxml's parser sets to build its tree in Python, one call per element.
_TREE_HANDLERS = (
    "StartElementHandler",
    "EndElementHandler",
    "CharacterDataHandler",
    "CommentHandler",
    "ProcessingInstructionHandler",
    "StartNamespaceDeclHandler",
    "EndNamespaceDeclHandler",
    "DefaultHandlerExpand",
)

#: The encoding an XML declaration names (XML 1.0 section 4.3.3: ``EncName`` is ASCII).
_DECLARED_ENCODING = re.compile(rb"""\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
#: Encodings in which expat reads markup byte for byte as ASCII (its built-in ones).
_ASCII_MARKUP = frozenset({b"utf-8", b"utf8", b"us-ascii", b"ascii", b"iso-8859-1", b"latin-1"})


def _screen(data: bytes) -> None:
    """Refuse a DTD, so that no entity can be declared, expanded or fetched.

    Without a DTD a document can declare no entity, and the C parser (``ET.fromstring``)
    that then builds the tree is safe. When expat reads the markup as ASCII bytes, a DTD
    can only begin with the literal bytes ``<!DOCTYPE`` (XML 1.0 production 28, case
    sensitive), so a document without them passes at the cost of one byte search. Anything
    else, a document that has them (perhaps inside CDATA, where they are data) or one whose
    markup may not be ASCII bytes (UTF-16 or -32, or another declared encoding), is read
    whole by defusedxml's parser with its tree building detached: it raises on a DTD, an
    entity declaration or an external reference (``forbid_dtd``) and runs at expat's speed.
    """
    if b"<!DOCTYPE" not in data and _ascii_markup(data):
        return
    screen = DefusedXMLParser(forbid_dtd=True)
    expat = screen.parser
    for handler in _TREE_HANDLERS:
        setattr(expat, handler, None)
    expat.Parse(data, True)


def _ascii_markup(data: bytes) -> bool:
    """Whether expat reads this document's markup as ASCII bytes: no NUL (UTF-16 and -32
    spell ``<`` with one) and no declared encoding but UTF-8, ASCII or Latin-1 (XML 1.0
    appendix F: without a declaration or BOM, a document is UTF-8)."""
    if b"\x00" in data:
        return False
    start = 3 if data.startswith(codecs.BOM_UTF8) else 0
    if not data.startswith(b"<?xml", start):
        return True
    end = data.find(b"?>", start)
    declaration = data[start:] if end < 0 else data[start:end]
    named = _DECLARED_ENCODING.search(declaration)
    if named is None:
        return b"encoding" not in declaration
    return named.group(1).lower() in _ASCII_MARKUP


def _message(root: ET.Element) -> Message:
    if _local(root.tag) != "SyncML":
        raise SyncMLError(_local(root.tag), "the root element must be SyncML")
    if _ns(root.tag).lower() not in ACCEPTED_NS:
        raise SyncMLError("SyncML", f"namespace {_ns(root.tag)!r} is not {SYNCML_NS!r}")
    top = _kids(root)
    hdr, body = top.get("SyncHdr", []), top.get("SyncBody", [])
    if len(hdr) != 1 or len(body) != 1:
        raise SyncMLError("SyncML", "needs exactly one SyncHdr and one SyncBody")
    where = "SyncML/SyncHdr"
    h = _kids(hdr[0])
    header = SyncHdr(
        ver_dtd=_text(h, "VerDTD", where) or "",
        ver_proto=_text(h, "VerProto", where) or "",
        session_id=_text(h, "SessionID", where) or "",
        msg_id=_text(h, "MsgID", where) or "",
        target=_locuri(h, "Target", where) or "",
        source=_locuri(h, "Source", where) or "",
        meta=_meta(h, where),
    )
    commands = _commands(body[0], "SyncML/SyncBody", 0)
    final = any(_local(child.tag) == "Final" for child in body[0])
    return Message(header=header, commands=commands, final=final)


# -- writing -------------------------------------------------------------------------------
# A string builder: the same bytes ElementTree would write (``<Tag />`` when empty, ``&``,
# ``<`` and ``>`` escaped in text), at a fraction of the cost of building a tree first.
_METINF_ATTR = f' xmlns="{METINF_NS}"'


def _esc(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _el(out: list[str], tag: str, text: str | None, attrs: str = "") -> None:
    if text:
        out.append(f"<{tag}{attrs}>{_esc(text)}</{tag}>")
    else:
        out.append(f"<{tag}{attrs} />")


def _write_meta(out: list[str], meta: Meta | None) -> None:
    if meta is None:
        return
    if meta.format is None and meta.type is None:
        out.append("<Meta />")
        return
    out.append("<Meta>")
    if meta.format is not None:
        _el(out, "Format", meta.format, _METINF_ATTR)
    if meta.type is not None:
        _el(out, "Type", meta.type, _METINF_ATTR)
    out.append("</Meta>")


def _write_items(out: list[str], items: tuple[Item, ...]) -> None:
    for item in items:
        if item.target is None and item.source is None and item.meta is None and item.data is None:
            out.append("<Item />")
            continue
        out.append("<Item>")
        if item.target is not None:
            out.append("<Target>")
            _el(out, "LocURI", item.target)
            out.append("</Target>")
        if item.source is not None:
            out.append("<Source>")
            _el(out, "LocURI", item.source)
            out.append("</Source>")
        _write_meta(out, item.meta)
        if item.data is not None:
            _el(out, "Data", item.data)
        out.append("</Item>")


def _write_command(out: list[str], cmd: Command) -> None:
    name = type(cmd).__name__
    out.append(f"<{name}>")
    if cmd.cmd_id is not None:
        _el(out, "CmdID", cmd.cmd_id)
    if isinstance(cmd, Status):
        _el(out, "MsgRef", cmd.msg_ref)
        _el(out, "CmdRef", cmd.cmd_ref)
        _el(out, "Cmd", cmd.cmd)
        if cmd.target_ref is not None:
            _el(out, "TargetRef", cmd.target_ref)
        if cmd.source_ref is not None:
            _el(out, "SourceRef", cmd.source_ref)
        _el(out, "Data", cmd.data)
        _write_items(out, cmd.items)
    elif isinstance(cmd, Results):
        _el(out, "MsgRef", cmd.msg_ref)
        _el(out, "CmdRef", cmd.cmd_ref)
        _el(out, "Cmd", cmd.cmd)
        _write_meta(out, cmd.meta)
        _write_items(out, cmd.items)
    elif isinstance(cmd, Alert):
        _el(out, "Data", cmd.data)
        _write_items(out, cmd.items)
    elif isinstance(cmd, Atomic | Sequence):
        for inner in cmd.commands:
            _write_command(out, inner)
    else:
        _write_meta(out, cmd.meta)
        _write_items(out, cmd.items)
    if out[-1] == f"<{name}>":  # nothing inside: ElementTree's short form
        out[-1] = f"<{name} />"
    else:
        out.append(f"</{name}>")


def serialize(message: Message) -> bytes:
    """Write a message as UTF-8 XML shaped like Windows' own (protocol.md 3.8)."""
    h = message.header
    out = [f'<SyncML xmlns="{SYNCML_NS}"><SyncHdr>']
    _el(out, "VerDTD", h.ver_dtd)
    _el(out, "VerProto", h.ver_proto)
    _el(out, "SessionID", h.session_id)
    _el(out, "MsgID", h.msg_id)
    out.append("<Target>")
    _el(out, "LocURI", h.target)
    out.append("</Target><Source>")
    _el(out, "LocURI", h.source)
    out.append("</Source>")
    _write_meta(out, h.meta)
    out.append("</SyncHdr>")
    if not message.commands and not message.final:
        out.append("<SyncBody /></SyncML>")
    else:
        out.append("<SyncBody>")
        for cmd in message.commands:
            _write_command(out, cmd)
        if message.final:
            out.append("<Final />")
        out.append("</SyncBody></SyncML>")
    return "".join(out).encode("utf-8")
