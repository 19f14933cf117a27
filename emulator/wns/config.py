"""Configuring a fake WNS: the YAML file schema, ``--app SID=SECRET=PFN``, and the demo app.

Owns: turning user input into a :class:`~emulator.wns.service.WnsConfig`, with errors that
name the file, line and field (YAML) or the flag (CLI).
Must not: start servers.

YAML shape::

    apps:
      - sid: S-1-15-2-1111111111-2222222222-3333333333   # or ms-app://S-1-15-2-...
        secret: the-client-secret
        pfn: Contoso.MdmPush_8wekyb3d8bbwe
    blocked_pfns: []
    token_ttl: 24h         # access token life [QS]
    channel_ttl: 30d       # ChannelURI life [PUSH]
    cache_period: 30d      # how long WNS keeps a cached push (section 0)
    renewal: new           # new URI on renewal, or "extend" the same URI
    rate_limit: 600/60s    # per channel before 406; "off" to disable
    seed: 0
    base_url: null         # public base of ChannelURIs; default http(s)://host:port
    record_limit: 10000
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from emulator.wns.channels import DEFAULT_RATE_LIMIT
from emulator.wns.models import App
from emulator.wns.service import WnsConfig
from emulator.yamlconf import parse_duration

_SID = re.compile(r"^S-1-15-2(-\d{1,10}){2,12}$")
_PFN = re.compile(r"^[A-Za-z0-9.\-]{1,200}_[a-z0-9]{13}$")

#: The app `dmemu wns` serves when none is configured (public test credentials).
DEMO_APP = App(
    sid="S-1-15-2-1234567890-1234567890-1234567890-123456789-1234567890-1234567890-123456789",
    secret="dmemu-demo-secret",  # noqa: S106 - a public demo credential for a fake service
    pfn="Dmemu.DemoMdmPush_8wekyb3d8bbwe",
)

Duration = Annotated[int, BeforeValidator(parse_duration)]


def normalize_sid(value: str) -> str:
    sid = value.strip()
    if sid.lower().startswith("ms-app://"):
        sid = sid[len("ms-app://") :]
    if not _SID.match(sid):
        raise ValueError(f"{value!r} is not a Package SID (S-1-15-2-...)")
    return sid


def check_pfn(value: str) -> str:
    if not _PFN.match(value):
        raise ValueError(
            f"{value!r} is not a Package Family Name (Name_publisherid, e.g. "
            "Contoso.MdmPush_8wekyb3d8bbwe)"
        )
    return value


def parse_rate(value: str | None) -> tuple[int, int] | None:
    """``"600/60s"`` -> (600, 60000); ``None``/``"off"``/``"0"`` -> unlimited."""
    if value is None or str(value).strip().lower() in ("off", "none", "0"):
        return None
    count, sep, window = str(value).partition("/")
    if not sep or not count.strip().isdigit() or int(count) < 1:
        raise ValueError(f"{value!r} is not a rate (use COUNT/DURATION, e.g. 600/60s, or off)")
    window_ms = parse_duration(window.strip())
    if window_ms <= 0:
        raise ValueError("the rate window must be longer than zero")
    return int(count), window_ms


class AppSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sid: str
    secret: str = Field(min_length=1)
    pfn: str

    @field_validator("sid")
    @classmethod
    def _sid(cls, value: str) -> str:
        return normalize_sid(value)

    @field_validator("pfn")
    @classmethod
    def _pfn(cls, value: str) -> str:
        return check_pfn(value)

    def app(self) -> App:
        return App(sid=self.sid, secret=self.secret, pfn=self.pfn)


class WnsFile(BaseModel):
    """The YAML file accepted by ``dmemu wns --config``."""

    model_config = ConfigDict(extra="forbid")
    apps: list[AppSpec] = []
    blocked_pfns: list[str] = []
    token_ttl: Duration = Field(default=parse_duration("24h"), gt=0)
    channel_ttl: Duration = Field(default=parse_duration("30d"), gt=0)
    cache_period: Duration = Field(default=parse_duration("30d"), ge=0)
    renewal: Literal["new", "extend"] = "new"
    rate_limit: Annotated[tuple[int, int] | None, BeforeValidator(parse_rate)] = DEFAULT_RATE_LIMIT
    seed: int = 0
    base_url: str | None = None
    record_limit: int = Field(default=10_000, ge=0, le=10_000_000)


def parse_app_arg(text: str) -> App:
    """``SID=SECRET=PFN``; the secret may itself contain '=' (base64 secrets often do)."""
    sid, sep1, rest = text.partition("=")
    secret, sep2, pfn = rest.rpartition("=")
    if not (sep1 and sep2 and secret):
        raise ValueError(f"--app {text!r}: expected SID=SECRET=PFN")
    return App(sid=normalize_sid(sid), secret=secret, pfn=check_pfn(pfn.strip()))


def build_config(file: WnsFile, extra_apps: list[App], **overrides: object) -> WnsConfig:
    """Merge a config file with CLI apps and overrides (every override given is applied)."""
    apps: dict[str, App] = {a.sid: a.app() for a in file.apps}
    for app in extra_apps:
        apps[app.sid] = app
    if not apps:
        apps[DEMO_APP.sid] = DEMO_APP
    pfns = [a.pfn.lower() for a in apps.values()]  # PFNs match in any letter case
    if len(set(pfns)) != len(pfns):
        raise ValueError(
            "two apps share one PFN (letter case aside); each app has its own Package Family Name"
        )
    values: dict[str, object] = {
        "apps": tuple(apps.values()),
        "seed": file.seed,
        "token_ttl_ms": file.token_ttl,
        "channel_ttl_ms": file.channel_ttl,
        "cache_period_ms": file.cache_period,
        "renewal": file.renewal,
        "rate_limit": file.rate_limit,
        "record_limit": file.record_limit,
        "blocked_pfns": tuple(file.blocked_pfns),
    }
    if file.base_url:
        values["base_url"] = file.base_url
    values.update(overrides)
    return WnsConfig(**values)  # type: ignore[arg-type]
