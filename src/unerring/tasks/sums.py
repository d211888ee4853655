"""The sum of many numbers as a graph given as a stream of nodes.

`sum --numbers N` adds N seeded numbers as a tree of pairwise sums, each sum one voted
step ("What is 37 + 12?"). The graph's nodes are a generator, declared depth first (each
sum right after its two halves), every node saying its one use: the run pulls nodes only as
it needs ready ones and drops a sum's result once the sum that reads it has started, so it
holds the tree's frontier, not its N - 1 nodes. The checker compares the root with `sum`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from unerring.core.flags import Flag
from unerring.core.hashing import mix64
from unerring.graph import Graph, Memory, Node
from unerring.process import Feature, Process

_NUMBER = re.compile(r"\s*(-?\d+)\s*$")


def sum_prompt(x: int, y: int) -> str:
    return f"What is {x} + {y}? Answer with the number.\n"


def parse_sum(text: str) -> int | Flag:
    m = _NUMBER.fullmatch(text.split("\n", 1)[0])
    return Flag.PARSE if m is None else int(m.group(1))


class AddPair(Process[int | None, int]):
    """One voted step: x + y."""

    name = "add-pair"

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def initial_state(self) -> int | None:
        return None

    def done(self, state: int | None, step: int) -> bool:
        return state is not None

    def total_steps(self) -> int:
        return 1

    def prompt(self, state: int | None, step: int) -> str:
        return sum_prompt(self.x, self.y)

    def parse(self, text: str) -> int | Flag:
        return parse_sum(text)

    def advance(self, state: int | None, answer: int) -> int:
        return answer

    def check(self, state: int | None, step: int, answer: int) -> bool:
        return answer == self.x + self.y

    def features(self, state: int | None, step: int) -> Mapping[str, Feature]:
        return {"node_kind": "sum", "digits": len(str(abs(self.x) + abs(self.y)))}

    def solve(self, state: int | None, step: int) -> int:
        return self.x + self.y

    def render(self, answer: int) -> str:
        return f" {answer}"

    def wrong_answers(self, state: int | None, step: int, answer: int) -> list[int]:
        return [answer + 1, answer - 10]


class PairwiseSum(Graph):
    """Add `numbers` seeded numbers (0..max_value) as a tree of voted pairwise sums."""

    name = "sum"
    stop: tuple[str, ...] = ("\n",)  # every node's answer is one line

    def __init__(self, numbers: int = 1000, seed: int = 0, max_value: int = 99) -> None:
        if not 2 <= numbers <= 100_000_000:
            raise ValueError(f"--numbers must be between 2 and 100000000, got {numbers}")
        if max_value < 1:
            raise ValueError(f"--max-value must be at least 1, got {max_value}")
        self.numbers, self.seed, self.max_value = numbers, seed, max_value
        self._base = mix64(seed * 0x9E3779B97F4A7C15 + 7)  # (every number's: once)

    def options(self) -> Mapping[str, Any]:
        return {"numbers": self.numbers, "seed": self.seed, "max_value": self.max_value}

    def number(self, i: int) -> int:
        """The i-th number (drawn when needed: the numbers are never all held)."""
        return mix64(self._base ^ (i + 1)) % (self.max_value + 1)

    def nodes(self) -> Iterable[Node]:
        """Each sum right after its two halves' (a half of one number is given, not a
        node): depth first, with a stack as deep as the tree, not a generator per level."""
        n = self.numbers
        stack = [(0, n, False)]
        while stack:
            lo, hi, halves_done = stack.pop()
            mid = (lo + hi) // 2
            if not halves_done:
                stack.append((lo, hi, True))
                if hi - mid > 1:
                    stack.append((mid, hi, False))
                if mid - lo > 1:  # (pushed last: the left half comes first)
                    stack.append((lo, mid, False))
                continue
            given: list[int] = []
            deps: list[str] = []
            for a, b in ((lo, mid), (mid, hi)):
                if b - a == 1:
                    given.append(self.number(a))
                else:
                    deps.append(f"{a}-{b}")
            yield Node(f"{lo}-{hi}", "sum", given, tuple(deps), 0 if hi - lo == n else 1)

    def process(self, memory: Memory) -> Process[Any, Any]:
        x, y = list(memory.node.input) + list(memory.deps.values())
        return AddPair(int(x), int(y))

    def check(self, outputs: Mapping[str, Any]) -> bool | None:
        got = outputs.get(f"0-{self.numbers}")
        return None if got is None else got == sum(map(self.number, range(self.numbers)))

    def total_steps(self) -> int:
        return self.numbers - 1
