"""``/_emulator/clock``: read the shared clock and jump it forward.

``GET  /_emulator/clock``          -> ``{"now", "now_ms", "mode", "rate", "pending_timers"}``
``POST /_emulator/clock/advance``  body ``{"seconds": 86400}`` (or minutes/hours/days)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from emulator.clock import DAY, HOUR, MINUTE, SECOND, Clock, iso
from emulator.control.common import json_response, parse_body
from emulator.control.keys import CLOCK
from emulator.openapi import Operation

MAX_JUMP_MS = 3650 * DAY


class AdvanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    seconds: float = Field(0, ge=0, le=MAX_JUMP_MS / SECOND)
    minutes: float = Field(0, ge=0, le=MAX_JUMP_MS / MINUTE)
    hours: float = Field(0, ge=0, le=MAX_JUMP_MS / HOUR)
    days: float = Field(0, ge=0, le=MAX_JUMP_MS / DAY)

    @model_validator(mode="after")
    def _bounded(self) -> AdvanceBody:
        if self.total_ms() > MAX_JUMP_MS:
            raise ValueError("a single jump is limited to 3650 days")
        return self

    def total_ms(self) -> int:
        return int(
            self.seconds * SECOND + self.minutes * MINUTE + self.hours * HOUR + self.days * DAY
        )


def clock_json(clock: Clock) -> dict[str, Any]:
    now = clock.now()
    pending = getattr(clock, "pending", None)
    return {
        "now": iso(now),
        "now_ms": now,
        "mode": clock.mode,
        "rate": clock.rate,
        "pending_timers": pending() if callable(pending) else None,
    }


async def get_clock(request: web.Request) -> web.Response:
    return json_response(clock_json(request.app[CLOCK]))


async def advance_clock(request: web.Request) -> web.Response:
    clock = request.app[CLOCK]
    body = await parse_body(request, AdvanceBody)
    fired = await clock.jump(body.total_ms())
    return json_response({**clock_json(clock), "fired": fired})


CLOCK_SCHEMA = {
    "type": "object",
    "required": ["now", "now_ms", "mode", "rate"],
    "properties": {
        "now": {"type": "string", "format": "date-time"},
        "now_ms": {"type": "integer"},
        "mode": {"enum": ["virtual", "real"]},
        "rate": {"type": ["number", "null"]},
        "pending_timers": {"type": ["integer", "null"]},
        "fired": {"type": "integer"},
    },
}
OPERATIONS = [
    Operation("GET", "/clock", get_clock, "Where the clock is", {200: ("The clock", CLOCK_SCHEMA)}),
    Operation(
        "POST",
        "/clock/advance",
        advance_clock,
        "Jump the clock forward, firing every timer due on the way",
        {200: ("The clock after the jump, and how many timers fired", CLOCK_SCHEMA)},
        body=AdvanceBody,
    ),
]
