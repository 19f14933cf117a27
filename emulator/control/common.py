"""Helpers for the ``/_emulator`` JSON API: parsing bodies with pydantic, JSON errors.

Owns: the API's error shape ``{"error": ..., "details": [...]}`` and body validation.
Must not: hold state.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data, sort_keys=True, indent=1).encode("utf-8"),
        content_type="application/json",
    )


def api_error(status: int, message: str, details: list[str] | None = None) -> web.HTTPException:
    body = json.dumps({"error": message, "details": details or []}, sort_keys=True)
    cls: type[web.HTTPException] = {
        400: web.HTTPBadRequest,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        422: web.HTTPUnprocessableEntity,
    }.get(status, web.HTTPBadRequest)
    return cls(text=body, content_type="application/json")


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
