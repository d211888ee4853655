"""A durable sequential DBOS Transact workflow of N trivial steps (SQLite system database).

Runs in the competitors' virtual environment (bench/side_by_side.py creates it); prints one
JSON line. A `@DBOS.workflow` calls a `@DBOS.step` N times; DBOS records each step's output.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib.metadata import version
from typing import Any

from dbos import DBOS


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--db", required=True)
    args = p.parse_args()
    n = args.steps
    config: Any = {"name": "unerring-bench", "system_database_url": f"sqlite:///{args.db}"}
    DBOS(config=config)

    @DBOS.step()
    def step(i: int) -> int:
        return i + 1

    @DBOS.workflow()
    def process(count: int) -> int:
        x = 0
        for _ in range(count):
            x = step(x)
        return x

    DBOS.launch()
    try:
        t0 = time.perf_counter()
        out = process(n)
        seconds = time.perf_counter() - t0
    finally:
        DBOS.destroy()
    assert out == n, out
    print(
        json.dumps(
            {
                "system": "dbos",
                "steps": n,
                "seconds": seconds,
                "per_step_ms": seconds * 1e3 / n,
                "versions": {"dbos": version("dbos")},
            }
        )
    )


if __name__ == "__main__":
    main()
