"""report.html (issue 20): every run and conformance run with --out writes one
self-contained page, `dmemu report DIR` rebuilds it, and it works for real: opened in
headless Chromium (Debian's package, which `make test` installs), it loads with no console
error and nothing fetched from the network, draws its charts and lanes, and searching a
device id shows that device's lane."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from emulator.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium, started after dmemu ran (Playwright's sync API holds an event loop
    in this thread while it lives)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Browser, path: Path) -> tuple[Page, list[str], list[str]]:
    """The page, its console errors, and every request it made that was not the file."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    fetched: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: fetched.append(r.url) if not r.url.startswith("file:") else None)
    page.goto(path.as_uri())
    return page, errors, fetched


def not_blank(png: bytes) -> bool:
    """A screenshot with real drawing in it: several colours, and not nearly all white."""
    from io import BytesIO

    image = Image.open(BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16) or []
    white = sum(n for n, rgb in colours if min(rgb) > 245)
    return len(colours) > 8 and white < 0.97 * image.width * image.height


@pytest.mark.timeout(300)
@pytest.mark.parametrize("scenario", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_a_run_report_opens_and_shows_the_run(
    scenario: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each shipped scenario's report: the verdict in its header, a chart per group plus the
    pushes, sessions, latency and offline charts drawn, the expectations listed, lanes
    drawn when the devices come into view, and a device id searched shows its lane alone."""
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed.splitlines()[-1]
    summary = json.loads((out / "summary.json").read_text())
    with chromium() as browser:
        check_run_page(browser, out / "report.html", summary)


def check_run_page(browser: Browser, path: Path, summary: dict[str, Any]) -> None:
    page, errors, fetched = open_page(browser, path)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 5")
    assert "PASSED" in page.inner_text("header")
    plots = page.locator(".js-plotly-plot").count()
    assert plots == len(summary["scenario"]["groups"]) + 4
    assert page.locator("#expectations tbody tr").count() == len(summary["expectations"])
    assert not_blank(page.locator("#chart-sessions").screenshot())

    page.locator("#devices").scroll_into_view_if_needed()
    page.wait_for_selector(".lane svg")
    assert 0 < page.locator(".lane").count() <= 25
    lanes: dict[str, Any] = page.evaluate(
        "Array.from(document.querySelectorAll('.lane')).map(l => l.dataset.device)"
    )
    wanted = lanes[-1]
    page.fill("#search", wanted)
    page.wait_for_function(
        f"document.querySelectorAll('.lane').length === 1 && "
        f"document.querySelector('.lane').dataset.device === {json.dumps(wanted)}"
    )
    lane = page.locator(".lane svg")
    assert lane.locator("rect").count() > 0  # its channel at least
    assert not_blank(lane.screenshot())
    assert errors == []
    assert fetched == []


@pytest.mark.timeout(300)
def test_a_conformance_report_shows_each_check_with_its_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dmemu conformance --out` writes report.html: each check's id, level, verdict, reason
    and sources, its evidence folded under it, and a filter over the checks."""
    out = tmp_path / "conf"
    assert main(["conformance", "--only", "A3,C5,D2", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    checks = json.loads((out / "conformance.json").read_text())["checks"]
    with chromium() as browser:
        check_conformance_page(browser, out / "report.html", checks)


def check_conformance_page(browser: Browser, path: Path, checks: list[dict[str, Any]]) -> None:
    page, errors, fetched = open_page(browser, path)
    rows = page.locator(".checks tbody tr")
    assert rows.count() == len(checks)
    first = checks[0]
    text = rows.first.inner_text()
    for field in ("id", "level", "verdict", "reason"):
        assert str(first[field]) in text
    assert all(source in text for source in first["sources"])
    page.fill("#search", first["id"])
    assert page.locator(".checks tbody tr:not(.hidden)").count() >= 1
    assert page.locator(".checks tbody tr.hidden").count() >= 1
    assert errors == []
    assert fetched == []


def test_dmemu_report_rebuilds_the_page_and_refuses_what_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dmemu report DIR` rebuilds report.html from events.jsonl and summary.json, the same
    bytes as the run wrote; a directory without them, or a log that is not dmemu's, is a
    one-line error naming the file (and line), exit 2."""
    out = tmp_path / "out"
    assert (
        main(["run", str(ROOT / "scenarios" / "quickstart.yaml"), "--quiet", "--out", str(out)])
        == 0
    )
    first = (out / "report.html").read_bytes()
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").read_bytes() == first
    capsys.readouterr()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no summary.json or conformance.json" in capsys.readouterr().err
    with (out / "events.jsonl").open("a") as log:
        log.write("{not json\n")
    lines = len((out / "events.jsonl").read_text().splitlines())
    assert main(["report", str(out)]) == 2
    assert f"events.jsonl:{lines}: not an event of dmemu's log" in capsys.readouterr().err


def test_conformance_evidence_comes_with_the_device_events_around_it(tmp_path: Path) -> None:
    """A check's evidence (a request with its headers redacted, a SyncML excerpt) is shown
    with the events of the device it names within 10 minutes of it, from the events.jsonl
    `dmemu conformance --out` writes beside conformance.json."""
    from emulator.clock import iso
    from emulator.reports.html import write_conformance_report
    from emulator.reports.write import event_line

    at = 1_767_225_600_000
    evidence = {
        "t": iso(at),
        "device": "dev-1",
        "request": "POST /?token=x",
        "headers": {"Authorization": "Bearer ***"},
        "message": "<SyncML>\n<SyncHdr/>\n</SyncML>",
        "rule": "push after 410",
    }
    check = {"id": "B2", "level": "MUST", "verdict": "failed", "title": "no push after 410"}
    check |= {"reason": "1 push after 410", "sources": ["WNSHDR"], "evidence": [evidence]}
    (tmp_path / "conformance.json").write_text(
        json.dumps({"server": "http://x", "passed": False, "checks": [check]})
    )
    events = [
        {"t_ms": at - 60_000, "event": "device.channel_expired", "device_id": "dev-1"},
        {"t_ms": at + 5 * 60_000, "event": "session.start", "device_id": "dev-1"},
        {"t_ms": at + 60 * 60_000, "event": "session.start", "device_id": "dev-1"},  # too far
        {"t_ms": at, "event": "session.start", "device_id": "dev-2"},  # another device
    ]
    (tmp_path / "events.jsonl").write_text("".join(map(event_line, events)))
    page = write_conformance_report(tmp_path).read_text()
    assert "the device's events around it (2)" in page
    assert "device.channel_expired" in page
    assert "Bearer ***" in page
    assert "<pre>&lt;SyncML&gt;" in page
