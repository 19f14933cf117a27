"""Server hooks: how dmemu asks an MDM server to act (push a device, queue a command).

Owns: the hooks file format (YAML, validated with ``file:line: field: message`` errors), URL
and body templates with ``{base}``, ``{device_id}``, ``{verb}``, ``{loc_uri}``, ``{data}`` and
``{format}`` (``{auth_url}``: the Federated sign-in page, for ``enroll_token``), and
calling a hook over HTTP with a timeout and a size-capped answer.
Must not: judge the server (the conformance checks do) or retry.

A hook the file does not define raises :class:`HookMissing`, so a check that needs it is
reported as skipped, never as passed (conformance.md). The reference server ships its file
as :data:`REFERENCE_HOOKS`.

Example (the reference server's own file)::

    push:
      method: POST
      url: "{base}/admin/devices/{device_id}/push"
      expect: [200]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from emulator.serving import request_once_more
from emulator.yamlconf import load_model

REFERENCE_HOOKS = Path(__file__).parent / "mdm" / "hooks.yaml"
VARIABLES = ("base", "device_id", "verb", "loc_uri", "data", "format", "auth_url")
MAX_ANSWER_BYTES = 256 * 1024
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")


def _check_template(value: str) -> str:
    unknown = sorted({m for m in _PLACEHOLDER.findall(value) if m not in VARIABLES})
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{unknown[0]}}}; known: "
            + ", ".join(f"{{{v}}}" for v in VARIABLES)
        )
    return value


class Hook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(min_length=1)  # template; usually starts with {base}
    body: str | None = None  # template; values are JSON-escaped when content_type is JSON
    content_type: str = "application/json"
    headers: dict[str, str] = Field(default_factory=dict)  # e.g. an admin token
    expect: list[int] = Field(default_factory=lambda: [200, 201, 202, 204])  # success statuses
    timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("url", "body")
    @classmethod
    def _templates(cls, value: str | None) -> str | None:
        return None if value is None else _check_template(value)


class HooksFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None  # default {base}; ``--server`` overrides it
    push: Hook | None = None  # ask the server to push one device now
    queue_command: Hook | None = None  # queue an OMA-DM command for one device
    register_device: Hook | None = None  # tell the server about a device before it enrolls
    #: Federated enrollment: the token a sign-in page would give a device (no browser runs
    #: here); the answer is JSON {"token": "..."} or the token as plain text
    enroll_token: Hook | None = None


def load_hooks(path: Path) -> HooksFile:
    """Read a hooks file; raises :class:`~emulator.yamlconf.ConfigError` when it is wrong."""
    return load_model(path, HooksFile)


class HookMissing(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"no hook: {name}")
        self.name = name


@dataclass(frozen=True, slots=True)
class HookResult:
    name: str
    method: str
    url: str
    status: int  # 0 when the server could not be reached
    ok: bool  # status is one the hook expects
    body: str  # the answer, at most MAX_ANSWER_BYTES
    error: str | None = None  # network failure

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def render(template: str, values: dict[str, str], *, json_escape: bool = False) -> str:
    def one(match: re.Match[str]) -> str:
        value = values.get(match.group(1), "")
        return json.dumps(value)[1:-1] if json_escape else value

    return _PLACEHOLDER.sub(one, template)


class HookClient:
    def __init__(self, hooks: HooksFile, base_url: str, session: aiohttp.ClientSession) -> None:
        self.hooks = hooks
        self.base_url = (base_url or hooks.base_url or "").rstrip("/")
        self.session = session

    async def enroll_token(self, device_id: str, auth_url: str) -> str | None:
        """The ``enroll_token`` hook's token for a device (None when it gave none)."""
        if not self.has("enroll_token"):
            return None
        result = await self.call("enroll_token", device_id=device_id, auth_url=auth_url)
        if not result.ok:
            return None
        answer = result.json()
        if isinstance(answer, dict):
            token = answer.get("token")
            return token if isinstance(token, str) and token else None
        return result.body.strip() or None

    def has(self, name: str) -> bool:
        return getattr(self.hooks, name, None) is not None

    async def call(self, name: str, **values: str | None) -> HookResult:
        hook: Hook | None = getattr(self.hooks, name, None)
        if hook is None:
            raise HookMissing(name)
        filled = {k: v or "" for k, v in values.items()}
        filled["base"] = self.base_url
        url = render(hook.url, filled)
        body = None
        if hook.body is not None:
            body = render(hook.body, filled, json_escape="json" in hook.content_type).encode()
        headers = {**hook.headers, "Content-Type": hook.content_type}

        async def read(resp: aiohttp.ClientResponse) -> HookResult:
            raw = await resp.content.read(MAX_ANSWER_BYTES)
            ok = resp.status in hook.expect
            text = raw.decode("utf-8", "replace")
            return HookResult(name, hook.method, url, resp.status, ok, text)

        try:
            return await request_once_more(
                self.session,
                hook.method,
                url,
                read,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=hook.timeout_s),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return HookResult(name, hook.method, url, 0, False, "", f"{type(exc).__name__}: {exc}")
