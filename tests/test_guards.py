"""Guard rails: a class missing a required method refused at the start, `done()` still
false after `total_steps()` (or `max_steps`) steps, exceptions out of `parse` as their own
flag kind, steps whose first 2k samples are all flagged, Ctrl-C in a library call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import unerring
from unerring import Flag, Process
from unerring.errors import UsageError
from unerring.graph import Graph, Memory, Node

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
