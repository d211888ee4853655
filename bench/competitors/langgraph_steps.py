"""A durable sequential LangGraph process of N trivial steps (SqliteSaver); prints one JSON line.

Runs in the competitors' virtual environment (bench/side_by_side.py creates it). One node
adds 1 to a counter and loops back to itself until the counter reaches N: one super-step,
so one checkpoint, per step.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from importlib.metadata import version
from typing import Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph


class Counter(TypedDict):
    i: int


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--durability", choices=("default", "sync", "async", "exit"), default="default")
    args = p.parse_args()
    n = args.steps

    def step(state: Counter) -> dict[str, int]:
        return {"i": state["i"] + 1}

    def route(state: Counter) -> str:
        return END if state["i"] >= n else "step"

    graph = StateGraph(Counter)
    graph.add_node("step", step)
    graph.add_edge(START, "step")
    graph.add_conditional_edges("step", route)
    conn = sqlite3.connect(args.db, check_same_thread=False)
    app = graph.compile(checkpointer=SqliteSaver(conn))
    config: Any = {"configurable": {"thread_id": "bench"}, "recursion_limit": n + 10}
    kwargs: dict[str, Any] = {}
    if args.durability != "default":
        kwargs["durability"] = args.durability
    t0 = time.perf_counter()
    out = app.invoke({"i": 0}, config, **kwargs)
    seconds = time.perf_counter() - t0
    assert out["i"] == n, out
    checkpoints = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    conn.close()
    print(
        json.dumps(
            {
                "system": "langgraph",
                "durability": args.durability,
                "steps": n,
                "seconds": seconds,
                "per_step_ms": seconds * 1e3 / n,
                "checkpoints": checkpoints,
                "versions": {p: version(p) for p in ("langgraph", "langgraph-checkpoint-sqlite")},
            }
        )
    )


if __name__ == "__main__":
    main()
