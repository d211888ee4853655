"""Long addition of two many-digit numbers, one small sum per step, the carry in the state.

A column whose carry-in is 0 takes one step ("a + b ="); a column with a carry-in of 1 takes
two ("a + b =", then "s + 1 ="): a sum of three numbers in one call is far beyond a small
model, the sum of two is not. The model does every addition; the process only keeps the
books (the column's last digit is written down, its tens digit is the next carry).
Prompts are few-shot completion prompts (small models follow them, not chat prompts).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from unerring.core.flags import Flag
from unerring.core.hashing import mix64
from unerring.process import Feature, Process

# (column, carry-in, pending column sum or -1, digits written so far, lowest first)
State = tuple[int, int, int, tuple[int, ...]]

_ANSWER = re.compile(r"\s*(\d{1,2})\s*$")

# mixed examples: a fixed increment-only set made the model copy patterns (measured)
_EXAMPLES = ((3, 4), (7, 2), (5, 5), (1, 0), (8, 6), (2, 9), (6, 3), (0, 4))
VARIANTS = 16  # prompt variants offered: variant 0 is _EXAMPLES, the others drawn


def example_set(variant: int) -> tuple[tuple[int, int], ...]:
    """Variant 0's examples, or eight different digit pairs drawn from the variant number."""
    if variant == 0:
        return _EXAMPLES
    out: list[tuple[int, int]] = []
    i = 0
    while len(out) < len(_EXAMPLES):
        h = mix64(mix64(0xE8A3 + variant) ^ i)
        pair = (h % 10, (h >> 8) % 10)
        if pair not in out:
            out.append(pair)
        i += 1
    return tuple(out)


def _digits(count: int, max_digit: int, seed: int, salt: int) -> tuple[int, ...]:
    out = []
    for i in range(count):
        h = mix64(mix64(seed * 0x9E3779B97F4A7C15 + salt) ^ (i + 1))
        out.append(h % (max_digit + 1))
    return tuple(out)


def check_digits(digits: int, max_digit: int, most: int) -> None:
    """Refuse operands the column tasks cannot take (one line, for the CLI)."""
    if not 1 <= digits <= most:
        raise ValueError(f"--digits must be between 1 and {most}, got {digits}")
    if not 1 <= max_digit <= 9:
        raise ValueError(f"--max-digit must be between 1 and 9, got {max_digit}")


def _few_shot(examples: tuple[tuple[int, int], ...]) -> str:
    return "\n".join(f"{x} + {y} = {x + y}" for x, y in examples)


class Addition(Process[State, int]):
    """Add two `digits`-digit numbers whose digits are drawn (seeded) from 0..max_digit."""

    name = "addition"
    # one answer per line: the completion stops at the end of the line
    stop: tuple[str, ...] = ("\n",)

    def __init__(self, digits: int = 100, max_digit: int = 9, seed: int = 0) -> None:
        # the written digits live in the state, which is copied every step: keep it short
        check_digits(digits, max_digit, 5000)
        self.digits = digits
        self.max_digit = max_digit
        self.seed = seed
        # lowest digit first: column i adds a[i] and b[i]
        self.a = _digits(digits, max_digit, seed, 1)
        self.b = _digits(digits, max_digit, seed, 2)
        self._few = _few_shot(_EXAMPLES)
        self._variant_few: dict[int, str] = {0: self._few}

    @staticmethod
    def number(digits: tuple[int, ...]) -> int:
        return int("".join(str(d) for d in reversed(digits)) or "0")

    def expected(self) -> int:
        return self.number(self.a) + self.number(self.b)

    def result(self, state: State) -> int:
        """The sum as written by the decided steps (the final carry becomes the top digit)."""
        _, carry, _, written = state
        return self.number((*written, carry) if carry else written)

    # -- the process ----------------------------------------------------------------------
    def initial_state(self) -> State:
        return (0, 0, -1, ())

    def done(self, state: State, step: int) -> bool:
        return state[0] >= self.digits and state[2] < 0

    def total_steps(self) -> int:
        """Steps the correct run takes (one per column plus one per carried column)."""
        carry = steps = 0
        for x, y in zip(self.a, self.b, strict=True):
            steps += 1 + carry
            carry = (x + y + carry) // 10
        return steps

    def step_limit(self) -> int:
        """Two steps a column at most (the carry, then the digits): a wrong carry lengthens
        the chain past `total_steps()`, a run of any answers never past this."""
        return 2 * self.digits

    def _question(self, state: State) -> tuple[int, int]:
        column, carry, pending, _ = state
        if pending >= 0:
            return pending, carry
        return self.a[column], self.b[column]

    def prompt(self, state: State, step: int) -> str:
        x, y = self._question(state)
        return f"{self._few}\n{x} + {y} ="

    def prompt_variants(self) -> int:
        return VARIANTS

    def variant_prompt(self, state: State, step: int, variant: int) -> str:
        """The same question after another set of few-shot examples."""
        few = self._variant_few.get(variant)
        if few is None:
            if not 0 <= variant < VARIANTS:
                raise ValueError(f"addition offers prompt variants 0-{VARIANTS - 1}, not {variant}")
            few = self._variant_few[variant] = _few_shot(example_set(variant))
        x, y = self._question(state)
        return f"{few}\n{x} + {y} ="

    def parse(self, text: str) -> int | Flag:
        line = text.split("\n", 1)[0]
        m = _ANSWER.fullmatch(line)
        if m is None:
            return Flag.PARSE
        return int(m.group(1))

    def validate(self, state: State, answer: int) -> bool:
        # two digits sum to at most 2 x max_digit, a column sum and its carry to one more: a
        # larger answer is wrong whatever the digits, and would lead to a question ("19 + 1")
        # whose right answer no longer fits
        return 0 <= answer <= self._largest(state)

    def advance(self, state: State, answer: int) -> State:
        column, carry, pending, written = state
        if pending < 0 and carry:
            return (column, carry, answer, written)
        return (column + 1, answer // 10, -1, (*written, answer % 10))

    def check(self, state: State, step: int, answer: int) -> bool:
        x, y = self._question(state)
        return answer == x + y

    def options(self) -> Mapping[str, Any]:
        return {"digits": self.digits, "max_digit": self.max_digit, "seed": self.seed}

    def features(self, state: State, step: int) -> Mapping[str, Feature]:
        x, y = self._question(state)
        return {"kind": "carry" if state[2] >= 0 else "column", "x": x, "y": y}

    def dump_state(self, state: State) -> str:
        column, carry, pending, written = state
        return json.dumps([column, carry, pending, "".join(map(str, written))])

    def load_state(self, text: str) -> State:
        column, carry, pending, written = json.loads(text)
        return (int(column), int(carry), int(pending), tuple(int(c) for c in written))

    def dump_answer(self, answer: int) -> str:
        return json.dumps(answer)

    def load_answer(self, text: str) -> int:
        return int(json.loads(text))

    # -- simulation -----------------------------------------------------------------------
    def solve(self, state: State, step: int) -> int:
        x, y = self._question(state)
        return x + y

    def render(self, answer: int) -> str:
        return f" {answer}"

    def wrong_answers(self, state: State, step: int, answer: int) -> list[int]:
        # the model's typical slips: off by one, and the carry dropped or doubled
        out = [answer + 1, answer - 1, answer + 10, answer - 10, answer + 2]
        top = self._largest(state)
        return [a for a in dict.fromkeys(out) if 0 <= a <= top and a != answer]

    def _largest(self, state: State) -> int:
        return 2 * self.max_digit + (1 if state[2] >= 0 else 0)
