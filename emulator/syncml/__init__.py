"""SyncML 1.2 / OMA-DM 1.2 as Windows uses it: the message model and the XML codec.

Facts: protocol.md section 3 ([MSMDM] section 2.2, [OMADM]). Sans-I/O: no HTTP here.
"""

from emulator.syncml.codec import CONTENT_TYPE, MAX_MESSAGE_BYTES, SyncMLError, parse, serialize
from emulator.syncml.model import (
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

__all__ = [
    "CONTENT_TYPE",
    "MAX_MESSAGE_BYTES",
    "Add",
    "Alert",
    "Atomic",
    "Command",
    "Delete",
    "Exec",
    "Get",
    "Item",
    "Message",
    "Meta",
    "Replace",
    "Results",
    "Sequence",
    "Status",
    "SyncHdr",
    "SyncMLError",
    "parse",
    "serialize",
]
