"""The event log and the catalogue of what it holds.

:mod:`~emulator.events.log` keeps and streams the records; :mod:`~emulator.events.catalogue`
lists every event and field (expectations are checked against it; ``docs/events.md`` is
generated from it).
"""

from emulator.events.log import EventLog

__all__ = ["EventLog"]
