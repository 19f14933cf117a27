"""A real third-party sender, unchanged, against the fake WNS: the npm `wns` package.

`wns` (tjanczuk/wns) is a long-standing Node.js WNS sender. It caches the access token,
obtains a new one once on 401 and resends [WNSOV], and counts a push as sent only when the
older `X-WNS-NotificationStatus` header says `received` (protocol.md section 0). It has
`login.live.com:443` and port 443 built in, so the test only redirects those at the transport
(tests/interop/redirect.js, like a hosts entry) and trusts the dmemu CA; the package is used
as published. Needs node and npm (skipped without them, or when npm cannot fetch it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
INTEROP = Path(__file__).resolve().parent / "interop"
MODULES = ROOT / ".interop"
PACKAGE = "wns@0.5.4"
SID = "S-1-15-2-2034834212-2541830356-3413428296-150917377-3542380357-1917640285-2209658297"
SECRET = "Fo7Qm3kPn8VGTgDwm4YbM1Gw+NNp7jgW"
PFN = "Contoso.MdmPush_8wekyb3d8bbwe"

pytestmark = pytest.mark.interop


NODE = shutil.which("node")
NPM = shutil.which("npm")


def _install() -> Path:
    if NODE is None or NPM is None:
        pytest.skip("node and npm are not installed")
    modules = MODULES / "node_modules"
    if not (modules / "wns" / "lib" / "wns.js").exists():
        done = subprocess.run(
            [NPM, "install", "--no-audit", "--no-fund", "--prefix", str(MODULES), PACKAGE],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.skip(f"npm could not install {PACKAGE}: {done.stderr.strip()[-300:]}")
    return modules


@pytest.fixture(scope="module")
def fake_wns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    modules = _install()
    tmp = tmp_path_factory.mktemp("interop")
    ready = tmp / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator.cli",
            "wns",
            "--tls",
            "--tls-dir",
            str(tmp / "tls"),
            "--tls-host",
            "login.live.com",
            "--tls-host",
            "db5.notify.windows.com",
            "--public-url",
            "https://db5.notify.windows.com",
            "--clock",
            "virtual",
            "--app",
            f"{SID}={SECRET}={PFN}",
            "--ready-file",
            str(ready),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("dmemu wns listening")
    info = json.loads(ready.read_text())
    info["modules"] = modules
    info["context"] = ssl.create_default_context(cafile=info["ca_file"])
    yield info
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)


def api(wns: dict[str, Any], method: str, path: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{wns['url']}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, context=wns["context"], timeout=10) as resp:
        return json.load(resp)


def send(wns: dict[str, Any], channel: str, token: str | None) -> dict[str, Any]:
    env = {
        **os.environ,
        "NODE_PATH": str(wns["modules"]),
        "NODE_EXTRA_CA_CERTS": wns["ca_file"],
        "DMEMU_WNS_PORT": str(wns["port"]),
        "WNS_CLIENT_ID": f"ms-app://{SID}",
        "WNS_CLIENT_SECRET": SECRET,
    }
    done = subprocess.run(
        [
            str(NODE),
            "--require",
            str(INTEROP / "redirect.js"),
            str(INTEROP / "send_raw.js"),
            channel,
            *([token] if token else []),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_npm_wns_token_push_401_refresh_and_410(fake_wns: dict[str, Any]) -> None:
    """Done-when of the fake WNS: token request, raw push, a 401 after the token's 24 h on the
    virtual clock followed by one successful refresh, a 410 after the channel's 30 days."""
    channel = api(
        fake_wns, "POST", "/_emulator/wns/channels", {"pfn": PFN, "device_id": "interop-device"}
    )
    uri = channel["channel_uri"]
    assert uri.startswith("https://db5.notify.windows.com/?token=")

    first = send(fake_wns, uri, None)
    assert first["ok"], first
    token = first["newAccessToken"]
    assert token
    assert first["msgId"]

    api(fake_wns, "POST", "/_emulator/clock/advance", {"hours": 24, "minutes": 1})
    second = send(fake_wns, uri, token)
    assert second["ok"], second
    assert second["newAccessToken"]
    assert second["newAccessToken"] != token

    api(fake_wns, "POST", "/_emulator/clock/advance", {"days": 30})
    third = send(fake_wns, uri, second["newAccessToken"])
    assert not third["ok"]
    assert third["statusCode"] == 410
    assert third["message"] == "The channel expired."

    rows = api(fake_wns, "GET", "/_emulator/wns/requests")["requests"]
    assert [(r["kind"], r["status"]) for r in rows] == [
        ("token", 200),
        ("notify", 200),
        ("notify", 401),
        ("token", 200),
        ("notify", 200),
        ("notify", 401),
        ("token", 200),
        ("notify", 410),
    ]
    assert rows[0]["body"].startswith("grant_type=client_credentials&client_id=ms-app")
    assert SECRET not in json.dumps(rows)
    pushes = api(fake_wns, "GET", f"/_emulator/wns/channels/{channel['id']}/pushes")
    assert [p["payload"] for p in pushes["delivered"]] == ["dmemu interop"] * 2
