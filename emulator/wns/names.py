"""The response header names of the fake WNS [WNSHDR], as case-insensitive multidict keys.

Owns: spelling each name once. They are ``multidict.istr``: a str whose case-folded form
is made once, so aiohttp's response headers take them without folding them on every
request (callgrind: a push's five headers cost 2.4k instructions fewer than as plain str).
They compare and hash as the plain names do.
Must not: hold anything but names.
"""

from __future__ import annotations

from multidict import istr

MSG_ID = istr("X-WNS-Msg-ID")  # [WNSHDR][QS]
STATUS = istr("X-WNS-Status")  # received | dropped | channelthrottled [WNSHDR]
NOTIFICATION_STATUS = istr("X-WNS-NotificationStatus")  # the older name of STATUS, section 0
DEVICE_CONNECTION_STATUS = istr("X-WNS-DeviceConnectionStatus")  # on X-WNS-RequestForStatus
ERROR_DESCRIPTION = istr("X-WNS-Error-Description")
DEBUG_TRACE = istr("X-WNS-Debug-Trace")
MS_CV = istr("MS-CV")  # correlation vector, echoed or made
