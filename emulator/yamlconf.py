"""YAML configuration with precise errors: file, line and field, for every mistake.

Owns: loading YAML safely, validating it against a pydantic model, and mapping each
validation error's field path back to the line it came from; duration strings ("30d").
Must not: know any particular schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TextIO, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from emulator.clock import DAY, HOUR, MINUTE, SECOND

M = TypeVar("M", bound=BaseModel)
MAX_CONFIG_BYTES = 1024 * 1024  # a scenario of 20,000 lines is about 1 MB

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


class ConfigErrors(ConfigError):
    """Every mistake found in one file, sorted by line and column (exit 2, nothing run)."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.column or 0))
        first = self.problems[0]
        self.file, self.line, self.field, self.message = (
            first.file,
            first.line,
            first.field,
            first.message,
        )
        self.column = first.column
        Exception.__init__(self, "\n".join(str(p) for p in self.problems))


def problems_of(exc: ConfigError) -> list[ConfigError]:
    """The mistakes an error stands for: several for :class:`ConfigErrors`, else itself."""
    return exc.problems if isinstance(exc, ConfigErrors) else [exc]


def print_problems(exc: ConfigError, err: TextIO, *, ran: bool = False) -> None:
    """Every mistake on its own ``dmemu: error:`` line, then how many (exit 2 follows)."""
    found = problems_of(exc)
    for problem in found:
        print(f"dmemu: error: {problem}", file=err)
    if len(found) > 1 or not ran:
        count = len(found)
        print(f"dmemu: {count} problem{'s' if count != 1 else ''}; nothing was run", file=err)


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


def _duplicates(name: str, node: yaml.Node | None) -> list[ConfigError]:
    """A key given twice in one mapping: YAML would keep the last silently."""
    out: list[ConfigError] = []
    stack = [node] if node is not None else []
    seen_nodes: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen_nodes:  # an alias: judged where it was defined
            continue
        seen_nodes.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first: dict[str, yaml.Node] = {}
            for key, value in current.value:
                stack.append(value)
                if not isinstance(key, yaml.ScalarNode):
                    continue
                if key.value in first:
                    line, column = _mark(key)
                    out.append(
                        ConfigError(
                            name,
                            line,
                            key.value,
                            f"key {key.value!r} given twice (first on line "
                            f"{_mark(first[key.value])[0]}); YAML would keep only this one",
                            column=column,
                        )
                    )
                else:
                    first[key.value] = key
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return out


def _loader(text: str) -> yaml.SafeLoader:
    """libyaml's loader where PyYAML has it (several times faster), else the pure one."""
    cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader: yaml.SafeLoader = cls(text)
    return loader


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None, list[ConfigError]]:
    """Read ``path`` safely: size limit, UTF-8, YAML errors with line and column, aliases
    bounded. Returns the data, its node graph (for :func:`locate`) and the mistakes that do
    not stop reading (keys given twice); raises :class:`ConfigError` for those that do."""
    name = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)  # never more than one byte past the limit
    except OSError as exc:
        raise ConfigError(name, None, None, f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            name, None, None, f"larger than {MAX_CONFIG_BYTES // 1024} KiB: not a config file"
        )
    try:
        text = raw.decode("utf-8")
        loader = _loader(text)
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
    return data, node, _duplicates(name, node)


def not_a_mapping(name: str, data: Any, node: yaml.Node | None, what: str) -> ConfigError | None:
    """The plain-words error for a file that is empty or whose top level is not a mapping."""
    if data is None:
        return ConfigError(name, 1, None, f"the file is empty: expected {what}", column=1)
    if isinstance(data, dict):
        return None
    kind = "list" if isinstance(data, list) else f"single value ({type(data).__name__})"
    line, column = _mark(node) if node is not None else (1, 1)
    return ConfigError(
        name, line, None, f"the top level is a {kind}: expected {what}", column=column
    )


def _words(err: Any) -> str:
    """A pydantic error in the project's words (not "Value error, ...")."""
    kind, msg, loc = err["type"], str(err["msg"]), err["loc"]
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}" if loc else "unknown key"
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    if msg.startswith("Assertion failed, "):
        return msg[len("Assertion failed, ") :]
    return msg[:1].lower() + msg[1:]


def load_model(path: Path, model: type[M], what: str = "a mapping of settings") -> M:
    """Load and validate ``path``; raise :class:`ConfigErrors` naming file, line and field
    of every mistake at once, sorted by line."""
    data, node, problems = read_yaml(path)
    name = str(path)
    if data is not None and (top := not_a_mapping(name, data, node, what)) is not None:
        raise ConfigErrors([*problems, top])
    try:
        loaded = model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = locate(node, loc)
            field = ".".join(str(p) for p in loc) or None
            problems.append(
                ConfigError(
                    name,
                    where[0] if where else None,
                    field,
                    _words(err),
                    column=where[1] if where else None,
                )
            )
        raise ConfigErrors(problems) from None
    if problems:
        raise ConfigErrors(problems)
    return loaded
