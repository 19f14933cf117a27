"""OpenAPI 3.1 documents of dmemu's HTTP APIs, built from the same tables that add the routes.

Owns: :class:`Operation` (a route: method, path template, handler, what it takes and what it
answers), :func:`document` (the OpenAPI document of a list of them: path parameters from the
template, request bodies from the pydantic models' JSON Schema, query parameters, and every
answer's status and shape), and the shared shapes (the control and admin APIs' JSON error,
an OAuth 2.0 error). A route added through an :class:`Operation` is documented by
construction; a test checks no route is served that is not.
Must not: serve HTTP itself (the API that owns the routes adds ``openapi.json`` among them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from emulator.serving import Handler

OPENAPI_VERSION = "3.1.0"
ERROR = {
    "type": "object",
    "description": "What went wrong, and its details (one line each)",
    "required": ["error", "details"],
    "properties": {
        "error": {"type": "string"},
        "details": {"type": "array", "items": {"type": "string"}},
    },
}
OAUTH_ERROR = {
    "type": "object",
    "description": "An OAuth 2.0 error (RFC 6749 5.2)",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
OBJECT: dict[str, Any] = {"type": "object"}
HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}, "reason": {"type": "string"}},
}


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Operation:
    """One route and what it is documented to do. ``answers``: status -> (description,
    JSON schema of the body, or None for no JSON body); the error statuses of the API's own
    shape are added from ``errors``; a body model adds its 400."""

    method: str
    path: str
    handler: Handler
    summary: str
    answers: Mapping[int, tuple[str, Mapping[str, Any] | None]] = field(
        default_factory=lambda: {200: ("Done", OBJECT)}
    )
    body: type[BaseModel] | None = None
    #: a body that is not a JSON model: media type -> schema (a form, a raw payload)
    content: Mapping[str, Mapping[str, Any]] | None = None
    query: tuple[Query, ...] = ()
    headers: tuple[Query, ...] = ()
    errors: tuple[int, ...] = ()
    secured: bool = False  # the admin token (Authorization: Bearer), when one is set
    tag: str = ""


def document(
    title: str,
    description: str,
    operations: list[Operation],
    *,
    error: dict[str, Any] = ERROR,
    secured_by: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations`` (``error``: the API's error shape)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, secured_by)
    doc: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": _version(), "description": description},
        "paths": paths,
        "components": {"schemas": {"Error": error, "OAuthError": OAUTH_ERROR}},
    }
    if secured_by is not None:
        doc["components"]["securitySchemes"] = {
            secured_by: {
                "type": "http",
                "scheme": "bearer",
                "description": "the server's --admin-token (none set: no token needed)",
            }
        }
    return doc


def _operation(op: Operation, secured_by: str | None) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _path_params(op.path)
    ]
    params += [
        {"name": q.name, "in": "query", "required": False, "description": q.description}
        | {"schema": q.schema}
        for q in op.query
    ]
    params += [
        {"name": h.name, "in": "header", "required": False, "description": h.description}
        | {"schema": h.schema}
        for h in op.headers
    ]
    responses: dict[str, Any] = {}
    for status, (text, schema) in sorted(op.answers.items()):
        responses[str(status)] = _response(text, schema)
    errors = set(op.errors) | ({400} if op.body is not None else set())
    if op.secured and secured_by is not None:
        errors.add(401)
    for status in sorted(errors):
        responses.setdefault(str(status), _response(_ERROR_TEXT.get(status, "Refused"), _REF))
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method.lower()}_{op.handler.__name__}",
        "responses": responses,
    }
    if op.tag:
        out["tags"] = [op.tag]
    if params:
        out["parameters"] = params
    if op.content is not None:
        out["requestBody"] = {
            "required": True,
            "content": {kind: {"schema": schema} for kind, schema in op.content.items()},
        }
    if op.body is not None:
        out["requestBody"] = {
            "required": False,  # an empty body counts as {}
            "content": {"application/json": {"schema": op.body.model_json_schema()}},
        }
    if op.secured and secured_by is not None:
        out["security"] = [{secured_by: []}, {}]  # a token when the server was given one
    return out


_REF = {"$ref": "#/components/schemas/Error"}
_ERROR_TEXT = {
    400: "The request is malformed (invalid JSON, or a field out of its bounds)",
    401: "The admin token is missing or wrong",
    404: "No such thing",
    409: "Conflicts with the current state",
    422: "Understood, but refused",
}


def _response(text: str, schema: Mapping[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return {"description": text}
    if schema.get("type") == "text":
        return {"description": text, "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dmemu")
    except PackageNotFoundError:  # run from a source tree
        return "0"


def add_operations(
    app: web.Application, operations: list[Operation], wrap: Callable[[Handler], Handler]
) -> None:
    """Each operation's route on ``app``, its handler passed through ``wrap``."""
    for op in operations:
        app.router.add_route(op.method, op.path, wrap(op.handler))


def serve_document(doc: dict[str, Any]) -> Handler:
    """A handler answering ``doc`` as JSON."""

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(doc)

    return openapi
