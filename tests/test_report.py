"""`unerring report`: aggregates that add up to the journal step by step, a self-contained
page, a run still going, and bad input (one line, exit 2, nothing half-written)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from tests.helpers import child_env, cli, one_line_error, run_task
from tests.report_helpers import hostile_journal
from unerring.analysis.records import build
from unerring.app.options import BatchItem
from unerring.backends.factory import Transport
from unerring.backends.resilience import RetryPolicy
from unerring.cli.main import main
from unerring.journal import writer as writer_module
from unerring.journal.store import RunRecord, Store
from unerring.journal.writer import Durability
from unerring.reporting import aggregate as aggregate_module
from unerring.reporting import html_report, plots
from unerring.reporting.aggregate import Items, aggregate
from unerring.reporting.over_steps import MAX_GROUPS, MIN_GROUP_STEPS, over_steps
from unerring.reporting.pace import Spans, merged, stalls
from unerring.tasks.registry import resolve
from unerring.voting.config import Budget

PLOTS = ("progress", "samples", "margins", "red_flags", "usage", "transport", "failures")


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-disk run with red flags, contested steps and transport faults, resumed once."""
    db = tmp_path_factory.mktemp("report") / "runs.db"
    options = dict(
        task="hanoi", task_options={"disks": 6}, model="sim:error=0.15,flag=0.05,seed=4", k=3
    )
    transport = Transport(faults="server_error=0.05", retry=RetryPolicy(base_s=0.001, cap_s=0.01))
    first = dict(store=str(db), transport=transport, budget=Budget(max_samples=120))
    assert run_task(**options, **first, run_id="r").outcome.status == "stopped"
    second = dict(store=str(db), transport=transport)
    assert run_task(**options, **second, run_id="r", resume=True).outcome.status == "completed"
    return db


def _naive(store: Store, run_id: str) -> dict[str, Any]:
    """Everything the aggregates hold, computed one step at a time from the journal."""
    run = store.get_run(run_id)
    assert run is not None
    out: dict[str, Any] = {"samples": Counter(), "tallies": Counter(), "flags": Counter()}
    steps = []
    for d in store.decisions(run):
        votes = json.loads(d["votes"])
        out["samples"][d["samples"]] += 1
        out["tallies"][(votes[0], sum(votes[1:]))] += 1
        for kind, c in json.loads(d["flags"] or "{}").items():
            out["flags"][kind] += c
        steps.append(d)
    out["steps"] = steps
    return out


def test_aggregates_add_up_to_the_journal_step_by_step(journal: Path) -> None:
    store = Store(str(journal), read_only=True)
    run = store.get_run("r")
    assert run is not None
    naive = _naive(store, "r")
    agg = aggregate(store, run, max_bins=7)
    steps = naive["steps"]
    assert agg.decided == len(steps) == 63
    assert agg.samples == sum(d["samples"] for d in steps) == run.stats["samples"]
    # the run's totals also hold what the budget's cut threw away (paid, never voted)
    thrown = store.conn.execute(
        "SELECT coalesce(sum(prompt_tokens), 0) FROM discarded WHERE run = ?", (run.id,)
    ).fetchone()[0]
    assert agg.prompt_tokens == run.stats["prompt_tokens"] - thrown
    assert agg.samples_hist == dict(naive["samples"])
    assert agg.tallies == dict(naive["tallies"])
    assert agg.flags == dict(naive["flags"]) and agg.flags  # this run has red flags
    assert sum(len(v) for v in agg.transport.values()) == run.stats["transport_failures"] > 0
    # the resume point is a bin edge; bins stay within the bound (plus attempt edges)
    assert len(agg.attempts) == 2
    resume = agg.attempts[1].first_step
    assert resume in agg.bins.edges and len(agg.bins.edges) <= 7 + 1
    # per bin: the sums, and the clock (attempt start + elapsed so far in that attempt)
    edges = [*agg.bins.edges.tolist(), agg.bins.end]
    for i in range(len(edges) - 1):
        inside = [d for d in steps if edges[i] <= d["step"] < edges[i + 1]]
        assert agg.bins.steps[i] == len(inside)
        assert agg.bins.samples[i] == sum(d["samples"] for d in inside)
        assert agg.bins.samples_max[i] == max(d["samples"] for d in inside)
        assert agg.bins.contested[i] == sum(len(json.loads(d["votes"])) > 1 for d in inside)
        flags: Counter[str] = Counter()
        for d in inside:
            flags.update(json.loads(d["flags"] or "{}"))
        assert {k: int(v[i]) for k, v in agg.bins.flags.items() if v[i]} == dict(flags)
        attempt = agg.attempts[1] if edges[i] >= resume else agg.attempts[0]
        lo = attempt.first_step
        clock = sum(d["elapsed"] for d in steps if lo <= d["step"] < edges[i + 1])
        assert agg.bins.t_end[i] == pytest.approx(attempt.start_s + clock, abs=1e-6)
    assert agg.plan is not None and agg.plan.samples_per_step > 3


def test_bins_are_bounded_however_long_the_run(tmp_path: Path) -> None:
    db = tmp_path / "long.db"
    options = dict(task="hanoi", task_options={"disks": 12}, model="sim:error=0.01", k=2)
    run_task(**options, store=str(db), run_id="long")
    store = Store(str(db), read_only=True)
    run = store.get_run("long")
    assert run is not None
    agg = aggregate(store, run, max_bins=100)
    assert len(agg.bins.edges) <= 100
    assert int(agg.bins.steps.sum()) == 4095
    assert np.all(np.diff(agg.bins.t_end) >= 0)  # one attempt: time only goes forward


def test_the_page_is_self_contained_with_every_plot(
    journal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "r", "--store", str(journal), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert re.findall(r'data-plot="([a-z_]+)"', page) == list(PLOTS)
    assert page.count('src="data:image/png;base64,') == len(PLOTS)
    ids = re.findall(r'id="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # every anchor names one place
    assert "<script" not in page.lower()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # offline: nothing refers to the network
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "resume 2" not in page  # plot labels are pixels, not text: no marks per step
    assert len(page) < 1_000_000


def test_hostile_text_is_escaped_and_bounded(tmp_path: Path) -> None:
    db = hostile_journal(tmp_path / "h.db")
    out = tmp_path / "h.html"
    assert main(["report", "hostile", "--store", str(db), "-o", str(out)]) == 0
    page = out.read_text()
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;console.error(&#x27;CANARY&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;" in page
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", page)
    assert "\\x1b[2J" in page and "\\u202e" in page
    assert len(page) < 1_000_000  # a 1 MB response does not make a 1 MB page


def test_a_run_still_going_is_reported_as_committed(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "unerring", "run", "hanoi", "--disks", "14", "--store", str(db),
         "--run-id", "live", "--model", "sim:error=0.01,latency=1", "--quiet"],
        env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the run committed nothing in 60 s"
            if db.exists():
                try:
                    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                    row = conn.execute("SELECT next_step FROM runs").fetchone()
                    conn.close()
                except sqlite3.Error:
                    row = None
                if row and row[0] > 50:
                    break
            time.sleep(0.1)
        out = tmp_path / "live.html"
        done = cli("report", "live", "--store", str(db), "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert proc.poll() is None  # still going while it was reported
        page = out.read_text()
        assert "This run is still going" in page
        found = re.search(r"<th>steps decided</th><td>([\d,]+) of", page)
        assert found is not None
        decided = int(found[1].replace(",", ""))
        assert 50 < decided < 16383
    finally:
        proc.kill()
        proc.wait()


def test_a_chain_has_no_items_section_and_no_tree(journal: Path) -> None:
    store = Store(str(journal), read_only=True)
    report = html_report.failure_patterns(store, ["r"], resolve=resolve)
    view = html_report._view(store, "r", 1, report, resolve)
    assert html_report.items_section(view) is None
    assert html_report.tree_section(view) is None
    assert html_report.items_section in html_report.RUN_SECTIONS
    assert html_report.tree_section in html_report.RUN_SECTIONS


def test_a_graph_report_summarises_its_task_tree(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    done = cli("run", "sort", "--numbers", "12", "--store", str(db), "--run-id", "g", "--json")
    assert done.returncode == 0, done.stderr
    store = Store(str(db), read_only=True)
    report = html_report.failure_patterns(store, ["g"], resolve=resolve)
    view = html_report._view(store, "g", 1, report, resolve)
    section = html_report.tree_section(view)
    assert section is not None and section.title == "Task tree"
    html = section.html
    # 12 numbers: 11 cuts, each expanding into two halves and a merge: 34 nodes
    assert "<th>nodes</th><td>34</td>" in html
    assert "<th>result correct</th><td>yes</td>" in html  # as its end kept it
    assert "merge 11, sort 23" in html
    # the width is the most nodes at one depth; every node is decided
    rows = re.findall(r"<tr><td>(\d+)</td><td class=\"n\">(\d+)</td>", html)
    assert sum(int(n) for _, n in rows) == 34
    assert f"<td>{max(int(n) for _, n in rows)}</td>" in html
    assert "pending" not in html and "failed" not in html
    # every node's decisions are the run's steps: drawn over the nodes, on the commits' clock
    run = store.get_run("g")
    assert run is not None
    agg = view.agg
    assert agg.many and agg.items is None and agg.timeline is not None
    assert agg.decided == run.stats["steps_decided"] > 34
    assert agg.samples == run.stats["samples"]
    assert int(agg.timeline.steps.sum()) == agg.decided
    out = tmp_path / "g.html"
    assert main(["report", "g", "--store", str(db), "-o", str(out)]) == 0
    page = out.read_text()
    assert f"{agg.decided:,} steps decided over its nodes" in page
    slow = page[page.index('id="run1-slowest"') :]
    assert "<th>item</th><th>step</th>" in slow[: slow.index("</section>")]


# -- bad input ------------------------------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_an_unknown_run_is_one_line_and_writes_nothing(journal: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    out.write_text("the previous report")
    done = cli("report", "r", "nope", "--store", str(journal), "-o", str(out))
    assert done.returncode == 2
    assert "no run 'nope'" in one_line_error(done.stderr)
    assert out.read_text() == "the previous report" and not _leftovers(tmp_path)


@pytest.mark.parametrize(
    ("where", "words"),
    [("missing/r.html", "cannot write"), (".", "is a directory")],
)
def test_an_output_that_cannot_be_written(
    journal: Path, tmp_path: Path, where: str, words: str
) -> None:
    done = cli("report", "r", "--store", str(journal), "-o", str(tmp_path / where))
    assert done.returncode == 2 and words in one_line_error(done.stderr)
    assert not _leftovers(tmp_path)


def test_a_store_that_is_not_a_journal(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database " * 20)
    done = cli("report", "r", "--store", str(text), "-o", str(tmp_path / "r.html"))
    assert done.returncode == 2 and "not an unerring store" in one_line_error(done.stderr)
    done = cli("report", "r", "--store", str(tmp_path / "none.db"), "-o", str(tmp_path / "r.html"))
    assert done.returncode == 2 and "no store at" in one_line_error(done.stderr)
    assert not (tmp_path / "r.html").exists()


def test_a_missing_extra_names_it(journal: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "block" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('absent')\n")
    env = child_env()
    env["PYTHONPATH"] = f"{blocker.parent}:{env['PYTHONPATH']}"
    done = subprocess.run(
        [sys.executable, "-m", "unerring", "report", "r", "--store", str(journal),
         "-o", str(tmp_path / "r.html")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "pip install 'unerring[report]'" in one_line_error(done.stderr)
    assert not (tmp_path / "r.html").exists()


def test_a_failure_while_building_leaves_nothing(
    journal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(html_report, "build_report", broken)
    out = tmp_path / "r.html"
    assert main(["report", "r", "--store", str(journal), "-o", str(out)]) == 1
    assert not out.exists() and not _leftovers(tmp_path)


def test_flags_are_counted_by_kind_over_the_steps(journal: Path) -> None:
    store = Store(str(journal), read_only=True)
    run = store.get_run("r")
    assert run is not None
    by_kind: defaultdict[str, int] = defaultdict(int)
    for d in store.decision_rows(run):
        for kind, c in json.loads(d["flags"] or "{}").items():
            by_kind[kind] += c
    assert aggregate(store, run).flags == dict(by_kind) == run.stats["flags"]


def test_a_run_with_nothing_committed_yet(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    store = Store(str(db))
    store.create_run("empty", "hanoi", {"model": "sim:error=0.01", "k_resolved": 2}, 7)
    store.close()
    out = tmp_path / "e.html"
    assert main(["report", "empty", "--store", str(db), "-o", str(out)]) == 0
    page = out.read_text()
    assert re.findall(r'data-plot="([a-z_]+)"', page) == list(PLOTS)
    # nothing to draw: no image, and each panel left out says why, in the text
    assert "data:image/png" not in page
    assert page.count("— left out: no decision committed yet.") == 8
    assert "interrupted" in page  # marked running, but no writer holds it


# -- batches --------------------------------------------------------------------------

BATCH_PLOTS = (*PLOTS[:-1], "items", "failures")


@pytest.fixture(scope="module")
def batch_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A batch of 12 Hanoi items with red flags, contested steps and transport faults,
    stopped by its budget twice (two attempts; some items not completed)."""
    db = tmp_path_factory.mktemp("batch") / "runs.db"
    options = dict(
        task="hanoi", task_options={"disks": 3}, model="sim:error=0.15,flag=0.05,seed=4", k=3
    )
    batch = [BatchItem(f"i{n}", {"disks": 3 + n % 4}) for n in range(12)]
    transport = Transport(faults="server_error=0.05", retry=RetryPolicy(base_s=0.001, cap_s=0.01))
    for budget in (400, 900):
        session = dict(
            store=str(db), transport=transport, budget=Budget(max_samples=budget), window=4
        )
        resume = budget != 400
        done = run_task(**options, **session, run_id="b", batch=batch, resume=resume)
        assert done.outcome.status == "stopped", done.outcome.reason
        done.store.close()
    return db


def _batch_naive(store: Store, run: RunRecord) -> list[tuple[int, dict[str, Any]]]:
    return [(it.item, d) for it in store.items(run) for d in store.decisions(run, item=it.item)]


@pytest.mark.parametrize("chunk", [5, aggregate_module.CHUNK])
def test_a_batch_aggregates_over_its_items_step_by_step(
    batch_journal: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a small chunk: many items' blocks gathered, and cut, mid-way
    monkeypatch.setattr(aggregate_module, "CHUNK", chunk)
    store = Store(str(batch_journal), read_only=True)
    run = store.get_run("b")
    assert run is not None and run.kind == "batch"
    rows = _batch_naive(store, run)
    agg = aggregate(store, run, max_bins=9)
    assert agg.many and agg.bins.t_end is None
    assert agg.decided == len(rows) == run.stats["steps_decided"] > 0
    assert agg.samples == run.stats["samples"]
    assert agg.flags == run.stats["flags"] and agg.flags
    assert agg.samples_hist == dict(Counter(d["samples"] for _, d in rows))
    tallies: Counter[tuple[int, int]] = Counter()
    for _, d in rows:
        votes = json.loads(d["votes"])
        tallies[(votes[0], sum(votes[1:]))] += 1
    assert agg.tallies == dict(tallies)
    # bins over the step within each item, summed over the items
    assert agg.bins.end == max(it.next_step for it in store.items(run))
    edges = [*agg.bins.edges.tolist(), agg.bins.end]
    assert len(edges) - 1 <= 9
    for i in range(len(edges) - 1):
        inside = [d for _, d in rows if edges[i] <= d["step"] < edges[i + 1]]
        assert agg.bins.steps[i] == len(inside)
        assert agg.bins.samples[i] == sum(d["samples"] for d in inside)
        assert agg.bins.samples_max[i] == max((d["samples"] for d in inside), default=0)
        assert agg.bins.contested[i] == sum(len(json.loads(d["votes"])) > 1 for d in inside)
        assert agg.bins.elapsed[i] == pytest.approx(sum(d["elapsed"] for d in inside), abs=1e-5)
    slowest = sorted(((d["elapsed"], item, d["step"]) for item, d in rows), reverse=True)
    assert [(i, s) for _, i, s in agg.slowest] == [(i, s) for _, i, s in slowest[:10]]
    # the items, from their committed totals
    items = agg.items
    assert items is not None and items.count == 12
    assert items.by_status == {
        "completed": 0, "stopped": 0, "failed": 0, "pending": 0, **store.item_counts(run)
    }  # fmt: skip
    records = list(store.items(run))
    assert items.steps.tolist() == [it.stats.get("steps_decided", 0) for it in records]
    assert items.samples.tolist() == [it.stats.get("samples", 0) for it in records]
    assert int(items.steps.sum()) == agg.decided
    assert sum(len(v) for v in agg.transport.values()) == run.stats["transport_failures"] > 0


def test_a_batch_clock_is_its_commits_in_bounded_bins(batch_journal: Path) -> None:
    store = Store(str(batch_journal), read_only=True)
    run = store.get_run("b")
    assert run is not None
    commits = list(store.commits(run))
    attempts = store.attempts(run)
    assert len(attempts) == 2 and len(commits) >= 2
    # every commit lies within an attempt (the second one's too: a resume keeps counting)
    spans = [(a["started"], a["ended"]) for a in attempts]
    assert all(any(lo <= c[0] <= hi for lo, hi in spans) for c in commits)
    assert any(spans[1][0] <= c[0] for c in commits)
    for bins in (2, aggregate_module.MAX_BINS):
        agg = aggregate(store, run, max_bins=bins)
        line = agg.timeline
        assert line is not None and 1 <= len(line) <= max(bins, 1)
        # what the commits added is what the run holds
        assert int(line.steps.sum()) == agg.decided == run.stats["steps_decided"]
        assert int(line.samples.sum()) == run.stats["samples"]
        tokens = run.stats["prompt_tokens"] + run.stats["completion_tokens"]
        assert int(line.tokens.sum()) == tokens
        assert np.all(np.diff(line.t) >= 0)
        assert line.t[-1] == pytest.approx(commits[-1][0] - agg.start)
        assert agg.end_s >= float(line.t[-1])


@pytest.mark.parametrize("durability", ["group", "sync"])
def test_commit_times_are_kept_for_many_items_and_a_few_per_second(
    tmp_path: Path, durability: Durability
) -> None:
    # a chain's clock is its steps' own times: no rows; a batch's rows add up to its
    # totals, and with every decision its own commit (sync) they come a few per second
    db = tmp_path / "c.db"
    options = dict(task="hanoi", task_options={"disks": 6}, model="sim:error=0.05", k=2)
    session = dict(store=str(db), durability=durability, handle_signals=False)
    run_task(**options, **session, run_id="chain").store.close()
    batch = [BatchItem(str(i), {"disks": 6}) for i in range(8)]
    run_task(**options, **session, run_id="batch", batch=batch).store.close()
    store = Store(str(db), read_only=True)
    chain, many = store.get_run("chain"), store.get_run("batch")
    assert chain is not None and many is not None
    assert list(store.commits(chain)) == []
    rows = list(store.commits(many))
    assert sum(r[1] for r in rows) == many.stats["steps_decided"] == 8 * 63
    assert sum(r[2] for r in rows) == many.stats["samples"]
    wall = rows[-1][0] - rows[0][0]
    assert 1 <= len(rows) <= wall / writer_module.PROGRESS_EVERY_S + 2


def test_a_batch_progress_line_counts_every_step_once(batch_journal: Path, tmp_path: Path) -> None:
    store = Store(str(batch_journal), read_only=True)
    run = store.get_run("b")
    assert run is not None
    agg = aggregate(store, run)
    assert agg.timeline is not None
    x, y = plots.commit_line(agg, agg.timeline)
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) >= 0)
    assert y[0] == 0 and y[-1] == agg.decided
    # the second attempt starts where the first one's commits left off
    second = agg.attempts[1].start_s
    before = int(agg.timeline.steps[agg.timeline.t < second].sum())
    assert 0 < before < agg.decided and (second, before) in zip(x.tolist(), y.tolist(), strict=True)
    # a store that kept commit times only from its second attempt on (migrated mid-run):
    # the first attempt's steps count from the start, none is lost or counted twice
    db = tmp_path / "mid.db"
    con = sqlite3.connect(batch_journal)
    con.execute("VACUUM INTO ?", (str(db),))
    con.close()
    con = sqlite3.connect(db)
    con.execute("DELETE FROM commits WHERE time < ?", (agg.start + second,))
    con.commit()
    con.close()
    mid = Store(str(db), read_only=True)
    agg2 = aggregate(mid, run)
    assert agg2.timeline is not None and int(agg2.timeline.steps.sum()) == agg.decided - before
    _, y2 = plots.commit_line(agg2, agg2.timeline)
    assert y2[0] == before and y2[-1] == agg.decided and np.all(np.diff(y2) >= 0)


def test_a_batch_page_has_its_items_and_no_clock_it_does_not_have(
    batch_journal: Path, tmp_path: Path
) -> None:
    out = tmp_path / "b.html"
    assert main(["report", "b", "--store", str(batch_journal), "-o", str(out)]) == 0
    page = out.read_text()
    assert re.findall(r'data-plot="([a-z_]+)"', page) == list(BATCH_PLOTS)
    ids = re.findall(r'id="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    assert "<script" not in page.lower()
    section = page[page.index('id="run1-items"') :]
    section = section[: section.index("</section>")]
    store = Store(str(batch_journal), read_only=True)
    run = store.get_run("b")
    assert run is not None
    for it in store.items(run):  # a small batch: every item listed, in order
        assert f"<td>{it.item_id}</td><td>{it.status}</td>" in section
    assert "items listed" not in section
    assert "<th>items</th>" in page and "(0 completed" not in page
    # its progress over time is drawn from the journal's commits
    assert "Progress and throughput" in page and "Time is the journal" in page
    assert "Progress: attempts and items" not in page
    # tables name the item of each row: slowest steps, transport failures
    slow = page[page.index('id="run1-slowest"') :]
    assert "<th>item</th><th>step</th>" in slow[: slow.index("</section>")]
    moves = page[page.index('id="run1-transport"') :]
    assert "<th>item</th><th>step</th>" in moves[: moves.index("</section>")]
    # the attempts of a batch start no step of their own
    attempts = page[page.index('id="run1-attempts"') :]
    assert "first step" not in attempts[: attempts.index("</section>")]


def test_a_large_batch_lists_a_bounded_table(
    batch_journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(str(batch_journal), read_only=True)
    run = store.get_run("b")
    assert run is not None
    head, later = html_report.item_rows(store, run, first=3, unfinished=2)
    assert [it.item for it in head] == [0, 1, 2]
    unfinished = [it.item for it in store.items(run, unfinished=True) if it.item > 2]
    assert [it.item for it in later] == unfinished[:2] and len(unfinished) > 2
    monkeypatch.setattr(html_report, "FIRST_ITEMS", 3)
    monkeypatch.setattr(html_report, "NOT_COMPLETED", 2)
    report = html_report.failure_patterns(store, ["b"], resolve=resolve)
    section = html_report.items_section(html_report._view(store, "b", 1, report, resolve))
    assert section is not None
    assert section.html.count("<tr>") == 1 + 3 + 1 + 2  # header, head, gap, not completed
    assert "5 of 12 items listed" in section.html


def test_a_batch_with_nothing_committed_yet(tmp_path: Path) -> None:
    db = tmp_path / "eb.db"
    store = Store(str(db))
    config = {"model": "sim:error=0.01", "k_resolved": 2}
    store.create_run("eb", "hanoi", config, 14, [("a", {}, 7), ("b", {}, 7)], "batch")
    store.close()
    out = tmp_path / "eb.html"
    assert main(["report", "eb", "--store", str(db), "-o", str(out)]) == 0
    page = out.read_text()
    assert re.findall(r'data-plot="([a-z_]+)"', page) == list(BATCH_PLOTS)
    assert '<td>a</td><td>pending</td><td class="n">0 / 7</td>' in page
    assert "Progress: attempts and items" in page  # no commit: its attempts instead


def test_a_batch_journal_without_commit_times_draws_its_attempts(
    batch_journal: Path, tmp_path: Path
) -> None:
    # a journal written before commit times were kept reads as it did: no line over time
    db = tmp_path / "old.db"
    con = sqlite3.connect(batch_journal)
    con.execute("VACUUM INTO ?", (str(db),))
    con.close()
    con = sqlite3.connect(db)
    con.execute("DELETE FROM commits")
    con.commit()
    con.close()
    out = tmp_path / "old.html"
    assert main(["report", "b", "--store", str(db), "-o", str(out)]) == 0
    page = out.read_text()
    assert "Progress: attempts and items" in page and "Time is the journal" not in page
    assert re.findall(r'data-plot="([a-z_]+)"', page) == list(BATCH_PLOTS)


def test_an_adaptive_run_is_planned_and_captioned_by_its_rule(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    opts = dict(
        task="hanoi",
        task_options={"disks": 10},
        model="sim:error=0.1,hard=0.05,hard_error=0.45,seed=3",
        target=0.99,
        stopping="adaptive",
    )
    res = run_task(**opts, store=str(db), handle_signals=False, run_id="a")
    assert res.outcome.status == "completed"
    res.store.close()
    store = Store(str(db), read_only=True)
    run = store.get_run("a")
    assert run is not None
    agg = aggregate(store, run)
    assert agg.k is None and agg.plan is not None
    assert agg.plan.basis.startswith("the adaptive rule")
    # the rule's own prediction (stopping.predict), near what the run spent (bench/certainty.py:
    # within a few percent over 20 seeds; one run's few dozen hard steps vary more)
    per_step = res.summary["samples_per_step"]
    assert 0.8 * per_step < agg.plan.samples_per_step < 1.25 * per_step
    out = tmp_path / "a.html"
    assert main(["report", "a", "--store", str(db), "-o", str(out)]) == 0
    page = out.read_text()
    assert "Adaptive stopping: a step is decided" in page and "adaptive stopping" in page


# -- every plot has data, or is left out saying why ------------------------------------


def _spans(steps: list[int], seconds: list[float], attempt: list[int] | None = None) -> Spans:
    """Back-to-back spans of time."""
    end = np.cumsum(seconds)
    return Spans(
        start=end - np.array(seconds),
        end=end,
        steps=np.array(steps, np.int64),
        attempt=np.array(attempt or [0] * len(steps), np.int64),
    )


def test_a_stall_is_slow_against_the_runs_pace_and_costs_a_second() -> None:
    # a simulated run: 100 steps a millisecond; a commit that takes 30 ms is a hiccup
    fast = _spans([100] * 200 + [100], [0.001] * 200 + [0.030])
    assert not stalls(fast).any()
    # a model at 2 steps a second: a minute without an answer is a stall; a span a little
    # slower than usual (under the tenth) is not
    slow = _spans([10] * 200 + [10, 10], [5.0] * 200 + [60.0, 9.0])
    assert stalls(slow).tolist() == [False] * 200 + [True, False]
    # the floor is absolute: a tenth of the pace that loses under a second is no stall
    tight = _spans([10] * 50 + [1], [0.01] * 50 + [0.5])
    assert not stalls(tight).any()


def test_spans_over_time_are_merged_within_each_attempt() -> None:
    spans = _spans([3] * 1000 + [0] * 5 + [3] * 500, [0.01] * 1505, [0] * 1000 + [1] * 505)
    m = merged(spans, max_spans=100)
    assert len(m) <= 100 + 1 and int(m.steps.sum()) == 4500
    assert np.all(m.steps > 0)
    # no span crosses from one attempt into the next
    first_of_second = int(np.flatnonzero(m.attempt == 1)[0])
    assert m.start[first_of_second] == pytest.approx(spans.start[1005])  # its first steps
    assert m.end[first_of_second - 1] == pytest.approx(spans.end[999])


def test_steps_are_drawn_in_bins_of_several_steps_or_one_point_per_step(
    journal: Path, batch_journal: Path, tmp_path: Path
) -> None:
    # a short chain (63 steps, a bin a step): a point per step, no maximum of one step
    store = Store(str(journal), read_only=True)
    run = store.get_run("r")
    assert run is not None
    short = over_steps(aggregate(store, run).bins)
    assert short is not None and short.per_step and len(short) == 63
    assert short.words(False) == "one point per step"
    # a longer one (4,095 steps in bins of 3): at most 100 groups of several steps each,
    # whose maximum stands apart from the mean
    db = tmp_path / "long.db"
    options = dict(task="hanoi", task_options={"disks": 12}, model="sim:error=0.1", k=3)
    run_task(**options, store=str(db), handle_signals=False, run_id="long").store.close()
    store = Store(str(db), read_only=True)
    run = store.get_run("long")
    assert run is not None
    agg = aggregate(store, run)
    g = over_steps(agg.bins)
    assert g is not None and not g.per_step
    assert len(g) <= MAX_GROUPS and int(g.steps.min()) >= MIN_GROUP_STEPS
    assert int(g.steps.sum()) == 4095 and int(g.samples.sum()) == agg.samples
    assert int(g.contested.sum()) == int(agg.bins.contested.sum())
    mean = g.per(g.samples)
    assert np.all(g.samples_max >= mean) and np.mean(g.samples_max - mean >= 1.0) > 0.5
    assert re.fullmatch(r"bins of about \d\d steps", g.words(False)), g.words(False)
    # a batch: bins of step positions within the items, all items summed
    store = Store(str(batch_journal), read_only=True)
    run = store.get_run("b")
    assert run is not None
    many = over_steps(aggregate(store, run).bins)
    assert many is not None and not many.per_step
    assert "within the items" in many.words(True)


def test_a_graph_of_one_step_nodes_draws_nothing_over_the_steps(tmp_path: Path) -> None:
    db = tmp_path / "sum.db"
    run = ["run", "sum", "--numbers", "32", "--model", "sim:error=0.1,seed=2", "--run-id", "s"]
    assert cli(*run, "--store", str(db)).returncode == 0
    store = Store(str(db), read_only=True)
    run = store.get_run("s")
    assert run is not None
    agg = aggregate(store, run)
    assert over_steps(agg.bins) is None
    by_key = {p.key: p for p in plots.run_plots(agg, [])}
    why = "— left out: every node is one step, so there is nothing to draw over the steps"
    assert f"Samples per step, over the steps {why}" in by_key["samples"].left_out
    assert f"Contested steps over the steps {why}" in by_key["margins"].left_out
    # what is drawn has marks in every series: the usage lines start from nothing spent
    for plot in by_key.values():
        for shown in plot.shown:
            assert shown.series and all(n > 0 for _, n in shown.series), (plot.key, shown)


def test_items_alike_are_a_sentence_not_a_histogram_of_one_bar(batch_journal: Path) -> None:
    store = Store(str(batch_journal), read_only=True)
    run = store.get_run("b")
    assert run is not None
    agg = aggregate(store, run)
    items = Items(
        by_status={"completed": 50},
        steps=np.full(50, 1023, np.int64),
        samples=np.arange(3069, 3119, dtype=np.int64),
        cost=np.zeros(50),
        errors=np.zeros(50, np.int64),
    )
    plot = plots.items_plot(agg, items)
    assert plot.left_out == (
        "Steps decided per item — left out: all 50 items decided 1,023 steps",
        "Errors per item — left out: all 50 items had 0 decisions the checker rejected",
    )
    assert [s.title for s in plot.shown] == ["Samples per item"]
    assert dict(plot.shown[0].series)["items"] == 40  # 50 values over 40 bins, none empty


def test_failure_bars_start_from_zero_or_a_floor_below_the_smallest() -> None:
    fig = Figure()
    near, far = fig.subplots(1, 2)
    near.barh(["a", "b"], [3, 8])
    plots._log_if_wide(near, np.array([3, 8]), axis="x")
    assert near.get_xscale() == "linear" and near.get_xlim()[0] == 0
    far.barh(["a", "b"], [2, 5000])
    plots._log_if_wide(far, np.array([2, 5000]), axis="x")
    assert far.get_xscale() == "log" and far.get_xlim()[0] < 2 / 2
    plot = plots.failures_plot({"outvoted_wrong": 3, "rejected": 8}, [("p1", 3), ("p2", 8)])
    assert [dict(s.series) for s in plot.shown] == [{"failure records": 2}] * 2


def test_a_batch_pattern_names_the_item_of_each_first_step(batch_journal: Path) -> None:
    store = Store(str(batch_journal), read_only=True)
    report = html_report.failure_patterns(store, ["b"], resolve=resolve)
    assert report["batch"] and report["patterns"]
    records = build(store, "b", resolve=resolve).records
    where = {(r.item_id, r.step) for r in records}
    order = {r.item_id: r.item for r in records}
    page = html_report.build_report(store, ["b"], resolve=resolve)
    for p in report["patterns"]:
        places = [(x["item"], x["step"]) for x in p["first_places"]]
        # real places of failures, item by item, then step by step
        assert places and set(places) <= where
        assert places == sorted(places, key=lambda x: (order[x[0]], x[1]))
        item, step = places[0]
        assert f"item {item} step {step:,}" in page
    assert "first places (item, step)" in page and "<th>first steps</th>" not in page


def test_a_run_killed_with_sigkill_reads_interrupted_in_runs_and_report(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "unerring", "run", "hanoi", "--disks", "12", "--store", str(db),
         "--run-id", "k", "--model", "sim:error=0.01,latency=1", "--quiet"],
        env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline and proc.poll() is None
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                row = con.execute("SELECT next_step FROM runs").fetchone()
                con.close()
            except sqlite3.Error:
                row = None
            if row and row[0] > 50:
                break
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    runs = cli("runs", "--store", str(db), "--json")
    assert json.loads(runs.stdout)[0]["status"] == "interrupted"

    def attempts() -> list[list[str]]:
        out = tmp_path / "k.html"
        assert cli("report", "k", "--store", str(db), "-o", str(out)).returncode == 0
        page = out.read_text()
        section = page[page.index('id="run1-attempts"') :]
        rows = re.findall(r"<tr>(.*?)</tr>", section[: section.index("</section>")])[1:]
        return [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows]

    (first,) = attempts()
    assert first[3:5] == ["–", "interrupted"] and "killed" in first[5]
    assert cli("resume", "k", "--store", str(db), "--quiet").returncode == 0
    first, second = attempts()
    assert first[4] == "interrupted" and second[4] == "completed"
