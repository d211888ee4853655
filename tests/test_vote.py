"""A step's vote, without asyncio: samples in by index, in any order, decision out."""

from __future__ import annotations

from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st

from unerring.core.flags import Flag
from unerring.core.samples import Sample
from unerring.tasks.hanoi import Hanoi
from unerring.voting.ahead_by_k import Tally
from unerring.voting.step import StepVote, judge

H = Hanoi(1)
STATE = H.initial_state()
TEXTS = {
    "a": "move = [1, 0, 2]\nnext_state = [[], [], [1]]",
    "b": "move = [1, 0, 1]\nnext_state = [[], [1], []]",
    "c": "move = [1, 1, 2]\nnext_state = [[], [], [1]]",
    "x": "move = [1, 0, 2]",  # red-flagged: not in the output format
    "": "",  # red-flagged: empty
}


def _vote(k: int, cap: int) -> StepVote:
    return StepVote(Tally(k), cap, 750, partial(judge, H, STATE))


def sequential(samples: list[Sample], k: int, cap: int, parallel: int) -> StepVote:
    """The reference: rounds drawn one after another, each counted as a whole."""
    v = _vote(k, cap)
    while n := v.next_round(parallel):
        first = len(v.drawn)
        v.offer(first, samples[first : first + n])
    return v


def shuffled(samples: list[Sample], k: int, cap: int, parallel: int, order: list[int]) -> StepVote:
    """The same rounds, each sample arriving on its own in the order `order` picks."""
    v = _vote(k, cap)
    while n := v.next_round(parallel):
        first = v.expect(n)
        pending = list(range(first, first + n))
        for pick in order:
            if not pending:
                break
            i = pending.pop(pick % len(pending))
            v.offer(i, [samples[i]])
        for i in pending:
            v.offer(i, [samples[i]])
    return v


def outcome(v: StepVote) -> tuple[object, ...]:
    return (
        v.winner(),
        dict(v.tally.counts),
        v.decided_at,
        len(v.drawn),
        v.flags,
        v.prompt_tokens,
        v.completion_tokens,
    )


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 3),
    st.lists(st.sampled_from(sorted(TEXTS)), min_size=60, max_size=60),
    st.lists(st.integers(0, 100), max_size=80),
    st.booleans(),
)
def test_any_order_of_arrival_gives_the_sequential_vote(
    k: int, parallel: int, script: list[str], order: list[int], shared: bool
) -> None:
    # shared: equal responses are one object, as the simulator hands them out
    objects = {key: Sample(text, 10, 5) for key, text in TEXTS.items()}
    samples = [objects[c] if shared else Sample(TEXTS[c], 10, 5) for c in script]
    cap = 40
    a = sequential(samples, k, cap, parallel)
    b = shuffled(samples, k, cap, parallel, order)
    assert a.complete and b.complete
    assert outcome(a) == outcome(b)


def test_first_round_is_k_and_then_only_what_could_decide() -> None:
    v = _vote(3, 30)
    assert v.next_round(1) == 3
    first = v.expect(3)
    v.offer(first, [Sample(TEXTS["a"]), Sample(TEXTS["b"]), Sample(TEXTS["a"])])
    # a leads by 1: two more votes for it could decide
    assert v.next_round(1) == 2
    assert v.next_round(5) == 5  # --parallel draws more at once
    first = v.expect(2)
    assert v.next_round(1) == 0  # a round is out: nothing more until it is back
    v.offer(first + 1, [Sample(TEXTS["a"])])
    assert not v.decided and v.counted == 3  # index 3 has not arrived: nothing counted
    v.offer(first, [Sample(TEXTS["a"])])
    assert v.decided and v.decided_at == 4
    assert v.winner()[2] == TEXTS["a"]


def test_the_winner_text_is_the_lowest_index_one_whatever_arrives_first() -> None:
    spaced = TEXTS["a"].replace(", ", ",")  # the same answer, spelled differently
    v = _vote(2, 10)
    first = v.expect(2)
    v.offer(first + 1, [Sample(spaced)])
    v.offer(first, [Sample(TEXTS["a"])])
    assert v.decided and v.winner()[2] == TEXTS["a"]


def test_red_flags_are_counted_by_kind_and_never_vote() -> None:
    v = _vote(1, 5)
    v.expect(5)
    v.offer(0, [Sample(""), Sample("   "), Sample(TEXTS["x"]), Sample("y" * 4000, 1, 1000)])
    assert v.flags == {Flag.EMPTY: 2, Flag.PARSE: 1, Flag.OVERLONG: 1}
    assert not v.decided and not v.tally.counts
    v.offer(4, [Sample(TEXTS["b"])])
    assert v.decided and v.winner()[0] is not None


def test_a_step_at_its_cap_is_finished_undecided_with_a_plurality() -> None:
    v = _vote(3, 4)
    v.expect(3)
    v.offer(0, [Sample(TEXTS["a"]), Sample(TEXTS["b"]), Sample(TEXTS["a"])])
    assert v.next_round(1) == 1  # the cap leaves room for one more only
    v.offer(3, [Sample(TEXTS["b"])])
    assert v.finished and v.complete and not v.decided
    assert v.winner()[2] == TEXTS["a"]  # the plurality: the first to reach the top count
