"""Graphs of subtasks: nodes voted and journaled, the task memory tree, resume, inspection."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

import unerring
from tests.helpers import child_env, cli, item_decisions, kill_and_resume, run_task
from unerring.app.result import RunResult
from unerring.backends.sim import ProcessOracle, SimBackend, SimConfig
from unerring.core.events import ItemEnd
from unerring.core.samples import SampleRequest
from unerring.errors import UsageError
from unerring.graph import MAX_DEPTH, Graph, GraphError, Memory, Node
from unerring.journal.store import Store
from unerring.process import Process
from unerring.scheduler.graph_check import check_nodes
from unerring.scheduler.tree import TaskTree
from unerring.tasks.multiply import Multiply
from unerring.tasks.registry import resolve
from unerring.tasks.sort import Sort
from unerring.tasks.sums import PairwiseSum
from unerring.voting.config import Budget

HERE = Path(__file__).resolve().parent


# -- the graph as described -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        (
            [Node("a", deps=("b",)), Node("b", deps=("c",)), Node("c", deps=("a",))],
            "a -> b -> c -> a",
        ),
        ([Node("a"), Node("b", deps=("z",))], "depends on 'z', which is not in the graph"),
        ([Node("a"), Node("a")], "node id 'a' is used twice"),
        ([Node("")], "non-empty"),
    ],
)
def test_bad_graphs_are_refused_naming_what_is_wrong(nodes: list[Node], message: str) -> None:
    with pytest.raises(GraphError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_nodes(nodes, {}, 8)


def test_a_graph_too_deep_is_refused() -> None:
    with pytest.raises(GraphError, match="--max-depth 2"):
        check_nodes([Node("x")], {}, 2, depth=3)


def test_a_cycle_is_found_in_any_order_and_none_where_there_is_none() -> None:
    """Nodes named after their dependencies, or in any order: no cycle where there is none;
    one dependency that closes a loop is found, and what is named is a cycle."""
    import random
    from dataclasses import replace
    from itertools import pairwise

    from unerring.scheduler.graph_check import _cycle

    rng = random.Random(7)
    for trial in range(300):
        n = rng.randint(2, 40)
        deps = {i: rng.sample(range(i), min(i, rng.randint(0, 3))) for i in range(n)}
        nodes = [Node(f"n{i}", deps=tuple(f"n{d}" for d in deps[i])) for i in range(n)]
        listed = nodes if trial % 2 else rng.sample(nodes, n)
        assert _cycle({x.id: x for x in listed}) == []
        # a node that depends on one of its own dependents closes a loop
        b = rng.randrange(1, n)
        if not deps[b]:
            continue
        a = b
        while deps[a] and rng.random() < 0.7:
            a = rng.choice(deps[a])
        a = rng.choice(deps[a]) if a == b else a
        looped = [replace(x, deps=(*x.deps, f"n{b}")) if x.id == f"n{a}" else x for x in listed]
        by_id = {x.id: x for x in looped}
        found = _cycle(by_id)
        assert found and found[0] == found[-1]
        assert all(nxt in by_id[cur].deps for cur, nxt in pairwise(found))


class Cyclic(Graph):
    name = "cyclic"

    def nodes(self) -> Sequence[Node]:
        return [Node("left", deps=("right",)), Node("right", deps=("left",))]

    def process(self, memory: Memory) -> Process[Any, Any]:
        raise AssertionError("a cyclic graph is refused before any node runs")

    def total_steps(self) -> int:
        return 2


def test_library_refuses_a_cyclic_graph_before_writing_anything(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    with pytest.raises(UsageError, match="cycle: left -> right -> left"):
        unerring.run(Cyclic(), store=str(db))
    assert not db.exists()


# -- built-in graphs ----------------------------------------------------------------------------
def test_multiply_decides_every_node_and_the_product_is_right(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    res = cli("run", "multiply", "--digits", "7", "--model", "sim:error=0.05,seed=4",
              "--store", str(db), "--run-id", "m", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    assert s["status"] == "completed" and s["result_correct"] is True
    assert s["nodes"] == 7 + 6  # a partial product per digit, then sums up a tree
    assert s["steps_decided"] == s["steps_total"] == Multiply(7).total_steps()
    assert s["errors"] == 0
    rows = [json.loads(x) for x in cli("export", "m", "--store", str(db), "--what",
                                       "nodes").stdout.splitlines()]  # fmt: skip
    assert {r["kind"] for r in rows} == {"digits", "sum"}
    assert all(r["status"] == "decided" for r in rows)
    final = Multiply(7)
    assert next(r for r in rows if r["id"] == final.final)["output"] == str(final.product())
    # the sums wait for what they add: every sum's dependencies are earlier nodes
    order = [r["id"] for r in rows]
    for r in rows:
        assert all(order.index(d) < order.index(r["id"]) for d in r["dependencies"])
    assert sum(r["steps"] for r in rows) == s["steps_decided"]
    # a graph's total is the planner's estimate (wrong answers can change the work): `runs`
    # says so
    listed = cli("runs", "--store", str(db)).stdout
    assert f"{s['steps_decided']:,}/~{s['steps_total']:,}" in listed


def test_sort_expands_at_run_time_and_sorts(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    res = cli("run", "sort", "--numbers", "13", "--model", "sim:error=0.05,seed=2",
              "--store", str(db), "--run-id", "s", "--json")  # fmt: skip
    s = json.loads(res.stdout)
    assert res.returncode == 0 and s["result_correct"] is True and s["errors"] == 0
    # 12 lists of two or more are split (each expands into two halves and a merge), 13
    # lists of one are sorted as they are
    assert s["nodes"] == 1 + 3 * 12
    tree = cli("show", "s", "--store", str(db), "--tree", "--depth", "1").stdout.splitlines()
    assert tree[0].startswith("37 nodes, depth 4")
    assert tree[1].startswith("s [sort] decided, 1 steps")
    assert any(line.strip().startswith("s.M [merge] decided") for line in tree)
    assert any("nodes below" in line for line in tree)  # deeper levels as counts
    assert not any(line.startswith("      s.L.L.L") for line in tree)


def test_a_wrong_split_is_still_a_sound_one_and_counted() -> None:
    # k=1 and a high error rate: some cuts are not the halving one (the checker counts
    # them), but a cut that would lose a number is red-flagged, never followed
    res = unerring.run(Sort(numbers=30, seed=1), model="sim:error=0.4,seed=3", k=1)
    store, run = res.store, res.run
    splits = [
        (it, json.loads(it.output))
        for it in store.items(run)
        if it.kind == "sort" and it.output is not None and it.output.startswith("{")
    ]
    assert [it for it, _ in splits if it.stats.get("errors")], "no wrong cut won a vote"
    for it, cut in splits:
        assert cut["left"] and cut["right"]
        assert cut["left"] + cut["right"] == json.loads(it.input or "[]")
    assert res.summary["flags"].get("invalid", 0) > 0  # lost numbers: red-flagged


# -- the task memory: what a node sees ----------------------------------------------------------
def test_a_node_sees_its_path_and_dependencies_only(monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: dict[int, list[str]] = {}

    class Spy(SimBackend):
        async def sample(self, request: SampleRequest) -> list[Any]:
            prompts.setdefault(request.item, []).append(request.prompt)
            return await super().sample(request)

    from unerring.scheduler.tree import node_index

    graph = Sort(numbers=64, seed=5)
    options = dict(task="sort", task_options=dict(graph.options()), k=1, model="sim:error=0")
    session = dict(store=":memory:", handle_signals=False)
    from unerring.scheduler import build

    def spy_backend(spec: Any, transport: Any, on_failure: Any) -> Any:
        return Spy(spec.sim)

    monkeypatch.setattr(build, "make_backend", spy_backend)
    res = run_task(**options, **session, process=graph)
    assert res.summary["result_correct"] is True
    deep = "s.L.R.L.R"
    (prompt,) = prompts[node_index(deep)]
    # the path: its four ancestors' cuts, each named; nothing of any other branch
    for ancestor in ("s", "s.L", "s.L.R", "s.L.R.L"):
        assert f"sort {ancestor}:" in prompt
    assert "s.R" not in prompt.replace("s.L.R", "") and "merge" not in prompt
    # a prompt grows with depth, not with the nodes decided: the last splits' prompts are
    # no longer than the first ones' at the same depth
    split_lengths = {
        nid: len(p[0]) for nid, p in ((n, prompts.get(node_index(n))) for n in _ids(graph)) if p
    }
    by_depth: dict[int, list[int]] = {}
    for nid, n in split_lengths.items():
        by_depth.setdefault(nid.count("."), []).append(n)
    for lengths in by_depth.values():
        assert max(lengths) <= 1.25 * min(lengths)


def _ids(graph: Sort) -> list[str]:
    out = []

    def walk(nid: str, xs: tuple[int, ...]) -> None:
        if len(xs) > 1:
            out.append(nid)
            half = len(xs) // 2
            walk(nid + ".L", xs[:half])
            walk(nid + ".R", xs[half:])

    walk("s", graph.xs)
    return out


# -- expansions that are not sound graphs fail their node, not the run -------------------------
class BadExpansion(Graph):
    """A root whose expansion reuses an id; a sibling branch that is fine."""

    name = "bad-expansion"

    def nodes(self) -> Sequence[Node]:
        return [Node("root", "split"), Node("other", "leaf")]

    def process(self, memory: Memory) -> Process[Any, Any]:
        from tests.test_readme import _example  # the README's one-step process

        g: dict[str, Any] = {}
        exec(compile(_example("TreeSum").split("class TreeSum")[0], "README.md", "exec"), g)
        return g["AddTwo"](1, 2)  # type: ignore[no-any-return]

    def expand(self, memory: Memory, output: Any) -> Sequence[Node]:
        if memory.node.id == "root":
            return [Node("other"), Node("root.a")]  # "other" exists: not a sound expansion
        return ()

    def total_steps(self) -> int:
        return 2


def test_an_unsound_expansion_fails_its_node_only() -> None:
    res = unerring.run(BadExpansion(), model="sim:error=0", k=1)
    assert res.outcome.status == "failed"
    assert "node 'root'" in res.outcome.reason and "used twice" in res.outcome.reason
    assert res.outcome.ended == {"completed": 1, "stopped": 0, "failed": 1}


class UndumpableLeaves(Graph):
    """Two one-step nodes whose process cannot serialise a state (dump_state raises)."""

    name = "undumpable"

    def nodes(self) -> Sequence[Node]:
        return [Node("a", "leaf"), Node("b", "leaf", deps=("a",))]

    def process(self, memory: Memory) -> Process[Any, Any]:
        from tests.test_readme import _example  # the README's one-step process

        g: dict[str, Any] = {}
        exec(compile(_example("TreeSum").split("class TreeSum")[0], "README.md", "exec"), g)

        class Undumpable(g["AddTwo"]):  # type: ignore[misc,name-defined]
            def dump_state(self, state: Any) -> str:
                raise TypeError("no text for this state")

        return Undumpable(1, 2)  # type: ignore[no-any-return]

    def total_steps(self) -> int:
        return 2


def test_a_decided_node_keeps_its_output_not_its_state(tmp_path: Path) -> None:
    # a decided node never resumes: its record is its output, so a state its process
    # cannot serialise does not stop the run (it did: "dump_state failed")
    res = unerring.run(UndumpableLeaves(), model="sim:error=0", k=1, store=str(tmp_path / "u.db"))
    assert res.outcome.status == "completed", res.outcome.reason
    rows = list(res.store.items(res.run))
    assert [(r.item_id, r.status, r.next_step, r.state) for r in rows] == [
        ("a", "completed", 1, None),
        ("b", "completed", 1, None),
    ]
    assert all(r.output is not None for r in rows)


def _decide_by_hand(tree: TaskTree) -> tuple[int, int]:
    """Drive a task tree as the scheduler does, one node at a time, every step answered
    right: (the most nodes it held at once, the nodes decided)."""
    most = decided = 0
    while (it := tree.take()) is not None:
        most = max(most, len(tree.nodes))
        process, state, step = it.process, it.state, it.step
        while not process.done(state, step):
            state = process.advance(state, process.solve(state, step))
            step += 1
        tree.ended(it, ItemEnd(it.index, "completed", step, state, "", it.item_id))
        decided += 1
    return most, decided


@pytest.mark.parametrize("numbers", [9, 200, 800])
def test_a_decomposing_graph_holds_its_frontier_not_its_history(numbers: int) -> None:
    # a node nothing will read again is dropped (complete, its result handed to its
    # dependents and its parent); ready nodes are taken newest first, so a merge sort goes
    # depth first: what is held stays near its depth, however many nodes it makes
    graph = Sort(numbers=numbers, seed=1)
    tree = TaskTree(graph, max_depth=MAX_DEPTH)
    tree.start()
    most, decided = _decide_by_hand(tree)
    assert decided == len(tree.seen) == 1 + 3 * (numbers - 1)
    assert list(tree.nodes) == ["s"]  # the root alone: its result is the graph's
    assert graph.check(tree.outputs()) is True
    assert most <= 8 * (numbers - 1).bit_length()


# -- resume -----------------------------------------------------------------------------------
def test_a_graph_stopped_by_its_budget_resumes_to_the_same_decisions(tmp_path: Path) -> None:
    db = str(tmp_path / "g.db")
    graph = Sort(numbers=24, seed=7)
    model = "sim:error=0.1,seed=6"
    first = unerring.run(
        graph, model=model, k=2, store=db, run_id="g", budget=Budget(max_samples=90)
    )
    assert first.outcome.status == "stopped" and "sample budget" in first.outcome.reason
    first.store.close()
    again = unerring.run(Sort(numbers=24, seed=7), model=model, k=2, store=db, run_id="g")
    assert again.outcome.status == "completed"
    again.store.close()
    ref = unerring.run(Sort(numbers=24, seed=7), model=model, k=2, store=str(tmp_path / "r.db"),
                       run_id="g")  # fmt: skip
    ref.store.close()
    # the same outputs, right or wrong (k=2 at a 10% error rate lets some through)
    assert again.summary["result_correct"] == ref.summary["result_correct"]
    assert again.summary["errors"] == ref.summary["errors"]
    assert item_decisions(tmp_path / "g.db", "g") == item_decisions(tmp_path / "r.db", "g")
    assert again.summary["samples"] == ref.summary["samples"]  # nothing drawn twice


class Tagged(Sort):
    """A sort whose lists travel through the journal in a form of its own, not JSON."""

    def dump_output(self, output: Any) -> str:
        if isinstance(output, list | tuple):
            return "L:" + ";".join(map(str, output))
        return super().dump_output(output)

    def load_output(self, text: str) -> Any:
        if text.startswith("L:"):
            return [int(x) for x in text[2:].split(";") if x]
        return super().load_output(text)


def test_a_graph_with_outputs_of_its_own_form_resumes(tmp_path: Path) -> None:
    """Inputs and outputs go through the graph's dump_output and load_output; a node's
    dependencies are ids, always JSON (a resume reads them back as such)."""
    db = str(tmp_path / "t.db")
    first = unerring.run(
        Tagged(numbers=24, seed=7), k=2, store=db, run_id="t", budget=Budget(max_samples=90)
    )
    assert first.outcome.status == "stopped"
    own = first.store.conn.execute("SELECT input FROM items WHERE input LIKE 'L:%'").fetchall()
    first.store.close()
    assert own  # (its own form is in the journal)
    again = unerring.run(Tagged(numbers=24, seed=7), k=2, store=db, run_id="t")
    assert again.outcome.status == "completed", again.outcome.reason
    assert again.summary["result_correct"] is True
    again.store.close()


CRASH_AT_THE_FIRST_EXPANSION = """
import os, sqlite3, sys
from unerring.journal import writer
from unerring.tasks.sort import Sort
from unerring.tasks.sums import PairwiseSum
import unerring

original = writer.JournalWriter._commit


def commit(self, group):
    original(self, group)
    con = sqlite3.connect(sys.argv[1])
    nodes = con.execute("SELECT count(*) FROM items").fetchone()[0]
    con.close()
    if nodes > 1:  # the first commit that holds an expansion: the process dies
        os._exit(9)


writer.JournalWriter._commit = commit
unerring.run(Sort(numbers=12, seed=3), model="sim:error=0.05,seed=2", k=2,
             store=sys.argv[1], run_id="g", durability="sync")
"""
MODEL = "sim:error=0.05,seed=2"


def _sort(db: Path) -> RunResult:
    res = unerring.run(Sort(numbers=12, seed=3), model=MODEL, k=2, store=str(db), run_id="g")
    res.store.close()
    return res


def test_a_node_and_its_expansion_are_committed_together(tmp_path: Path) -> None:
    # with every event its own commit (sync), a node's children used to be committed
    # before the node's end: a crash between the two left children of an undecided node
    db = tmp_path / "c.db"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AT_THE_FIRST_EXPANSION, str(db)],
        env=child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == 9, crashed.stderr
    store = Store(str(db), read_only=True)
    run = store.get_run("g")
    assert run is not None
    items = {it.item: it for it in store.items(run)}
    store.close()
    assert len(items) == 4  # the root and its expansion: two halves and their merge
    assert all(items[it.parent].status == "completed" for it in items.values() if it.parent)
    again, ref = _sort(db), _sort(tmp_path / "r.db")
    assert again.outcome.status == "completed", again.outcome.reason
    assert again.summary["result_correct"] == ref.summary["result_correct"] is True
    assert item_decisions(db, "g") == item_decisions(tmp_path / "r.db", "g")


def test_a_journal_with_children_of_an_undecided_node_resumes(tmp_path: Path) -> None:
    # a journal written before a node's end and its expansion were committed together may
    # hold the children and not the end: the resume ends the node again from its committed
    # steps, keeps the journal's expansion (it used to be made a second time and fail the
    # node: "node id ... is used twice"), and its children wait for it
    ref, db = tmp_path / "r.db", tmp_path / "c.db"
    _sort(ref)
    con = sqlite3.connect(ref)
    con.execute("VACUUM INTO ?", (str(db),))
    con.close()
    con = sqlite3.connect(db)
    (root,) = con.execute("SELECT item FROM items WHERE item_id = 's'").fetchone()
    kids = [i for (i,) in con.execute("SELECT item FROM items WHERE parent = ?", (root,))]
    later = [i for (i,) in con.execute("SELECT item FROM items") if i != root and i not in kids]
    for item in kids + later:  # nothing decided below the root's expansion
        for table in ("decisions", "decision_blocks", "samples"):
            con.execute(f"DELETE FROM {table} WHERE item = ?", (item,))
    con.executemany("DELETE FROM items WHERE item = ?", [(i,) for i in later])
    con.executemany(
        "UPDATE items SET status = 'pending', output = NULL, next_step = 0, state = NULL,"
        " stats = '{}' WHERE item = ?",
        [(i,) for i in kids],
    )
    con.execute("UPDATE items SET status = 'pending', output = NULL WHERE item = ?", (root,))
    con.execute("UPDATE runs SET status = 'stopped'")
    con.commit()
    con.close()
    again = _sort(db)
    assert again.outcome.status == "completed", again.outcome.reason
    assert again.summary["result_correct"] is True
    assert item_decisions(db, "g") == item_decisions(ref, "g")


@pytest.mark.slow
def test_sigkill_during_a_graph_run_loses_nothing_and_redoes_no_expansion(
    tmp_path: Path,
) -> None:
    db = tmp_path / "kg.db"
    model = "sim:error=0.05,flag=0.02,seed=13"
    common = ["--store", str(db), "--quiet", "--concurrency", "8"]
    first = ["run", "sort", "--numbers", "300", "--k", "2", "--run-id", "kg"]
    first += ["--model", f"{model},latency=2", *common]
    kill_and_resume(first, ["resume", "kg", *common], tmp_path, seed=11)
    ref = run_task(
        task="sort",
        task_options=dict(Sort(numbers=300).options()),
        model=model,
        k=2,
        store=str(tmp_path / "ref.db"),
        handle_signals=False,
        run_id="kg",
    )
    assert ref.outcome.status == "completed"
    ref.store.close()
    got, want = item_decisions(db, "kg"), item_decisions(tmp_path / "ref.db", "kg")
    assert got == want  # every node, every step once, as uninterrupted
    shown = json.loads(cli("show", "kg", "--store", str(db), "--json").stdout)
    assert shown["status"] == "completed"


# -- concurrency -------------------------------------------------------------------------------
def test_branches_run_at_once_and_decide_as_in_order() -> None:
    from tests.test_scheduler import Collect, Latent
    from unerring.core.events import Events
    from unerring.scheduler.loop import Scheduler
    from unerring.scheduler.tree import TaskTree
    from unerring.voting.config import VotingConfig

    def run(backend: Any, window: int) -> dict[int, list[Any]]:
        tree = TaskTree(Multiply(5, seed=2), max_depth=8)
        tree.start()
        events, seen = Events(), Collect()
        events.subscribe(seen)
        sched = Scheduler(backend, VotingConfig(k=2), events, oracle=ProcessOracle, window=window)
        end = asyncio.run(sched.run(tree))
        assert end.status == "completed"
        out: dict[int, list[Any]] = {}
        for d in seen.decisions:
            out.setdefault(d.item, []).append((d.step, d.winner_text, d.votes))
        return out

    cfg = SimConfig(error=0.1, seed=9)
    latent = Latent(cfg)
    assert run(SimBackend(cfg), 1) == run(latent, 16)
    assert latent.most > 2  # the partial products ran side by side


# -- failure analysis sees nodes ----------------------------------------------------------------
def test_failures_of_a_graph_carry_node_kind_and_depth_and_name_the_first_wrong_node(
    tmp_path: Path,
) -> None:
    from unerring.analysis.records import build, first_wrong_node

    db = tmp_path / "a.db"
    res = unerring.run(Sort(numbers=40, seed=2), model="sim:error=0.3,seed=2", k=1,
                       store=str(db), run_id="a")  # fmt: skip
    res.store.close()
    store = Store(str(db))
    rf = build(store, "a", resolve=resolve)
    assert rf.records and all(
        "node_kind" in r.features and "depth" in r.features for r in rf.records
    )
    assert {r.features["node_kind"] for r in rf.records} >= {"sort", "merge"}
    # the first wrong node: wrong itself, and nothing upstream of it (parents, deps) wrong
    assert rf.first_wrong is not None
    node, _step = rf.first_wrong
    items = {it.item_id: it for it in store.items(store.get_run("a"))}  # type: ignore[arg-type]
    wrong = {nid for nid, it in items.items() if it.stats.get("errors")}
    assert node in wrong
    ids = {it.item: nid for nid, it in items.items()}
    stack = [node]
    while stack:
        it = items[stack.pop()]
        ups = json.loads(it.deps or "[]") + ([ids[it.parent]] if it.parent is not None else [])
        for u in ups:
            assert u not in wrong, (node, u)
            stack.append(u)
    store.close()
    # in the order the nodes were made: a node downstream of a wrong one is not first
    from unerring.journal.store import ItemRecord

    def rec(nid: str, index: int, parent: int | None, deps: list[str]) -> ItemRecord:
        return ItemRecord(index, nid, {}, "completed", "", None, 0, None, {}, parent, "k",
                          None, json.dumps(deps))  # fmt: skip

    chain = [rec("a", 1, None, []), rec("b", 2, None, ["a"]), rec("c", 3, 2, [])]
    assert first_wrong_node(chain, {"b", "c"}) == "b"
    assert first_wrong_node(chain, {"c"}) == "c"
    assert first_wrong_node(chain, {"a", "c"}) == "a"


# -- graphs given as a stream of nodes -----------------------------------------------------------
class Listed(PairwiseSum):
    """The built-in `sum`, its nodes given as a list."""

    def nodes(self) -> list[Node]:
        return list(super().nodes())


def test_a_streamed_graph_decides_what_the_same_graph_listed_does(tmp_path: Path) -> None:
    runs = {}
    for name, graph in (("stream", PairwiseSum(600)), ("list", Listed(600))):
        res = unerring.run(graph, model="sim:error=0.05,seed=4", k=3, store=str(tmp_path / name))
        assert res.outcome.status == "completed", res.outcome.reason
        assert res.summary["nodes"] == 599 and res.summary["steps_decided"] == 599
        assert res.summary["result_correct"] is (res.summary["errors"] == 0)
        res.store.close()
        runs[name] = item_decisions(tmp_path / name, res.run.run_id)
    assert runs["stream"] == runs["list"] and len(runs["stream"]) == 599


def test_a_streamed_graph_holds_only_its_frontier() -> None:
    held = {}
    for graph in (PairwiseSum(4096), Listed(4096)):
        tree = TaskTree(graph, max_depth=MAX_DEPTH)
        tree.start()
        most, decided = _decide_by_hand(tree)
        assert decided == len(tree.seen) == 4095
        assert tree.outputs() == {"0-4096": sum(map(graph.number, range(4096)))}
        held[type(graph)] = most
    # pulled a few at a time, depth first, each result dropped once its one use started
    assert held[Listed] >= 4095 and held[PairwiseSum] <= 64


def test_a_streamed_node_that_says_no_uses_is_kept_to_the_end() -> None:
    from dataclasses import replace

    class Unsaid(PairwiseSum):
        def nodes(self) -> Iterable[Node]:
            return (replace(n, uses=None) for n in super().nodes())

    tree = TaskTree(Unsaid(64), max_depth=MAX_DEPTH)
    tree.start()
    _, decided = _decide_by_hand(tree)
    outputs = tree.outputs()
    assert decided == len(outputs) == 63
    assert outputs["0-64"] == sum(map(PairwiseSum(64).number, range(64)))


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([Node("a", deps=("b",)), Node("b")], "depends on 'b', which is not declared before it"),
        ([Node("a", uses=1), Node("a")], "node id 'a' is used twice"),
        (
            [Node("a", uses=1), Node("b", deps=("a",)), Node("c", deps=("a",))],
            "depends on 'a', whose uses are used up",
        ),
        ([Node("a", uses=0), Node("b", deps=("a",))], "whose uses are used up"),
        ([Node("a", uses=-1)], "uses must not be negative"),
        ([Node("")], "non-empty"),
    ],
)
def test_bad_streams_are_refused_naming_what_is_wrong(
    tmp_path: Path, nodes: list[Node], message: str
) -> None:
    from unerring.scheduler.graph_check import check_stream

    with pytest.raises(GraphError, match=message):
        check_stream(iter(nodes))

    class Bad(Graph):
        name = "bad-stream"

        def nodes(self) -> Iterable[Node]:
            return iter(nodes)

        def process(self, memory: Memory) -> Process[Any, Any]:
            raise AssertionError("a bad stream is refused before any node runs")

    db = tmp_path / "never.db"
    with pytest.raises(UsageError, match=message):
        unerring.run(Bad(), store=str(db))
    assert not db.exists()
    # a node without uses is kept: any later node may depend on it
    assert check_stream(iter([Node("a"), Node("b", deps=("a",)), Node("c", deps=("a",))])) == 3


def test_a_stream_that_changes_during_the_run_fails_it() -> None:
    class Unsteady(PairwiseSum):
        calls = 0

        def nodes(self) -> Iterable[Node]:
            Unsteady.calls += 1
            made = list(super().nodes())
            if Unsteady.calls > 1:  # checked once, then a node comes twice
                made.insert(5, made[0])
            return iter(made)

    res = unerring.run(Unsteady(100), model="sim:error=0", k=1)
    assert res.outcome.status == "failed"
    assert "went wrong during the run" in res.outcome.reason
    assert "is used twice" in res.outcome.reason


def test_a_streamed_graph_killed_and_resumed_equals_one_run(tmp_path: Path) -> None:
    # `unerring run sum`: a built-in graph whose nodes are a stream, pulled as they are
    # needed; each resume checks the stream against the journal and pulls on past it
    model, db = "sim:error=0.05,seed=9", tmp_path / "s.db"
    common = ["--store", str(db), "--quiet", "--concurrency", "4"]
    first = ["run", "sum", "--numbers", "600", "--k", "2", "--run-id", "st"]
    first += ["--model", f"{model},latency=10", *common]
    kill_and_resume(first, ["resume", "st", *common], tmp_path, seed=5)
    ref = run_task(
        task="sum",
        task_options={"numbers": 600},
        model=model,
        k=2,
        store=str(tmp_path / "ref.db"),
        handle_signals=False,
        run_id="st",
    )
    assert ref.outcome.status == "completed" and ref.summary["result_correct"] is not None
    ref.store.close()
    got, want = item_decisions(db, "st"), item_decisions(tmp_path / "ref.db", "st")
    assert got == want and len(got) == 599  # every node, every step once
    shown = json.loads(cli("show", "st", "--store", str(db), "--json").stdout)
    assert shown["status"] == "completed"


def test_a_stream_that_no_longer_makes_the_journals_nodes_is_refused(tmp_path: Path) -> None:
    from dataclasses import replace

    db = str(tmp_path / "c.db")
    budget = Budget(max_samples=50)
    first = unerring.run(
        PairwiseSum(300), model="sim:error=0", k=1, store=db, run_id="c", budget=budget
    )
    assert first.outcome.status == "stopped"
    first.store.close()

    class Renamed(PairwiseSum):
        def nodes(self) -> Iterable[Node]:
            for n in super().nodes():
                yield replace(n, id="x" + n.id, deps=tuple("x" + d for d in n.deps))

    with pytest.raises(UsageError, match="the graph's nodes are not those the journal holds"):
        unerring.run(Renamed(300), model="sim:error=0", k=1, store=db, run_id="c")
    again = unerring.run(PairwiseSum(300), model="sim:error=0", k=1, store=db, run_id="c")
    assert again.outcome.status == "completed" and again.summary["result_correct"] is True


@pytest.mark.parametrize(
    "value",
    [3, -5, 10**30, [], [1, 2, -3], [1, "a"], [True, 1], True, None, "x", {"a": [1]}, ["é", 1.5]],
)
def test_an_output_is_written_as_json_makes_it(value: Any) -> None:
    # ints and lists of ints take a shorter way; the text is json.dumps's all the same
    text = Cyclic().dump_output(value)  # the default, on any graph
    assert text == json.dumps(value, separators=(",", ":"))
    assert Cyclic().load_output(text) == value


def test_the_ids_made_are_held_exactly_and_compactly() -> None:
    import random

    from unerring.scheduler.graph_check import Seen, node_index

    rng = random.Random(7)
    seen = Seen()
    # random 62-bit indices, and indices that all land on the same first slot
    made = [rng.getrandbits(62) or 1 for _ in range(50_000)]
    made += [(k << 20) | 5 for k in range(1, 300)]
    held: set[int] = set()
    for i in made:  # says whether it was new (a stream's check refuses an id made twice)
        assert seen.add(i) is (i not in held)
        held.add(i)
    assert seen.add(made[0]) is False  # once is enough
    assert len(seen) == len(held)
    assert all(seen.has(i) for i in made)
    absent = [rng.getrandbits(62) or 1 for _ in range(50_000)]
    assert not any(seen.has(i) for i in absent if i not in held)
    assert not any(seen.has((k << 20) | 5) for k in range(300, 400))
    # at most half full: 16 to 32 bytes an id (a set of ints takes about 70)
    assert 16 <= len(seen._slots) * 8 / len(seen) <= 32
    assert "x" not in Seen()  # an empty index hashes nothing
    seen.add(node_index("x"))
    assert "x" in seen and "y" not in seen


def _read_back(db: Path) -> dict[str, Any]:
    """Everything the journal's readers give of a graph run (but the steps' times, which
    differ from run to run: only that each is there)."""
    from unerring.analysis.correlation import correlation
    from unerring.analysis.records import build
    from unerring.reporting.aggregate import aggregate
    from unerring.reporting.rows import export_rows

    store = Store(str(db), read_only=True)
    run = store.list_runs()[0]
    items = list(store.items(run))
    untimed = [
        {**d, "elapsed": d["elapsed"] >= 0}
        for it in items
        for d in store.decisions(run, item=it.item)
    ]
    agg = aggregate(store, run)
    out = {
        "items": items,
        "unfinished": list(store.items(run, unfinished=True)),
        "one": [store.item(run, it.item_id) for it in items[::37]],
        "counts": store.item_counts(run),
        "decisions": untimed,
        "winners": [list(store.decision_values(run, "winner", it.item)) for it in items],
        "elapsed": [
            [(s, e >= 0) for s, e in store.decision_values(run, "elapsed", it.item)] for it in items
        ],
        "count": store.count_decisions(run),
        "count_each": [store.count_decisions(run, it.item) for it in items[::11]],
        "numbers": list(store.item_numbers(run)),
        "extent": store.item_extent(run),
        "aggregate": (
            (agg.decided, agg.samples, agg.prompt_tokens, agg.completion_tokens),
            (round(agg.cost, 9), agg.flags, agg.samples_hist, agg.tallies),
        ),
        "nodes": list(export_rows(store, run, "nodes")),
        "packed": store.conn.execute("SELECT count(*) FROM node_ends").fetchone()[0],
        "failed_requests": run.stats.get("transport_failures", 0),
        "samples": [
            (r["item"], r["step"], r["idx"], r["text"], r["vote"], r["flag"], r["label"])
            for r in store.samples(run)
        ],
    }
    out["correlation"] = correlation(store, run.run_id)
    failures = build(store, run.run_id, resolve=resolve, replay_limit=0)
    out["failures"] = (
        [
            (r.item_id, r.step, r.index, r.category, r.answer, r.features, r.counted)
            for r in failures.records
        ],
        (failures.steps, failures.samples, failures.baseline, failures.first_wrong),
    )
    store.close()
    return out


@pytest.mark.parametrize("task", ["sum", "sort"])
def test_packed_node_ends_read_back_as_rows_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    """A graph's small nodes end many to a node_ends row; every reader of the journal gives
    back what the same run gives with each node's end and decisions in rows of their own.
    The run mixes in what keeps its rows: contested and flagged steps, failed requests, and
    a first attempt where some nodes stop (their requests failed every retry, counted in
    their totals) and that its budget stops, resumed without faults (those nodes end in
    the second attempt, whole, yet with totals committed before)."""
    from unerring.backends.factory import Transport
    from unerring.backends.resilience import RetryPolicy
    from unerring.journal import writer

    options = dict(
        task=task,
        task_options={"numbers": 300 if task == "sum" else 60},
        model="sim:error=0.15,flag=0.03,seed=5",
        k=2,
        record="samples",
    )
    transport = Transport(
        faults="server_error=0.1", retry=RetryPolicy(max_attempts=2, base_s=0.0, cap_s=0.0)
    )
    got = {}
    for pack in (True, False):
        monkeypatch.setattr(writer, "PACK_NODES", pack)
        db = tmp_path / f"{pack}.db"
        first = dict(store=str(db), transport=transport, budget=Budget(max_samples=250))
        assert run_task(**options, **first, run_id="r").outcome.status == "stopped"
        second = dict(store=str(db))
        res = run_task(**options, **second, run_id="r", resume=True)
        assert res.outcome.status == "completed", res.outcome.reason
        res.store.close()
        got[pack] = _read_back(db)
    packed, rows = got[True], got[False]
    assert packed["packed"] > 0 and rows["packed"] == 0
    assert {k: v for k, v in packed.items() if k != "packed"} == {
        k: v for k, v in rows.items() if k != "packed"
    }
    # the run had nodes of both kinds: packed ones and ones with rows of their own
    own = [d for d in rows["decisions"] if d["votes"] != f"[{d['samples'] - d['surplus']}]"]
    assert own and rows["failed_requests"] > 0 and rows["aggregate"][1][1]  # (flags)
    assert rows["failures"][0] and rows["samples"]
