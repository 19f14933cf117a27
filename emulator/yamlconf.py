"""YAML configuration with precise errors: file, line and field, for every mistake.

Owns: loading YAML safely, validating it against a pydantic model, and mapping each
validation error's field path back to the line it came from; duration strings ("30d").
Must not: know any particular schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from emulator.clock import DAY, HOUR, MINUTE, SECOND

M = TypeVar("M", bound=BaseModel)
MAX_CONFIG_BYTES = 4 * 1024 * 1024

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 1, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, None: SECOND}


class ConfigError(Exception):
    """A user's configuration mistake: reported as ``file:line: field: message``, exit 2."""

    def __init__(
        self,
        file: str,
        line: int | None,
        field: str | None,
        message: str,
        *,
        column: int | None = None,
    ) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        self.column = column
        where = f"{file}:{line}" if line else file
        if line and column:
            where += f":{column}"
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


def parse_duration(value: str | int | float) -> int:
    """``"30d"``, ``"24h"``, ``"90s"``, ``"250ms"`` or a number of seconds -> milliseconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30d'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return int(value * SECOND)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration (use e.g. 90s, 15m, 24h, 30d)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


MAX_NODES = 200_000  # nodes after alias expansion: a YAML "billion laughs" stops here


def locate(node: yaml.Node | None, path: tuple[int | str, ...]) -> tuple[int, int] | None:
    """(line, column), 1-based, of the node at ``path``, or of its deepest existing ancestor
    (a key's position for a mapping value, so an error points at the field's name)."""
    where = _mark(node) if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    node, where = value, _mark(key)
                    break
            else:
                return where
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return where
            node = node.value[part]
            where = _mark(node)
        else:
            return where
    return where


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _count_nodes(node: yaml.Node) -> int:
    """Nodes as a consumer would walk them (aliases expanded), stopping past MAX_NODES."""
    seen = 0
    stack = [node]
    while stack and seen <= MAX_NODES:
        current = stack.pop()
        seen += 1
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend((key, value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return seen


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Read ``path`` safely: size limit, UTF-8, YAML errors with line and column, aliases
    bounded. Returns the data and its node graph (for :func:`locate`)."""
    name = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)  # never more than one byte past the limit
    except OSError as exc:
        raise ConfigError(name, None, None, f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(name, None, None, f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _count_nodes(node) > MAX_NODES:
                raise ConfigError(
                    name, None, None, f"more than {MAX_NODES} values once aliases are expanded"
                )
            data: Any = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError as exc:
        raise ConfigError(name, None, None, f"not UTF-8 text ({exc.reason})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ConfigError(
            name,
            mark.line + 1 if mark else None,
            None,
            f"invalid YAML: {exc.problem}",
            column=mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(name, None, None, f"invalid YAML: {exc}") from None
    return data, node


def load_model(path: Path, model: type[M]) -> M:
    """Load and validate ``path``; raise :class:`ConfigError` naming file, line and field."""
    data, node = read_yaml(path)
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or None
        extra = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        where = locate(node, loc)
        raise ConfigError(
            str(path),
            where[0] if where else None,
            field,
            err["msg"] + extra,
            column=where[1] if where else None,
        ) from None
