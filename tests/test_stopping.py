import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import run_sync
from tests.helpers import decisions, run_task
from unerring.backends.sim import ProcessOracle, SimBackend, SimConfig
from unerring.errors import UsageError
from unerring.planning.predict import predict
from unerring.planning.reliability import k_min
from unerring.scheduler.loop import Scheduler
from unerring.scheduler.sources import Item
from unerring.tasks.hanoi import Hanoi
from unerring.voting.adaptive import AdaptiveConfig, AdaptiveRule, refit_point
from unerring.voting.config import Budget, VotingConfig
from unerring.voting.posterior import ErrorModel, Posterior

HARD = ErrorModel(0.05, 0.1, 0.45)


def rule(model: ErrorModel = HARD, steps: int = 1023, target: float = 0.99) -> AdaptiveRule:
    return AdaptiveRule(AdaptiveConfig(steps, target, model, cap=500))


def pattern(counts: dict[str, int]) -> tuple[int, ...]:
    return tuple(sorted(counts.values(), reverse=True))


@given(st.lists(st.sampled_from("abc"), max_size=120))
def test_the_tally_decides_at_the_first_moment_the_rule_stops(votes: list[str]) -> None:
    r = rule()
    t = r.tally()
    counts: dict[str, int] = {}
    for v in votes:
        counts[v] = counts.get(v, 0) + 1
        p = pattern(counts)
        tie = len(p) > 1 and p[0] == p[1]
        decided = t.add(v)
        assert decided == (not tie and r.stops(p))
        if decided:
            assert t.winner == max(counts, key=lambda key: counts[key])
            with pytest.raises(RuntimeError):
                t.add(v)
            break
        assert t.winner is None and not t.decided
    assert t.counts == counts


@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 20)), max_size=12))
def test_add_many_equals_repeated_add(runs: list[tuple[str, int]]) -> None:
    r = rule()
    one, many = r.tally(), r.tally()
    for key, m in runs:
        took = 0
        for i in range(m):
            if one.add(key):
                took = i + 1
                break
        assert many.add_many(key, m) == took
        assert (one.counts, one.leader, one.winner, one.votes) == (
            many.counts,
            many.leader,
            many.winner,
            many.votes,
        )
        if took:
            break


@given(st.lists(st.sampled_from("ab"), max_size=30))
def test_needed_votes_for_the_leader_decide_and_fewer_do_not(votes: list[str]) -> None:
    r = rule()
    t = r.tally()
    for v in votes:
        if t.add(v):
            return
    need = t.needed()
    leader = t.plurality() or "a"
    probe = r.tally()
    for v in votes:
        probe.add(v)
    if need > 1:
        assert probe.add_many(leader, need - 1) == 0
    assert t.add_many(leader, need) == need


def test_a_unanimous_start_is_asked_for_more_votes_when_hard_steps_exist() -> None:
    iid = rule(ErrorModel(0.0, 0.1, 0.45))
    mixed = rule(HARD)
    # i.i.d. error 0.1 over 1,023 steps at 0.99: the margin of ahead-by-k (6 votes)
    assert iid.first_round() == 6
    # 5% of steps at error 0.45: six agreeing votes could be a hard step's wrong answer
    assert mixed.first_round() > 10
    n = mixed.first_round()
    budget = 0.01 / 1023
    # worst case, one wrong answer: a hard step's unanimous wrong start fools the rule
    # with probability eps_h^n; weighted by the hard share it stays within a step's budget
    assert 0.05 * 0.45**n <= budget
    assert 0.05 * 0.45 ** (n - 1) > budget * 0.1


def test_disagreement_asks_for_a_larger_margin_where_hard_steps_exist() -> None:
    mixed, iid = rule(), rule(ErrorModel(0.0, 0.1, 0.45))
    # the margin asked after a d:d tie: constant on i.i.d. errors (ahead-by-6) ...
    assert [iid.needed_from((d, d)) for d in range(6)] == [6] * 6
    # ... and growing with the dissent where it marks a possibly hard step
    margins = [mixed.needed_from((d, d)) for d in range(6)]
    assert margins == sorted(margins) and margins[-1] > margins[0] + 5
    assert margins[0] == mixed.first_round()


@settings(max_examples=12, deadline=None)
@given(
    st.floats(0.0, 0.2),
    st.floats(0.005, 0.2),
    st.floats(0.3, 0.45),
    st.sampled_from([101, 1000, 20000]),
    st.sampled_from([0.9, 0.99]),
)
def test_expected_errors_stay_within_the_budget(
    share: float, easy: float, hard: float, steps: int, target: float
) -> None:
    model = ErrorModel(share, easy, hard)
    pred = predict(AdaptiveConfig(steps, target, model, cap=200))
    per_step = (1 - target) / steps
    # the martingale bound: E[P(wrong | counts at the stop)] <= the step's budget
    assert pred.p_step_wrong <= per_step * 1.0001
    assert pred.p_full >= (1 - per_step * 1.0001 - pred.p_undecided) ** steps


def test_posterior_of_the_two_answer_worst_case_matches_the_closed_form() -> None:
    post = Posterior.make(HARD, 1e-5)
    a, b = 9, 2
    num = den = 0.0
    for share, e in ((0.95, 0.1), (0.05, 0.45)):
        wrong = share * (e**a * (1 - e) ** b + e ** (a + b))
        num += wrong
        den += wrong + share * (1 - e) ** a * e**b
    assert post.p_wrong((a, b)) == pytest.approx(num / den, rel=1e-12)
    # a third answer's votes only add ways for the leader to be wrong
    assert post.p_wrong((a, b, 1)) > post.p_wrong((a, b))


def draw_patterns(model: ErrorModel, r: AdaptiveRule, steps: int, seed: int) -> list[list[int]]:
    rnd = random.Random(seed)
    out = []
    for _ in range(steps):
        e = model.hard_error if rnd.random() < model.hard_share else model.easy_error
        t = r.tally()
        while True:
            if t.add("right" if rnd.random() >= e else "wrong"):
                break
            if t.votes >= 500:
                break
        out.append(list(t.counts.values()))
    return out


def test_the_error_model_is_learnt_from_the_votes() -> None:
    truth = ErrorModel(0.1, 0.05, 0.4)
    start = ErrorModel(0.01, 0.2, 0.45)  # a wrong prior, worth little
    r = AdaptiveRule(AdaptiveConfig(4000, 0.99, start, prior_steps=10, cap=500))
    rnd = random.Random(3)
    for step in range(4000):
        e = truth.hard_error if rnd.random() < truth.hard_share else truth.easy_error
        t = r.tally(step)
        while not t.add("right" if rnd.random() >= e else "wrong") and t.votes < 500:
            pass
        r.observe(step, t.counts.values())
    m = r.model
    assert m.hard_share == pytest.approx(0.1, abs=0.03)
    assert m.easy_error == pytest.approx(0.05, abs=0.01)
    assert m.hard_error == pytest.approx(0.4, abs=0.03)


def test_an_iid_run_learns_no_hard_steps() -> None:
    r = rule(ErrorModel(0.0, 0.01, 0.45), steps=5000)
    for step, counts in enumerate(draw_patterns(ErrorModel(0.0, 0.01, 0.45), r, 3000, 1)):
        r.observe(step, counts)
    assert r.model.hard_share < 1e-6
    assert r.first_round() == k_min(0.99, 5000, 0.99)  # what ahead-by-k plans


def test_observations_out_of_order_give_the_same_rule() -> None:
    pats = draw_patterns(HARD, rule(), 300, 2)
    a, b = rule(), rule()
    for step, c in enumerate(pats):
        a.observe(step, c)
    order = list(range(300))
    random.Random(5).shuffle(order)
    for step in order:
        b.observe(step, pats[step])
    b.observe(7, [99])  # a replayed step is ignored
    assert a.describe() == b.describe()
    assert a.observed == b.observed == 300


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ValueError):
        AdaptiveConfig(0, 0.99, HARD)
    with pytest.raises(ValueError):
        AdaptiveConfig(10, 1.0, HARD)
    with pytest.raises(ValueError):
        ErrorModel(1.5, 0.1, 0.4)
    with pytest.raises(ValueError):
        AdaptiveConfig(10, 0.9, HARD, hard_floor=0.5)
    assert AdaptiveConfig.from_dict(AdaptiveConfig(10, 0.9, HARD).as_dict()) == AdaptiveConfig(
        10, 0.9, HARD
    )


def engine_run(disks: int, sim: str, voting: VotingConfig) -> Scheduler:
    h = Hanoi(disks)
    sched = Scheduler(SimBackend(SimConfig.parse(sim)), voting, oracle=ProcessOracle)
    end = run_sync(sched.run([Item(0, h, h.initial_state())]))
    assert end.status == "completed", end.reason
    return sched


def test_on_iid_errors_the_adaptive_rule_spends_what_ahead_by_k_spends() -> None:
    steps = 2**9 - 1
    adaptive = AdaptiveConfig(steps, 0.95, ErrorModel(0.0, 0.05, 0.45), cap=250)
    a = engine_run(9, "error=0.05,seed=4", VotingConfig(k=5, adaptive=adaptive))
    f = engine_run(9, "error=0.05,seed=4", VotingConfig(k=5))
    assert a.totals.errors == f.totals.errors == 0
    assert a.totals.samples <= f.totals.samples * 1.02


def test_with_hard_steps_the_adaptive_rule_is_cheaper_and_as_right() -> None:
    sim = "error=0.1,hard=0.05,hard_error=0.45,seed=2"
    adaptive = AdaptiveConfig(255, 0.99, HARD, cap=1800)
    a = engine_run(8, sim, VotingConfig(k=36, adaptive=adaptive))
    f = engine_run(8, sim, VotingConfig(k=36))
    assert a.totals.errors == f.totals.errors == 0
    assert a.totals.samples < 0.75 * f.totals.samples
    assert a.rule is not None and a.rule.observed == 255


def test_a_resumed_adaptive_run_decides_exactly_as_an_uninterrupted_one(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    opts = dict(
        task="hanoi",
        task_options={"disks": 7},
        model="sim:error=0.1,hard=0.05,hard_error=0.45,seed=9",
        target=0.99,
        stopping="adaptive",
    )
    whole = run_task(**opts, store=db, handle_signals=False, run_id="whole")
    assert whole.summary["status"] == "completed" and whole.summary["stopping"] == "adaptive"
    part = run_task(**opts, store=db, budget=Budget(max_samples=1500), run_id="part")
    assert part.summary["status"] == "stopped"
    again = run_task(**opts, store=db, handle_signals=False, run_id="part", resume=True)
    assert again.summary["status"] == "completed"
    assert decisions(Path(db), "whole") == decisions(Path(db), "part")
    assert again.run.config["stopping_resolved"] == whole.run.config["stopping_resolved"]


def test_an_unknown_stopping_rule_is_refused() -> None:
    with pytest.raises(UsageError, match="unknown stopping rule"):
        run_task(task="hanoi", stopping="ahead-by-3")


def test_an_iid_plan_on_hard_steps_finds_them_in_the_votes() -> None:
    sim = "error=0.1,hard=0.05,hard_error=0.45,seed=0"
    adaptive = AdaptiveConfig(1023, 0.99, ErrorModel(0.0, 0.1, 0.45), cap=2000)
    a = engine_run(10, sim, VotingConfig(k=6, adaptive=adaptive, max_samples_per_step=2000))
    f = engine_run(10, sim, VotingConfig(k=6))  # what the i.i.d. plan gives ahead-by-k
    assert a.rule is not None
    model = a.rule.describe()["model"]
    assert 0.02 < model["hard_share"] < 0.08 and model["hard_error"] > 0.4
    assert a.totals.errors <= 1 < f.totals.errors


def test_one_odd_step_does_not_make_an_iid_run_pay_for_hard_steps() -> None:
    r, twin = (rule(ErrorModel(0.0, 0.01, 0.45), steps=65535, target=0.95) for _ in range(2))
    for step in range(600):
        r.observe(step, [6, 2] if step == 100 else [4])
        twin.observe(step, [8] if step == 100 else [4])
    # one step with two dissenting votes in 600 is what i.i.d. errors give now and then
    assert r.model.hard_share == 0.0
    assert r.first_round() == twin.first_round()
    assert r.needed_from((3, 1)) == twin.needed_from((3, 1))


def test_an_unknown_stopping_rule_on_the_command_line_writes_nothing(tmp_path: Path) -> None:
    from tests.helpers import cli, one_line_error

    db = tmp_path / "runs.db"
    res = cli("run", "hanoi", "--stopping", "ahead-by-3", "--store", str(db))
    assert res.returncode == 2
    assert "--stopping" in one_line_error(
        res.stderr.replace("unerring run: error", "unerring: error")
    )
    assert not db.exists()


def test_plan_predicts_both_rules_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from unerring.cli.main import main

    args = ["plan", "--error-rate", "0.1", "--hard-share", "0.05", "--hard-error", "0.45"]
    assert main([*args, "--steps", "1023", "--target", "0.99", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)["rules"]
    fixed, adaptive = rules["ahead-by-k"], rules["adaptive"]
    assert fixed["k"] == 43 and fixed["samples_per_step"] == pytest.approx(72.55, abs=0.01)
    assert adaptive["first_round"] == 13
    assert adaptive["samples_per_step"] < 0.65 * fixed["samples_per_step"]
    assert adaptive["p_full"] >= 0.99 and fixed["p_full"] >= 0.99
    assert main([*args, "--steps", "1023", "--target", "0.99"]) == 0
    text = capsys.readouterr().out
    assert "ahead-by-k" in text and "adaptive" in text and "first 13" in text


def test_the_summary_and_the_journal_name_the_rule(tmp_path: Path) -> None:
    from tests.helpers import cli

    db = tmp_path / "runs.db"
    res = cli("run", "hanoi", "--disks", "6", "--model", "sim:error=0.05,seed=1",
              "--stopping", "adaptive", "--store", str(db), "--run-id", "a", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    import json

    s = json.loads(res.stdout)
    assert s["stopping"] == "adaptive" and s["errors"] == 0
    assert s["stopping_state"]["observed"] == 63
    res = cli("show", "a", "--store", str(db), "--json")
    config = json.loads(res.stdout)["config"]
    assert config["stopping"] == "adaptive"
    assert config["stopping_resolved"]["steps"] == 63
    assert config["stopping_resolved"]["prior"]["easy_error"] == 0.05


def test_when_no_vote_within_the_cap_decides_none_is_declared() -> None:
    hopeless = AdaptiveRule(AdaptiveConfig(10**6, 0.999999, ErrorModel(0.5, 0.45, 0.49), cap=5))
    assert not hopeless.stops((5,))
    t = hopeless.tally()
    assert t.needed() == 5  # the cap: the engine stops there, undecided
    assert t.add_many("a", 10) == 0 and not t.decided and t.counts == {"a": 10}


# -- one model per step, fixed in advance: decisions do not depend on scheduling ----------
def test_refit_points_are_issue_12s_schedule() -> None:
    points = sorted({refit_point(t) for t in range(10_000)})
    assert points == [0, 16, 32, 64, 128, 256, 512, 1024, *range(2048, 10_000, 1024)]


def _observed_batch(items: int, steps: int, seed: int) -> dict[int, list[list[int]]]:
    rnd = random.Random(seed)
    out: dict[int, list[list[int]]] = {}
    for i in range(items):
        out[i] = []
        for _ in range(steps):
            hard = rnd.random() < 0.1
            w = sum(rnd.random() < (0.4 if hard else 0.05) for _ in range(12))
            out[i].append([12 - w, w] if w else [12])
    return out


def _models(rule: AdaptiveRule, items: int, steps: int) -> dict[tuple[int, int], object]:
    out = {}
    for i in range(items):
        for t in range(steps):
            f = rule.fitted(t, i)
            assert f is not None
            out[(i, t)] = (f.observed, f.describe())
    return out


def test_each_steps_model_is_the_same_whatever_order_steps_and_items_end_in() -> None:
    items, steps = 12, 40
    votes = _observed_batch(items, steps, 3)
    config = AdaptiveConfig(items * steps, 0.99, ErrorModel(0.0, 0.2, 0.45), group=3)

    # in order: each item's steps, then its end, item after item (a run of window 1)
    seq = AdaptiveRule(config)
    want: dict[tuple[int, int], object] = {}
    for i in range(items):
        assert seq.ready(i)
        for t in range(steps):
            f = seq.fitted(t, i)
            assert f is not None
            want[(i, t)] = (f.observed, f.describe())
            seq.observe(t, votes[i][t], i)
        seq.item_ended(i)
    # item i learns from items 0 .. 3 * (i // 3 - 1) - 1, and its own steps to the cut
    assert want[(11, 39)][0] == 6 * steps + 32
    assert want[(2, 15)][0] == 0 and want[(2, 16)][0] == 16

    # interleaved at random: every step's model is asked as soon as the rule has it
    for seed in range(5):
        rnd = random.Random(seed)
        rule = AdaptiveRule(config)
        nxt = dict.fromkeys(range(items), 0)  # each item's next step to decide
        got: dict[tuple[int, int], object] = {}
        started, live = 0, []
        while started < items or live:
            if started < items and (not live or rnd.random() < 0.3):
                live.append(started)  # items start in index order
                started += 1
            i = rnd.choice(live)
            t = nxt[i]
            f = rule.fitted(t, i)
            if f is None:  # the items it learns from have not all ended: try another
                assert not rule.ready(i)
                continue
            if t + 1 < steps:  # a speculative look one step ahead: the same model, or none
                ahead = rule.fitted(t + 1, i)
                assert (ahead is None) == (refit_point(t + 1) == t + 1)
                if ahead is not None:
                    got[(i, t + 1)] = (ahead.observed, ahead.describe())
            assert got.setdefault((i, t), (f.observed, f.describe())) == (f.observed, f.describe())
            rule.observe(t, votes[i][t], i)
            nxt[i] += 1
            if nxt[i] == steps:
                rule.item_ended(i)
                live.remove(i)
        assert got == want


def test_a_replayed_journal_gives_every_step_the_model_it_had() -> None:
    items, steps = 9, 40
    votes = _observed_batch(items, steps, 4)
    config = AdaptiveConfig(items * steps, 0.99, ErrorModel(0.05, 0.1, 0.45), group=2)
    whole = AdaptiveRule(config)
    want = {}
    for i in range(items):
        for t in range(steps):
            f = whole.fitted(t, i)
            assert f is not None
            want[(i, t)] = f.describe()
            whole.observe(t, votes[i][t], i)
        whole.item_ended(i)
    # stopped with items 0-3 and 6 complete, 4 at step 25, 5 at 0, 7 at 17, 8 at 3
    at = {0: steps, 1: steps, 2: steps, 3: steps, 4: 25, 5: 0, 6: steps, 7: 17, 8: 3}
    again = AdaptiveRule(config)
    for i, n in at.items():
        for t in range(n):
            again.observe(t, votes[i][t], i)
    again.begin(items, [i for i, n in at.items() if n < steps])
    for i in (4, 5, 7, 8):
        for t in range(at[i], steps):
            f = again.fitted(t, i)
            if f is None:  # waits for items before it: decide those first (in order)
                continue
            assert f.describe() == want[(i, t)]
            again.observe(t, votes[i][t], i)
            at[i] = t + 1
        if at[i] == steps:
            again.item_ended(i)
    for i in (4, 5, 7, 8):
        for t in range(at[i], steps):
            f = again.fitted(t, i)
            assert f is not None and f.describe() == want[(i, t)]
            again.observe(t, votes[i][t], i)
        again.item_ended(i)


class Latent:
    """The simulator behind a real wait that differs by request (arrivals interleave)."""

    model = "sim"
    batch_rounds = False

    def __init__(self, cfg: SimConfig) -> None:
        self.inner = SimBackend(cfg)

    async def sample(self, request: Any) -> Any:
        import asyncio

        await asyncio.sleep(
            ((request.step * 7 + request.first_index * 13 + request.item) % 5) / 1e3
        )
        return await self.inner.sample(request)

    async def aclose(self) -> None:
        return None


def _batch_decisions(backend: Any, voting: VotingConfig, items: int, **kw: Any) -> Any:
    from unerring.core.events import Events

    seen: dict[int, list[tuple[Any, ...]]] = {}

    class Collect:
        def on_decision(self, d: Any) -> None:
            seen.setdefault(d.item, []).append((d.step, d.winner_text, d.votes, d.samples))

    events = Events()
    events.subscribe(Collect())
    sched = Scheduler(backend, voting, events, oracle=ProcessOracle, **kw)
    hs = [Hanoi(5) for _ in range(items)]
    end = run_sync(
        sched.run([Item(i, h, h.initial_state(), item_id=str(i)) for i, h in enumerate(hs)])
    )
    assert end.status == "completed", end.reason
    return {i: sorted(v) for i, v in seen.items()}, sched


def test_a_batchs_decisions_do_not_depend_on_latency_window_or_speculation() -> None:
    from unerring.backends.resilience import Limited

    items = 14
    cfg = SimConfig(error=0.1, hard=0.05, hard_error=0.45, seed=5)
    # a wrong prior (i.i.d. error 0.2): what each item decides with depends on what it learnt
    adaptive = AdaptiveConfig(items * 31, 0.99, ErrorModel(0.0, 0.2, 0.45), prior_steps=10,
                              cap=400, group=3)  # fmt: skip
    voting = VotingConfig(k=8, adaptive=adaptive, max_samples_per_step=400,
                          on_undecided="plurality")  # fmt: skip
    want, sched = _batch_decisions(SimBackend(cfg), voting, items, window=64)
    assert sched.rule is not None and sched.rule.observed == items * 31
    firsts = {v[0][3] for v in want.values()}  # the first step's samples, item by item
    assert len(firsts) > 1  # items that learnt from others start differently
    one, _ = _batch_decisions(SimBackend(cfg), voting, items, window=1)
    assert one == want
    for speculate in (0, 3):
        got, _ = _batch_decisions(
            Limited(Latent(cfg), concurrency=16),  # type: ignore[arg-type]
            voting,
            items,
            window=items,
            speculate=speculate,
        )
        assert got == want


def test_a_resumed_adaptive_batch_decides_exactly_as_an_uninterrupted_one(tmp_path: Path) -> None:
    from unerring.app.options import BatchItem

    db = str(tmp_path / "runs.db")
    opts = dict(
        task="hanoi",
        model="sim:error=0.1,hard=0.05,hard_error=0.45,seed=2",
        target=0.99,
        stopping="adaptive",
        on_undecided="plurality",
    )
    batch = [BatchItem(str(i), {"disks": 4}) for i in range(1, 71)]  # items 64-69 learn
    whole = run_task(**opts, store=db, handle_signals=False, run_id="whole", batch=batch)
    assert whole.summary["status"] == "completed"
    part = run_task(**opts, store=db, budget=Budget(max_samples=20_000), run_id="part", batch=batch)
    assert part.summary["status"] == "stopped"
    again = run_task(**opts, store=db, handle_signals=False, run_id="part", resume=True)
    assert again.summary["status"] == "completed"
    a, b = whole.store, again.store

    def rows(store: Any, run: Any, item: int) -> list[dict[str, Any]]:
        return [{**d, "elapsed": None} for d in store.decisions(run, item=item)]

    for it in a.items(whole.run):
        assert rows(a, whole.run, it.item) == rows(b, again.run, it.item)
    assert whole.summary["samples"] == again.summary["samples"]
