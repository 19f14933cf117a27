"""``report.html``: one self-contained page per run or conformance run (issue 20).

Owns: building the page from what a run wrote (``events.jsonl`` read once, as a stream, and
``summary.json``; or ``conformance.json``): the header and verdicts as HTML, the charts'
data (:mod:`emulator.reports.figures`, small whatever the fleet), the per-device lanes
gzip-compressed and base64-embedded (the page inflates them when they are first shown, with
the browser's own DecompressionStream), plotly.js inlined so nothing is fetched at view
time, and the page's own script and style (``assets/``).
Must not: compute verdicts (the summary and conformance.json carry them).
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from emulator.clock import parse_iso
from emulator.reports.figures import RunFigures

REPORT = "report.html"


class ReportError(Exception):
    """The directory holds nothing a report can be built from."""


@cache
def _asset(name: str) -> str:
    return resources.files("emulator.reports").joinpath("assets", name).read_text("utf-8")


@cache
def _plotly() -> str:
    """plotly.js, minified, as the plotly package ships it (no CDN: the page works offline)."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def _json_script(element_id: str, data: Any) -> str:
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return f'<script id="{element_id}" type="application/json">{text}</script>'


def _packed(data: Any) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def _page(title: str, body: str, scripts: str, *, charts: bool) -> str:
    plotly = f"<script>{_plotly()}</script>" if charts else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_asset('report.css')}</style></head>"
        f"<body>{body}{plotly}{scripts}<script>{_asset('report.js')}</script></body></html>\n"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: {exc}") from None
    return data


def write_report(out: Path) -> Path:
    """``out/report.html`` from a run's or a conformance run's files; raises ReportError."""
    if (out / "summary.json").is_file():
        return write_run_report(out)
    if (out / "conformance.json").is_file():
        return write_conformance_report(out)
    raise ReportError(f"{out}: no summary.json or conformance.json to build a report from")


# -- a run ----------------------------------------------------------------------------------
def run_figures(out: Path, summary: dict[str, Any]) -> RunFigures:
    try:
        scenario = summary["scenario"]
        figures = RunFigures(
            parse_iso(scenario["start"]), parse_iso(scenario["end"]), list(scenario["groups"])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{out / 'summary.json'}: not a dmemu run summary ({exc})") from None
    log = out / "events.jsonl"
    if log.is_file():
        with log.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                try:
                    event = json.loads(line)
                    figures.feed(event)
                except (ValueError, KeyError, TypeError) as exc:
                    raise ReportError(
                        f"{log}:{number}: not an event of dmemu's log: {exc}"
                    ) from None
    figures.finish()
    return figures


def write_run_report(out: Path) -> Path:
    summary = _read_json(out / "summary.json")
    figures = run_figures(out, summary)
    scenario = summary["scenario"]
    title = f"dmemu report: {scenario['name']}"
    scripts = _json_script("figures", figures.aggregates()) + (
        f'<script id="lanes-data" type="application/octet-stream">'
        f"{_packed(figures.lanes_data())}</script>"
    )
    path = out / REPORT
    path.write_text(_page(title, _run_body(summary), scripts, charts=True), encoding="utf-8")
    return path


def _run_body(summary: dict[str, Any]) -> str:
    s, e = summary["scenario"], html.escape
    passed = summary.get("passed")
    verdict = "PASSED" if passed else "FAILED"
    if not summary.get("complete", True):
        verdict += " (incomplete: stopped early)"
    pushes, sessions = summary.get("pushes", {}), summary.get("sessions", {})
    facts = [
        ("scenario", f"{s['name']} (seed {s['seed']})"),
        ("devices", f"{s['devices']:,} in {len(s['groups'])} groups"),
        ("virtual time", f"{s['start']} to {s['end']} ({s['days']:g} days)"),
        ("server", summary.get("server", "")),
        ("pushes", f"{pushes.get('sent', 0):,} sent"),
        ("sessions", f"{sessions.get('started', 0):,} started"),
    ]
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in facts)
    expectations = "".join(_expectation(x) for x in summary.get("expectations", []))
    return f"""
<header class="{"pass" if passed else "fail"}">
  <h1>{e(s["name"])} <span class="verdict">{e(verdict)}</span></h1>
  <table class="facts">{rows}</table>
</header>
<nav><a href="#overview">Overview</a><a href="#expectations">Expectations</a>
<a href="#devices">Devices</a></nav>
<main>
<section id="overview"><h2>Over virtual time</h2>
  <h3>Channels by group: valid, unreachable (WNS connection down), expired</h3>
  <div id="chart-states" class="grid"></div>
  <h3>Pushes per day, by WNS outcome</h3><div id="chart-pushes" class="chart"></div>
  <h3>Sessions per day, by trigger</h3><div id="chart-sessions" class="chart"></div>
  <h3>Push to session latency</h3><div id="chart-latency" class="chart"></div>
  <h3>Devices off WNS: Battery Saver, Data Sense, offline</h3>
  <div id="chart-offline" class="chart"></div>
</section>
<section id="expectations"><h2>Expectations</h2>
  <table class="checks"><thead><tr><th>verdict</th><th>expectation</th><th>detail</th>
  </tr></thead><tbody>{expectations}</tbody></table>
</section>
<section id="devices"><h2>Devices</h2>
  <p class="legend">Each lane: channels (green valid, grey renewed, red expired, purple
  revoked), WNS connection down (amber: Battery Saver, blue: Data Sense, dark: offline or
  no internet), pushes (ticks, by status), and sessions (dots, by trigger; a line joins a
  push to the session it started, by Msg-ID). Hover for times, Msg-IDs and SessionIDs.</p>
  <input id="search" type="search" placeholder="search a device id" autocomplete="off">
  <span id="found"></span>
  <div id="lanes"><p class="loading">loading lanes ...</p></div>
  <div id="pager"></div>
</section>
</main>"""


def _expectation(x: dict[str, Any]) -> str:
    e = html.escape
    evidence = x.get("evidence") or []
    details = ""
    if evidence:
        items = "".join(
            f"<li><code>{e(json.dumps(v, sort_keys=True))}</code></li>" for v in evidence
        )
        details = (
            f"<details><summary>evidence ({len(evidence)})</summary><ul>{items}</ul></details>"
        )
    verdict = "pass" if x.get("passed") else "fail"
    return (
        f'<tr class="{verdict}"><td class="verdict">{verdict.upper()}</td>'
        f"<td>{e(str(x.get('name', x.get('kind', ''))))}</td>"
        f"<td>{e(str(x.get('detail', '')))}{details}</td></tr>"
    )


# -- a conformance run ------------------------------------------------------------------------
#: the device events shown around a piece of conformance evidence
AROUND_MS, AROUND_MAX = 10 * 60_000, 12


def _context(out: Path, checks: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The run's events (``events.jsonl``, when written) of the devices the evidence names."""
    devices = {
        item.get("device")
        for c in checks
        for item in c.get("evidence") or []
        if isinstance(item, dict) and item.get("device")
    }
    log = out / "events.jsonl"
    found: dict[str, list[dict[str, Any]]] = {d: [] for d in devices if isinstance(d, str)}
    if not found or not log.is_file():
        return found
    with log.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("device_id") in found:
                found[event["device_id"]].append(event)
    return found


def _around(item: Any, context: dict[str, list[dict[str, Any]]]) -> str:
    """The device's events within 10 minutes of a piece of evidence, as a folded table."""
    if not isinstance(item, dict) or item.get("device") not in context or "t" not in item:
        return ""
    try:
        at = parse_iso(str(item["t"]))
    except ValueError:
        return ""
    near = [ev for ev in context[item["device"]] if abs(ev["t_ms"] - at) <= AROUND_MS]
    if not near:
        return ""
    near = sorted(near, key=lambda ev: abs(ev["t_ms"] - at))[:AROUND_MAX]
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(str(ev.get('t', '')))}</td><td>{e(ev['event'])}</td><td>"
        + e(", ".join(f"{k}={v}" for k, v in sorted(ev.items()) if k not in _PLAIN))
        + "</td></tr>"
        for ev in sorted(near, key=lambda ev: ev["t_ms"])
    )
    return (
        f"<details><summary>the device's events around it ({len(near)})</summary>"
        f'<table class="evidence">{rows}</table></details>'
    )


_PLAIN = frozenset({"t", "t_ms", "event", "device_id"})


def write_conformance_report(out: Path) -> Path:
    data = _read_json(out / "conformance.json")
    context = _context(out, data.get("checks", []))
    e = html.escape
    counts = data.get("counts", {})
    shown = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    passed = data.get("passed")
    rows = "".join(_check(c, context) for c in data.get("checks", []))
    notes = "".join(f"<li>{e(n)}</li>" for n in data.get("notes", []))
    body = f"""
<header class="{"pass" if passed else "fail"}">
  <h1>Conformance of {e(str(data.get("server", "")))}
  <span class="verdict">{"PASSED" if passed else "FAILED"}</span></h1>
  <p>{e(shown)}{" (strict: SHOULDs count)" if data.get("strict") else ""}</p>
  {f'<ul class="notes">{notes}</ul>' if notes else ""}
</header>
<main><section id="checks"><h2>Checks</h2>
<input id="search" type="search" placeholder="filter checks" autocomplete="off">
<table class="checks"><thead><tr><th>id</th><th>level</th><th>verdict</th><th>check</th>
<th>reason and evidence</th><th>sources</th></tr></thead><tbody>{rows}</tbody></table>
</section></main>"""
    title = f"dmemu conformance: {data.get('server', '')}"
    path = out / REPORT
    path.write_text(_page(title, body, "", charts=False), encoding="utf-8")
    return path


def _check(c: dict[str, Any], context: dict[str, list[dict[str, Any]]]) -> str:
    e = html.escape
    verdict = str(c.get("verdict", ""))
    details = _evidence_list(c.get("evidence") or [], context)
    sources = ", ".join(e(s) for s in c.get("sources", []))
    return (
        f'<tr class="{e(verdict)}" data-id="{e(str(c.get("id", "")))}">'
        f"<td>{e(str(c.get('id', '')))}</td><td>{e(str(c.get('level', '')))}</td>"
        f'<td class="verdict">{e(verdict)}</td>'
        f"<td>{e(str(c.get('title', '')))}<br><small>provoked by "
        f"{e(str(c.get('provoked_by', '')))}</small></td>"
        f"<td>{e(str(c.get('reason', '')))}{details}</td><td>{sources}</td></tr>"
    )


def _evidence_list(
    evidence: list[Any], context: dict[str, list[dict[str, Any]]] | None = None
) -> str:
    if not evidence:
        return ""
    items = "".join(_evidence(v) + _around(v, context or {}) for v in evidence)
    return f"<details><summary>evidence ({len(evidence)})</summary>{items}</details>"


def _evidence(item: Any) -> str:
    """One piece of evidence: a request (headers already redacted), a SyncML excerpt or a
    device event, each field on its line; long texts as preformatted blocks."""
    e = html.escape
    if not isinstance(item, dict):
        return f"<pre>{e(str(item))}</pre>"
    rows = []
    for key, value in item.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        cell = f"<pre>{e(text)}</pre>" if "\n" in text or len(text) > 100 else e(text)
        rows.append(f"<tr><th>{e(str(key))}</th><td>{cell}</td></tr>")
    return f'<table class="evidence">{"".join(rows)}</table>'
