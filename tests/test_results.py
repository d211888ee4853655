"""What a run gives back: its status, its items' outputs (decoded by their processes),
decoded decisions; a completed run asked for again given back as recorded; the library's
default store and its one set of keywords."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import unerring
from unerring import Flag, Process, UsageError
from unerring.graph import Graph, Memory, Node

MODEL = "sim:error=0.05,seed=1"


@dataclass(frozen=True)
class Tally:
    count: int
    total: int


class Count(Process[Tally, int]):
    """Counts to `n` from `start`: a dataclass state, restored as one."""

    name = "count"

    def __init__(self, n: int = 5, start: int = 0) -> None:
        self.n, self.start = n, start

    def options(self) -> dict[str, Any]:
        return {"n": self.n, "start": self.start}

    def initial_state(self) -> Tally:
        return Tally(0, self.start)

    def total_steps(self) -> int:
        return self.n

    def done(self, state: Tally, step: int) -> bool:
        return state.count == self.n

    def prompt(self, state: Tally, step: int) -> str:
        return f"{state.total} + 1 ="

    def parse(self, text: str) -> int | Flag:
        return int(text) if text.strip().isdigit() else Flag.PARSE

    def advance(self, state: Tally, answer: int) -> Tally:
        return Tally(state.count + 1, answer)

    def check(self, state: Tally, step: int, answer: int) -> bool:
        return answer == state.total + 1

    def solve(self, state: Tally, step: int) -> int:
        return state.total + 1

    def render(self, answer: int) -> str:
        return str(answer)

    def wrong_answers(self, state: Tally, step: int, answer: int) -> list[int]:
        return [answer + 1, answer + 2]


def batch() -> dict[str, Count]:
    return {f"c{i}": Count(4 + i, 10 * i) for i in range(5)}


def journal_counts(db: Path) -> tuple[int, int, int]:
    """(sample rows, attempts, decided steps in the runs' totals) of every run."""
    with sqlite3.connect(db) as conn:
        samples = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
        attempts = conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
        steps = conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
        blocks = conn.execute("SELECT count(*) FROM decision_blocks").fetchone()[0]
    return samples, attempts, steps + blocks


# -- the check the issue names ---------------------------------------------------------------
def test_run_batch_journals_by_default_and_a_second_identical_call_draws_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    r = unerring.run_batch(batch(), model=MODEL, k=2, run_id="b", record="samples")
    db = tmp_path / ".unerring" / "runs.db"
    assert db.is_file()
    assert r.status == "completed", r.outcome.reason
    outputs = dict(r.outputs())
    assert outputs == {f"c{i}": Tally(4 + i, 10 * i + 4 + i) for i in range(5)}
    before = journal_counts(db)
    assert before[0] > 0  # every sample journaled (record="samples")
    again = unerring.run_batch(batch(), model=MODEL, k=2, run_id="b", record="samples")
    assert again.status == "completed"
    assert dict(again.outputs()) == outputs
    assert again.summary["samples"] == r.summary["samples"]
    assert again.summary["steps_decided"] == r.summary["steps_decided"]
    assert again.summary["items_completed"] == 5
    assert journal_counts(db) == before  # no sample, no attempt, no decision


def test_the_same_call_without_a_run_id_is_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library call names its run by what it runs: made again (say, after a crash), it
    finds the run; another argument or model is another run."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / ".unerring" / "runs.db"
    r = unerring.run_batch(batch(), model=MODEL, k=2)
    before = journal_counts(db)
    again = unerring.run_batch(batch(), model=MODEL, k=2)
    assert again.run.run_id == r.run.run_id and again.run.run_id.startswith(r.run.task)
    assert dict(again.outputs()) == dict(r.outputs())
    assert journal_counts(db) == before  # nothing drawn, no attempt
    other = unerring.run_batch(batch(), model=MODEL, k=3)
    assert other.run.run_id != r.run.run_id
    one_more = unerring.run(Count(), model=MODEL, k=2)
    assert unerring.run(Count(6, 3), model=MODEL, k=2).run.run_id != one_more.run.run_id


def test_a_stopped_library_run_goes_on_when_called_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unerring.voting.config import Budget

    monkeypatch.chdir(tmp_path)
    first = unerring.run(Count(40, 1), model=MODEL, k=2, budget=Budget(max_samples=20))
    assert first.status == "stopped"
    done = unerring.run(Count(40, 1), model=MODEL, k=2, budget=Budget(max_samples=10_000))
    assert done.run.run_id == first.run.run_id
    assert done.status == "completed" and done.output() == Tally(40, 41)
    assert done.summary["attempts"] == 2


def test_a_completed_run_asked_for_with_another_configuration_is_refused_by_name(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "r.db")
    unerring.run(Count(), model=MODEL, k=2, store=db, run_id="x")
    with pytest.raises(UsageError, match=r"'x'.*k: journal has 2, given 3"):
        unerring.run(Count(), model=MODEL, k=3, store=db, run_id="x")
    again = unerring.run(Count(), model=MODEL, k=2, store=db, run_id="x")
    assert again.output() == Tally(5, 5)


# -- results ---------------------------------------------------------------------------------
def test_a_chain_result_has_its_status_final_state_and_decoded_decisions() -> None:
    r = unerring.run(Count(6, 3), model=MODEL, k=2, store=":memory:")
    assert r.status == "completed"
    assert r.output() == Tally(6, 9)
    assert dict(r.outputs()) == {"1": Tally(6, 9)}
    ds = list(r.decisions())
    assert [d["step"] for d in ds] == list(range(6))
    assert all(isinstance(d["votes"], list) and d["votes"][0] >= 2 for d in ds)
    assert all(isinstance(d["features"], dict | None) for d in ds)
    assert all(d["correct"] is True for d in ds)


def test_a_batch_result_needs_an_item_id_and_names_an_unknown_one() -> None:
    r = unerring.run_batch(batch(), model=MODEL, k=2, store=":memory:")
    assert r.output("c2") == Tally(6, 26)
    assert next(r.decisions("c1"))["winner"] == "11"
    with pytest.raises(UsageError, match="item_id"):
        r.output()
    with pytest.raises(unerring.StoreRefused, match="no item 'nope'"):
        r.output("nope")


def test_a_stopped_item_gives_the_state_where_it_stopped(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    budget = unerring.Budget(max_samples=6)
    r = unerring.run(Count(20), model=MODEL, k=2, store=db, run_id="s", budget=budget)
    assert r.status == "stopped"
    out = r.output()
    assert isinstance(out, Tally) and 0 < out.count < 20
    assert out.total == out.count


class Pair(Graph):
    """Two counting nodes: the graph's result is both outputs, its check that they sum."""

    name = "pair"

    def nodes(self) -> list[Node]:
        return [Node("a", input=3), Node("b", input=4)]

    def process(self, memory: Memory) -> Process[Any, Any]:
        return Count(int(memory.node.input))

    def output(self, memory: Memory, process: Process[Any, Any], state: Any) -> Any:
        return state.total

    def check(self, outputs: Any) -> bool:
        return dict(outputs) == {"a": 3, "b": 4}


def test_a_graph_result_and_node_outputs_are_kept_in_its_stats(tmp_path: Path) -> None:
    db = str(tmp_path / "g.db")
    r = unerring.run(Pair(), model=MODEL, k=2, store=db, run_id="g")
    assert r.status == "completed", r.outcome.reason
    assert r.output() == {"a": 3, "b": 4}
    assert r.output("b") == 4
    assert dict(r.outputs()) == {"a": 3, "b": 4}
    assert r.summary["nodes"] == 2 and r.summary["result_correct"] is True
    again = unerring.run(Pair(), model=MODEL, k=2, store=db, run_id="g")
    assert again.summary["nodes"] == 2 and again.summary["result_correct"] is True
    assert again.summary["node_statuses"] == {"completed": 2}
    assert again.output() == {"a": 3, "b": 4}


# -- keywords and models ---------------------------------------------------------------------
def test_run_and_run_batch_take_one_set_of_keywords() -> None:
    from unerring.api import RunOptions

    assert {"speculate", "concurrency", "executor", "store", "model"} <= set(
        RunOptions.__annotations__
    )
    for call in (
        lambda: unerring.run(Count(), store=":memory:", colour=1),  # type: ignore[call-arg]
        lambda: unerring.run_batch([Count()], store=":memory:", colour=1),  # type: ignore[call-arg]
    ):
        with pytest.raises(UsageError) as e:
            call()
        line = str(e.value)
        assert "\n" not in line and "'colour'" in line and "speculate" in line


def test_memory_store_keeps_nothing_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    unerring.run(Count(), model=MODEL, k=1, store=":memory:", concurrency=2, speculate=1)
    assert list(tmp_path.iterdir()) == []


def test_a_list_of_models_is_an_ensemble(tmp_path: Path) -> None:
    db = str(tmp_path / "e.db")
    models = ["sim:error=0.05,seed=1", "2*sim:error=0.1,seed=2"]
    r = unerring.run(Count(), model=models, k=2, store=db)
    assert r.status == "completed"
    assert r.run.config["model"] == "sim:error=0.05,seed=1 + 2*sim:error=0.1,seed=2"


class Echo:
    """A backend of one's own: answers every prompt "a + 1 =" with a + 1."""

    model = "echo-1"
    batch_rounds = True

    def __init__(self) -> None:
        self.requests = 0

    async def sample(self, request: Any) -> list[Any]:
        from unerring.core.samples import Sample

        self.requests += 1
        text = str(int(request.prompt.split()[-4]) + 1)
        return [Sample(text) for _ in range(request.n)]

    async def aclose(self) -> None:
        pass


def test_a_backend_of_ones_own_is_journaled_by_its_model_name(tmp_path: Path) -> None:
    db = str(tmp_path / "o.db")
    echo = Echo()
    r = unerring.run(Count(3), model=echo, k=2, store=db, run_id="o", budget=None)
    assert r.status == "completed", r.outcome.reason
    assert echo.requests > 0 and r.output() == Tally(3, 3)
    assert r.run.config["model"] == "own:echo-1"
    with pytest.raises(UsageError, match="model"):  # a resume needs the backend again
        unerring.run(Count(3), k=2, store=db, run_id="o")
    assert unerring.run(Count(3), model=Echo(), k=2, store=db, run_id="o").output() == Tally(3, 3)


def test_a_backend_of_ones_own_runs_on_the_local_executor_only() -> None:
    ray = unerring.ExecutorSpec("ray", workers=2)
    with pytest.raises(UsageError, match="local executor") as e:
        unerring.run(Count(3), model=Echo(), k=2, store=":memory:", executor=ray)
    assert "\n" not in str(e.value)
