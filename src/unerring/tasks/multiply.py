"""Long multiplication as a graph: partial products side by side, then a tree of sums.

`multiply --digits N` multiplies two N-digit numbers. Each digit of the second number
gives a partial product, a node that is a chain of small voted steps ("7 x 8 =", then
"56 + 3 =" when a carry comes in); the partial products are independent, so they run at
once. Pairs of them are then added (each sum a chain of column additions, see `addition`),
pair after pair, up a tree, to the product. The model does every multiplication and
addition; the process only keeps the books (shifting a partial product by its place).
The graph's checker compares the product with the true one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from unerring.core.flags import Flag
from unerring.graph import Graph, Memory, Node
from unerring.process import Feature, Process
from unerring.tasks.addition import Addition, _digits, check_digits

# (column, carry-in, pending product or -1, digits written so far, lowest first)
State = tuple[int, int, int, tuple[int, ...]]

_ANSWER = re.compile(r"\s*(\d{1,2})\s*$")
_PRODUCTS = ((3, 4), (7, 8), (2, 9), (6, 6), (9, 1), (4, 7), (8, 3), (0, 5))
_SUMS = ((27, 4), (5, 1), (48, 7), (12, 8), (63, 2), (30, 6))


def _number(digits: Sequence[int]) -> int:
    return int("".join(str(d) for d in reversed(digits)) or "0")


def _low_first(text: str) -> tuple[int, ...]:
    return tuple(int(c) for c in reversed(text))


class TimesDigit(Process[State, int]):
    """A many-digit number times one digit, one small product (or product + carry) a step."""

    name = "times-digit"
    stop: tuple[str, ...] = ("\n",)

    def __init__(self, a: tuple[int, ...], digit: int) -> None:
        self.a = a  # lowest digit first
        self.digit = digit
        self._products = "\n".join(f"{x} x {y} = {x * y}" for x, y in _PRODUCTS)
        self._sums = "\n".join(f"{x} + {y} = {x + y}" for x, y in _SUMS)

    def result(self, state: State) -> int:
        _, carry, _, written = state
        return _number((*written, carry) if carry else written)

    def initial_state(self) -> State:
        return (0, 0, -1, ())

    def done(self, state: State, step: int) -> bool:
        return state[0] >= len(self.a) and state[2] < 0

    def total_steps(self) -> int:
        carry = steps = 0
        for x in self.a:
            steps += 1 + (1 if carry else 0)
            carry = (x * self.digit + carry) // 10
        return steps

    def _question(self, state: State) -> tuple[str, int, int]:
        column, carry, pending, _ = state
        if pending >= 0:
            return "+", pending, carry
        return "x", self.a[column], self.digit

    def prompt(self, state: State, step: int) -> str:
        op, x, y = self._question(state)
        few = self._sums if op == "+" else self._products
        return f"{few}\n{x} {op} {y} ="

    def parse(self, text: str) -> int | Flag:
        m = _ANSWER.fullmatch(text.split("\n", 1)[0])
        return Flag.PARSE if m is None else int(m.group(1))

    def validate(self, state: State, answer: int) -> bool:
        return 0 <= answer <= 89  # 9 x 9 + a carry of 8 at most

    def advance(self, state: State, answer: int) -> State:
        column, carry, pending, written = state
        if pending < 0 and carry:
            return (column, carry, answer, written)  # the product; next, add the carry
        return (column + 1, answer // 10, -1, (*written, answer % 10))

    def check(self, state: State, step: int, answer: int) -> bool:
        return answer == self.solve(state, step)

    def features(self, state: State, step: int) -> Mapping[str, Feature]:
        op, x, y = self._question(state)
        return {"kind": "product" if op == "x" else "carry", "x": x, "y": y}

    def dump_state(self, state: State) -> str:
        column, carry, pending, written = state
        return json.dumps([column, carry, pending, "".join(map(str, written))])

    def load_state(self, text: str) -> State:
        column, carry, pending, written = json.loads(text)
        return (int(column), int(carry), int(pending), tuple(int(c) for c in written))

    def solve(self, state: State, step: int) -> int:
        op, x, y = self._question(state)
        return x + y if op == "+" else x * y

    def render(self, answer: int) -> str:
        return f" {answer}"

    def wrong_answers(self, state: State, step: int, answer: int) -> list[int]:
        out = [answer + 1, answer - 1, answer + 10, answer - 10, answer + 2]
        return [x for x in dict.fromkeys(out) if 0 <= x <= 89 and x != answer]


class SumOf(Addition):
    """The column addition of two given numbers (decimal strings), as `addition` adds."""

    name = "sum"

    def __init__(self, x: str, y: str) -> None:
        width = max(len(x), len(y))
        super().__init__(digits=width, max_digit=9, seed=0)
        self.a = _low_first(x.rjust(width, "0"))
        self.b = _low_first(y.rjust(width, "0"))

    def options(self) -> Mapping[str, Any]:
        return {"x": str(_number(self.a)), "y": str(_number(self.b))}


class Multiply(Graph):
    """An N-digit number times an N-digit number (digits seeded), as a graph."""

    name = "multiply"
    stop: tuple[str, ...] = ("\n",)  # every node's answer is one line

    def __init__(self, digits: int = 4, max_digit: int = 9, seed: int = 0) -> None:
        check_digits(digits, max_digit, 200)
        self.digits = digits
        self.max_digit = max_digit
        self.seed = seed
        self.a = _digits(digits, max_digit, seed, 3)  # lowest digit first
        self.b = _digits(digits, max_digit, seed, 4)
        self._nodes = self._plan()

    def _plan(self) -> list[Node]:
        level = [Node(f"p{j}", "digits", {"digit": d, "shift": j}) for j, d in enumerate(self.b)]
        nodes = list(level)
        depth = 0
        while len(level) > 1:  # add pairs, up a tree; an odd one out waits a level
            depth += 1
            nxt = []
            for i in range(0, len(level) - 1, 2):
                pair = (level[i].id, level[i + 1].id)
                nxt.append(Node(f"s{depth}.{i // 2}", "sum", None, pair))
            if len(level) % 2:
                nxt.append(level[-1])
            nodes += [n for n in nxt if n.kind == "sum" and n not in nodes]
            level = nxt
        self.final = level[0].id
        return nodes

    def options(self) -> Mapping[str, Any]:
        return {"digits": self.digits, "max_digit": self.max_digit, "seed": self.seed}

    def nodes(self) -> Sequence[Node]:
        return self._nodes

    def process(self, memory: Memory) -> Process[Any, Any]:
        n = memory.node
        if n.kind == "digits":
            return TimesDigit(self.a, int(n.input["digit"]))
        x, y = (str(memory.deps[d]) for d in n.deps)
        return SumOf(x, y)

    def output(self, memory: Memory, process: Process[Any, Any], state: Any) -> Any:
        n = memory.node
        if n.kind == "digits":
            assert isinstance(process, TimesDigit)
            return str(process.result(state) * 10 ** int(n.input["shift"]))
        assert isinstance(process, SumOf)
        return str(process.result(state))

    def product(self) -> int:
        return _number(self.a) * _number(self.b)

    def check(self, outputs: Mapping[str, Any]) -> bool | None:
        got = outputs.get(self.final)
        return None if got is None else str(got) == str(self.product())

    def total_steps(self) -> int:
        """Voted steps of a correct run (planning): partial products, then the sums."""
        values: dict[str, int] = {}
        steps = 0
        for n in self._nodes:
            if n.kind == "digits":
                p = TimesDigit(self.a, int(n.input["digit"]))
                steps += p.total_steps()
                values[n.id] = _number(self.a) * int(n.input["digit"]) * 10 ** int(n.input["shift"])
            else:
                x, y = (values[d] for d in n.deps)
                steps += SumOf(str(x), str(y)).total_steps()
                values[n.id] = x + y
        return steps
