"""The DMClient CSP tree as a server sees it: Windows status codes for every command."""

from __future__ import annotations

import pytest

from emulator.device.csp import CspTree, Values, schema_for
from emulator.syncml.model import Add, Atomic, Delete, Exec, Get, Item, Meta, Replace, Sequence

PUSH = "./Device/Vendor/MSFT/DMClient/Provider/dmemu/Push"
POLL = "./Vendor/MSFT/DMClient/Provider/dmemu/Poll"
PFN = f"{PUSH}/PFN"


def make_tree(values: Values | None = None, channel: str = "") -> CspTree:
    computed = {"ChannelURI": channel, "Status": "4", "DevId": "dev-1", "SwV": "10.0.19045.1"}
    return CspTree(
        schema_for("dmemu"),
        {} if values is None else values,
        lambda key: computed.get(key, "Unknown"),
    )


def chr_item(uri: str, data: str | None = None) -> Item:
    return Item(target=uri, meta=Meta(format="chr"), data=data)


def test_interior_get_lists_children() -> None:
    """Get on an interior node returns its child names in Data [OMADM]."""
    tree = make_tree()
    assert tree.get(PUSH).data == "ChannelURI/Status"
    tree.add(PFN, "Contoso.App_8wekyb3d8bbwe", "chr")
    assert tree.get(PUSH).data == "PFN/ChannelURI/Status"
    assert tree.get("./DevInfo").data == "DevId/Man/Mod/DmV/Lang"


def test_device_prefix_and_plain_uri_are_one_node() -> None:
    """``./Device/Vendor/...`` and ``./Vendor/...`` are the same device-scope node [OMADM]."""
    tree = make_tree()
    tree.replace(PFN, "A_1", "chr")
    assert tree.value(PFN.replace("./Device/", "./")) == "A_1"


def test_add_pfn_twice_is_418() -> None:
    """Add on an existing node answers 418 Already exists (protocol.md 4)."""
    tree = make_tree()
    first = tree.execute(Add("1", (chr_item(PFN, "A_1"),)))
    second = tree.execute(Add("2", (chr_item(PFN, "B_2"),)))
    assert (first.status, second.status) == ("200", "418")
    assert tree.value(PFN) == "A_1"


def test_replace_creates_pfn_and_replaces_it() -> None:
    """Replace PFN works whether or not PFN exists (section 0)."""
    tree = make_tree()
    assert tree.execute(Replace("1", (chr_item(PFN, "A_1"),))).status == "200"
    assert tree.execute(Replace("2", (chr_item(PFN, "B_2"),))).status == "200"
    assert tree.value(PFN) == "B_2"


def test_replace_missing_ordinary_node_is_404() -> None:
    """Replace on a node that does not exist is an error [MSMDM 3.1.5.1.7]."""
    tree = make_tree()
    assert tree.execute(Replace("1", (chr_item(f"{PUSH}/Nope", "x"),))).status == "404"


def test_channel_uri_empty_without_pfn() -> None:
    """ChannelURI with no valid PFN reads as 200 with empty Data (section 0)."""
    outcome = make_tree().execute(Get("1", (Item(target=f"{PUSH}/ChannelURI"),)))
    assert outcome.status == "200"
    assert outcome.items[0].data == ""
    assert outcome.items[0].source == f"{PUSH}/ChannelURI"


@pytest.mark.parametrize("uri", [f"{PUSH}/ChannelURI", f"{PUSH}/Status", "./DevInfo/DevId"])
def test_read_only_nodes_are_405(uri: str) -> None:
    """Writing a Get-only node answers 405 [OMADM]."""
    tree = make_tree()
    assert tree.execute(Replace("1", (chr_item(uri, "x"),))).status == "405"
    assert tree.execute(Delete("2", (Item(target=uri),))).status == "405"


def test_user_scope_is_405_and_unknown_is_404() -> None:
    """Push is device scope only [DMC]; a missing node is 404."""
    tree = make_tree()
    user = "./User/Vendor/MSFT/DMClient/Provider/dmemu/Push/PFN"
    assert tree.execute(Replace("1", (chr_item(user, "x"),))).status == "405"
    assert tree.execute(Get("2", (Item(target=f"{PUSH}/Missing"),))).status == "404"
    assert tree.execute(Get("3", (Item(target="Vendor/x"),))).status == "400"


def test_format_mismatch_is_415() -> None:
    """A value of the wrong format answers 415 [OMADM]."""
    tree = make_tree()
    interval = f"{POLL}/IntervalForFirstSetOfRetries"
    bad_fmt = Replace("1", (Item(target=interval, meta=Meta(format="chr"), data="5"),))
    not_int = Replace("2", (Item(target=interval, meta=Meta(format="int"), data="soon"),))
    good = Replace("3", (Item(target=interval, meta=Meta(format="int"), data="30"),))
    assert [tree.execute(c).status for c in (bad_fmt, not_int, good)] == ["415", "415", "200"]
    assert tree.value(interval) == "30"


def test_poll_defaults() -> None:
    """Poll nodes read their [DMC] defaults until the server changes them (protocol.md 1.4)."""
    tree = make_tree()
    assert tree.value(f"{POLL}/IntervalForFirstSetOfRetries") == "15"
    assert tree.value(f"{POLL}/NumberOfFirstRetries") == "10"
    assert tree.value(f"{POLL}/PollOnLogin") == "false"


def test_atomic_rolls_back_everything() -> None:
    """Atomic is all or nothing: a failing inner command gives 507 and 216 for the others."""
    values: Values = {}
    tree = make_tree(values)
    outcome = tree.execute(
        Atomic(
            "1",
            (
                Replace("2", (chr_item(PFN, "A_1"),)),
                Replace("3", (chr_item(f"{PUSH}/Status", "0"),)),
            ),
        )
    )
    assert outcome.status == "507"
    assert [o.status for o in outcome.inner] == ["216", "405"]
    assert tree.value(PFN) is None
    assert values == {}


def test_atomic_refuses_get_and_nesting() -> None:
    """No Get and no nested Atomic inside an Atomic [OMADM]."""
    tree = make_tree()
    outcome = tree.execute(Atomic("1", (Get("2", (Item(target=PUSH),)),)))
    assert (outcome.status, outcome.inner[0].status) == ("507", "500")


def test_sequence_runs_in_order() -> None:
    """Sequence runs its commands in order, each with its own status."""
    tree = make_tree()
    outcome = tree.execute(
        Sequence("1", (Add("2", (chr_item(PFN, "A_1"),)), Add("3", (chr_item(PFN, "A_1"),))))
    )
    assert [o.status for o in outcome.inner] == ["200", "418"]


def test_delete_push_then_implicit_parent_add() -> None:
    """Deleting Push removes PFN; Adding PFN again creates Push implicitly [OMADM]."""
    tree = make_tree()
    tree.replace(PFN, "A_1", "chr")
    assert tree.execute(Delete("1", (Item(target=PUSH),))).status == "200"
    assert tree.value(PFN) is None
    assert tree.execute(Get("2", (Item(target=PUSH),))).status == "404"
    assert tree.execute(Add("3", (chr_item(PFN, "B_2"),))).status == "200"
    assert tree.value(PFN) == "B_2"
    assert tree.get(PUSH).data == "PFN/ChannelURI/Status"


def test_exec_on_dmclient_nodes_is_405() -> None:
    """Exec on a node that has no Exec is 405; on a missing node 404."""
    tree = make_tree()
    assert tree.execute(Exec("1", (Item(target=PFN),))).status == "404"
    assert tree.execute(Exec("2", (Item(target=PUSH),))).status == "405"


def test_fresh_device_stores_nothing() -> None:
    """A fresh device keeps an empty value map (fleet memory)."""
    values: Values = {}
    tree = make_tree(values)
    tree.get(PUSH)
    tree.get(f"{POLL}/NumberOfFirstRetries")
    assert values == {}
