"""Merge sort as a graph that decomposes at run time: the model splits, then merges.

`sort --numbers N` sorts N seeded numbers. A list of two or more is a split node: one voted
step whose answer is the list cut in two; once decided, it expands into a node for each
half and a merge node that waits for both. Any cut that keeps the numbers in order is a
sound decomposition (so a model's cut is followed only when the vote says so); the
halving cut is the right one, which the checker counts. A merge node is a chain of
comparisons ("which is smaller, 37 or 12?"), one voted step each. A list of one is sorted
as it is, without a model call. The graph's checker compares the result with `sorted`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from unerring.core.flags import Flag
from unerring.core.hashing import mix64
from unerring.graph import Graph, Memory, Node
from unerring.process import Feature, Process

Split = tuple[tuple[int, ...], tuple[int, ...]]
_LIST = r"\[\s*(-?\d+(?:\s*,\s*-?\d+)*)?\s*\]"
_SPLIT = re.compile(rf"left\s*=\s*{_LIST}\s*right\s*=\s*{_LIST}\s*$")
_NUMBER = re.compile(r"\s*(-?\d+)\s*$")


def _ints(text: str | None) -> tuple[int, ...]:
    return () if not text else tuple(int(x) for x in text.split(","))


def _show(xs: Sequence[int]) -> str:
    return "[" + ", ".join(map(str, xs)) + "]"


class Given(Process[tuple[int, ...], int]):
    """A list of at most one number: sorted as it is, no step to vote on."""

    name = "given"

    def __init__(self, xs: tuple[int, ...]) -> None:
        self.xs = xs

    def initial_state(self) -> tuple[int, ...]:
        return self.xs

    def done(self, state: tuple[int, ...], step: int) -> bool:
        return True

    def total_steps(self) -> int:
        return 0

    # done before any step: nothing ever asks for these, but a process must define them
    def prompt(self, state: tuple[int, ...], step: int) -> str:
        return ""

    def parse(self, text: str) -> int | Flag:
        return Flag.PARSE

    def advance(self, state: tuple[int, ...], answer: int) -> tuple[int, ...]:
        return state


class SplitStep(Process[Split | None, Split]):
    """One voted step: cut a list in two, keeping its order."""

    name = "split"

    def __init__(self, xs: tuple[int, ...], context: str) -> None:
        self.xs = xs
        self.context = context  # the node's path (its ancestors' cuts): its memory

    def initial_state(self) -> Split | None:
        return None

    def done(self, state: Split | None, step: int) -> bool:
        return state is not None

    def total_steps(self) -> int:
        return 1

    def system(self) -> str:
        return (
            "You cut lists of numbers in two for a merge sort. Keep every number, in order. "
            "Answer with one line: left = [...] right = [...]"
        )

    def prompt(self, state: Split | None, step: int) -> str:
        where = f"Earlier cuts:\n{self.context}\n" if self.context else ""
        return f"{where}Cut {_show(self.xs)} after its first {len(self.xs) // 2} numbers."

    def parse(self, text: str) -> Split | Flag:
        m = _SPLIT.search(text.strip().split("\n")[-1])
        if m is None:
            return Flag.PARSE
        return (_ints(m.group(1)), _ints(m.group(2)))

    def validate(self, state: Split | None, answer: Split) -> bool:
        # a sound decomposition: both parts non-empty, together the list in its order
        left, right = answer
        return bool(left) and bool(right) and left + right == self.xs

    def advance(self, state: Split | None, answer: Split) -> Split:
        return answer

    def check(self, state: Split | None, step: int, answer: Split) -> bool:
        return answer == self.solve(state, step)

    def features(self, state: Split | None, step: int) -> Mapping[str, Feature]:
        return {"node_kind": "split", "size": len(self.xs)}

    def solve(self, state: Split | None, step: int) -> Split:
        half = len(self.xs) // 2
        return (self.xs[:half], self.xs[half:])

    def render(self, answer: Split) -> str:
        return f"left = {_show(answer[0])} right = {_show(answer[1])}"

    def wrong_answers(self, state: Split | None, step: int, answer: Split) -> list[Split]:
        # a cut one place off (sound, but not the halving one), and a lost number
        xs, half = self.xs, len(self.xs) // 2
        out: list[Split] = []
        for k in (half + 1, half - 1):
            if 0 < k < len(xs):
                out.append((xs[:k], xs[k:]))
        out.append((xs[: half - 1] if half > 1 else (), xs[half:]))
        return [w for w in out if w != answer] or [((), xs)]


# (index into left, index into right, merged so far)
MergeState = tuple[int, int, tuple[int, ...]]


class MergeChain(Process[MergeState, int]):
    """Merge two sorted lists, one voted comparison ("which is smaller?") a step."""

    name = "merge"
    stop: tuple[str, ...] = ("\n",)

    def __init__(self, left: tuple[int, ...], right: tuple[int, ...]) -> None:
        self.left = left
        self.right = right

    def result(self, state: MergeState) -> tuple[int, ...]:
        i, j, merged = state
        return (*merged, *self.left[i:], *self.right[j:])

    def initial_state(self) -> MergeState:
        return (0, 0, ())

    def done(self, state: MergeState, step: int) -> bool:
        i, j, _ = state
        return i >= len(self.left) or j >= len(self.right)

    def total_steps(self) -> int:
        i = j = steps = 0
        while i < len(self.left) and j < len(self.right):
            steps += 1
            if self.left[i] <= self.right[j]:
                i += 1
            else:
                j += 1
        return steps

    def prompt(self, state: MergeState, step: int) -> str:
        i, j, _ = state
        return f"Which is smaller, {self.left[i]} or {self.right[j]}? Answer with the number.\n"

    def parse(self, text: str) -> int | Flag:
        m = _NUMBER.fullmatch(text.split("\n", 1)[0])
        return Flag.PARSE if m is None else int(m.group(1))

    def validate(self, state: MergeState, answer: int) -> bool:
        i, j, _ = state
        return answer in (self.left[i], self.right[j])

    def advance(self, state: MergeState, answer: int) -> MergeState:
        i, j, merged = state
        if answer == self.left[i]:  # equal numbers: the left one first (a stable merge)
            return (i + 1, j, (*merged, answer))
        return (i, j + 1, (*merged, answer))

    def check(self, state: MergeState, step: int, answer: int) -> bool:
        return answer == self.solve(state, step)

    def features(self, state: MergeState, step: int) -> Mapping[str, Feature]:
        i, j, _ = state
        return {"node_kind": "merge", "gap": abs(self.left[i] - self.right[j])}

    def dump_state(self, state: MergeState) -> str:
        return json.dumps([state[0], state[1], list(state[2])])

    def load_state(self, text: str) -> MergeState:
        i, j, merged = json.loads(text)
        return (int(i), int(j), tuple(int(x) for x in merged))

    def solve(self, state: MergeState, step: int) -> int:
        i, j, _ = state
        return min(self.left[i], self.right[j])

    def render(self, answer: int) -> str:
        return f" {answer}"

    def wrong_answers(self, state: MergeState, step: int, answer: int) -> list[int]:
        i, j, _ = state
        other = max(self.left[i], self.right[j])
        return [other] if other != answer else [answer + 1]


class Sort(Graph):
    """Sort `numbers` seeded numbers (0..max_value) by a merge sort the model runs."""

    name = "sort"
    stop: tuple[str, ...] = ("\n",)  # every node's answer is one line

    def __init__(self, numbers: int = 8, seed: int = 0, max_value: int = 99) -> None:
        if not 1 <= numbers <= 100_000:
            raise ValueError(f"--numbers must be between 1 and 100000, got {numbers}")
        if max_value < 1:
            raise ValueError(f"--max-value must be at least 1, got {max_value}")
        self.numbers = numbers
        self.seed = seed
        self.max_value = max_value
        self.xs = tuple(
            mix64(mix64(seed * 0x9E3779B97F4A7C15 + 5) ^ (i + 1)) % (max_value + 1)
            for i in range(numbers)
        )

    def options(self) -> Mapping[str, Any]:
        return {"numbers": self.numbers, "seed": self.seed, "max_value": self.max_value}

    def nodes(self) -> Sequence[Node]:
        return [Node("s", "sort", list(self.xs))]

    def process(self, memory: Memory) -> Process[Any, Any]:
        n = memory.node
        if n.kind == "merge":
            left, right = (tuple(memory.deps[d]) for d in n.deps)
            return MergeChain(left, right)
        xs = tuple(n.input)
        return Given(xs) if len(xs) < 2 else SplitStep(xs, memory.context())

    def output(self, memory: Memory, process: Process[Any, Any], state: Any) -> Any:
        if isinstance(process, MergeChain):
            return list(process.result(state))
        if isinstance(process, SplitStep):
            left, right = state
            return {"left": list(left), "right": list(right)}
        return list(state)

    def expand(self, memory: Memory, output: Any) -> Sequence[Node]:
        n = memory.node
        if n.kind != "sort" or not isinstance(output, dict):
            return ()
        left, right = f"{n.id}.L", f"{n.id}.R"
        return [
            Node(left, "sort", output["left"]),
            Node(right, "sort", output["right"]),
            Node(f"{n.id}.M", "merge", None, (left, right)),
        ]

    def check(self, outputs: Mapping[str, Any]) -> bool | None:
        got = outputs.get("s")
        return None if got is None else list(got) == sorted(self.xs)

    def total_steps(self) -> int:
        """Voted steps of a correct run: a cut per list of two or more, a comparison per
        merge step."""

        def steps(xs: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
            if len(xs) < 2:
                return 0, xs
            half = len(xs) // 2
            a, left = steps(xs[:half])
            b, right = steps(xs[half:])
            m = MergeChain(left, right)
            return 1 + a + b + m.total_steps(), tuple(sorted(xs))

        return steps(self.xs)[0]
