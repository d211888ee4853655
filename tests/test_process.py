"""The process model: required methods, states and answers serialised by default, vote
keys picked in one line, and the checks a run can make at its start."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

import unerring
from unerring import Flag, Process, keys
from unerring.core.serial import SerialError
from unerring.graph import Graph, Memory, Node
from unerring.process import declared_types, missing_for_simulation, serialisation_problem
from unerring.tasks.addition import Addition
from unerring.tasks.hanoi import Hanoi
from unerring.tasks.multiply import SumOf, TimesDigit
from unerring.tasks.registry import TASKS
from unerring.tasks.sort import Given, MergeChain, SplitStep
from unerring.tasks.sums import AddPair
from unerring.voting.step import judge

T = TypeVar("T")


class Count(Process[tuple[int, int], int]):
    """Counts to `n`: a state of two ints, the README's shape of process."""

    name = "count"

    def __init__(self, n: int = 6) -> None:
        self.n = n

    def initial_state(self) -> tuple[int, int]:
        return (0, 0)

    def total_steps(self) -> int:
        return self.n

    def done(self, state: tuple[int, int], step: int) -> bool:
        return state[0] == self.n

    def prompt(self, state: tuple[int, int], step: int) -> str:
        return f"{state[1]} + 1 ="

    def parse(self, text: str) -> int | Flag:
        return int(text) if text.strip().isdigit() else Flag.PARSE

    def advance(self, state: tuple[int, int], answer: int) -> tuple[int, int]:
        return (state[0] + 1, answer)

    def solve(self, state: tuple[int, int], step: int) -> int:
        return state[1] + 1

    def render(self, answer: int) -> str:
        return str(answer)

    def wrong_answers(self, state: tuple[int, int], step: int, answer: int) -> list[int]:
        return [answer + 1]


# -- required methods ------------------------------------------------------------------------
def test_a_process_missing_a_required_method_is_refused_naming_it() -> None:
    class Half(Process[int, int]):
        def initial_state(self) -> int:
            return 0

        def done(self, state: int, step: int) -> bool:
            return True

        def prompt(self, state: int, step: int) -> str:
            return ""

    with pytest.raises(TypeError) as got:
        Half()  # type: ignore[abstract]
    message = str(got.value)
    assert "\n" not in message and "Half" in message
    assert re.search(r"\badvance\b", message) and re.search(r"\bparse\b", message)
    assert "prompt" not in message


def test_every_built_in_process_and_graph_constructs() -> None:
    for spec in TASKS.values():
        made = spec.make({})
        assert isinstance(made, (Process, Graph)), spec.name
    # the processes graphs build for their nodes
    for p in (
        Given((1,)),
        SplitStep((2, 1), ""),
        MergeChain((1,), (2,)),
        AddPair(1, 2),
        TimesDigit((1, 2), 3),
        SumOf("1", "2"),
        Hanoi(3),
        Addition(3),
    ):
        assert isinstance(p, Process)


def test_a_graph_missing_nodes_or_process_is_refused_naming_them() -> None:
    class NoNodes(Graph):
        def process(self, memory: Memory) -> Process[Any, Any]:
            return Count()

    with pytest.raises(TypeError, match="nodes"):
        NoNodes()  # type: ignore[abstract]


def test_missing_for_simulation_names_the_hooks_a_sim_model_needs() -> None:
    class Bare(Count):
        pass

    assert missing_for_simulation(Hanoi(3)) == []
    assert missing_for_simulation(Bare()) == []  # inherited hooks count

    class Unsimulated(Process[int, int]):
        def initial_state(self) -> int:
            return 0

        def done(self, state: int, step: int) -> bool:
            return True

        def prompt(self, state: int, step: int) -> str:
            return ""

        def parse(self, text: str) -> int | Flag:
            return 0

        def advance(self, state: int, answer: int) -> int:
            return answer

        def render(self, answer: int) -> str:
            return str(answer)

    assert missing_for_simulation(Unsimulated()) == ["solve", "wrong_answers"]


# -- declared types --------------------------------------------------------------------------
class Generic1(Process[tuple[T, ...], T], Generic[T]):
    """A generic process; a subclass binds T."""


class Bound(Generic1[str]):
    pass


class Unsaid(Process):  # type: ignore[type-arg]
    pass


def test_declared_types_are_read_through_subclasses() -> None:
    assert declared_types(Count) == (tuple[int, int], int)
    assert declared_types(Bound) == (tuple[str, ...], str)
    assert declared_types(Generic1) == (tuple[Any, ...], Any)
    assert declared_types(Unsaid) == (Any, Any)

    class FiveSteps(Hanoi):  # a plain subclass of a built-in task
        pass

    assert declared_types(FiveSteps) == declared_types(Hanoi)


# -- states and answers serialised by default ------------------------------------------------
@dataclass(frozen=True)
class Ledger:
    done: int
    totals: dict[str, int]
    history: tuple[tuple[str, int], ...] = ()


class Booked(Process[Ledger, dict[str, int]]):
    """A dataclass state and a dict answer, with no dump or load method of its own."""

    name = "booked"

    def initial_state(self) -> Ledger:
        return Ledger(0, {"a": 0})

    def done(self, state: Ledger, step: int) -> bool:
        return state.done == 3

    def prompt(self, state: Ledger, step: int) -> str:
        return ""

    def parse(self, text: str) -> dict[str, int] | Flag:
        return {"a": int(text)}

    def advance(self, state: Ledger, answer: dict[str, int]) -> Ledger:
        totals = {k: state.totals.get(k, 0) + v for k, v in answer.items()}
        return Ledger(state.done + 1, totals, (*state.history, ("a", answer["a"])))

    def solve(self, state: Ledger, step: int) -> dict[str, int]:
        return {"a": state.done + 1}

    def render(self, answer: dict[str, int]) -> str:
        return str(answer["a"])

    def wrong_answers(self, state: Ledger, step: int, answer: dict[str, int]) -> list[Any]:
        return [{"a": 99}]


def test_a_tuple_state_is_plain_json_and_comes_back_a_tuple() -> None:
    p = Count()
    assert p.dump_state((2, 5)) == "[2,5]"
    assert p.load_state("[2,5]") == (2, 5) and type(p.load_state("[2,5]")) is tuple
    assert p.dump_answer(7) == "7" and p.load_answer("7") == 7


def test_a_dataclass_state_and_a_dict_answer_come_back_as_they_were() -> None:
    p = Booked()
    state = Ledger(2, {"b": 1, "a": 4}, (("a", 1), ("a", 3)))
    text = p.dump_state(state)
    assert text == '{"done":2,"totals":{"b":1,"a":4},"history":[["a",1],["a",3]]}'
    assert p.load_state(text) == state
    assert p.load_answer(p.dump_answer({"a": 1})) == {"a": 1}


def test_a_process_that_writes_its_own_dump_keeps_it() -> None:
    h = Hanoi(3)
    state = h.initial_state()
    assert h.dump_state(state) == "[[[3, 2, 1], [], []], null]"  # its own, with spaces
    assert h.load_state(h.dump_state(state)) == state


def test_a_state_that_is_not_json_able_fails_in_one_line_naming_process_and_type() -> None:
    with pytest.raises(SerialError) as got:
        Count().dump_state((1, {2, 3}))  # type: ignore[arg-type]
    message = str(got.value)
    assert "\n" not in message
    assert message.startswith("process 'count': cannot serialise state[1]: set is not JSON-able")
    with pytest.raises(SerialError, match="process 'count': cannot read a state"):
        Count().load_state('{"#Evil":{}}')


class Sets(Count):
    """Keeps a set in its state: the default cannot write it."""

    name = "sets"

    def initial_state(self) -> tuple[int, int]:
        return (0, frozenset())  # type: ignore[return-value]

    def advance(self, state: tuple[int, int], answer: int) -> tuple[int, int]:
        return (state[0] + 1, state[1] | {answer})  # type: ignore[operator]

    def prompt(self, state: tuple[int, int], step: int) -> str:
        return f"{state[0]} + 1 ="

    def solve(self, state: tuple[int, int], step: int) -> int:
        return state[0] + 1


def test_a_run_whose_state_is_not_json_able_stops_at_its_first_commit(tmp_path: Path) -> None:
    result = unerring.run(Sets(), model="sim:error=0", k=1, store=str(tmp_path / "s.db"))
    assert result.outcome.status != "completed"
    assert "process 'sets'" in result.outcome.reason
    assert "frozenset is not JSON-able" in result.outcome.reason


def test_serialisation_problem_checks_the_initial_state_round_trip() -> None:
    assert serialisation_problem(Count()) is None
    assert serialisation_problem(Hanoi(3)) is None
    assert serialisation_problem(Booked()) is None
    got = serialisation_problem(Sets())
    assert got is not None and "frozenset is not JSON-able" in got and "\n" not in got

    class Replays(Sets):
        def dump_state(self, state: tuple[int, int]) -> str:
            raise NotImplementedError  # journals no state: a resume replays

    assert serialisation_problem(Replays()) is None

    class Lossy(Count):
        def load_state(self, text: str) -> tuple[int, int]:
            return (0, 1)

    got = serialisation_problem(Lossy())
    assert got is not None and "load_state does not give back" in got

    class Broken(Count):
        def load_state(self, text: str) -> tuple[int, int]:
            raise KeyError("pegs")

    got = serialisation_problem(Broken())
    assert got is not None and "KeyError" in got and "count" in got


def test_a_run_resumes_from_a_default_dataclass_snapshot(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    first = unerring.run(
        Booked(),
        model="sim:error=0",
        k=1,
        store=db,
        run_id="b",
        budget=unerring.Budget(max_samples=2),
    )
    assert first.outcome.status == "stopped"
    first.store.close()
    done = unerring.run(Booked(), model="sim:error=0", k=1, store=db, run_id="b")
    assert done.outcome.state == Ledger(3, {"a": 6}, (("a", 1), ("a", 2), ("a", 3)))


# -- vote keys ---------------------------------------------------------------------------------
class Priced(Count):
    """Answers a price written as people write it; votes compare the number."""

    name = "priced"
    key = keys.number

    def parse(self, text: str) -> Any:
        return text.strip() or Flag.PARSE


def test_a_key_chosen_in_one_line_merges_spellings_in_the_vote() -> None:
    p = Priced()
    state = p.initial_state()
    judged = [judge(p, state, t) for t in ("1,000", "1000.00", "+1e3", "999")]
    assert [j[0] for j in judged if not isinstance(j, Flag)] == ["1000", "1000", "1000", "999"]
    # a key that cannot read an answer red-flags the sample: it never votes apart
    assert judge(p, state, "a thousand") is Flag.INVALID


def test_the_default_key_compares_dict_and_list_answers_by_canonical_json() -> None:
    p = Booked()
    assert p.key({"b": 1, "a": 2}) == p.key({"a": 2, "b": 1}) == '{"a":2,"b":1}'
    assert Count().key(5) == 5  # a hashable answer is its own key, as before
    assert judge(p, p.initial_state(), "4") == ('{"a":4}', {"a": 4})


def test_a_process_may_still_write_its_own_key() -> None:
    class Lower(Count):
        def key(self, answer: Any) -> str:
            return str(answer).lower()

    assert Lower().key("ABC") == "abc"


class Records(Graph):
    name = "records"

    def nodes(self) -> list[Node]:
        return [Node("a")]

    def process(self, memory: Memory) -> Process[Any, Any]:
        return Booked()

    def output(self, memory: Memory, process: Process[Any, Any], state: Any) -> Any:
        return state.totals


def test_a_graph_node_process_gets_the_defaults_too(tmp_path: Path) -> None:
    result = unerring.run(Records(), model="sim:error=0", k=1, store=str(tmp_path / "g.db"))
    assert result.outcome.status == "completed", result.outcome.reason


def test_keys_are_importable_from_the_package() -> None:
    from unerring import keys as again

    assert again.number is keys.number
    assert isinstance(keys.json, keys.Key)
