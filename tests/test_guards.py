"""Guard rails: a class missing a required method refused at the start, `done()` still
false after `total_steps()` (or `max_steps`) steps, exceptions out of `parse` as their own
flag kind, steps whose first 2k samples are all flagged, Ctrl-C in a library call."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import unerring
from tests.helpers import child_env, cli
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


def test_a_wrong_decision_that_lengthens_a_chain_past_its_total_ends_it_as_a_run() -> None:
    """addition counts its total for the correct run: a wrongly decided carry adds a step
    (k = 1 on a model wrong 30% of the time). Its `step_limit()` (two steps a column) is
    past any run's length, so the run completes with its errors counted, not failed."""
    from unerring.tasks.addition import Addition

    process = Addition(digits=40)
    r = unerring.run(process, model="sim:error=0.3,seed=3", k=1)
    assert r.outcome.status == "completed", r.outcome.reason
    assert r.summary["steps_decided"] > process.total_steps() == 65
    assert r.summary["errors"] > 0


class Runaway(Endless):
    """A chain whose own limit is past its total (as addition's is)."""

    def step_limit(self) -> int:
        return 60


def test_a_process_s_own_step_limit_fails_it_there_naming_it() -> None:
    r = unerring.run(Runaway(total=50), model=SIM, k=1)
    assert r.outcome.status == "failed" and r.summary["steps_decided"] == 60
    assert "done() still false after step_limit() = 60 steps" in r.outcome.reason


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


def test_the_cli_takes_max_steps(tmp_path: Path) -> None:
    store = str(tmp_path / "j.db")  # (a bad value: tests/test_exit_codes.py)
    res = cli("run", "hanoi", "--disks", "3", "--model", SIM, "--store", store, "--run-id",
              "h", "--max-steps", "3", "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr  # hanoi has a total: 7 steps, all decided
    run, item = _item(tmp_path / "j.db", "h")
    assert run.config["max_steps"] == 3 and item.next_step == 7


# -- parse raising: its own flag kind, kept in the journal, ending an item early -------------


class Boom(Count):
    """`parse` raises on every response."""

    name = "boom"

    def parse(self, text: str) -> int | Flag:
        raise ValueError("boom")


class Strict(Count):
    """Answers `answer=N;`; `parse` raises on a response cut short (the sim's malformed)."""

    name = "strict"

    def parse(self, text: str) -> int | Flag:
        if not text.endswith(";"):
            raise KeyError(f"no ';' in {text!r}")
        return int(text.removeprefix("answer=").removesuffix(";"))

    def render(self, answer: int) -> str:
        return f"answer={answer:04d};"


@pytest.mark.parametrize("model", [SIM, f"{SIM},latency=1"])
def test_parse_raising_on_every_sample_ends_its_item_within_2k_samples(
    tmp_path: Path, model: str
) -> None:
    store = tmp_path / "j.db"
    k = 3
    r = unerring.run(Boom(), model=model, k=k, store=str(store), run_id="b")
    assert r.outcome.status == "failed"
    assert "boom" in r.outcome.reason and "parse_error" in r.outcome.reason
    assert "ValueError" in r.outcome.reason and "undecided" not in r.outcome.reason
    assert r.summary["samples"] <= 2 * k
    assert r.summary["flags"] == {"parse_error": r.summary["samples"]}
    assert r.summary["parse_error"] == {"step": 0, "type": "ValueError", "message": "boom"}
    run, item = _item(store, "b")
    assert (run.status, item.status, item.next_step) == ("failed", "failed", 0)
    assert item.stats["parse_error"] == {"step": 0, "type": "ValueError", "message": "boom"}
    assert item.stats["flags"] == {"parse_error": r.summary["samples"]}


def test_speculation_ends_an_all_flagged_chain_the_same_way(tmp_path: Path) -> None:
    r = unerring.run(Boom(), model=f"{SIM},latency=1", k=2, speculate=3)
    assert r.outcome.status == "failed" and "boom" in r.outcome.reason
    assert r.summary["samples"] <= 4


def test_an_item_that_failed_on_parse_errors_resumes_once_parse_is_fixed(tmp_path: Path) -> None:
    store = tmp_path / "j.db"
    r = unerring.run_batch({"a": Count(), "b": Boom()}, model=SIM, k=2, store=str(store),
                           run_id="rb")  # fmt: skip
    assert r.outcome.status == "failed" and "boom" in r.outcome.reason
    assert r.summary["items_completed"] == 1 and r.summary["items_failed"] == 1
    (bad,) = r.summary["items_not_completed"]
    assert bad["id"] == "b" and "parse_error" in bad["reason"] and "boom" in bad["reason"]
    r = unerring.run_batch({"a": Count(), "b": Count()}, model=SIM, k=2, store=str(store),
                           run_id="rb")  # fmt: skip
    assert r.outcome.status == "completed" and r.summary["items_completed"] == 2


def test_a_step_capped_below_2k_with_every_sample_flagged_names_the_flag() -> None:
    r = unerring.run(Boom(), model=SIM, k=3, max_samples_per_step=4)
    assert r.outcome.status == "failed" and "boom" in r.outcome.reason
    assert r.summary["samples"] == 4


def test_the_first_parse_error_is_kept_shown_and_the_run_goes_on(tmp_path: Path) -> None:
    store = tmp_path / "j.db"
    r = unerring.run(Strict(n=30, total=30), model=f"{SIM},flag=0.3", k=2, store=str(store),
                     run_id="s")  # fmt: skip
    assert r.outcome.status == "completed"
    flags = r.summary["flags"]
    assert flags.get("parse_error", 0) > 0 and "parse" not in flags
    first = r.summary["parse_error"]
    assert first["type"] == "KeyError" and "no ';' in" in first["message"]
    _, item = _item(store, "s")
    assert item.stats["parse_error"] == first
    # `unerring show` names it in a line, as the summary does
    res = cli("show", "s", "--store", str(store))
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("parse_error"))
    assert f"step {first['step']}: KeyError: " in line


def test_a_long_message_is_kept_to_a_few_hundred_characters() -> None:
    class Long(Boom):
        def parse(self, text: str) -> int | Flag:
            raise RuntimeError("x" * 10_000 + "\n" + "y")

    r = unerring.run(Long(), model=SIM, k=1)
    got = r.summary["parse_error"]
    assert got["type"] == "RuntimeError" and len(got["message"]) <= 300
    assert len(r.outcome.reason) < 1000


# -- Ctrl-C in a library call ------------------------------------------------------------------

SCRIPT = """
import sys
import unerring
from unerring import Flag, Process


class Slow(Process[int, int]):
    name = "slow"

    def initial_state(self):
        return 0

    def done(self, state, step):
        return False

    def prompt(self, state, step):
        if step == 3:
            print("started", flush=True)
        return f"{state} + 1 ="

    def parse(self, text):
        return int(text)

    def advance(self, state, answer):
        return answer

    def solve(self, state, step):
        return state + 1

    def render(self, answer):
        return str(answer)


unerring.run(Slow(), model="sim:error=0,latency=20", k=2, store=sys.argv[1], run_id="int",
             max_steps=1_000_000)
print("returned", flush=True)
"""


def test_ctrl_c_in_a_library_call_raises_one_keyboard_interrupt(tmp_path: Path) -> None:
    script = tmp_path / "long_run.py"
    script.write_text(SCRIPT)
    store = tmp_path / "j.db"
    child = subprocess.Popen([sys.executable, str(script), str(store)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=child_env())  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"  # the run is under way
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0 and "returned" not in out
    assert err.count("KeyboardInterrupt") == 1, err
    assert err.rstrip().endswith("KeyboardInterrupt")
    assert "During handling of the above exception" not in err
    assert "CancelledError" not in err
    run = Store(str(store)).get_run("int")
    assert run is not None and run.status == "stopped"
    assert "SIGINT" in run.reason
