import pytest
from hypothesis import given
from hypothesis import strategies as st

from unerring.voting.ahead_by_k import Tally


def test_single_candidate_wins_at_k() -> None:
    t = Tally(3)
    assert not t.add("a")
    assert not t.add("a")
    assert t.add("a")
    assert t.winner == "a"


def test_first_to_ahead_by_k_not_first_to_k() -> None:
    t = Tally(2)
    outcomes = [t.add(key) for key in ["a", "b", "a", "b", "b", "b"]]
    # a reached 2 votes first but never led by 2; b wins once it leads by 2
    assert outcomes == [False, False, False, False, False, True]
    assert t.winner == "b"
    assert t.counts == {"a": 2, "b": 4}


def test_no_vote_is_counted_after_the_decision() -> None:
    t = Tally(1)
    assert t.add("x")
    with pytest.raises(RuntimeError):
        t.add("y")
    assert t.counts == {"x": 1}


def test_needed_is_the_fewest_votes_that_could_decide() -> None:
    t = Tally(4)
    assert t.needed() == 4
    for key in ["a", "a", "b", "a"]:
        t.add(key)
    assert t.needed() == 2  # a leads b by 2


@given(st.integers(1, 6), st.lists(st.sampled_from("abcd"), max_size=200))
def test_winner_leads_by_k_at_the_moment_it_wins(k: int, votes: list[str]) -> None:
    t = Tally(k)
    counts: dict[str, int] = {}
    for v in votes:
        counts[v] = counts.get(v, 0) + 1
        decided = t.add(v)
        best_other = max((c for key, c in counts.items() if key != v), default=0)
        lead_of_v = counts[v] - best_other
        if decided:
            assert t.winner == v
            assert lead_of_v >= k
            # the decision comes at the first moment any key leads by k
            break
        # undecided: no key leads every other key by k
        for key, c in counts.items():
            others = max((c2 for k2, c2 in counts.items() if k2 != key), default=0)
            assert c - others < k
    assert t.counts == {key: c for key, c in counts.items()}


@given(st.integers(1, 5), st.lists(st.sampled_from("ab"), min_size=1, max_size=100))
def test_lead_tracking_matches_recount(k: int, votes: list[str]) -> None:
    t = Tally(k)
    for v in votes:
        if t.add(v):
            break
        ranked = sorted(t.counts.values(), reverse=True)
        assert t.lead == ranked[0] - (ranked[1] if len(ranked) > 1 else 0)
        assert t.counts[t.leader] == ranked[0]


def test_k_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        Tally(0)


@given(
    st.integers(1, 5), st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 7)), max_size=40)
)
def test_add_many_equals_repeated_add(k: int, runs: list[tuple[str, int]]) -> None:
    one, many = Tally(k), Tally(k)
    for key, m in runs:
        took = 0
        for i in range(m):
            if one.add(key):
                took = i + 1
                break
        assert many.add_many(key, m) == took
        assert (one.counts, one.lead, one.leader, one.winner, one.votes) == (
            many.counts,
            many.lead,
            many.leader,
            many.winner,
            many.votes,
        )
        if took:
            break
