"""Benchmark: graphs of subtasks (the task memory tree on the scheduler).

Prints one JSON line per measurement, each against its baseline measured in the same run:

- cost: a tree of one-step nodes (pairwise sums of 10,001 numbers: 10,000 nodes) against a
  chain of the same 10,000 one-step sums (a running total), cost per decided node / step,
  journal on, and 10,000 such sums as a batch's one-step items (an item without a tree);
  peak memory at 2,500, 10,000 and 40,000 nodes (flat in the number of nodes?), for the
  tree declared as a list and as a stream (the built-in `sum`: depth first, each node its
  one use);
  prompt tokens of the last 1,000 nodes made against the first 1,000 (also for `sort`,
  whose nodes' prompts carry their path);
- latency: `multiply --digits 8` on a model with lognormal latency (median 100 ms, sigma
  0.5), k = 3, 64 requests in flight, against its critical path (the longest chain of
  dependent steps) times a chain's wall-clock per step at the same latency;
- floor: what a node costs at the least, each layer alone, against the same chain run
  whole: the task memory tree walked by a plain loop (take a node, vote on its one step,
  end it: no items driven, no events, no journal), then the same tree run by the scheduler
  (items, no journal); the first is a bound no arrangement of items and journal beats.

    python bench/graph.py                  # everything (~4 minutes)
    python bench/graph.py --what cost
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from hanoi import run_child
from unerring.core.flags import Flag
from unerring.graph import Graph, Memory, Node
from unerring.process import Process
from unerring.tasks.multiply import Multiply
from unerring.tasks.sums import AddPair, PairwiseSum, parse_sum, sum_prompt

LATENCY = "lognormal:100:0.5"


def numbers(n: int) -> list[int]:
    """The numbers `unerring run sum --numbers n` adds."""
    return list(map(PairwiseSum(n).number, range(n)))


class Running(Process[tuple[int, int], int]):
    """The chain baseline: a running total of the numbers, one voted sum a step."""

    name = "running"

    def __init__(self, n: int) -> None:
        self.xs = numbers(n)

    def initial_state(self) -> tuple[int, int]:
        return (1, self.xs[0])

    def total_steps(self) -> int:
        return len(self.xs) - 1

    def done(self, state: tuple[int, int], step: int) -> bool:
        return state[0] >= len(self.xs)

    def _q(self, state: tuple[int, int]) -> tuple[int, int]:
        return state[1], self.xs[state[0]]

    def prompt(self, state: tuple[int, int], step: int) -> str:
        return sum_prompt(*self._q(state))  # as a node of the built-in `sum` asks

    def parse(self, text: str) -> int | Flag:
        return parse_sum(text)

    def advance(self, state: tuple[int, int], answer: int) -> tuple[int, int]:
        return (state[0] + 1, answer)

    def check(self, state: tuple[int, int], step: int, answer: int) -> bool:
        return answer == sum(self._q(state))

    def dump_state(self, state: tuple[int, int]) -> str:
        return json.dumps(list(state))

    def load_state(self, text: str) -> tuple[int, int]:
        i, total = json.loads(text)
        return (int(i), int(total))

    def solve(self, state: tuple[int, int], step: int) -> int:
        return sum(self._q(state))

    def render(self, answer: int) -> str:
        return f" {answer}"

    def wrong_answers(self, state: tuple[int, int], step: int, answer: int) -> list[int]:
        return [answer + 1, answer - 10]  # as AddPair's


class Tree(Graph):
    """Pairwise sums of n numbers, level after level: n - 1 one-step nodes declared as a
    list (the built-in `sum` declares the same sums as a stream)."""

    name = "tree"

    def __init__(self, n: int) -> None:
        self.n = n

    def options(self) -> dict[str, Any]:
        return {"n": self.n}

    def nodes(self) -> Iterable[Node]:
        # a level's entries: a number (an input, not a node: a first-level sum holds its
        # numbers as its input) or the id of the sum made of two entries below
        level: list[int | str] = list(numbers(self.n))
        out: list[Node] = []
        depth = 0
        while len(level) > 1:
            depth += 1
            made: list[int | str] = []
            for i in range(len(level) // 2):
                pair = (level[2 * i], level[2 * i + 1])
                node_id = f"s{depth}.{i}"
                given = [x for x in pair if isinstance(x, int)]
                deps = tuple(x for x in pair if isinstance(x, str))
                out.append(Node(node_id, "sum", given, deps))
                made.append(node_id)
            level = made + ([level[-1]] if len(level) % 2 else [])  # an odd one waits
        return out

    def process(self, memory: Memory) -> Process[Any, Any]:
        x, y = [*memory.node.input, *memory.deps.values()]
        return AddPair(int(x), int(y))

    def total_steps(self) -> int:
        return self.n - 1


def child(what: str, n: int, store: str) -> None:
    """Run in a child process: print the run's summary as one JSON line."""
    import unerring

    graphs: dict[str, Any] = {"tree": Tree, "stream": PairwiseSum}
    if what == "batch":  # the same n - 1 one-step sums as a batch's items: no tree
        xs = numbers(n)
        items = [AddPair(xs[i], xs[i + 1]) for i in range(n - 1)]
        res = unerring.run_batch(items, model="sim:error=0.01", k=3, store=store)
    else:
        process = graphs[what](n) if what in graphs else Running(n)
        res = unerring.run(process, model="sim:error=0.01", k=3, store=store)
    s = res.summary
    if what in graphs:
        s["tokens"] = _node_tokens(res)
    print(json.dumps(s))


def _node_tokens(res: Any) -> dict[str, float]:
    """Prompt tokens per sample of the first and last 1,000 nodes made."""
    per = [
        it.stats.get("prompt_tokens", 0) / it.stats["samples"]
        for it in res.store.items(res.run)
        if it.stats.get("samples")
    ]
    k = min(1000, len(per) // 2)
    first, last = sum(per[:k]) / k, sum(per[-k:]) / k
    return {"first": round(first, 2), "last": round(last, 2), "ratio": round(last / first, 3)}


def floor_child(n: int) -> None:
    """Run in a child process: the tree walked by a plain loop, then by the scheduler
    (no journal, no runner); print microseconds per node as one JSON line (medians of 3)."""
    import asyncio
    import statistics
    import time

    from unerring.backends.sim import ProcessOracle, SimBackend, SimConfig
    from unerring.core.events import ItemEnd
    from unerring.scheduler.loop import Scheduler
    from unerring.scheduler.tree import TaskTree
    from unerring.voting.config import VotingConfig

    def scheduler() -> Scheduler:
        return Scheduler(SimBackend(SimConfig(error=0.01)), VotingConfig(k=3), oracle=ProcessOracle)

    async def loop() -> tuple[float, float]:
        s = scheduler()
        t0 = time.perf_counter()
        tree = TaskTree(Tree(n), max_depth=64)
        tree.start()
        t1 = time.perf_counter()
        while (it := tree.take()) is not None:
            # the scheduler's vote on the node's one step (what `_chain` awaits a step)
            d = await s._decide(it, it.state, 0)
            s.totals.add(d)
            end = ItemEnd(it.index, "completed", 1, d.state_after, "", it.item_id)
            tree.ended(it, end)
        t2 = time.perf_counter()
        assert s.totals.steps_decided == n - 1
        return (t2 - t0) * 1e6 / (n - 1), (t1 - t0) * 1e6 / (n - 1)

    async def scheduled() -> float:
        s = scheduler()
        t0 = time.perf_counter()
        tree = TaskTree(Tree(n), max_depth=64)
        tree.start()
        end = await s.run(tree)
        assert end.status == "completed" and s.totals.steps_decided == n - 1
        return (time.perf_counter() - t0) * 1e6 / (n - 1)

    loops = [asyncio.run(loop()) for _ in range(3)]
    runs = [asyncio.run(scheduled()) for _ in range(3)]
    print(json.dumps({
        "tree_us_per_node": statistics.median(x[0] for x in loops),
        "tree_build_us_per_node": statistics.median(x[1] for x in loops),
        "scheduled_us_per_node": statistics.median(runs),
    }))  # fmt: skip


def floor(nodes: int) -> dict[str, Any]:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
        f"import graph; graph.floor_child({nodes + 1})"
    )
    parts, _ = run_child(["-c", code])
    with tempfile.TemporaryDirectory() as tmp:
        chains = [run_in_child("chain", nodes + 1, f"{tmp}/c{i}.db")[0] for i in range(3)]
    per_step = sorted(c["wall_s"] * 1e6 / c["steps_decided"] for c in chains)[1]
    return {
        "bench": "graph-floor",
        "nodes": nodes,
        "chain_us_per_step": round(per_step, 1),
        # the tree alone: making the declared nodes, each node's memory, process, vote and
        # end, its dependents made ready (the first part of it: making the declared nodes)
        "tree_us_per_node": round(parts["tree_us_per_node"], 1),
        "tree_build_us_per_node": round(parts["tree_build_us_per_node"], 1),
        "tree_vs_chain": round(parts["tree_us_per_node"] / per_step, 3),
        # the same tree run by the scheduler: each node an item (no journal, no runner)
        "scheduled_us_per_node": round(parts["scheduled_us_per_node"], 1),
        "scheduled_vs_chain": round(parts["scheduled_us_per_node"] / per_step, 3),
    }


def run_in_child(what: str, n: int, store: str) -> tuple[dict[str, Any], float]:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
        f"import graph; graph.child({what!r}, {n}, {store!r})"
    )
    return run_child(["-c", code])


def cost(nodes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        tree, rss = run_in_child("tree", nodes + 1, f"{tmp}/t.db")
        chain, chain_rss = run_in_child("chain", nodes + 1, f"{tmp}/c.db")
        batch, _ = run_in_child("batch", nodes + 1, f"{tmp}/ba.db")
        _, small_rss = run_in_child("tree", nodes // 4 + 1, f"{tmp}/s.db")
        _, big_rss = run_in_child("tree", nodes * 4 + 1, f"{tmp}/b.db")
        stream, stream_rss = run_in_child("stream", nodes + 1, f"{tmp}/st.db")
        _, stream_small_rss = run_in_child("stream", nodes // 4 + 1, f"{tmp}/ss.db")
        _, stream_big_rss = run_in_child("stream", nodes * 4 + 1, f"{tmp}/sb.db")
        # a sort's first cuts list thousands of numbers: far over the default token limit
        sort_args = ["run", "sort", "--numbers", "3334", "--json", "--max-tokens", "50000"]
        sort, _ = run_child(["-m", "unerring", *sort_args, "--store", f"{tmp}/sort.db",
                             "--run-id", "s", "--quiet"])  # fmt: skip
        sort_tokens = _sort_tokens(f"{tmp}/sort.db")
    per_node = tree["wall_s"] * 1e6 / tree["steps_decided"]
    per_step = chain["wall_s"] * 1e6 / chain["steps_decided"]
    per_streamed = stream["wall_s"] * 1e6 / stream["steps_decided"]
    per_item = batch["wall_s"] * 1e6 / batch["steps_decided"]
    return {
        "bench": "graph-cost",
        "nodes": tree["nodes"],
        "errors": tree["errors"] + chain["errors"],
        "result_correct": tree["result_correct"],
        "us_per_node": round(per_node, 1),
        "chain_us_per_step": round(per_step, 1),
        "vs_chain": round(per_node / per_step, 3),
        # the same sums as a batch's one-step items: what an item costs without a tree
        "batch_us_per_item": round(per_item, 1),
        "batch_vs_chain": round(per_item / per_step, 3),
        f"peak_rss_mb_{nodes // 4}_nodes": round(small_rss, 1),
        "peak_rss_mb": round(rss, 1),
        f"peak_rss_mb_{nodes * 4}_nodes": round(big_rss, 1),
        "chain_peak_rss_mb": round(chain_rss, 1),
        # the same sums given as a stream (depth first, each node its one use)
        "stream_errors": stream["errors"],
        "stream_result_correct": stream["result_correct"],
        "stream_us_per_node": round(per_streamed, 1),
        "stream_vs_chain": round(per_streamed / per_step, 3),
        f"stream_peak_rss_mb_{nodes // 4}_nodes": round(stream_small_rss, 1),
        "stream_peak_rss_mb": round(stream_rss, 1),
        f"stream_peak_rss_mb_{nodes * 4}_nodes": round(stream_big_rss, 1),
        "prompt_tokens_last_vs_first_1000": tree["tokens"]["ratio"],
        "sort_nodes": sort["nodes"],
        "sort_prompt_tokens_last_vs_first_1000": sort_tokens,
    }


def _sort_tokens(db: str) -> float:
    from unerring.journal.store import Store

    store = Store(db, read_only=True)
    run = store.get_run("s")
    assert run is not None
    per = [
        it.stats.get("prompt_tokens", 0) / it.stats["samples"]
        for it in store.items(run)
        if it.kind == "sort" and it.stats.get("samples")
    ]
    store.close()
    k = min(1000, len(per) // 2)
    return round((sum(per[-k:]) / k) / (sum(per[:k]) / k), 3)


def latency(digits: int) -> dict[str, Any]:
    model = f"sim:error=0.01,latency={LATENCY}"
    s, _ = run_child(
        ["-m", "unerring", "run", "multiply", "--digits", str(digits), "--k", "3", "--model",
         model, "--concurrency", "64", "--store", ":memory:", "--json"]
    )  # fmt: skip
    chain, _ = run_child(
        ["-m", "unerring", "run", "addition", "--digits", "60", "--k", "3", "--model", model,
         "--store", ":memory:", "--json"]
    )  # fmt: skip
    per_step = chain["wall_s"] / chain["steps_decided"]
    path = critical_path(Multiply(digits))
    bound = path * per_step
    return {
        "bench": "graph-latency",
        "digits": digits,
        "nodes": s["nodes"],
        "steps": s["steps_decided"],
        "errors": s["errors"],
        "result_correct": s["result_correct"],
        "critical_path_steps": path,
        "chain_ms_per_step": round(per_step * 1000, 1),
        "wall_s": round(s["wall_s"], 2),
        "critical_path_wall_s": round(bound, 2),
        "vs_critical_path": round(s["wall_s"] / bound, 3),
    }


def critical_path(g: Multiply) -> int:
    """The longest chain of dependent voted steps through the graph (a correct run)."""
    from unerring.tasks.multiply import SumOf, TimesDigit

    longest: dict[str, int] = {}
    value: dict[str, int] = {}
    a = int("".join(map(str, reversed(g.a))))
    for n in g.nodes():
        if n.kind == "digits":
            d = int(n.input["digit"])
            longest[n.id] = TimesDigit(g.a, d).total_steps()
            value[n.id] = a * d * 10 ** int(n.input["shift"])
        else:
            x, y = (value[d] for d in n.deps)
            value[n.id] = x + y
            steps = SumOf(str(x), str(y)).total_steps()
            longest[n.id] = steps + max(longest[d] for d in n.deps)
    return max(longest.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--what", choices=("all", "cost", "latency", "floor"), default="all")
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--digits", type=int, default=8)
    a = ap.parse_args()
    if a.what in ("all", "cost"):
        print(json.dumps(cost(a.nodes)), flush=True)
    if a.what in ("all", "latency"):
        print(json.dumps(latency(a.digits)), flush=True)
    if a.what in ("all", "floor"):
        print(json.dumps(floor(a.nodes)), flush=True)


if __name__ == "__main__":
    main()
