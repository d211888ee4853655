"""Default serialisation and vote keys: their cost, and what the keys merge; one JSON line
per measurement.

- `state`: encode + decode of a Hanoi state by the built-in task's own dump/load against
  the default (core/serial.py typed by Process[State, Answer]), interleaved, medians.
- `run`: `hanoi` on the simulated model, journal on, with its own methods against the
  defaults (a subclass that drops them): decided steps per second, alternated runs.
- `keys`: microseconds per call, and how many vote keys N values written several ways
  make with the exact default key and with the chosen key (N is right; more splits votes).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import unerring
from unerring import keys
from unerring.process import Process
from unerring.tasks.hanoi import Hanoi, State


class DefaultHanoi(Hanoi):
    """The built-in task without its own serialisation: the defaults do it."""

    dump_state = Process.dump_state  # type: ignore[assignment]
    load_state = Process.load_state  # type: ignore[assignment]
    dump_answer = Process.dump_answer  # type: ignore[assignment]
    load_answer = Process.load_answer  # type: ignore[assignment]


def per_call_us(fn: Callable[[], Any], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def mid_state(disks: int) -> State:
    """The state halfway through a run: pegs of several sizes, a previous move."""
    h = Hanoi(disks)
    s = h.initial_state()
    for step in range(2 ** (disks - 1) + 2 ** (disks - 3)):
        s = h.advance(s, h.solve(s, step))
    return s


def bench_state(disks: int, repeats: int) -> dict[str, Any]:
    h, d = Hanoi(disks), DefaultHanoi(disks)
    s = mid_state(disks)
    own_text, default_text = h.dump_state(s), d.dump_state(s)
    assert h.load_state(own_text) == s and d.load_state(default_text) == s
    own: list[float] = []
    default: list[float] = []
    for _ in range(repeats):  # interleaved: both see the same machine load
        own.append(per_call_us(lambda: h.load_state(h.dump_state(s)), 5000))
        default.append(per_call_us(lambda: d.load_state(d.dump_state(s)), 5000))
    o, m = statistics.median(own), statistics.median(default)
    return {
        "bench": "state",
        "disks": disks,
        "own_us": round(o, 2),
        "default_us": round(m, 2),
        "ratio": round(m / o, 2),
        "own_text": own_text,
        "default_text": default_text,
    }


def bench_run(disks: int, repeats: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"own": [], "default": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for name, cls in (("own", Hanoi), ("default", DefaultHanoi)):
                db = str(Path(tmp) / f"{name}{r}.db")
                t = time.perf_counter()
                res = unerring.run(cls(disks), model="sim:error=0.05,seed=1", k=3, store=db)
                wall = time.perf_counter() - t
                assert res.outcome.status == "completed" and res.summary["errors"] == 0
                rates["own" if cls is Hanoi else "default"].append(
                    res.summary["steps_decided"] / wall
                )
                res.store.close()
    o, m = statistics.median(rates["own"]), statistics.median(rates["default"])
    return {
        "bench": "run",
        "disks": disks,
        "own_steps_s": round(o),
        "default_steps_s": round(m),
        "ratio": round(m / o, 3),
    }


def number_spellings(rng: random.Random) -> tuple[Any, list[str]]:
    d = Decimal(rng.randint(1, 10**7)).scaleb(-rng.randint(0, 3))
    plain = format(d, "f")
    out = [plain, format(d, "e"), "+" + plain, plain + ("0" if "." in plain else ".0")]
    if "." not in plain:
        out.append(f"{int(d):,}")
    return d.normalize(), out


def record_spellings(rng: random.Random) -> tuple[Any, list[str]]:
    rec = {"name": f"n{rng.randint(0, 10**5)}", "year": rng.randint(1800, 2000), "tags": ["a"]}
    items = list(rec.items())
    rng.shuffle(items)
    return (rec["name"], rec["year"]), [
        json.dumps(rec),
        json.dumps(dict(items), indent=2),
        json.dumps(rec, separators=(",", ":")),
        json.dumps({**rec, "year": float(rec["year"])}),  # type: ignore[dict-item]
    ]


def text_spellings(rng: random.Random) -> tuple[Any, list[str]]:
    words = ["".join(rng.choice("abcd") for _ in range(rng.randint(1, 4))) for _ in range(2)]
    plain = " ".join(words)
    return tuple(words), [plain, plain.upper() + ".", "  " + "\t".join(words) + " !", plain.title()]


def bench_keys(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for name, key, spell in (
        ("number", keys.number, number_spellings),
        ("json", keys.json, record_spellings),
        ("text", keys.text, text_spellings),
    ):
        drawn = [spell(rng) for _ in range(n)]  # (the value, its spellings)
        texts = [t for _, g in drawn for t in g]
        t = time.perf_counter()
        chosen = {key(x) for x in texts}
        us = (time.perf_counter() - t) / len(texts) * 1e6
        values = {v for v, _ in drawn}  # values drawn twice count once
        out.append(
            {
                "bench": "keys",
                "key": name,
                "values": len(values),
                "spellings": len(texts),
                "exact_keys": len(set(texts)),
                "chosen_keys": len(chosen),  # == values: every value one key, none shared
                "every_value_one_key": all(len({key(x) for x in g}) == 1 for _, g in drawn),
                "us_per_call": round(us, 2),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--run-disks", type=int, default=12)
    ap.add_argument("--run-repeats", type=int, default=3)
    ap.add_argument("--values", type=int, default=10_000)
    args = ap.parse_args()
    for disks in (10, 20):
        print(json.dumps(bench_state(disks, args.repeats)))
    print(json.dumps(bench_run(args.run_disks, args.run_repeats)))
    for line in bench_keys(args.values, seed=1):
        print(json.dumps(line))


if __name__ == "__main__":
    main()
