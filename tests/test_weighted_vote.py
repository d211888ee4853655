"""The weighted vote: tally, routes from a reliability table, and a step's vote."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unerring.core.samples import Sample
from unerring.planning.reliability_table import ReliabilityTable
from unerring.planning.weighing import Weighing
from unerring.tasks.addition import Addition
from unerring.voting.ahead_by_k import Tally
from unerring.voting.step import judge
from unerring.voting.weighted import (
    MIN_WEIGHT,
    StepRoute,
    WeightedTally,
    WeightedVote,
    margin_for,
    weight,
)


@given(st.integers(1, 6), st.lists(st.sampled_from("abcd"), max_size=120))
def test_equal_weights_decide_as_ahead_by_k(k: int, votes: list[str]) -> None:
    plain, weighted = Tally(k), WeightedTally(float(k))
    for v in votes:
        a = plain.add(v)
        b = weighted.add_weighted(v, 1, 1.0) == 1
        assert a == b
        if a:
            break
    assert weighted.winner == plain.winner
    assert weighted.counts == plain.counts
    assert weighted.plurality() == plain.plurality()


def test_a_trusted_vote_outweighs_several_untrusted_ones() -> None:
    t = WeightedTally(3.0)
    assert not t.add_weighted("1", 3, 0.5)  # three weak votes for 1: 1.5
    assert not t.add_weighted("0", 1, 2.9)  # one strong vote for 0 leads by 1.4
    assert t.plurality() == "0"
    assert t.add_weighted("0", 2, 1.0) == 2  # 4.9 - 1.5 = 3.4 >= 3: decided at the second
    assert t.winner == "0" and t.counts == {"1": 3, "0": 3}
    with pytest.raises(RuntimeError):
        t.add_weighted("1", 1, 1.0)


def test_margin_is_the_log_odds_of_the_steps_share_of_the_error_budget() -> None:
    e = 0.05 / 1000
    assert margin_for(0.95, 1000) == pytest.approx(math.log((1 - e) / e))
    assert margin_for(0.99, 1000) > margin_for(0.95, 1000)
    with pytest.raises(ValueError, match="target"):
        margin_for(1.0, 10)


def test_weights_are_log_odds_floored_for_sources_no_better_than_chance() -> None:
    assert weight(0.9) == pytest.approx(math.log(9))
    assert weight(0.5) == MIN_WEIGHT and weight(0.1) == MIN_WEIGHT
    assert weight(1.0) == weight(0.995)  # never certainty


def _table() -> ReliabilityTable:
    """Model a is right on cell c=0 and wrong on c=1; model b the other way round."""
    t = ReliabilityTable("addition", 40)
    for _ in range(10):
        for v in (0, 1):
            t.add(("a", v), "c=0", True)
            t.add(("a", v), "c=1", False)
            t.add(("b", v), "c=0", False)
            t.add(("b", v), "c=1", True)
    return t


def test_a_cells_trusted_sources_come_first() -> None:
    w = Weighing(_table(), ("a", "b"), ("A", "B"), (0, 1), 5.0)
    r0 = w.route({"c": 0})
    assert r0.order == ((0, 0), (0, 1), (1, 0), (1, 1))
    assert r0.weights[0] > 2.0 and r0.weights[-1] == MIN_WEIGHT
    r1 = w.route({"c": 1})
    assert [m for m, _ in r1.order] == [1, 1, 0, 0]
    assert w.route({"c": 1}) is r1  # made once per cell
    # a sample that came from another member than planned counts as its own source
    assert r1.weight_of("A", 0) == MIN_WEIGHT and r1.weight_of("B", 0) == r1.weights[0]
    assert r1.weight_of(None, 0) == r1.weights[0]  # unlabelled: the planned source


def test_fewest_samples_that_could_decide_follow_the_routes_weights() -> None:
    r = StepRoute(((0, 0), (0, 1), (1, 0)), (3.0, 2.0, 0.5), {})
    assert r.needed(0, 0.0, 5.0, cap=10) == 2  # 3 + 2
    assert r.needed(0, 0.0, 5.1, cap=10) == 3
    assert r.needed(2, 4.0, 5.0, cap=10) == 2  # 0.5, then 3 again (the order repeats)
    assert r.needed(1, 0.0, 100.0, cap=4) == 3  # never past the cap


def test_a_weighing_without_the_runs_sources_is_refused() -> None:
    with pytest.raises(ValueError, match="model 'c' with prompt variant 0"):
        Weighing(_table(), ("a", "c"), ("A", "C"), (0,), 5.0)


def _addition_vote(route: StepRoute, margin: float, cap: int = 8) -> WeightedVote:
    p = Addition(4, 4, 0)
    state = p.initial_state()
    return WeightedVote(route, WeightedTally(margin), cap, 8, lambda t: judge(p, state, t))


@given(st.permutations(range(6)))
def test_the_decision_does_not_depend_on_arrival_order(order: list[int]) -> None:
    route = StepRoute(((0, 0), (1, 0), (0, 1), (1, 1)), (0.5, 3.0, 0.5, 3.0), {})
    texts = [" 1", " 0", " 1", " 0", " 1", " 1"]
    vote = _addition_vote(route, 5.0)
    first = vote.expect(6)
    assert first == 0
    for i in order:
        vote.offer(i, [Sample(texts[i])])
    assert vote.decided and vote.decided_at == 3  # 0.5 vs 3.0, then 1.0 vs 6.0
    _, answer, text = vote.winner()
    assert answer == 0 and text == " 0"


def test_the_first_round_is_what_the_trusted_sources_need() -> None:
    route = StepRoute(((0, 0), (1, 0), (0, 1)), (3.0, 3.0, 0.5), {})
    vote = _addition_vote(route, 5.5)
    assert vote.next_round(parallel=1) == 2
    vote.offer(0, [Sample(" 0"), Sample(" 0")])
    assert vote.decided and vote.next_round(1) == 0


def test_red_flags_never_vote_and_an_undecided_step_takes_the_weighted_plurality() -> None:
    route = StepRoute(((0, 0), (1, 0), (1, 1)), (0.3, 2.0, 0.3), {})
    vote = _addition_vote(route, 10.0, cap=3)
    vote.offer(0, [Sample(" 1"), Sample("no idea"), Sample(" 0")])
    assert vote.finished and not vote.decided
    assert vote.flags is not None and sum(vote.flags.values()) == 1
    # 0.3 each for 1 and 0: a tie; the first to reach the most weight stands
    assert vote.winner()[1] == 1
    again = _addition_vote(StepRoute(((0, 0), (1, 0), (1, 1)), (0.3, 0.2, 2.0), {}), 10.0, 3)
    again.offer(0, [Sample(" 1"), Sample(" 0"), Sample(" 0")])
    assert again.winner()[1] == 0  # 2.2 against 0.3


def test_random_votes_match_a_direct_count_of_weights() -> None:
    rng = random.Random(5)
    for _ in range(200):
        n = rng.randint(1, 12)
        weights = tuple(rng.choice((0.05, 0.7, 1.5, 3.0)) for _ in range(n))
        route = StepRoute(tuple((0, v) for v in range(n)), weights, {})
        texts = [f" {rng.choice((0, 1, 2))}" for _ in range(n)]
        margin = rng.choice((1.0, 2.5, 4.0))
        vote = _addition_vote(route, margin, cap=n)
        vote.offer(0, [Sample(t) for t in texts])
        scores: dict[str, float] = {}
        decided_at = -1
        for i, t in enumerate(texts):
            scores[t] = scores.get(t, 0.0) + weights[i]
            best = max(scores.values())
            leader = next(k for k, v in scores.items() if v == best)
            second = max((v for k, v in scores.items() if k != leader), default=0.0)
            if best - second + 1e-9 >= margin:
                decided_at = i
                break
        assert vote.decided_at == decided_at
