"""The addition process: books kept right, parser strict, and the simulated model runs it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unerring.core.flags import Flag
from unerring.tasks.addition import Addition


def _run_correct(p: Addition) -> tuple[int, int]:
    state = p.initial_state()
    step = 0
    while not p.done(state, step):
        answer = p.solve(state, step)
        assert p.check(state, step, answer)
        assert p.parse(p.render(answer)) == answer
        state = p.advance(state, answer)
        step += 1
    return p.result(state), step


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(1, 9), st.integers(0, 10**6))
def test_correct_answers_add_up(digits: int, max_digit: int, seed: int) -> None:
    p = Addition(digits, max_digit, seed)
    result, steps = _run_correct(p)
    assert result == p.expected()
    assert steps == p.total_steps()


def test_a_carried_column_takes_two_steps() -> None:
    p = Addition(3, 9, 0)
    p.a, p.b = (7, 1, 0), (5, 2, 0)  # 017 + 025
    s = p.initial_state()
    assert p.prompt(s, 0).endswith("\n7 + 5 =")
    s = p.advance(s, 12)
    assert s == (1, 1, -1, (2,))
    assert p.prompt(s, 1).endswith("\n1 + 2 =")
    s = p.advance(s, 3)
    assert s[2] == 3 and p.prompt(s, 2).endswith("\n3 + 1 =")
    assert p.check(s, 2, 4) and not p.check(s, 2, 3)
    s = p.advance(s, 4)
    s = p.advance(s, 0)
    assert p.done(s, 4) and p.result(s) == 42


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (" 7", 7),
        (" 12\n3 + 4 = 7", 12),
        ("9", 9),
        (" 12 ", 12),
        ("", Flag.PARSE),
        (" seven", Flag.PARSE),
        (" 1 2", Flag.PARSE),
        (" 123", Flag.PARSE),
        (" -3", Flag.PARSE),
    ],
)
def test_parse_is_strict(text: str, want: int | Flag) -> None:
    assert Addition(5).parse(text) == want


def test_state_and_answers_round_trip() -> None:
    p = Addition(10, 9, 3)
    s = (4, 1, 13, (1, 0, 9, 2))
    assert p.load_state(p.dump_state(s)) == s
    assert p.load_answer(p.dump_answer(17)) == 17


def test_wrong_answers_are_wrong_and_in_range() -> None:
    p = Addition(5)
    column, carry = p.initial_state(), (1, 1, 12, (3,))
    for state, answers in ((column, range(19)), (carry, range(1, 20))):
        for ans in answers:
            wrong = p.wrong_answers(state, 0, ans)
            assert wrong and ans not in wrong and all(p.validate(state, w) for w in wrong)


def test_answers_no_two_digits_can_sum_to_are_red_flagged() -> None:
    # a column of two digits sums to at most 18 (2 x max digit), a carried one to 19: a
    # larger answer would lead to a question ("19 + 1") whose right answer does not fit
    p, small = Addition(5), Addition(5, max_digit=4)
    column, carry = p.initial_state(), (1, 1, 12, (3,))
    assert p.validate(column, 18) and not p.validate(column, 19)
    assert p.validate(carry, 19) and not p.validate(carry, 20)
    assert small.validate(column, 8) and not small.validate(column, 9)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError):
        Addition(0)
    with pytest.raises(ValueError):
        Addition(5, max_digit=10)


def test_operands_depend_on_the_seed_and_respect_max_digit() -> None:
    a, b = Addition(50, 4, 1), Addition(50, 4, 2)
    assert a.a != b.a and max(a.a + a.b) <= 4
    assert Addition(50, 4, 1).a == a.a
