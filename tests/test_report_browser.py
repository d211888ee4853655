"""The HTML report in a real browser: headless Chromium (Debian's package), driven over its
DevTools protocol. The page loads with no console error, every plot is there and drawn,
and hostile model text is shown as text: no script runs (a console canary proves it).
A screenshot is kept as a test artefact."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from tests.helpers import cli
from tests.report_helpers import CANARY, HOSTILE, hostile_journal

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-allow-origins=*",
    "--window-size=1280,1600",
)
RUN_PLOTS = ("progress", "samples", "margins", "red_flags", "usage", "transport")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "headless Chromium is missing: apt-get install -y chromium chromium-driver "
        "(.ci/run installs it)"
    )


class Page:
    """One browser tab over the DevTools protocol; keeps every event it hears."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.events: list[dict[str, Any]] = []
        self._id = 0

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            self.events.append(msg)

    def wait(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            assert time.monotonic() < deadline, f"no {method} within {timeout} s"
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait("Page.loadEventFired")
        time.sleep(0.3)  # late console messages and exceptions
        self.evaluate("1")  # reads what arrived meanwhile

    def console(self) -> list[tuple[str, str]]:
        """(level, text) of every console message, exception and log entry heard."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
                out.append((p["type"], text))
            elif e.get("method") == "Runtime.exceptionThrown":
                out.append(("exception", json.dumps(p["exceptionDetails"])))
            elif e.get("method") == "Log.entryAdded":
                out.append((p["entry"]["level"], p["entry"]["text"]))
        return out

    def screenshot(self, path: Path) -> None:
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.send(
            "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
        )
        import base64

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    profile = tmp_path / "chromium-profile"
    log = (tmp_path / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [_chromium(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0"],
        stdout=log,
        stderr=log,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert proc.poll() is None, (tmp_path / "chromium.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        tab = next(t for t in targets if t["type"] == "page")
        p = Page(tab["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Page"):
            p.send(f"{domain}.enable")
        yield p
        p.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# a batch's item ids are the user's text: two of them are hostile
ITEM_IDS = (HOSTILE[0], HOSTILE[1], "plain", "four", "five")


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """A report of three runs: a hostile one, one with red flags, faults and a resume, and
    a batch whose item ids are hostile, stopped by its budget with items left."""
    db = hostile_journal(tmp_path / "runs.db")
    run = ["run", "hanoi", "--disks", "6", "--k", "3", "--store", str(db), "--run-id", "busy",
           "--model", "sim:error=0.1,flag=0.05,seed=3", "--inject-faults",
           "server_error=0.05", "--max-samples", "150", "--quiet"]  # fmt: skip
    assert cli(*run).returncode == 1  # stopped at its budget
    resumed = cli("resume", "busy", "--store", str(db), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(json.dumps({"id": i, "disks": 3 + n}) + "\n" for n, i in enumerate(ITEM_IDS))
    )
    batch = ["run", "hanoi", "--items", str(items), "--k", "3", "--store", str(db),
             "--run-id", "bat", "--model", "sim:error=0.1,flag=0.05,seed=5",
             "--max-samples", "400", "--quiet"]  # fmt: skip
    assert cli(*batch).returncode == 1  # stopped at its budget, some items not completed
    out = tmp_path / "report.html"
    done = cli("report", "hostile", "busy", "bat", "--store", str(db), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_the_report_loads_clean_and_shows_hostile_text_as_text(
    page: Page, report: Path, tmp_path: Path
) -> None:
    # the page stays small, although one response was 1 MB
    assert report.stat().st_size < 2_000_000
    page.open(report.as_uri())
    state = page.evaluate(
        """JSON.stringify({
          plots: [...document.querySelectorAll('figure.plot')].map(f => {
            const img = f.querySelector('img');
            return {key: f.dataset.plot, drawn: img.complete && img.naturalWidth > 300};
          }),
          scripts: document.querySelectorAll('script').length,
          foreignImages: [...document.images].filter(i => !i.src.startsWith('data:')).length,
          handlers: [...document.querySelectorAll('*')]
            .filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
          samples: [...document.querySelectorAll('pre.sample')].map(p => p.textContent),
          text: document.body.innerText.length,
          runs: [...document.querySelectorAll('section.run')].map(s => s.dataset.run),
          items: [...document.querySelectorAll('section[id$="-items"] tbody tr')]
            .map(r => [...r.cells].map(c => c.textContent)),
        })"""
    )
    state = json.loads(state)
    shot = tmp_path / "report.png"
    page.screenshot(shot)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report-browser.png")
    print(f"screenshot: {shot} and {ARTIFACTS / 'report-browser.png'}")

    assert state["runs"] == ["hostile", "busy", "bat"]
    keys = [p["key"] for p in state["plots"]]
    assert keys == [*RUN_PLOTS, *RUN_PLOTS, *RUN_PLOTS, "items", "failures"]
    assert all(p["drawn"] for p in state["plots"]), state["plots"]
    assert state["scripts"] == 0 and state["foreignImages"] == 0 and state["handlers"] == 0
    # the hostile responses are on the page, as the text they are
    shown = "\n".join(state["samples"])
    assert HOSTILE[0] in shown and HOSTILE[1] in shown
    assert "\\x1b[2J" in shown and "\\u202e" in shown  # control characters made visible
    assert "more characters]" in shown  # the 1 MB response, cut
    # the batch's items, one row each, hostile ids shown as the text they are
    assert [row[0] for row in state["items"]] == list(ITEM_IDS)
    assert {row[1] for row in state["items"]} >= {"completed", "stopped"}
    assert state["text"] < 300_000
    console = page.console()
    assert not [c for c in console if CANARY in c[1]], console
    assert not [c for c in console if c[0] in ("error", "exception", "assert")], console


def test_the_canary_would_be_heard(page: Page, tmp_path: Path) -> None:
    """The harness hears a script that runs: the clean result above means something."""
    bad = tmp_path / "unescaped.html"
    bad.write_text(f"<!DOCTYPE html><html><body><p>{HOSTILE[0]}{HOSTILE[1]}</p></body></html>")
    page.open(bad.as_uri())
    heard = [c for c in page.console() if CANARY in c[1]]
    assert len(heard) == 2 and all(level == "error" for level, _ in heard)
