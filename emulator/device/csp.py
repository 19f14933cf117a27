"""The device's CSP tree: DevInfo, DevDetail and DMClient Push/Poll, with Windows semantics.

Owns: the node schema (access rights, formats, defaults) shared by every device with the same
ProviderID, URI normalization (``./Device/...`` and the un-prefixed ``./Vendor/...`` are the
same device-scope node [OMADM]), and the status codes of Get/Add/Replace/Delete/Exec
[OMADM, protocol.md 3.6]: 200, 404 missing node, 405 not allowed (read-only or user scope),
415 wrong format, 418 Add of an existing node, 400/500; interior-node Get listing child
names; implicit Add of parents; Sequence; Atomic with rollback (507, inner 216).
Must not: talk to WNS or the server, or read time. Values that live elsewhere (DevInfo from
the identity, ChannelURI and Push/Status from the push lifecycle) come from ``computed``.

Theory of operation (fleet scale): the tree's *shape* is one immutable :class:`Schema` per
ProviderID; a device keeps only a sparse ``dict`` of what differs from a fresh tree (PFN once
set, changed Poll values, deleted nodes as ``None``). A fresh device therefore stores an empty
dict, and :class:`CspTree` is a short-lived view built for the commands of one session.

Decisions from protocol.md section 0: Add on an existing PFN is 418; Replace on PFN creates
it when absent; ChannelURI with no valid PFN reads as 200 with empty data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Flag, auto
from functools import cache

from emulator.syncml.model import (
    Add,
    Atomic,
    Command,
    Delete,
    Exec,
    Get,
    Item,
    Meta,
    Replace,
    Sequence,
)
from emulator.syncml.session import Outcome


class Access(Flag):
    ADD = auto()
    DELETE = auto()
    GET = auto()
    REPLACE = auto()
    EXEC = auto()


RW = Access.ADD | Access.DELETE | Access.GET | Access.REPLACE
INTERIOR_RW = Access.ADD | Access.DELETE | Access.GET
Values = dict[str, str | None]  # path -> value; None marks a deleted node
Computed = Callable[[str], str]  # computed key -> current value

#: Poll node defaults [DMC] (protocol.md 1.4): minutes, counts, bools.
POLL_DEFAULTS = {
    "IntervalForFirstSetOfRetries": ("int", "15"),
    "NumberOfFirstRetries": ("int", "10"),
    "IntervalForSecondSetOfRetries": ("int", "0"),
    "NumberOfSecondRetries": ("int", "0"),
    "IntervalForRemainingScheduledRetries": ("int", "0"),
    "NumberOfRemainingScheduledRetries": ("int", "0"),
    "PollOnLogin": ("bool", "false"),
    "AllUsersPollOnFirstLogin": ("bool", "false"),
}
DEVINFO = ("DevId", "Man", "Mod", "DmV", "Lang")  # [DEVINFO]
PUSH_COMPUTED = frozenset({"ChannelURI", "Status"})  # what a PFN write changes [DMC]
DEVDETAIL = ("DevTyp", "OEM", "FwV", "SwV", "HwV")  # [DEVDETAIL]


@dataclass(frozen=True, slots=True)
class NodeSpec:
    access: Access
    format: str = "node"  # chr | int | bool | node [DMC]
    default: str | None = None  # a leaf's value in a fresh tree
    present: bool = True  # exists in a fresh tree (PFN does not)
    computed: str | None = None  # the value comes from the device under this key
    replace_creates: bool = False  # a Replace creates it when absent (section 0, PFN)

    @property
    def interior(self) -> bool:
        return self.format == "node"


class Schema:
    """The node shape of every device enrolled with one ProviderID."""

    def __init__(self, provider_id: str) -> None:
        self.provider_id = provider_id
        self.specs: dict[str, NodeSpec] = {}
        self.children: dict[str, list[str]] = {}
        #: path -> (node, present in a fresh tree) for it and each ancestor below the root:
        #: what :meth:`CspTree.exists` checks, without splitting paths on every lookup.
        self.lineage: dict[str, tuple[tuple[str, bool], ...]] = {}
        dmclient = f"./Vendor/MSFT/DMClient/Provider/{provider_id}"
        self.push = f"{dmclient}/Push"
        self.pfn = f"{self.push}/PFN"
        self.poll = f"{dmclient}/Poll"
        self._node(".", Access.GET)
        for path in ("./DevInfo", "./DevDetail", "./Vendor", "./Vendor/MSFT"):
            self._node(path, Access.GET)
        for key in DEVINFO:
            self._node(f"./DevInfo/{key}", Access.GET, "chr", computed=key)
        for key in DEVDETAIL:
            self._node(f"./DevDetail/{key}", Access.GET, "chr", computed=key)
        self._node("./Vendor/MSFT/DMClient", Access.GET)
        self._node("./Vendor/MSFT/DMClient/Provider", Access.GET)
        self._node(dmclient, INTERIOR_RW)
        self._node(self.poll, INTERIOR_RW)  # [DMC] 1.4
        for name, (fmt, default) in POLL_DEFAULTS.items():
            self._node(f"{self.poll}/{name}", RW, fmt, default)
        self._node(self.push, INTERIOR_RW)  # [DMC] 1.1
        self._node(self.pfn, RW, "chr", present=False, replace_creates=True)
        self._node(f"{self.push}/ChannelURI", Access.GET, "chr", computed="ChannelURI")
        self._node(f"{self.push}/Status", Access.GET, "int", computed="Status")
        #: the nodes whose state decides what the Poll leaves read: they and their ancestors
        self.poll_nodes = tuple(
            dict.fromkeys(
                node for name in POLL_DEFAULTS for node, _ in self.lineage[self.poll_path(name)]
            )
        )

    def _node(
        self,
        path: str,
        access: Access,
        fmt: str = "node",
        default: str | None = None,
        *,
        present: bool = True,
        computed: str | None = None,
        replace_creates: bool = False,
    ) -> None:
        self.specs[path] = NodeSpec(access, fmt, default, present, computed, replace_creates)
        self.children[path] = []
        if path == ".":
            self.lineage[path] = ()
        else:
            parent = parent_of(path)
            self.children[parent].append(path)
            self.lineage[path] = ((path, present), *self.lineage[parent])

    def poll_path(self, name: str) -> str:
        return f"{self.poll}/{name}"


@cache
def schema_for(provider_id: str) -> Schema:
    """One schema per ProviderID, shared by the fleet."""
    return Schema(provider_id)


def held(values: Values, nodes: tuple[str, ...]) -> tuple[object, ...]:
    """What each node holds in a device's values: its value, None once deleted, or a marker
    when never written. Two devices alike here read alike at those nodes."""
    return tuple([values.get(node, _UNSET) for node in nodes])


class CspError(Exception):
    def __init__(self, status: str, why: str) -> None:
        super().__init__(why)
        self.status = status


def normalize(uri: str) -> str:
    """``./Device/Vendor/...`` and ``./Vendor/...`` name the same device-scope node [OMADM]."""
    uri = uri.strip()
    if uri.startswith("./Device/"):
        return "./" + uri[len("./Device/") :]
    return uri


def parent_of(path: str) -> str:
    return path.rsplit("/", 1)[0]


class CspTree:
    """A view of one device's nodes, and the commands a server can run on them."""

    def __init__(self, schema: Schema, values: Values, computed: Computed) -> None:
        self.schema = schema
        self.values = values  # the device's own sparse dict, changed in place
        self.computed = computed
        self.touched: set[str] = set()  # paths written (even with the same value)
        #: called before Push/ChannelURI or Push/Status is read, so that a PFN written
        #: earlier in the session has taken effect (the runtime registers with WNS)
        self.before_push_read: Callable[[], None] | None = None

    # -- lookup ---------------------------------------------------------------------------
    def _path(self, uri: str) -> str:
        path = normalize(uri)
        if path.startswith("./User/"):
            raise CspError("405", "DMClient is device scope only [DMC]")
        if path == ".":
            return path
        if not path.startswith("./") or path.endswith("/") or "//" in path:
            raise CspError("400", f"{uri!r} is not a device LocURI")
        return path

    def exists(self, path: str) -> bool:
        lineage = self.schema.lineage.get(path)
        if lineage is None:
            return False
        values = self.values
        for node, present in lineage:
            held = values.get(node, _UNSET)
            if held is None or (held is _UNSET and not present):
                return False
        return True

    def read(self, path: str) -> str:
        spec = self.schema.specs[path]
        if spec.interior:  # interior Get: child names [OMADM]
            return "/".join(
                c.rsplit("/", 1)[1] for c in self.schema.children[path] if self.exists(c)
            )
        if spec.computed is not None:
            if self.before_push_read is not None and spec.computed in PUSH_COMPUTED:
                self.before_push_read()
            return self.computed(spec.computed)
        held = self.values.get(path)
        return held if held is not None else spec.default or ""

    def value(self, uri: str) -> str | None:
        """The node's value, or None when it does not exist."""
        path = normalize(uri)
        return self.read(path) if self.exists(path) else None

    # -- the commands ---------------------------------------------------------------------
    def get(self, uri: str) -> Item:
        path = self._path(uri)
        if not self.exists(path):
            raise CspError("404", f"{uri} does not exist")
        spec = self.schema.specs[path]
        if Access.GET not in spec.access:
            raise CspError("405", f"{uri} cannot be read")
        return Item(source=uri, meta=Meta(format=spec.format), data=self.read(path))

    def add(self, uri: str, data: str | None, fmt: str | None) -> None:
        path = self._path(uri)
        if self.exists(path):
            raise CspError("418", f"{uri} already exists")  # [OMADM] 418
        spec = self.schema.specs.get(path)
        if spec is None or Access.ADD not in spec.access:
            parent = parent_of(path)
            raise CspError("405" if self.exists(parent) else "404", f"{uri} cannot be added here")
        if not spec.interior:
            self._check_format(uri, spec, fmt, data)
        self._create_parents(uri, parent_of(path))
        self._clear_below(path)
        self.values[path] = "" if spec.interior else (data or "")
        self.touched.add(path)

    def _create_parents(self, uri: str, path: str) -> None:
        """Implicit Add of missing interior parents [OMADM]."""
        if self.exists(path):
            return
        spec = self.schema.specs.get(path)
        if spec is None or Access.ADD not in spec.access:
            raise CspError("404", f"a parent of {uri} does not exist")
        self._create_parents(uri, parent_of(path))
        self._clear_below(path)
        self.values[path] = ""
        self.touched.add(path)

    def replace(self, uri: str, data: str | None, fmt: str | None) -> None:
        path = self._path(uri)
        spec = self.schema.specs.get(path)
        if not self.exists(path):
            if spec is not None and spec.replace_creates:
                self.add(uri, data, fmt)  # section 0: Replace PFN creates it
                return
            raise CspError("404", f"{uri} does not exist")  # [MSMDM 3.1.5.1.7]
        assert spec is not None
        if Access.REPLACE not in spec.access:
            raise CspError("405", f"{uri} is read-only")
        self._check_format(uri, spec, fmt, data)
        self.values[path] = data or ""
        self.touched.add(path)

    def delete(self, uri: str) -> None:
        path = self._path(uri)
        if not self.exists(path):
            raise CspError("404", f"{uri} does not exist")
        if Access.DELETE not in self.schema.specs[path].access:
            raise CspError("405", f"{uri} cannot be deleted")
        self._clear_below(path)
        self.values[path] = None
        self.touched.add(path)

    def _clear_below(self, path: str) -> None:
        """A re-created node starts fresh: drop what its old children held."""
        prefix = path + "/"
        for key in [k for k in self.values if k.startswith(prefix)]:
            del self.values[key]

    @staticmethod
    def _check_format(uri: str, spec: NodeSpec, fmt: str | None, data: str | None) -> None:
        if fmt is not None and fmt != spec.format:
            raise CspError("415", f"{uri} is {spec.format}, not {fmt}")
        if spec.format == "int" and not (data or "").lstrip("-").isdigit():
            raise CspError("415", f"{uri} takes an integer")
        if spec.format == "bool" and (data or "").lower() not in ("true", "false"):
            raise CspError("415", f"{uri} takes true or false")

    # -- executing SyncML commands --------------------------------------------------------
    def execute(self, cmd: Command) -> Outcome:
        """Run one server command; the outcome carries the status Windows would answer."""
        if isinstance(cmd, Atomic):
            return self._atomic(cmd)
        if isinstance(cmd, Sequence):
            return Outcome("200", inner=tuple(self.execute(c) for c in cmd.commands))
        try:
            return self._run(cmd)
        except CspError as err:
            return Outcome(err.status)

    def _run(self, cmd: Command) -> Outcome:
        if isinstance(cmd, Get):
            return Outcome("200", tuple(self.get(i.target or "") for i in cmd.items))
        if not isinstance(cmd, Add | Replace | Delete | Exec) or not cmd.items:
            raise CspError("400", f"{type(cmd).__name__} cannot run here")
        for item in cmd.items:
            uri = item.target or ""
            fmt = (item.meta.format if item.meta else None) or (
                cmd.meta.format if cmd.meta else None
            )
            if isinstance(cmd, Add):
                self.add(uri, item.data, fmt)
            elif isinstance(cmd, Replace):
                self.replace(uri, item.data, fmt)
            elif isinstance(cmd, Delete):
                self.delete(uri)
            else:
                path = self._path(uri)
                found = self.exists(path)
                raise CspError("405" if found else "404", f"{uri} cannot be executed")
        return Outcome("200")

    def _atomic(self, cmd: Atomic) -> Outcome:
        """All or nothing [OMADM]: no nested Atomic (500), no Get inside (500); on any
        failure restore the values, answer 507, and 216 for the inner commands rolled back."""
        snapshot, touched = dict(self.values), set(self.touched)
        results = [
            Outcome("500") if isinstance(inner, Atomic | Get) else self.execute(inner)
            for inner in cmd.commands
        ]
        if all(r.status == "200" for r in results):
            return Outcome("200", inner=tuple(results))
        self.values.clear()
        self.values.update(snapshot)
        self.touched = touched
        rolled = tuple(Outcome("216") if r.status == "200" else r for r in results)
        return Outcome("507", inner=rolled)


_UNSET = object()
