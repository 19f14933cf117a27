"""The dmemu command line: clear errors with exit code 2, a real `dmemu wns` process, demo."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.wns.config import parse_app_arg

DMEMU = [sys.executable, "-m", "emulator.cli"]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("yaml_text", "where"),
    [
        ("apps:\n  - sid: S-1-15-2-1-2-3\n    secret: s\n    pfn: bad pfn\n", ":4:5: apps.0.pfn:"),
        ("apps:\n  - sid: nope\n    secret: s\n    pfn: A.B_0123456789abc\n", ":2:5: apps.0.sid:"),
        ("token_ttl: 24 hours\n", ":1:1: token_ttl:"),
        ("renewal: sometimes\n", ":1:1: renewal:"),
        ("rate_limit: fast\n", ":1:1: rate_limit:"),
        ("seed: 1\nspeed: 2\n", ":2:1: speed:"),
        ("apps: [\n", ":2:1: invalid YAML"),
        ("apps:\n  - sid: S-1-15-2-1-2-3\n    pfn: A.B_0123456789abc\n", ":2:5: apps.0.secret:"),
    ],
)
def test_bad_config_names_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], yaml_text: str, where: str
) -> None:
    """Bad input gets file, line, column and field, exit code 2, no traceback."""
    config = tmp_path / "wns.yaml"
    config.write_text(yaml_text)
    code, err = run_main(capsys, "wns", "--config", str(config))
    assert code == 2
    assert f"{config}{where}" in err
    assert "Traceback" not in err


def test_bad_flags_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for argv in (
        ["wns", "--app", "just-a-sid"],
        ["wns", "--token-ttl", "soon"],
        ["wns", "--rate", "0"],
        ["wns", "--rate-limit", "x/y"],
        ["wns", "--config", str(tmp_path / "missing.yaml")],
        ["wns", "--start", "yesterday"],
        ["wns", "--log-level", "loud"],
        ["mdm", "--devices", str(tmp_path / "missing.txt")],
        ["mdm", "--wns-url", "ftp://wns"],
        ["mdm", "--push-rate", "0"],
        ["mdm", "--app", "S-1-15-2-1=secret"],
        ["mdm", "--clock", "virtual"],
    ):
        code, err = run_main(capsys, *argv)
        assert code == 2, argv
        assert "error" in err
        assert "Traceback" not in err


@pytest.mark.parametrize("kind", ["missing directory", "directory", "not SQLite"])
def test_mdm_db_mistakes_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """`dmemu mdm --db` that cannot be a database is a one-line error, exit 2, before
    anything listens (it was a sqlite3 traceback and exit 1)."""
    paths = {
        "missing directory": (tmp_path / "nowhere" / "mdm.sqlite", "does not exist"),
        "directory": (tmp_path, "is a directory"),
        "not SQLite": (tmp_path / "notes.txt", "is not a dmemu mdm SQLite database"),
    }
    path, says = paths[kind]
    (tmp_path / "notes.txt").write_text("shopping list\n" * 200)
    code, err = run_main(capsys, "mdm", "--port", "0", "--db", str(path))
    assert code == 2
    assert f"--db: {path}" in err
    assert says in err
    assert "Traceback" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"dmemu {importlib.metadata.version('dmemu')}"


def test_app_argument_keeps_equals_signs_in_secrets() -> None:
    app = parse_app_arg("ms-app://S-1-15-2-11-22-33=c2VjcmV0===A.B_0123456789abc")
    assert (app.sid, app.secret, app.pfn) == (
        "S-1-15-2-11-22-33",
        "c2VjcmV0==",
        "A.B_0123456789abc",
    )


def _start(
    tmp_path: Path, *extra: str, command: str = "wns"
) -> tuple[subprocess.Popen[str], dict[str, object]]:
    ready = tmp_path / f"{command}-ready.json"
    proc = subprocess.Popen(
        [
            *DMEMU,
            command,
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--log-level",
            "warning",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    assert banner.startswith(f"dmemu {command} listening on "), banner + (
        proc.stderr.read() if proc.stderr else ""
    )
    return proc, json.loads(ready.read_text())


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    return out


def test_standalone_wns_serves_the_readme_curl_flow(tmp_path: Path) -> None:
    """The README's example: token, channel via the control API, raw push, inspection."""
    proc, ready = _start(tmp_path, "--clock", "virtual")
    try:
        url = str(ready["url"])
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": "ms-app://S-1-15-2-1234567890-1234567890-1234567890-123456789-"
                "1234567890-1234567890-123456789",
                "client_secret": "dmemu-demo-secret",
                "scope": "notify.windows.com",
            }
        ).encode()
        with urllib.request.urlopen(f"{url}/accesstoken.srf", form, timeout=10) as resp:
            token = json.load(resp)["access_token"]
        req = urllib.request.Request(
            f"{url}/_emulator/wns/channels",
            json.dumps({"pfn": "Dmemu.DemoMdmPush_8wekyb3d8bbwe"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            channel = json.load(resp)
        push = urllib.request.Request(
            channel["channel_uri"],
            b"wake",
            method="POST",
            headers={
                "Authorization": f"Bearer {token}",
                "X-WNS-Type": "wns/raw",
                "Content-Type": "application/octet-stream",
            },
        )
        with urllib.request.urlopen(push, timeout=10) as resp:
            assert resp.headers["X-WNS-Status"] == "received"
        adv = urllib.request.Request(
            f"{url}/_emulator/clock/advance",
            b'{"days": 31}',
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(adv, timeout=10) as resp:
            assert json.load(resp)["now"] == "2026-02-01T00:00:00.000Z"
        with urllib.request.urlopen(f"{url}/accesstoken.srf", form, timeout=10) as resp:
            push.headers["Authorization"] = f"Bearer {json.load(resp)['access_token']}"
        with pytest.raises(urllib.error.HTTPError) as gone:
            urllib.request.urlopen(push, timeout=10)
        gone.value.close()
        assert gone.value.code == 410  # the channel's 30 days ran out
    finally:
        out = _stop(proc)
    assert "dmemu wns stopped" in out


def test_standalone_wns_over_tls_with_the_written_ca(tmp_path: Path) -> None:
    """--tls serves HTTPS with a local CA; a sender that trusts the CA file connects."""
    import ssl

    proc, ready = _start(tmp_path, "--tls", "--tls-dir", str(tmp_path / "tls"))
    try:
        assert str(ready["url"]).startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(ready["ca_file"]))
        conn = http.client.HTTPSConnection(
            "127.0.0.1", int(str(ready["port"])), context=context, timeout=10
        )
        try:
            conn.request("GET", "/_emulator/clock")
            assert json.loads(conn.getresponse().read())["mode"] == "real"
        finally:
            conn.close()
        untrusting = ssl.create_default_context()  # system trust only: must refuse
        raw = socket.create_connection(("127.0.0.1", int(str(ready["port"]))), timeout=10)
        tls = untrusting.wrap_socket(
            raw, server_hostname="127.0.0.1", do_handshake_on_connect=False
        )
        with tls, pytest.raises(ssl.SSLCertVerificationError):
            tls.do_handshake()
    finally:
        _stop(proc)
    ca_before = (tmp_path / "tls" / "dmemu-ca.pem").read_bytes()
    proc, _ = _start(tmp_path, "--tls", "--tls-dir", str(tmp_path / "tls"))
    _stop(proc)
    assert (tmp_path / "tls" / "dmemu-ca.pem").read_bytes() == ca_before  # trust survives


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    proc, ready = _start(tmp_path)
    try:
        clash = subprocess.run(
            [*DMEMU, "wns", "--port", str(ready["port"])],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )
        assert clash.returncode == 2  # as `dmemu run` with a busy --wns-port: one exit code
        assert "dmemu: error: cannot listen on 127.0.0.1:" in clash.stderr
        assert "Traceback" not in clash.stderr
    finally:
        _stop(proc)


def test_demo_passes_and_writes_its_report(tmp_path: Path) -> None:
    report = tmp_path / "demo.json"
    done = subprocess.run(
        [*DMEMU, "demo", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    """Every [ok] line the demo prints is a step it checked and counts: 7 lines, 7/7 (it
    printed an unchecked [ok] for the reconnect and then "6/6 steps")."""
    assert done.returncode == 0, done.stdout + done.stderr
    marks = [line for line in done.stdout.splitlines() if line.startswith("  [")]
    assert len(marks) == 7
    assert "demo PASS: 7/7 steps as expected" in done.stdout
    steps = json.loads(report.read_text())["steps"]
    assert [s.get("status") for s in steps] == [200, 200, 200, 200, 200, None, 410]
    assert steps[5]["from_cache"] == 1


def test_flags_override_the_config_file_including_off(tmp_path: Path) -> None:
    """`--rate-limit off` must disable the limit a config file (or the default) sets."""
    from emulator.cli import _wns_config, build_parser

    config = tmp_path / "wns.yaml"
    config.write_text("rate_limit: 5/1s\ntoken_ttl: 1h\nseed: 3\n")
    args = build_parser().parse_args(["wns", "--config", str(config), "--rate-limit", "off"])
    resolved = _wns_config(args)
    assert resolved.rate_limit is None
    assert (resolved.token_ttl_ms, resolved.seed) == (3_600_000, 3)
    kept = _wns_config(build_parser().parse_args(["wns", "--config", str(config)]))
    assert kept.rate_limit == (5, 1000)
    default = _wns_config(build_parser().parse_args(["wns", "--token-ttl", "2h"]))
    assert (default.rate_limit, default.token_ttl_ms) == ((600, 60_000), 7_200_000)


def test_standalone_mdm_serves_omadm_and_admin(tmp_path: Path) -> None:
    """`dmemu mdm` runs the reference server as its own process on real time: it answers a
    device's package 1 with the SyncHdr Status first and an Add of its PFN [MSMDM][PUSH],
    lists the device in its admin API, keeps it in its SQLite file, and stops on SIGTERM."""
    from emulator.syncml import CONTENT_TYPE, Add, Status, parse
    from tests.test_mdm_endpoints import package1

    db = tmp_path / "mdm.sqlite"
    proc, ready = _start(
        tmp_path, "--db", str(db), "--wns-url", "http://127.0.0.1:9", command="mdm"
    )
    try:
        request = urllib.request.Request(
            str(ready["omadm_url"]) + "?mode=Machine&Platform=WoA",
            data=package1("dev-cli"),
            headers={"Content-Type": CONTENT_TYPE},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            reply = parse(resp.read())
        first = reply.commands[0]
        assert isinstance(first, Status)
        assert first.cmd == "SyncHdr"
        assert any(isinstance(c, Add) for c in reply.commands)
        with urllib.request.urlopen(f"{ready['url']}/admin/devices", timeout=10) as resp:
            listing = json.loads(resp.read())
        assert [d["device_id"] for d in listing["devices"]] == ["dev-cli"]
    finally:
        out = _stop(proc)
    assert "dmemu mdm stopped" in out
    assert db.stat().st_size > 0
