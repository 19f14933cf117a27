"""HTTP ``Retry-After`` as both our clients read it (the WNS sender, the device session).

Owns: turning the header into a wait in milliseconds. Peers here send delay-seconds (WNS 406
and 503 [WNSHDR], MDM 429 [MSMDM 3.1.6]); a missing or unreadable value means 60 s.
"""

from __future__ import annotations

DEFAULT_S = 60


def retry_after_ms(value: str | None, *, cap_ms: int | None = None) -> int:
    try:
        seconds = max(int((value or "").strip()), 0)
    except ValueError:
        seconds = DEFAULT_S
    wait = seconds * 1000
    return wait if cap_ms is None else min(wait, cap_ms)
