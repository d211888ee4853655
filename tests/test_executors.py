"""Executors without Ray: how limits are split, bad specs, the commit group's merge, and a
worker (the code each Ray actor runs) driven directly, journaled by the driver's writer."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_task
from unerring.app.options import BatchItem
from unerring.backends.factory import Transport
from unerring.backends.sim import ProcessOracle
from unerring.backends.spec import parse_model
from unerring.core.events import Decision, Events, ItemEnd, ItemStart
from unerring.core.totals import Totals
from unerring.errors import UsageError
from unerring.executors import ExecutorSpec
from unerring.executors.base import shares
from unerring.executors.worker import Worker
from unerring.journal.group import Group
from unerring.journal.store import Store
from unerring.journal.writer import JournalWriter
from unerring.planning.pricing import Prices
from unerring.scheduler.build import Work
from unerring.scheduler.loop import Scheduler
from unerring.scheduler.sources import Item
from unerring.tasks.hanoi import Hanoi
from unerring.voting.config import Budget, VotingConfig

MODEL = "sim:error=0.05,flag=0.03,seed=5"


def _work(transport: Transport | None = None, **kw: Any) -> Work:
    return Work(
        parse_model(MODEL), transport or Transport(), VotingConfig(k=2), Prices(),
        Budget(max_samples=10), **kw,
    )  # fmt: skip


def test_limits_are_split_among_workers_and_add_up() -> None:
    t = Transport(concurrency=10, requests_per_min=600.0, tokens_per_min=9000.0)
    parts = shares(_work(t), 4)
    assert [p.transport.concurrency for p in parts] == [3, 3, 2, 2]
    assert sum(p.transport.requests_per_min or 0 for p in parts) == pytest.approx(600.0)
    assert sum(p.transport.tokens_per_min or 0 for p in parts) == pytest.approx(9000.0)
    # the budget is the driver's: a worker's scheduler has none
    assert all(not p.budget.active for p in parts)
    # each worker's item window follows its own share of requests in flight
    assert parts[0].items_window == 16 and _work(Transport(concurrency=64)).items_window == 256
    with pytest.raises(ValueError, match="cannot be split"):
        shares(_work(Transport(concurrency=2)), 3)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ExecutorSpec("spark"), "executor must be one of local, ray, got 'spark'"),
        (ExecutorSpec("ray", workers=0), "workers must be at least 1, got 0"),
        (
            ExecutorSpec("local", workers=2),
            "workers applies to the ray executor, not the local one",
        ),
        (
            ExecutorSpec("local", address="h:1"),
            "address applies to the ray executor, not the local one",
        ),
    ],
)
def test_bad_executor_specs_say_what_is_wrong(spec: ExecutorSpec, message: str) -> None:
    with pytest.raises(UsageError) as e:
        spec.check()
    assert str(e.value) == message


def _decisions(items: int, disks: int, record: str = "contested") -> list[Decision]:
    seen: list[Decision] = []

    class Keep:
        def on_decision(self, d: Decision) -> None:
            seen.append(d)

    events = Events()
    events.subscribe(Keep())
    spec = parse_model(MODEL)
    from unerring.backends.factory import make_backend

    voting = VotingConfig(k=2, record=record)  # type: ignore[arg-type]
    sched = Scheduler(make_backend(spec), voting, events, oracle=ProcessOracle, burst=7)
    run = [Item(i, Hanoi(disks), Hanoi(disks).initial_state(), 0) for i in range(items)]
    assert asyncio.run(sched.run(run)).status == "completed"
    return seen


def _rows(g: Group) -> dict[int, Any]:
    t = Totals()
    return {
        item: (b.block(1, item, t, Totals()), b.last_step, b.last_state)
        for item, b in sorted(g.blocks.items())
    }


def test_groups_merged_in_any_cut_equal_one_group() -> None:
    decisions = _decisions(5, 6)
    whole = Group()
    for d in decisions:
        whole.add(d)
    assert whole.items and whole.blocks  # noteworthy and plain steps both
    rng = random.Random(4)
    for _ in range(20):
        merged = Group()
        i = 0
        while i < len(decisions):
            n = rng.randint(1, 40)
            part = Group()
            for d in decisions[i : i + n]:
                part.add(d)
            merged.merge(part)
            i += n
        assert _rows(merged) == _rows(whole)
        assert merged.items == whole.items and merged.size == whole.size == len(decisions)


@pytest.mark.parametrize("record", ["contested", "samples"])
def test_groups_sealed_by_workers_commit_what_one_group_does(tmp_path: Path, record: str) -> None:
    """A worker seals each group it ships (blocks packed, noteworthy decisions as rows);
    sealed in any cut and merged in the driver, they journal what the whole group does."""
    items, disks = 4, 6
    decisions = _decisions(items, disks, record)
    rng = random.Random(8)
    journals = []
    for cut in ("whole", "sealed"):
        store = Store(str(tmp_path / f"{cut}-{record}.db"))
        rows = [(str(i), {"disks": disks}, 2**disks - 1) for i in range(items)]
        run = store.create_run("g", "hanoi", {}, items * (2**disks - 1), rows, "batch")
        writer = JournalWriter(store, run, durability="sync")
        for item in range(items):  # as the driver tells its writer, handing items out
            writer.on_item_start(ItemStart(item, str(item), Hanoi(disks)))
        i = 0
        while i < len(decisions):
            n = len(decisions) if cut == "whole" else rng.randint(1, 60)
            part = Group()
            for d in decisions[i : i + n]:
                part.add(d)
            if cut == "sealed":
                part.seal(lambda i: Hanoi(disks))
            writer.on_group(part)
            i += n
        writer.close()
        run = store.get_run("g")
        assert run is not None
        # (a block keeps a step's time in whole microseconds; the run's clock differs)
        journals.append(
            (
                [[{k: v for k, v in d.items() if k != "elapsed"}
                  for d in store.decisions(run, item=i)] for i in range(items)],
                [tuple(r) for r in store.samples(run)],
                [(it.next_step, it.state, it.stats) for it in store.items(run)],
                {k: v for k, v in run.stats.items() if k != "wall_s"},
            )
        )  # fmt: skip
        store.close()
    whole, sealed = journals
    assert all(len(d) == 2**disks - 1 for d in whole[0])
    assert whole[1] and (record == "contested" or len(whole[1]) > len(decisions))
    assert sealed == whole


def test_dropping_an_item_leaves_the_others_whole() -> None:
    decisions = _decisions(3, 5)
    g = Group()
    for d in decisions:
        g.add(d)
    g.drop_item(1)
    assert g.item_indices() == {0, 2}
    assert g.size == sum(1 for d in decisions if d.item != 1)


def test_a_worker_driven_directly_journals_what_a_local_run_does(tmp_path: Path) -> None:
    """The Ray actor's code, without Ray: its groups, handed to the driver's writer in
    the order they come, make the journal of a local run."""
    n, disks = 8, 5
    options = dict(task="hanoi", task_options={"disks": disks}, model=MODEL, k=2)
    ref = run_task(
        **options,
        store=str(tmp_path / "ref.db"),
        handle_signals=False,
        run_id="w",
        batch=[BatchItem(str(i), {"disks": disks}) for i in range(1, n + 1)],
    )
    assert ref.outcome.status == "completed"
    store = Store(str(tmp_path / "w.db"))
    config = ref.run.config
    rows = [(str(i), {"disks": disks}, 2**disks - 1) for i in range(1, n + 1)]
    run = store.create_run("w", "hanoi", config, n * (2**disks - 1), rows, "batch")
    procs = {i: Hanoi(disks) for i in range(n)}
    writer = JournalWriter(store, run)
    for i, p in procs.items():  # as the driver tells its writer, handing items out
        writer.on_item_start(ItemStart(i, str(i + 1), p))
    work = Work(parse_model(MODEL), Transport(), VotingConfig(k=2), Prices(), Budget())

    async def drive() -> int:
        worker = Worker(work)
        items = [Item(i, p, p.initial_state(), 0, None, str(i + 1)) for i, p in procs.items()]
        rep = await worker.exchange(items[:3])  # items arrive while it runs
        reports = [rep]
        rep = await worker.exchange(items[3:], close=True)
        reports.append(rep)
        while not rep.done:
            rep = await worker.exchange()
            reports.append(rep)
        total = Totals()
        for r in reports:
            writer.on_group(r.group)
            total.merge(r.totals)
        assert total.steps_decided == n * (2**disks - 1)
        assert rep.unreported == 0 and rep.drawn == total.samples
        return len(reports)

    assert asyncio.run(drive()) >= 2
    writer.close()
    want = Store(str(tmp_path / "ref.db"), read_only=True)
    ref_run = want.get_run("w")
    assert ref_run is not None
    for i in range(n):
        got = [{k: v for k, v in d.items() if k != "elapsed"} for d in store.decisions(run, item=i)]
        exp = [
            {k: v for k, v in d.items() if k != "elapsed"} for d in want.decisions(ref_run, item=i)
        ]
        assert got == exp and len(got) == 2**disks - 1
    got_items = [(it.status, it.next_step, it.state) for it in store.items(run)]
    assert got_items == [(it.status, it.next_step, it.state) for it in want.items(ref_run)]


def test_a_workers_stop_deadline_cancels_its_stalled_requests() -> None:
    """A Ray actor's stop carries the driver's deadline; a later exchange may bring it
    nearer (a second Ctrl-C), and then what the actor waits for is cancelled."""
    stalled = parse_model("sim:error=0.0,seed=1,latency=fixed:600000")  # 10 min a request

    async def drive() -> tuple[float, list[tuple[int, str, int]]]:
        worker = Worker(Work(stalled, Transport(), VotingConfig(k=2), Prices(), Budget()))
        procs = [Hanoi(3) for _ in range(4)]
        items = [Item(i, p, p.initial_state(), 0, None, str(i + 1)) for i, p in enumerate(procs)]
        reports = [await worker.exchange(items, close=True)]
        assert reports[0].in_flight > 0
        reports.append(await worker.exchange(stop="asked", cancel_after=3600.0))
        assert not reports[-1].done  # (a deadline an hour away: still waiting)
        started = time.monotonic()
        reports.append(await worker.exchange(cancel_after=0.05))
        while not reports[-1].done:
            reports.append(await asyncio.wait_for(worker.exchange(), 10))
        ends = [(x.item, x.status, x.next_step) for r in reports for x in r.group.items
                if isinstance(x, ItemEnd)]  # fmt: skip
        assert reports[-1].stop_reason == "asked"
        return time.monotonic() - started, ends

    took, ends = asyncio.run(drive())
    assert took < 5
    assert sorted(ends) == [(i, "stopped", 0) for i in range(4)]


def test_merging_totals_adds_every_field_but_the_clock() -> None:
    a, b = Totals(), Totals()
    for n, name in enumerate(Totals.__slots__, start=1):
        if name == "flags":
            a.flags, b.flags = {"parse": 1}, {"parse": 2, "length": 5}
        elif name == "parse_error":
            b.parse_error = {"step": 3, "type": "ValueError", "message": "b"}
        else:
            setattr(a, name, n)
            setattr(b, name, 10 * n)
    a.merge(b)
    for n, name in enumerate(Totals.__slots__, start=1):
        if name == "flags":
            assert a.flags == {"parse": 3, "length": 5}
        elif name == "parse_error":  # the first one kept: a had none, so b's
            assert a.parse_error == {"step": 3, "type": "ValueError", "message": "b"}
        else:
            assert getattr(a, name) == (n if name == "wall_s" else 11 * n), name
    c = Totals()
    c.parse_error = {"step": 0, "type": "KeyError", "message": "c"}
    c.merge(b)
    assert c.parse_error == {"step": 0, "type": "KeyError", "message": "c"}


def test_minus_undoes_merge_but_the_clock_and_drops_spent_flags() -> None:
    """What a worker hands over and what a commit adds: later totals minus earlier ones."""
    earlier, added = Totals(), Totals()
    for n, name in enumerate(Totals.__slots__, start=1):
        if name == "flags":
            earlier.flags, added.flags = {"parse": 2, "length": 1}, {"parse": 4}
        elif name == "parse_error":
            added.parse_error = {"step": 5, "type": "ValueError", "message": "x"}
        else:
            setattr(earlier, name, 10 * n)
            setattr(added, name, n)
    later = earlier.copy()
    later.merge(added)
    out = later.minus(earlier)
    for n, name in enumerate(Totals.__slots__, start=1):
        if name == "flags":
            assert out.flags == {"parse": 4}  # length did not move: left out, not 0
        elif name == "parse_error":  # new since the earlier copy: handed over once
            assert out.parse_error == added.parse_error
            assert later.minus(later).parse_error is None
        else:
            assert getattr(out, name) == (0 if name == "wall_s" else n), name
    assert earlier.flags == {"parse": 2, "length": 1}  # neither side is changed


def test_the_package_names_its_api_and_a_worker_imports_no_runner() -> None:
    """`unerring`'s public names resolve on first use; a Ray worker's process imports
    the scheduler's modules, not the runner, the API or the CLI."""
    import subprocess
    import sys

    import unerring

    for name in unerring.__all__:
        assert getattr(unerring, name) is not None, name
    assert set(dir(unerring)) >= set(unerring.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        unerring.nothing  # noqa: B018
    code = (
        "import sys, unerring.executors.worker; "
        "print(sorted(m for m in ('unerring.app.runner', 'unerring.cli.main', 'unerring.api') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_totals_json_and_copies_are_what_the_generic_forms_make() -> None:
    """The journal's spelt-out forms of a run's totals: the JSON text json.dumps makes of
    `as_dict` (for any values, flags or none), an item's compact form that reads back the
    same, and a copy equal and independent."""
    import json

    rng = random.Random(3)
    for trial in range(50):
        t = Totals()
        for name in Totals.__slots__:
            if name == "flags":
                t.flags = {"parse": rng.randint(1, 9)} if trial % 2 else {}
            elif name == "parse_error":
                t.parse_error = (
                    {"step": trial, "type": "ValueError", "message": f"bad {trial}"}
                    if trial % 3
                    else None
                )
            elif name in ("cost", "wall_s"):
                setattr(t, name, rng.random() * 10 ** rng.randint(-8, 6))
            elif rng.random() < 0.3:  # an item's totals are mostly zeros
                setattr(t, name, 0)
            else:
                setattr(t, name, rng.randint(0, 10**9))
        assert t.to_json() == json.dumps(t.as_dict())
        # an item's row holds only the counts that are not zero; read back, the same
        compact = json.loads(t.item_json())
        assert all(compact.values()) and Totals(compact).as_dict() == t.as_dict()
        assert json.loads(t.to_json()) == t.as_dict()
        c = t.copy()
        assert c.as_dict() == t.as_dict()
        c.flags["length"] = 1
        c.samples += 1
        assert "length" not in t.flags and c.samples == t.samples + 1
    assert Totals().as_dict() == Totals({"samples": 0}).as_dict()
    assert Totals().to_json() == json.dumps(Totals().as_dict())
    assert Totals().item_json() == "{}"


def test_the_writer_holds_a_bounded_number_of_items_however_many_end(tmp_path: Path) -> None:
    """A graph of one-step nodes hands the writer a new item with every decision; its
    group wakes the writer at `max_items` items and waits for it at twice that, so what
    is held does not grow with the number of items while the writer catches up."""
    decisions = _decisions(300, 1)  # 300 items of one step each
    store = Store(str(tmp_path / "w.db"))
    rows = [(str(i), {"disks": 1}, 1) for i in range(300)]
    run = store.create_run("w", "hanoi", {}, 300, rows, "batch")
    writer = JournalWriter(store, run, max_items=8)
    most = 0
    for d in decisions:  # each a new item, as a graph's one-step nodes are
        writer.on_item_start(ItemStart(d.item, str(d.item), Hanoi(1)))
        writer.on_decision(d)
        most = max(most, len(writer._group.blocks))
    writer.close()
    assert most <= 16
    run = store.get_run("w")
    assert run is not None and run.stats["steps_decided"] == 300
    assert all(len(list(store.decisions(run, item=i))) == 1 for i in range(300))
