"""Guard rails: a class missing a required method refused at the start, `done()` still
false after `total_steps()` (or `max_steps`) steps, exceptions out of `parse` as their own
flag kind, steps whose first 2k samples are all flagged, Ctrl-C in a library call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import unerring
from tests.helpers import cli
from unerring import Flag, Process
from unerring.errors import UsageError
from unerring.graph import Graph, Memory, Node
from unerring.journal.store import Store

SIM = "sim:error=0.0"


class Count(Process[int, int]):
    """Counts to `n`; `total` is what it says its length is."""

    name = "count"

    def __init__(self, n: int = 6, total: int | None = 6) -> None:
        self.n = n
        self.total = total

    def initial_state(self) -> int:
        return 0

    def total_steps(self) -> int | None:
        return self.total

    def done(self, state: int, step: int) -> bool:
        return state == self.n

    def prompt(self, state: int, step: int) -> str:
        return f"{state} + 1 ="

    def parse(self, text: str) -> int | Flag:
        return int(text) if text.strip().isdigit() else Flag.PARSE

    def advance(self, state: int, answer: int) -> int:
        return answer

    def solve(self, state: int, step: int) -> int:
        return state + 1

    def render(self, answer: int) -> str:
        return str(answer)

    def wrong_answers(self, state: int, step: int, answer: int) -> list[int]:
        return [answer + 1]


# -- a class missing a required method -------------------------------------------------------


class NoParse(Count):
    pass


NoParse.parse = Process.parse  # type: ignore[method-assign]  # as a class that never defined it


class NoParseNoPrompt(Count):
    pass


NoParseNoPrompt.parse = Process.parse  # type: ignore[method-assign]
NoParseNoPrompt.prompt = Process.prompt  # type: ignore[method-assign]


class Duck:
    """Looks like a process, is none, and has no `prompt`."""

    name = "duck"

    def initial_state(self) -> int:
        return 0

    def done(self, state: int, step: int) -> bool:
        return True

    def parse(self, text: str) -> int:
        return 0

    def advance(self, state: int, answer: int) -> int:
        return state


def test_a_process_whose_class_lacks_parse_is_refused_naming_it(tmp_path: Path) -> None:
    store = tmp_path / "j.db"
    with pytest.raises(UsageError, match=r"does not define the required method parse"):
        unerring.run(NoParse(), model=SIM, k=1, store=str(store))
    assert not store.exists()  # refused before the store was touched


def test_an_object_that_is_no_process_is_refused_naming_what_it_lacks(tmp_path: Path) -> None:
    store = tmp_path / "j.db"
    with pytest.raises(UsageError, match=r"got a 'Duck' object; it lacks prompt"):
        unerring.run(Duck(), model=SIM, k=1, store=str(store))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"item '2': .*lacks prompt"):
        unerring.run_batch([Count(), Duck()], model=SIM, k=1, store=str(store))  # type: ignore[list-item]
    assert not store.exists()


class NoPrompt(Graph):
    name = "no-prompt"

    def nodes(self) -> list[Node]:
        return [Node("a", kind="leaf")]

    def process(self, memory: Memory) -> Process[Any, Any]:
        return NoParseNoPrompt()


def test_a_graph_whose_first_node_process_lacks_a_method_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "j.db"
    with pytest.raises(UsageError, match=r"node 'a'.*required methods prompt, parse"):
        unerring.run(NoPrompt(), model=SIM, k=1, store=str(store))
    assert not store.exists()


# -- done() still false after total_steps() (or max_steps) steps -------------------------------


class Endless(Count):
    """Never done; says it has `total` steps (or says nothing)."""

    name = "endless"

    def done(self, state: int, step: int) -> bool:
        return False


def _item(store: Path, run_id: str, item_id: str = "1") -> Any:
    s = Store(str(store))
    run = s.get_run(run_id)
    assert run is not None
    got = s.item(run, item_id)
    assert got is not None
    return run, got


@pytest.mark.parametrize("speculate", [0, 2])
def test_done_still_false_after_total_steps_fails_at_that_step(
    tmp_path: Path, speculate: int
) -> None:
    store = tmp_path / "j.db"
    model = SIM if not speculate else f"{SIM},latency=1"
    r = unerring.run(
        Endless(total=50), model=model, k=2, store=str(store), run_id="e", speculate=speculate
    )
    assert r.outcome.status == "failed"
    assert "done() still false after total_steps() = 50 steps" in r.outcome.reason
    assert r.summary["steps_decided"] == 50
    run, item = _item(store, "e")
    assert (run.status, item.status, item.next_step) == ("failed", "failed", 50)
    assert "done()" in item.reason and "done()" in run.reason


def test_max_steps_caps_a_process_without_a_total(tmp_path: Path) -> None:
    store = tmp_path / "j.db"
    r = unerring.run(Endless(total=None), model=SIM, k=1, store=str(store), run_id="m",
                     max_steps=7)  # fmt: skip
    assert r.outcome.status == "failed" and r.summary["steps_decided"] == 7
    assert "done() still false after max_steps = 7 steps" in r.outcome.reason
    assert r.run.config["max_steps"] == 7  # journaled with the run's configuration
    # a total, where the process gives one, is the limit: max_steps does not cut it short
    r = unerring.run(Count(n=6, total=6), model=SIM, k=1, store=str(store), max_steps=2)
    assert r.outcome.status == "completed" and r.summary["steps_decided"] == 6


def test_a_failed_item_resumes_with_a_higher_max_steps(tmp_path: Path) -> None:
    store = tmp_path / "j.db"
    r = unerring.run(Count(n=9, total=None), model=SIM, k=1, store=str(store), run_id="r",
                     max_steps=4)  # fmt: skip
    assert r.outcome.status == "failed" and r.summary["steps_decided"] == 4
    r = unerring.run(Count(n=9, total=None), model=SIM, k=1, store=str(store), run_id="r",
                     max_steps=20)  # fmt: skip
    assert r.outcome.status == "completed" and r.summary["steps_decided"] == 9


def test_max_steps_must_be_a_positive_whole_number(tmp_path: Path) -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(UsageError, match=r"max_steps must be a whole number"):
            unerring.run(Count(), model=SIM, k=1, max_steps=bad)  # type: ignore[arg-type]


def test_the_cli_takes_max_steps_and_refuses_a_bad_value(tmp_path: Path) -> None:
    store = str(tmp_path / "j.db")
    for bad in ("0", "x", "-1"):
        res = cli("run", "hanoi", "--disks", "3", "--model", SIM, "--store", store,
                  "--max-steps", bad, "--quiet")  # fmt: skip
        assert res.returncode == 2, res.stderr
        assert "--max-steps" in res.stderr and "Traceback" not in res.stderr
    res = cli("run", "hanoi", "--disks", "3", "--model", SIM, "--store", store, "--run-id",
              "h", "--max-steps", "3", "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr  # hanoi has a total: 7 steps, all decided
    run, item = _item(tmp_path / "j.db", "h")
    assert run.config["max_steps"] == 3 and item.next_step == 7
