"""A graph whose nodes are a stream: the sum of n numbers as a tree of pairwise sums,
declared depth first (each node right after its two halves), every node saying its uses.
Used by the streamed-graph tests, in this process and in child processes they kill."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from unerring.graph import Graph, Memory, Node
from unerring.process import Process
from unerring.redflags import Flag

_NUMBER = re.compile(r"\s*(-?\d+)\s*$")


def numbers(n: int) -> list[int]:
    return [(i * 37) % 101 for i in range(n)]


class Sum(Process[Any, int]):
    """One voted step: x + y."""

    name = "sum"

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def initial_state(self) -> Any:
        return None

    def done(self, state: Any, step: int) -> bool:
        return state is not None

    def prompt(self, state: Any, step: int) -> str:
        return f"{self.x} + {self.y} ="

    def parse(self, text: str) -> int | Flag:
        m = _NUMBER.fullmatch(text)
        return Flag.PARSE if m is None else int(m.group(1))

    def advance(self, state: Any, answer: int) -> int:
        return answer

    def check(self, state: Any, step: int, answer: int) -> bool:
        return answer == self.x + self.y

    def solve(self, state: Any, step: int) -> int:
        return self.x + self.y

    def render(self, answer: int) -> str:
        return f" {answer}"

    def wrong_answers(self, state: Any, step: int, answer: int) -> list[int]:
        return [answer + 1, answer - 1]


class StreamSums(Graph):
    """n - 1 one-step nodes; `listed`: the same nodes as a list; `say_uses`: with uses."""

    name = "stream-sums"

    def __init__(self, n: int, *, listed: bool = False, say_uses: bool = True) -> None:
        self.n, self.listed, self.say_uses = n, listed, say_uses
        self.xs = numbers(n)

    def options(self) -> Mapping[str, Any]:
        return {"n": self.n}

    def nodes(self) -> Iterable[Node]:
        made = self._walk(0, self.n, root=True)
        return list(made) if self.listed else made

    def _walk(self, lo: int, hi: int, *, root: bool = False) -> Iterator[Node]:
        """The nodes summing xs[lo:hi] (hi - lo >= 2), its halves' first."""
        mid = (lo + hi) // 2
        literal: list[int] = []
        deps: list[str] = []
        for a, b in ((lo, mid), (mid, hi)):
            if b - a == 1:
                literal.append(self.xs[a])
            else:
                yield from self._walk(a, b)
                deps.append(f"s{a}-{b}")
        uses = (0 if root else 1) if self.say_uses else None
        yield Node(f"s{lo}-{hi}", "sum", literal, tuple(deps), uses)

    def process(self, memory: Memory) -> Process[Any, int]:
        x, y = [*memory.node.input, *memory.deps.values()]
        return Sum(int(x), int(y))

    def total_steps(self) -> int:
        return self.n - 1

    def check(self, outputs: Mapping[str, Any]) -> bool:
        return outputs.get(f"s0-{self.n}") == sum(self.xs)
