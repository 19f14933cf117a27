"""Every command the README shows works as written: its shell blocks run here, in order, in
one bash session (a fresh directory that sees the repository's scenarios/ and emulator/),
with `dmemu` on PATH as the README assumes. The only liberty taken: after a line that starts
a server in the background (`... --port N ... &`), the script waits for port N to answer
before the next line, as a person would before typing it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<how>[^>]*?) -->\n)?```sh\n(?P<body>.*?)```", re.S)
PORT = re.compile(r"--port (\d+)\b")

WAIT = """for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.1
done
"""


def blocks() -> list[tuple[str, str]]:
    return [(m["how"] or "", m["body"]) for m in BLOCK.finditer(README)]


def script(body: str) -> str:
    out = []
    for line in body.splitlines():
        out.append(line)
        command = line.split(" #", 1)[0].rstrip()
        if command.endswith("&") and (port := PORT.search(command)):
            out.append(WAIT.format(port=port.group(1)))
    return "\n".join(out)


def test_every_shell_block_says_how_it_is_tested() -> None:
    """A shell block without its readme-test note would be a command nothing runs."""
    hows = [how for how, _ in blocks()]
    assert hows
    assert all(hows), "a README shell block lacks its <!-- readme-test: ... --> note"
    assert set(hows) <= {"run", "make demo (make test is the suite that runs this check)"}


@pytest.mark.timeout(420)
def test_readme_commands_work_as_written(tmp_path: Path) -> None:
    for name in ("scenarios", "emulator"):
        (tmp_path / name).symlink_to(ROOT / name)
    dmemu = shutil.which("dmemu", path=str(Path(sys.executable).parent))
    assert dmemu, "dmemu is not installed beside this Python (make test installs it)"
    steps = [script(body) for how, body in blocks() if how == "run"]
    text = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
    text += "\n".join(steps)
    done = subprocess.run(
        ["bash", "-c", text],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "PATH": f"{Path(dmemu).parent}{os.pathsep}{os.environ['PATH']}"},
    )
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
    assert "ok (quickstart: 22 devices" in out  # dmemu validate
    assert out.count("PASSED") >= 4  # run offline-31-days, conformance x2, run vs. the server
    assert "the server under test must be configured with:" in out
    assert '"device_id": "phones-0000"' in out  # the standalone server kept its devices
    assert '"action": "unreachable"' in out  # the admin push after the run: 502, said why
    assert "X-WNS-Status: received" in out  # the fake WNS curl session
    assert "HTTP/1.1 401" in out
    assert (tmp_path / "out" / "conformance.json").exists()
    enrolled = (tmp_path / "out" / "enrolled" / "events.jsonl").read_text()
    assert '"event":"device.enrolled"' in enrolled  # into the standalone server over HTTPS
    assert '"event":"session.start"' in enrolled
    assert (tmp_path / "out" / "enrolled-conformance" / "conformance.json").exists()


@pytest.mark.timeout(120)
def test_make_demo_runs_the_quickstart() -> None:
    """The quick start's first command: the quickstart scenario against the reference server,
    its report printed and written (`make test`, the second, is this suite)."""
    assert (ROOT / ".venv" / "bin" / "dmemu").exists(), "make test creates .venv first"
    done = subprocess.run(["make", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "PASSED" in done.stdout
    assert (ROOT / "reports" / "quickstart" / "summary.json").exists()
    said = [line for line in done.stdout.splitlines() if not line.startswith("make")]
    last = said[-1]  # make's own "Leaving directory" when run from make test
    assert last.startswith("report: reports/quickstart/report.html"), last
    assert (ROOT / "reports" / "quickstart" / "report.html").exists()


def test_readme_links_resolve_and_reach_the_docs() -> None:
    """Users never see the steering repository: the protocol decisions, the conformance
    checks and the event catalogue are the project's own docs/, linked from the README, and
    every relative link of the README and of docs/ names a file that exists."""
    for page in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        text = page.read_text(encoding="utf-8")
        assert "../shared" not in text, page
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (page.parent / target).exists(), f"{page.name}: {target}"
    for doc in ("protocol-decisions.md", "conformance.md", "events.md"):
        assert f"(docs/{doc})" in README
    assert "(LICENSE)" in README
    assert "(CHANGELOG.md)" in README


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation but ``-`` and ``_``
    dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_contents_name_every_section() -> None:
    """The README's table of contents links every section (## and ###, but itself) by an
    anchor that exists, so a reader lands where the entry says."""
    headings = re.findall(r"^(#{2,3}) (.+)$", README, flags=re.MULTILINE)
    anchors = {_slug(text) for _, text in headings}
    contents = README.split("## Contents", 1)[1].split("\n## ", 1)[0]
    linked = re.findall(r"\]\(#([^)]+)\)", contents)
    assert set(linked) <= anchors, set(linked) - anchors
    wanted = {_slug(text) for _, text in headings if text != "Contents"}
    assert wanted <= set(linked), wanted - set(linked)
