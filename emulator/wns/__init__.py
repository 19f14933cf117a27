"""The fake Windows Push Notification Service (WNS).

Sans-I/O core (tokens, channel registry, request validation, faults, the service that ties
them) and one thin aiohttp driver (``app.py``). Facts and decisions: protocol.md sections 0
and 2; source keys such as ``[WNSHDR]`` are cited beside the behaviour they justify.
"""

from emulator.wns.models import App
from emulator.wns.service import WnsConfig, WnsService

__all__ = ["App", "WnsConfig", "WnsService"]
