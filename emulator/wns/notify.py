"""Validation of a notification POST's headers and body ([WNSHDR] section 2.4).

Owns: turning the request line, headers and body of ``POST <ChannelURI>`` into a checked
:class:`Rules` verdict, or raising the exact protocol error the real service would give.
Must not: look up channels or tokens, or do I/O. Headers arrive as a multidict (aiohttp's
keeps repeats and order); :func:`collect` picks the ones WNS cares about by where they sit,
so the hot path does not scan the headers once per rule, and :func:`kept` gives the record
the headers as received.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Iterable
from typing import NamedTuple, Protocol

from emulator.wns.errors import BadRequest, MethodNotAllowed, PayloadTooLarge
from emulator.wns.models import RAW_LIMIT_BYTES, HeaderList

TYPES = ("wns/raw", "wns/toast", "wns/tile", "wns/badge")
#: Content-Type per type [WNSHDR]: raw is octet-stream, the XML types text/xml.
CONTENT_TYPES = {"wns/raw": "application/octet-stream"}
XML_CONTENT_TYPE = "text/xml"
#: Default X-WNS-PRIORITY per type [PRIO]: toast 1 High, tile/badge 2 Medium, raw 3 Low.
DEFAULT_PRIORITY = {"wns/toast": 1, "wns/tile": 2, "wns/badge": 2, "wns/raw": 3}
#: Cache policy applies to tile, badge and raw; default cache for tile/badge, no-cache for raw
#: [WNSHDR]. Toasts are never cached while offline ([WNSOV]; dropped, [WNSHDR]).
DEFAULT_CACHE = {"wns/tile": True, "wns/badge": True, "wns/raw": False}
_ALNUM16 = re.compile(r"[A-Za-z0-9]{1,16}")
#: Headers that may appear once; a repeat is a conflict (400).
SINGLE = (
    "X-WNS-Type",
    "Content-Type",
    "X-WNS-Cache-Policy",
    "X-WNS-TTL",
    "X-WNS-RequestForStatus",
    "X-WNS-Tag",
    "X-WNS-Group",
    "X-WNS-PRIORITY",
    "Authorization",
)


#: Header names whose values are judged by the header rules, lower-cased (the verdict is
#: memoized on them; Authorization and MS-CV are read apart and never enter the memo).
RULED = frozenset(
    {n.lower() for n in SINGLE if n != "Authorization"} | {"x-wns-match", "x-wns-suppresspopup"}
)


class HeaderView(Protocol):
    """Request headers in arrival order, repeats kept: aiohttp's CIMultiDictProxy fits, and
    so does a plain dict."""

    def keys(self) -> Iterable[str]: ...

    def values(self) -> Iterable[str]: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


class Layout(NamedTuple):
    """Where the headers a notification's judges read sit in a request, by index into its
    header values; -1 for an absent header picks the None that :func:`collect` appends."""

    names: tuple[str, ...]  # every header name as sent, in request order
    ruled_names: tuple[str, ...]  # lower-cased RULED names, first occurrences, request order
    pick_ruled: Callable[[Values], tuple[str, ...]]  # their values
    authorization_at: int  # the first Authorization
    ms_cv_at: int  # the first MS-CV (repeats are allowed and ignored)
    transfer_encoding_at: int  # the first Transfer-Encoding
    repeated: str | None  # lower-cased name of the first once-only header sent twice


Values = tuple[str | None, ...]  # a request's header values in order, then None


def collect(headers: HeaderView) -> tuple[Layout, Values]:
    """The layout of a request's headers, and their values. The layout depends on the header
    names only, and a sender sends the same names in the same order on every push, so it is
    worked out once per list of names (:func:`_layout`) and values are picked by index."""
    names = tuple(headers.keys())
    values = (*headers.values(), None)
    if len(names) != len(values) - 1:  # multidict's keys() lists a repeated name once
        names = tuple([name for name, _ in headers.items()])
    return _layout(names), values


@functools.lru_cache(maxsize=256)  # any sender may invent names; a few layouts are common
def _layout(names: tuple[str, ...]) -> Layout:
    ruled: dict[str, int] = {}
    first: dict[str, int] = {}
    repeated = None
    for at, name in enumerate(names):
        key = name.lower()
        if key in RULED or key == "authorization":
            if key in ruled or key in first:
                repeated = repeated or key
            elif key in RULED:
                ruled[key] = at
            else:
                first[key] = at
        elif key in ("ms-cv", "transfer-encoding"):
            first.setdefault(key, at)
    return Layout(
        names,
        tuple(ruled),
        _picker(tuple(ruled.values())),
        first.get("authorization", -1),
        first.get("ms-cv", -1),
        first.get("transfer-encoding", -1),
        repeated,
    )


@functools.lru_cache(maxsize=256)  # a sender repeats its headers; one that varies them misses
def kept(names: tuple[str, ...], values: Values) -> HeaderList:
    """A request's headers as (name, value) pairs, for the record: one tuple shared by every
    request that sent the same headers, so a window of records does not keep each request's
    own header multidict alive (measured: 1.7 KB -> 0.9 KB of memory per kept record)."""
    return tuple(zip(names, values[:-1], strict=True))  # type: ignore[arg-type]  # no None


def _picker(indexes: tuple[int, ...]) -> Callable[[Values], tuple[str, ...]]:
    """A function picking the values at ``indexes`` as a tuple (itemgetter, in C, returns a
    bare item for one index and needs at least one)."""
    if len(indexes) > 1:
        return operator.itemgetter(*indexes)
    return lambda values: tuple(values[at] for at in indexes)  # type: ignore[misc]


class Rules(NamedTuple):
    """The verdict of the header rules for a notification that passed them (memoized: one
    instance per distinct set of header values)."""

    wns_type: str  # one of TYPES
    cache: bool  # resolved cache policy
    ttl_s: int | None  # X-WNS-TTL, seconds after WNS receives it; None = never expires
    request_status: bool  # X-WNS-RequestForStatus: answer with X-WNS-DeviceConnectionStatus
    priority: int  # 1..4
    tag: str | None  # X-WNS-Tag (tiles only)


def check_method(method: str) -> None:
    """[WNSHDR] 405: only POST (DELETE exists for Windows Phone channels only)."""
    if method != "POST":
        raise MethodNotAllowed(
            f"Invalid method ({method}); only POST is allowed on a Windows channel."
        )


def parse_notification(
    layout: Layout, values: Values, body: bytes, *, declared_length: int | None
) -> Rules:
    """Check every header rule of [WNSHDR] 2.4 and the payload rules; raise 400/413."""
    if layout.repeated is not None:
        raise BadRequest(f"The {layout.repeated} header appears more than once.")
    encoding = values[layout.transfer_encoding_at]
    if encoding is not None and "chunked" in encoding.lower():
        raise BadRequest("Chunked transfer encoding is not supported; send Content-Length.")
    if declared_length is None:
        raise BadRequest("The Content-Length header is required.")
    rules = _header_rules(layout.ruled_names, layout.pick_ruled(values))
    if isinstance(rules, str):
        raise BadRequest(rules)
    if declared_length > RAW_LIMIT_BYTES or len(body) > RAW_LIMIT_BYTES:
        raise PayloadTooLarge(
            f"The notification payload exceeds the {RAW_LIMIT_BYTES} byte size limit."
        )
    if not body:
        # [RAW] the payload "must not be an empty string"; section 0: empty body -> 400.
        raise BadRequest("The notification payload must not be empty.")
    return rules


@functools.lru_cache(maxsize=512)
def _header_rules(names: tuple[str, ...], values: tuple[str, ...]) -> Rules | str:
    """The header verdict for the ruled headers' names and values: the parsed rules, or the
    400 description. Memoized: a sender repeats the same headers on every push, so the hot
    path skips re-validation."""
    try:
        return _check_rules(dict(zip(names, values, strict=True)))
    except BadRequest as err:
        return err.description


def _one(ruled: dict[str, str], name: str) -> str | None:
    value = ruled.get(name.lower())
    return None if value is None else value.strip()


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _check_rules(headers: dict[str, str]) -> Rules:
    wns_type = (_one(headers, "X-WNS-Type") or "").lower()
    if not wns_type:
        raise BadRequest("The X-WNS-Type header is required.")
    if wns_type not in TYPES:
        raise BadRequest(f"X-WNS-Type {wns_type!r} is invalid; use one of {', '.join(TYPES)}.")

    content_type = _one(headers, "Content-Type")
    expected_ct = CONTENT_TYPES.get(wns_type, XML_CONTENT_TYPE)
    if content_type is None:
        raise BadRequest(f"The Content-Type header is required ({expected_ct} for {wns_type}).")
    if _media_type(content_type) != expected_ct:
        raise BadRequest(
            f"Content-Type {content_type!r} conflicts with X-WNS-Type {wns_type}; "
            f"use {expected_ct}."
        )

    cache = DEFAULT_CACHE.get(wns_type, False)
    policy = _one(headers, "X-WNS-Cache-Policy")
    if policy is not None:
        if policy.lower() not in ("cache", "no-cache"):
            raise BadRequest(f"X-WNS-Cache-Policy {policy!r} is invalid; use cache or no-cache.")
        if wns_type not in DEFAULT_CACHE:
            raise BadRequest("X-WNS-Cache-Policy applies to tile, badge and raw only.")
        cache = policy.lower() == "cache"

    ttl_s: int | None = None
    ttl = _one(headers, "X-WNS-TTL")
    if ttl is not None:
        if not ttl.isascii() or not ttl.isdigit() or len(ttl) > 10:
            raise BadRequest(f"X-WNS-TTL {ttl!r} is invalid; it must be an integer of seconds.")
        ttl_s = int(ttl)

    request_status = False
    rfs = _one(headers, "X-WNS-RequestForStatus")
    if rfs is not None:
        if rfs.lower() not in ("true", "false"):
            raise BadRequest(f"X-WNS-RequestForStatus {rfs!r} is invalid; use true or false.")
        request_status = rfs.lower() == "true"

    tag = _one(headers, "X-WNS-Tag")
    if tag is not None:
        if wns_type != "wns/tile":
            raise BadRequest("X-WNS-Tag applies to tile notifications only.")
        if not _ALNUM16.fullmatch(tag):
            raise BadRequest("X-WNS-Tag must be 1 to 16 alphanumeric characters.")

    group = _one(headers, "X-WNS-Group")
    if group is not None:
        if wns_type != "wns/toast":
            raise BadRequest("X-WNS-Group applies to toast notifications only.")
        if not _ALNUM16.fullmatch(group):
            raise BadRequest("X-WNS-Group must be 1 to 16 alphanumeric characters.")

    if "x-wns-match" in headers:
        raise BadRequest("X-WNS-Match is only valid with DELETE on Windows Phone channels.")
    if "x-wns-suppresspopup" in headers:
        raise BadRequest("X-WNS-SuppressPopup is only valid on Windows Phone channels.")

    priority = DEFAULT_PRIORITY[wns_type]
    prio = _one(headers, "X-WNS-PRIORITY")
    if prio is not None:
        if prio not in ("1", "2", "3", "4"):
            raise BadRequest(f"X-WNS-PRIORITY {prio!r} is invalid; use 1, 2, 3 or 4.")
        priority = int(prio)

    return Rules(wns_type, cache, ttl_s, request_status, priority, tag)
