"""Shape plans: reading a message whose element structure was seen before, without the walk.

Owns: the *shape* of a parsed tree (every element's tag and child count, in document order),
and, for a shape seen more than once, a *plan*: a function that builds the same model the
codec's walk builds, reading each text straight from its element by position.
Must not: know a SyncML rule. The walk (``codec._message``) is the only reader of the rules;
a plan is derived from what the walk made of a tree, and replays it.

Theory of operation
-------------------
The walk decides everything (which command an element is, which field a child fills, which
error a message earns) from tags and structure; texts are only copied into the model, either
stripped (:func:`stripped`) or raw (``Data`` of an Item). So two trees of one shape give
models that differ only in those texts, and a plan for a shape is learned by walking a tree
whose every text was replaced by a marker naming its element: each marker found in the
result, stripped or raw, becomes a read of that element's text, everything else a constant.

Three checks keep a plan honest, and a shape that fails any of them is always walked:
- a marker must be a whole field (markup inside ``Data`` is rebuilt from the elements, so it
  embeds markers in a longer string);
- the plan must give what the walk gives for the tree with every text empty (a walk that
  chose a default for an empty text, ``x or "Get"``, would differ);
- the plan must give what the walk gave for the tree it was learned from.
The tests compare plan and walk on random messages of every command.

A shape is learned on its second sighting, so a peer inventing shapes costs one walk each.
A peer chooses the shapes, so the memo stays bounded: at most ``MAX_PLANS`` shapes of at
most ``MAX_PLANNED_ELEMENTS`` elements each (a larger message is always walked).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from emulator.syncml.model import Message

MAX_PLANS = 256
MAX_PLANNED_ELEMENTS = 2_000  # a larger message (a rare big Results) is walked every time
Shape = tuple[tuple[str, ...], tuple[int, ...]]
Walk = Callable[[ET.Element], Message]
Plan = Callable[[list[ET.Element]], Message]


def stripped(text: str | None) -> str:
    """A leaf's text as the model keeps it (the walk's own reading; a plan spells it inline,
    ``(text or '').strip()``)."""
    return (text or "").strip()


_seen: set[Shape] = set()  # shapes walked once
_plans: dict[Shape, Plan | None] = {}  # None: the shape cannot be planned; always walk it


def read(root: ET.Element, walk: Walk) -> Message:
    """The message ``root`` holds: by the plan of its shape when there is one, else walked
    (raising whatever the walk raises for a malformed message)."""
    elements = list(root.iter())
    if len(elements) > MAX_PLANNED_ELEMENTS:  # not even its shape is kept
        return walk(root)
    shape = (tuple([e.tag for e in elements]), tuple(map(len, elements)))
    plan = _plans.get(shape)
    if plan is not None:
        return plan(elements)
    message = walk(root)
    if shape not in _plans:
        if shape in _seen:
            if len(_plans) >= MAX_PLANS:
                _plans.clear()
            _plans[shape] = _learn(root, elements, message, walk)
        else:
            if len(_seen) >= MAX_PLANS:
                _seen.clear()
            _seen.add(shape)
    return message


def planned() -> int:
    """How many shapes are read by a plan now."""
    return sum(plan is not None for plan in _plans.values())


def forget() -> None:
    """Drop every shape and plan (tests use it to compare a first reading with a planned one)."""
    _seen.clear()
    _plans.clear()


class _Unplannable(Exception):
    pass


_MARKER = "\x01{}\x01"
_BLANK = ET.Element("blank")  # an element without text, for checking a plan
_STRIPPED = re.compile("\x01([0-9]+)\x01")
_RAW = re.compile(" \x01([0-9]+)\x01 ")


def _learn(
    root: ET.Element, elements: list[ET.Element], message: Message, walk: Walk
) -> Plan | None:
    """The plan of ``root``'s shape, or None. Learns it by walking ``root`` with its texts
    rewritten (then put back), and checks it against ``message``, the walk of the original."""
    texts = [element.text for element in elements]
    names: dict[str, Any] = {}
    try:
        for i, element in enumerate(elements):
            element.text = f" {_MARKER.format(i)} "  # spaces tell a stripped read from a raw one
        source = f"lambda e: {_expression(walk(root), names)}"
        plan: Plan = eval(source, names)  # noqa: S307 - only markers and walk-made constants
        for element in elements:
            element.text = None
        blank = walk(root)
    except Exception:  # any failure to plan means: walk this shape
        return None
    finally:
        for element, text in zip(elements, texts, strict=True):
            element.text = text
    with contextlib.suppress(Exception):  # a plan that cannot replay the walk is not kept
        if plan(elements) == message and plan([_BLANK] * len(elements)) == blank:
            return plan
    return None


def _expression(value: object, names: dict[str, Any]) -> str:
    """Python source rebuilding ``value`` (a model object a walk made of a marked tree) from
    the elements ``e`` of a tree of the same shape."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        if (found := _STRIPPED.fullmatch(value)) is not None:
            return f"(e[{found.group(1)}].text or '').strip()"  # stripped(), inline
        if (found := _RAW.fullmatch(value)) is not None:
            return f"(e[{found.group(1)}].text or '')"
        if "\x01" in value:
            raise _Unplannable(value)
        return repr(value)
    if isinstance(value, tuple):
        return "(" + "".join(f"{_expression(v, names)}, " for v in value) + ")"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        built = _builder(cls)
        if names.setdefault(cls.__name__, built) is not built:
            raise _Unplannable(f"two model classes named {cls.__name__}")
        args = ", ".join(
            _expression(getattr(value, f.name), names) for f in dataclasses.fields(value)
        )
        return f"{cls.__name__}({args})"
    raise _Unplannable(repr(value))


_builders: dict[type, Callable[..., Any]] = {}


def _builder(cls: type) -> Callable[..., Any]:
    """What makes ``cls(*fields)`` in a plan. For a slotted frozen dataclass, a function that
    sets its slots directly: a frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` once per field, nearly twice the cost of the whole object. The
    class itself when it has a ``__post_init__`` (which must run) or no slots of its own."""
    built = _builders.get(cls)
    if built is None:
        built = cls
        if "__slots__" in cls.__dict__ and not hasattr(cls, "__post_init__"):
            fields = [f.name for f in dataclasses.fields(cls)]
            space: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
            space.update({f"_set_{n}": cls.__dict__[n].__set__ for n in fields})
            sets = "".join(f"    _set_{n}(_o, {n})\n" for n in fields)
            source = f"def build({', '.join(fields)}):\n    _o = _new(_cls)\n{sets}    return _o\n"
            exec(source, space)  # noqa: S102 - names of our own model's fields only
            built = space["build"]
        _builders[cls] = built
    return built
