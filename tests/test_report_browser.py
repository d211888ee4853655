"""The HTML report in a real browser: headless Chromium (Debian's package), driven over its
DevTools protocol. The page loads with no console error, every plot is there and drawn,
and hostile model text is shown as text: no script runs (a console canary proves it).
A screenshot is kept as a test artefact."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from tests.helpers import child_env, cli
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
            const drawn = img === null || (img.complete && img.naturalWidth > 300);
            return {key: f.dataset.plot, drawn: drawn};
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


# -- every plot has data, or says why it is left out ---------------------------------------

PLOTS_SEEN = """JSON.stringify([...document.querySelectorAll('section.run')].map(run => ({
  run: run.dataset.run,
  plots: [...run.querySelectorAll('figure.plot')].map(f => ({
    key: f.dataset.plot,
    series: JSON.parse(f.dataset.series),
    image: f.querySelector('img') === null ? null
      : {complete: f.querySelector('img').complete, width: f.querySelector('img').naturalWidth},
    leftOut: [...f.querySelectorAll('p.left-out')].map(p => p.textContent),
    caption: (f.querySelector('figcaption') || {}).textContent || '',
  })),
  attempts: [...run.querySelectorAll('section[id$="-attempts"] tbody tr')]
    .map(r => [...r.cells].map(c => c.textContent)),
})))"""
LEFT_OUT = re.compile(r"^\S.* — left out: \S.*\.$")
ONE_PLURAL = re.compile(r"(?<![\d,.])1 (steps|step positions|samples|attempts)\b|bins of 1 ")


def _until(db: Path, run_id: str, steps: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until `run_id` has committed more than `steps` steps."""
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, f"{run_id} committed {steps} steps in 60 s"
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            row = con.execute("SELECT next_step FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            con.close()
        except sqlite3.Error:
            row = None
        if row and row[0] > steps:
            return
        time.sleep(0.05)


@pytest.fixture
def six_runs(tmp_path: Path) -> Path:
    """A report of a chain, a batch, a graph of chains (multiply), a graph of one-step
    nodes (sum), a run of a few milliseconds, and a run killed with SIGKILL, resumed."""
    db = tmp_path / "six.db"
    store = ["--store", str(db), "--quiet"]
    chain = ["run", "hanoi", "--disks", "7", "--k", "3", "--run-id", "chain",
             "--model", "sim:error=0.1,flag=0.05,seed=1", *store]  # fmt: skip
    assert cli(*chain).returncode == 0
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"i{d}", "disks": d}) + "\n" for d in (3, 5, 6)))
    batch = ["run", "hanoi", "--items", str(items), "--k", "3", "--run-id", "batch",
             "--model", "sim:error=0.1,seed=2", *store]  # fmt: skip
    assert cli(*batch).returncode == 0
    graphs = (("multiply", "--digits", "12"), ("sum", "--numbers", "64"))
    for task, flag, value in graphs:
        done = cli("run", task, flag, value, "--run-id", task, "--model", "sim:error=0.02", *store)
        assert done.returncode == 0, done.stderr
    tiny = cli("run", "hanoi", "--disks", "3", "--run-id", "tiny", *store)
    assert tiny.returncode == 0
    killed = ["run", "hanoi", "--disks", "10", "--k", "3", "--run-id", "resumed",
              "--model", "sim:error=0.05,seed=3,latency=1", *store]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "unerring", *killed], env=child_env())
    try:
        _until(db, "resumed", 200, proc)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    resumed = cli("resume", "resumed", *store)
    assert resumed.returncode == 0, resumed.stderr
    out = tmp_path / "six.html"
    runs = ("chain", "batch", "multiply", "sum", "tiny", "resumed")
    done = cli("report", *runs, "--store", str(db), "-o", str(out), timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def test_every_plot_has_data_or_says_why_it_is_left_out(
    page: Page, six_runs: Path, tmp_path: Path
) -> None:
    page.open(six_runs.as_uri())
    runs = {r["run"]: r for r in json.loads(page.evaluate(PLOTS_SEEN))}
    page.screenshot(tmp_path / "six.png")
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "six.png", ARTIFACTS / "report-six-runs.png")
    assert list(runs) == ["chain", "batch", "multiply", "sum", "tiny", "resumed"]
    for name, run in runs.items():
        keys = [p["key"] for p in run["plots"]]
        assert keys == [*RUN_PLOTS, *(["items"] if name == "batch" else [])], name
        for plot in run["plots"]:
            where = f"{name}/{plot['key']}"
            for line in plot["leftOut"]:
                assert LEFT_OUT.match(line), (where, line)
            if plot["image"] is None:  # nothing drawn: every panel says why
                assert plot["series"] == [] and plot["leftOut"], where
                continue
            assert plot["image"]["complete"] and plot["image"]["width"] > 300, where
            # drawn: every panel has a series, and every series has marks on it
            assert plot["series"], where
            for panel, series in plot["series"]:
                assert series, (where, panel)
                assert all(n > 0 for n in series.values()), (where, panel, series)
            # plurals agree, and a bin of one step is not called a bin
            assert not ONE_PLURAL.search(plot["caption"]), where

    def seen(run: str, key: str) -> dict[str, Any]:
        return next(p for p in runs[run]["plots"] if p["key"] == key)

    def panels(run: str, key: str) -> dict[str, dict[str, int]]:
        return {panel: series for panel, series in seen(run, key)["series"]}

    # a graph of one-step nodes: nothing over the steps, and it says so
    for key, panel in (("samples", "Samples per step, over the steps"),
                       ("margins", "Contested steps over the steps")):  # fmt: skip
        assert f"{panel} — left out: every node is one step" in " ".join(
            seen("sum", key)["leftOut"]
        )
    # a short chain: one point per step (a bin of one step has no maximum of its own)
    assert panels("tiny", "samples")["Samples per step, over the steps"] == {"drawn": 7}
    # a longer one: bins of several steps, with the mean and the maximum of each
    over = panels("resumed", "samples")["Samples per step, over the steps"]
    assert set(over) == {"mean per bin", "max per bin"} and over["mean per bin"] >= 50
    # fast simulated runs have hiccups of milliseconds, never a stall
    for name in runs:
        throughput = panels(name, "progress").get("Throughput", {})
        assert "stall" not in throughput, name
    # the chain has red flags drawn, the tiny run has none and says so
    assert panels("chain", "red_flags")["Red flags by kind over the steps"]
    assert seen("tiny", "red_flags")["leftOut"] == [
        "Red flags by kind over the steps — left out: no red flags in this run."
    ]
    # the attempt killed with SIGKILL was interrupted (as `runs` says), not running
    attempts = runs["resumed"]["attempts"]
    assert [row[4] for row in attempts] == ["interrupted", "completed"], attempts
    console = page.console()
    assert not [c for c in console if c[0] in ("error", "exception", "assert")], console
