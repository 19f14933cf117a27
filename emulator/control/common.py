"""HTTP helpers shared by every route: the per-route guard, JSON bodies and errors.

Owns: :func:`guard` (hold the clock busy while serving, stamp the emulated ``Date``, turn an
emulator bug into a logged 500 instead of a traceback), the ``/_emulator`` API's error shape
``{"error": ..., "details": [...]}``, size-capped body reads, and body validation.
Must not: hold state.

Why a wrapper per route and not an aiohttp middleware: measured on the push path, aiohttp's
middleware machinery cost ~19% of a bare handler's throughput and a mounted sub-application
~6% more, while a plain wrapper costs one function call.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import hdrs, web
from pydantic import BaseModel, ValidationError

from emulator.clock import Clock, http_date
from emulator.control.keys import CLOCK
from emulator.logs import get_logger
from emulator.serving import Handler

M = TypeVar("M", bound=BaseModel)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, sort_keys=True, indent=1).encode("utf-8"),
        content_type="application/json",
    )


def api_error(
    status: int,
    message: str,
    details: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> web.HTTPException:
    body = json.dumps({"error": message, "details": details or []}, sort_keys=True)
    cls: type[web.HTTPException] = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        422: web.HTTPUnprocessableEntity,
    }.get(status, web.HTTPBadRequest)
    return cls(text=body, content_type="application/json", headers=headers)


async def parse_body(request: web.Request, model: type[M]) -> M:
    """Validate a JSON body (an empty body counts as ``{}``) against ``model``; 400 if bad."""
    raw = await request.read()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise api_error(400, f"body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [
            f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise api_error(400, "invalid request body", details) from None


async def read_body(request: web.Request, limit: int) -> tuple[bytes, int | None, bool]:
    """Read the body unless it is declared or found larger than ``limit`` (the application's
    ``client_max_size`` enforces it while reading): (body, its declared Content-Length,
    too_big). aiohttp parses Content-Length on every access, so callers take it from here."""
    declared = request.content_length
    if declared is not None and declared > limit:
        return b"", declared, True
    try:
        return await request.read(), declared, False
    except web.HTTPRequestEntityTooLarge:
        return b"", declared, True


def json_crash() -> web.Response:
    return json_response({"error": "internal emulator error (see its log)", "details": []}, 500)


def guard(
    handler: Handler, crash: Callable[[], web.Response] = json_crash, clock: Clock | None = None
) -> Handler:
    """Wrap a route: clock busy while serving, emulated Date, no traceback ever escapes.

    ``clock``: the application's clock, for hot routes that should not look it up per request.
    """
    bound = clock

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        clock = bound or request.app[CLOCK]
        with clock.busy():
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                exc.headers[hdrs.DATE] = http_date(clock.now())
                raise
            except Exception:
                get_logger("http", clock).exception("http.internal_error", path=request.raw_path)
                response = crash()
            response.headers[hdrs.DATE] = http_date(clock.now())  # emulated, not the host's
            return response

    return guarded
