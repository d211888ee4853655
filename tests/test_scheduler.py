import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_sync
from tests.helpers import decisions, item_decisions, run_task
from unerring.app.options import BatchItem
from unerring.backends.base import Backend, FatalBackendError, TransportError
from unerring.backends.sim import ProcessOracle, SimBackend, SimConfig
from unerring.backends.spec import known_error_mixture, parse_model
from unerring.core.events import Decision, Events
from unerring.core.flags import Flag
from unerring.core.samples import Sample, SampleRequest
from unerring.planning.reliability import k_min_mixture
from unerring.process import NoteSelector, Process
from unerring.scheduler.loop import Scheduler
from unerring.scheduler.sources import Item
from unerring.tasks.hanoi import Hanoi
from unerring.voting.ahead_by_k import Tally
from unerring.voting.config import Budget, VotingConfig


@dataclass
class Ended:
    """How a one-item run ended, and where."""

    status: str
    reason: str
    step: int
    state: Any


def run_one(
    process: Process[Any, Any],
    backend: Backend,
    voting: VotingConfig,
    events: Events | None = None,
    *,
    state: Any = None,
    step: int = 0,
    notes: NoteSelector | None = None,
    **kw: Any,
) -> tuple[Ended, Scheduler]:
    """Run one chain on the scheduler from (state, step)."""
    sched = Scheduler(backend, voting, events, **kw)
    item = Item(0, process, process.initial_state() if state is None else state, step, notes)
    end = run_sync(sched.run([item]))
    return Ended(end.status, end.reason, item.step, item.state), sched


class Collect:
    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def on_decision(self, d: Decision) -> None:
        self.decisions.append(d)


def run_hanoi(
    disks: int, sim: str, voting: VotingConfig, **kw: Any
) -> tuple[Ended, Scheduler, Collect]:
    h = Hanoi(disks)
    spec = parse_model(sim)
    events, seen = Events(), Collect()
    events.subscribe(seen)
    assert spec.sim is not None
    outcome, sched = run_one(h, SimBackend(spec.sim), voting, events, oracle=ProcessOracle, **kw)
    return outcome, sched, seen


def test_small_hanoi_with_hard_steps_reaches_zero_errors() -> None:
    sim = "sim:error=0.05,hard=0.05,hard_error=0.25,wrong_answers=2,seed=7"
    k = k_min_mixture(known_error_mixture(parse_model(sim)), 1023, 0.99)  # type: ignore[arg-type]
    outcome, engine, seen = run_hanoi(10, sim, VotingConfig(k=k))
    assert outcome.status == "completed"
    assert engine.totals.steps_decided == 1023
    assert engine.totals.errors == 0 and engine.totals.checked == 1023
    assert outcome.state[0] == ((), (), tuple(range(10, 0, -1)))
    # hard steps exist and some were contested
    assert any(len(d.votes) > 1 for d in seen.decisions)


def test_k1_on_an_unreliable_model_makes_errors_that_the_checker_counts() -> None:
    outcome, engine, _ = run_hanoi(6, "sim:error=0.2,seed=1", VotingConfig(k=1))
    assert engine.totals.errors > 0
    assert outcome.status == "completed"


def test_same_seed_same_decisions_and_samples() -> None:
    sim = "sim:error=0.1,flag=0.05,wrong_answers=3,seed=5"
    _, e1, a = run_hanoi(7, sim, VotingConfig(k=3))
    _, e2, b = run_hanoi(7, sim, VotingConfig(k=3))
    assert [(d.winner_text, d.votes, d.samples, d.flags) for d in a.decisions] == [
        (d.winner_text, d.votes, d.samples, d.flags) for d in b.decisions
    ]
    assert e1.totals.samples == e2.totals.samples
    _, _, c = run_hanoi(7, "sim:error=0.1,flag=0.05,wrong_answers=3,seed=6", VotingConfig(k=3))
    assert [d.samples for d in a.decisions] != [d.samples for d in c.decisions]


class OwnObjects:
    """The simulator, with every sample its own object (as a real backend returns them)."""

    batch_rounds = False  # one request per sample

    def __init__(self, inner: SimBackend) -> None:
        self.inner = inner

    @property
    def model(self) -> str:
        return "sim"

    async def sample(self, request: SampleRequest) -> list[Sample]:
        out = await self.inner.sample(request)
        return [Sample(s.text, s.prompt_tokens, s.completion_tokens, s.latency_s) for s in out]

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("record", ["contested", "samples"])
def test_shared_sample_objects_decide_exactly_as_distinct_ones(record: str) -> None:
    # a first round of one shared object takes the engine's short path, a vote of
    # distinct objects the general one: every decision must come out the same
    sim = SimConfig(error=0.1, hard=0.2, hard_error=0.4, wrong_answers=2, seed=11)
    runs = []
    for backend in (SimBackend(sim), OwnObjects(SimBackend(sim))):
        h = Hanoi(7)
        events, seen = Events(), Collect()
        events.subscribe(seen)
        ended, _ = run_one(
            h, backend, VotingConfig(k=3, record=record), events, oracle=ProcessOracle
        )  # type: ignore[arg-type]
        assert ended.status == "completed"
        runs.append(
            [
                (
                    d.step,
                    d.winner_text,
                    d.key,
                    d.votes,
                    d.samples,
                    d.surplus,
                    d.flags,
                    d.prompt_tokens,
                    d.completion_tokens,
                    d.correct,
                    d.state_after,
                    [(o.index, o.key, o.flag, o.counted, o.sample.text) for o in d.outcomes],
                )
                for d in seen.decisions
            ]
        )
    shared, distinct = runs
    assert shared == distinct
    assert any(len(d[3]) > 1 for d in shared)  # contested steps took the general path


def _journaled(tmp_path: Path, name: str, **options: Any) -> list[dict[str, Any]]:
    """A 6-disk Hanoi run through `execute`, every sample recorded; its decisions."""
    opts = dict(
        task="hanoi",
        task_options={"disks": 6},
        model="sim:error=0.2,wrong_answers=2,seed=9",
        k=3,
        record="samples",
        **options,
    )
    db = tmp_path / f"{name}.db"
    result = run_task(**opts, store=str(db), handle_signals=False, run_id=name)
    assert result.outcome.status == "completed"
    result.store.close()
    return decisions(db, name)


def _samples(tmp_path: Path, name: str) -> dict[int, list[sqlite3.Row]]:
    conn = sqlite3.connect(tmp_path / f"{name}.db")
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM samples ORDER BY step, idx").fetchall()
    finally:
        conn.close()
    out: dict[int, list[sqlite3.Row]] = {}
    for r in rows:
        out.setdefault(r["step"], []).append(r)
    return out


def test_parallel_rounds_draw_more_and_decide_the_same_way(tmp_path: Path) -> None:
    one = _journaled(tmp_path, "one", parallel=1)
    four = _journaled(tmp_path, "four", parallel=4)
    assert [d["winner"] for d in one] == [d["winner"] for d in four]
    assert [d["votes"] for d in one] == [d["votes"] for d in four]
    # samples are positional: the same step decides at the same sample either way, and
    # what a wider round drew past that point is its surplus
    assert all(d["surplus"] == 0 for d in one)
    for a, b in zip(one, four, strict=True):
        assert b["samples"] - b["surplus"] == a["samples"], a["step"]
    assert sum(d["surplus"] for d in four) > 0  # an engine that ignores --parallel fails
    # every round after the first draws at least 4 (the cap allowing)
    for d in four:
        if d["samples"] > 3:
            assert d["samples"] - 3 >= 4, d["step"]
    # surplus samples are kept but never counted as votes
    by_step = _samples(tmp_path, "four")
    for d in four:
        counted = sum(r["counted"] for r in by_step[d["step"]])
        assert counted == d["samples"] - d["surplus"], d["step"]


def test_first_round_draws_k_then_exactly_what_could_decide() -> None:
    class Recording(SimBackend):
        def __init__(self, cfg: SimConfig) -> None:
            super().__init__(cfg)
            self.rounds: list[tuple[int, int, list[str]]] = []

        async def sample(self, request: SampleRequest) -> list[Sample]:
            out = await super().sample(request)
            self.rounds.append((request.step, request.first_index, [s.text for s in out]))
            return out

    h = Hanoi(5)
    backend = Recording(SimConfig(error=0.3, wrong_answers=2, seed=4))
    run_one(h, backend, VotingConfig(k=3), oracle=ProcessOracle)
    # replay each step's rounds through a tally: the next round must ask for exactly the
    # fewest votes that could decide (all going to the leader), no more and no fewer
    tally: Tally | None = None
    asked_more = 0
    for step, first, texts in backend.rounds:
        if first == 0:
            assert len(texts) == 3, step  # the first round draws k
            tally = Tally(3)
        else:
            assert tally is not None and not tally.decided
            assert len(texts) == tally.needed(), (step, first, dict(tally.counts))
            asked_more += 1
        for t in texts:
            if not tally.decided:
                tally.add(t)
    assert asked_more > 10  # contested steps drew further rounds


def test_red_flagged_samples_never_vote_and_are_counted_by_kind() -> None:
    outcome, engine, seen = run_hanoi(6, "sim:error=0.0,flag=0.3,seed=3", VotingConfig(k=2))
    assert outcome.status == "completed" and engine.totals.errors == 0
    assert engine.totals.red_flags > 0
    assert set(engine.totals.flags) == {"overlong", "parse"}
    for d in seen.decisions:
        assert sum(d.votes.values()) + sum((d.flags or {}).values()) + d.surplus == d.samples
        for o in d.outcomes:
            if o.flag is not None:
                assert o.key is None


def test_flagged_outcomes_are_recorded_on_contested_steps() -> None:
    _, _, seen = run_hanoi(5, "sim:error=0.2,flag=0.1,seed=2", VotingConfig(k=2))
    contested = [d for d in seen.decisions if len(d.votes) > 1 or d.flags]
    assert contested and all(d.outcomes for d in contested)
    assert all(not d.outcomes for d in seen.decisions if d.unanimous and d.correct)


def test_a_unanimous_wrong_decision_keeps_its_samples() -> None:
    # k=1 at a 30% error rate: the checker rejects unanimous decisions; their samples are
    # what failure analysis reads
    _, engine, seen = run_hanoi(6, "sim:error=0.3,seed=1", VotingConfig(k=1))
    wrong = [d for d in seen.decisions if d.correct is False]
    assert wrong and engine.totals.errors == len(wrong)
    for d in wrong:
        assert d.unanimous and [o.key for o in d.outcomes] == [d.key]
        assert d.outcomes[0].sample.text == d.winner_text


def test_undecided_step_stops_the_run_by_default() -> None:
    outcome, engine, _ = run_hanoi(
        4, "sim:error=0.49,wrong_answers=1,seed=1", VotingConfig(k=8, max_samples_per_step=8)
    )
    assert outcome.status == "stopped"
    assert "undecided" in outcome.reason and "--max-samples-per-step" in outcome.reason
    assert engine.totals.undecided == 1


def test_undecided_step_takes_the_plurality_when_asked() -> None:
    outcome, engine, seen = run_hanoi(
        4,
        "sim:error=0.3,wrong_answers=1,seed=1",
        VotingConfig(k=6, max_samples_per_step=6, on_undecided="plurality"),
    )
    assert outcome.status == "completed"
    assert engine.totals.undecided > 0
    marked = [d for d in seen.decisions if d.undecided]
    assert marked and all(d.answer is not None for d in marked)


class Garbage:
    """A backend that returns everything a model should not."""

    batch_rounds = False  # one request per sample

    model = "garbage"

    async def sample(self, request: SampleRequest) -> list[Sample]:
        junk = [
            "",
            "   ",
            "\x00\x01",
            "move = [",
            "null",
            "{" * 5000,
            "move = [1,0,1]\n" * 3,
            "move = [9999999999999999999999, 0, 1]\nnext_state = [[1], [], []]",
        ]
        return [Sample(junk[(request.first_index + i) % len(junk)]) for i in range(request.n)]

    async def aclose(self) -> None:
        return None


def test_nothing_the_model_returns_crashes_the_engine() -> None:
    h = Hanoi(3)
    outcome, engine = run_one(h, Garbage(), VotingConfig(k=2, max_samples_per_step=40))
    # its first 2k samples all red-flagged: the item fails there, naming the flag, not the cap
    assert outcome.status == "failed" and "red-flagged" in outcome.reason
    assert "undecided" not in outcome.reason
    assert engine.totals.red_flags == 4
    assert set(engine.totals.flags) <= {f.value for f in Flag}


class Broken(Hanoi):
    def parse(self, text: str) -> Any:
        raise RuntimeError("a bug in user code")


def test_a_parser_that_raises_becomes_a_red_flag() -> None:
    h = Broken(3)
    outcome, engine = run_one(
        h,
        SimBackend(SimConfig(error=0)),
        VotingConfig(k=1, max_samples_per_step=5),
        oracle=ProcessOracle,
    )
    # its own kind, parse_error; the first 2k samples all raised: the item fails, saying what
    assert outcome.status == "failed" and "RuntimeError: a bug in user code" in outcome.reason
    assert engine.totals.flags == {"parse_error": 2}
    assert engine.totals.parse_error == {
        "step": 0,
        "type": "RuntimeError",
        "message": "a bug in user code",
    }


class Failing:
    batch_rounds = False  # one request per sample

    model = "failing"

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def sample(self, request: SampleRequest) -> list[Sample]:
        raise self.error

    async def aclose(self) -> None:
        return None


def test_transport_errors_stop_or_fail_the_run_cleanly() -> None:
    h = Hanoi(3)
    o1, _ = run_one(h, Failing(FatalBackendError("auth", "401 Unauthorized")), VotingConfig(k=1))  # type: ignore[arg-type]
    assert o1.status == "failed" and "auth" in o1.reason
    o2, _ = run_one(h, Failing(TransportError("timeout", "timed out")), VotingConfig(k=1))  # type: ignore[arg-type]
    assert o2.status == "stopped" and "timeout" in o2.reason and o2.step == 0


def test_budget_stops_the_run_at_the_cap() -> None:
    outcome, engine, _ = run_hanoi(
        8, "sim:error=0.01,seed=1", VotingConfig(k=2), budget=Budget(max_samples=100)
    )
    assert outcome.status == "stopped" and "sample budget" in outcome.reason
    t = engine.totals
    assert 100 - 2 < t.samples + t.speculative_samples <= 100
    assert outcome.step == engine.totals.steps_decided


# contested steps (error 0.25, two wrong answers) draw several rounds: a cap often lands
# inside one
CAPPED_MODEL = "sim:error=0.25,wrong_answers=2,seed=4"


def _winners(items: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {i: [(d["step"], d["winner"], d["votes"]) for d in ds] for i, ds in items.items()}


@pytest.mark.parametrize(
    ("where", "extra"),
    [
        ("chain, whole rounds", {}),
        ("chain, one request a sample", {"latency": "fixed:1"}),
        ("batch of 6, one request a sample", {"latency": "fixed:1", "batch": 6}),
        ("chain, speculating", {"latency": "fixed:1", "speculate": 3}),
    ],
)
def test_the_sample_cap_is_never_passed_and_stops_at_the_step(
    tmp_path: Path, where: str, extra: dict[str, Any]
) -> None:
    model = CAPPED_MODEL + (f",latency={extra['latency']}" if "latency" in extra else "")
    batch = None
    if "batch" in extra:
        batch = [BatchItem(str(i), {"disks": 4}) for i in range(1, extra["batch"] + 1)]
    k = 3

    def go(run_id: str, cap: int | None, parallel: int, resume: bool = False) -> Any:
        options = dict(task="hanoi", task_options={"disks": 5}, model=model, k=k, parallel=parallel)
        session = dict(
            store=str(tmp_path / "s.db"),
            budget=Budget(max_samples=cap),
            handle_signals=False,
            speculate=extra.get("speculate", 0),
        )
        r = run_task(
            **options, **session, run_id=run_id, resume=resume, batch=None if resume else batch
        )
        r.store.close()
        return r

    for parallel in (1, 2, 5):
        whole = go(f"whole-{parallel}", None, parallel)
        assert whole.outcome.status == "completed"
        for cap in (1, 2, 10, 11, 14, 37, 61):
            rid = f"cap-{parallel}-{cap}"
            r = go(rid, cap, parallel)
            s = r.summary
            drawn = s["samples"] + s["speculative_samples"]
            # never past the cap, and stopped only when what is left cannot decide a step
            assert drawn <= cap, (where, parallel, cap, s)
            assert r.outcome.status == "stopped" and "sample budget reached" in s["reason"]
            # (steps opened ahead hold samples of the cap too: a cut discards them unused)
            room = k * (1 + extra.get("speculate", 0))
            assert cap - drawn < room, (where, parallel, cap, s)
            # a resume with more room ends with an uninterrupted run's decisions
            r = go(rid, None, parallel, resume=True)
            assert r.outcome.status == "completed"
            got = _winners(item_decisions(tmp_path / "s.db", rid))
            assert got == _winners(item_decisions(tmp_path / "s.db", f"whole-{parallel}"))


def test_run_resumes_from_a_given_state_and_step() -> None:
    sim = "sim:error=0.1,seed=8"
    _, _, whole = run_hanoi(6, sim, VotingConfig(k=2))
    h = Hanoi(6)
    spec = parse_model(sim)
    cut = whole.decisions[20]
    events, rest = Events(), Collect()
    events.subscribe(rest)
    assert spec.sim is not None
    run_one(
        h, SimBackend(spec.sim), VotingConfig(k=2), events, state=cut.state_before, step=20,
        oracle=ProcessOracle,
    )  # fmt: skip
    assert [d.winner_text for d in rest.decisions] == [d.winner_text for d in whole.decisions[20:]]


def test_notes_are_put_in_the_prompts_of_selected_steps_only() -> None:
    prompts: dict[int, str] = {}

    class Spy(SimBackend):
        async def sample(self, request: SampleRequest) -> list[Sample]:
            prompts[request.step] = request.prompt
            return await super().sample(request)

    h = Hanoi(3)
    run_one(
        h,
        Spy(SimConfig(error=0)),
        VotingConfig(k=1),
        oracle=ProcessOracle,
        notes=lambda state, step: ("check the peg",) if step == 2 else (),
    )
    assert "check the peg" in prompts[2]
    assert all("check the peg" not in p for s, p in prompts.items() if s != 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0},
        {"k": 2, "max_tokens": 0},
        {"k": 2, "parallel": 0},
        {"k": 3, "max_samples_per_step": 2},
    ],
)
def test_voting_config_rejects_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        VotingConfig(**kwargs)  # type: ignore[arg-type]


class Scripted:
    """Plays a fixed list of responses, in sample-index order."""

    batch_rounds = False  # one request per sample

    model = "scripted"

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    async def sample(self, request: SampleRequest) -> list[Sample]:
        # past the script: empty responses, which are red-flagged
        return [
            Sample(self.texts[i] if i < len(self.texts) else "")
            for i in range(request.first_index, request.first_index + request.n)
        ]

    async def aclose(self) -> None:
        return None


def _one_step(texts: list[str], k: int, cap: int) -> Decision:
    h = Hanoi(1)
    events, seen = Events(), Collect()
    events.subscribe(seen)
    run_one(h, Scripted(texts), VotingConfig(k=k, max_samples_per_step=cap), events)  # type: ignore[arg-type]
    return seen.decisions[0]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ANSWERS = {
    "a": "move = [1, 0, 2]\nnext_state = [[], [], [1]]",
    "b": "move = [1, 0, 1]\nnext_state = [[], [1], []]",
    "c": "move = [1, 1, 2]\nnext_state = [[], [], [1]]",
}
_FLAGGED = ["", "move = [1, 0, 2]", "x" * 4000, "move = [1, 0, 2]\nnext_state = [[1], [1], []]"]


@settings(max_examples=200)
@given(
    st.integers(1, 4),
    st.lists(st.sampled_from("abc"), min_size=1, max_size=30),
    st.lists(st.tuples(st.integers(0, 30), st.sampled_from(_FLAGGED)), max_size=10),
)
def test_flagged_samples_never_change_the_tally(
    k: int, votes: list[str], junk: list[tuple[int, str]]
) -> None:
    clean = [_ANSWERS[v] for v in votes]
    noisy = list(clean)
    for pos, text in sorted(junk, reverse=True):
        noisy.insert(min(pos, len(noisy)), text)
    cap = len(noisy) + k
    a, b = _one_step(clean, k, cap), _one_step(noisy, k, cap)
    if all(t in _FLAGGED for t in noisy[: 2 * k]):
        # its first 2k samples all flagged: the step gives up there, taking no vote
        assert (b.samples, b.votes, b.undecided, b.winner_text) == (2 * k, {}, True, None)
        return
    assert (a.winner_text, a.votes, a.undecided) == (b.winner_text, b.votes, b.undecided)
    assert sum((b.flags or {}).values()) == b.samples - sum(b.votes.values()) - b.surplus


# -- many items, many steps in flight -------------------------------------------------------
class Latent:
    """The simulator behind a real wait: every request sleeps its own latency (ms) drawn
    from the request, and the largest number of requests in flight is recorded."""

    model = "sim"
    batch_rounds = False

    def __init__(self, cfg: SimConfig, ms: float = 1.0) -> None:
        self.inner = SimBackend(cfg)
        self.ms = ms
        self.in_flight = 0
        self.most = 0
        self.requests = 0

    async def sample(self, request: SampleRequest) -> list[Sample]:
        import asyncio

        self.in_flight += 1
        self.requests += 1
        self.most = max(self.most, self.in_flight)
        try:
            # a wait that differs by request, so arrivals interleave out of index order
            await asyncio.sleep(self.ms * ((request.step * 7 + request.first_index * 13) % 5) / 1e3)
            return await self.inner.sample(request)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        return None


def _batch(n: int, disks: int) -> list[Item]:
    out = []
    for i in range(n):
        h = Hanoi(disks)
        out.append(Item(i, h, h.initial_state(), 0, item_id=str(i + 1)))
    return out


def _by_item(seen: Collect) -> dict[int, list[tuple[Any, ...]]]:
    out: dict[int, list[tuple[Any, ...]]] = {}
    for d in seen.decisions:
        out.setdefault(d.item, []).append((d.step, d.winner_text, d.votes, d.samples, d.flags))
    return out


def _run_items(backend: Any, items: list[Item], voting: VotingConfig, **kw: Any) -> Collect:
    events, seen = Events(), Collect()
    events.subscribe(seen)
    end = run_sync(Scheduler(backend, voting, events, oracle=ProcessOracle, **kw).run(items))
    assert end.status == "completed", end.reason
    return seen


def test_items_decide_as_each_would_alone_whatever_interleaves() -> None:
    from unerring.backends.resilience import Limited

    cfg = SimConfig(error=0.15, flag=0.05, wrong_answers=2, seed=3)
    voting = VotingConfig(k=2)
    alone = {}
    for it in _batch(6, 4):
        seen = _run_items(SimBackend(cfg), [it], voting)
        alone[it.index] = _by_item(seen)[it.index]
    latent = Latent(cfg)
    together = _by_item(_run_items(Limited(latent, concurrency=5), _batch(6, 4), voting))  # type: ignore[arg-type]
    assert together == alone
    assert latent.most == 5  # the bound was reached, never passed
    # items differ from each other: the simulator draws from (seed, item, step, index)
    assert len({repr(v) for v in alone.values()}) > 1


def test_no_item_waits_unboundedly_while_others_progress() -> None:
    # a backend that never waits: each item decides a burst, then lets the others run
    from unerring.scheduler.loop import LOCAL_BURST as BURST

    items = _batch(5, 10)
    seen = _run_items(SimBackend(SimConfig(error=0.0)), items, VotingConfig(k=1), window=3)
    order = [d.item for d in seen.decisions]
    assert sorted(set(order)) == [0, 1, 2, 3, 4] and len(order) == 5 * 1023
    # between two decisions of one item, at most two bursts of each other worker's (a
    # worker that finishes its item takes the next one in the same turn)
    last: dict[int, int] = {}
    for pos, item in enumerate(order):
        if item in last:
            assert pos - last[item] - 1 <= 2 * BURST * (3 - 1)
        last[item] = pos
    # the window holds 3 items: the 4th starts only once one of the first three is done
    first_of = {item: order.index(item) for item in range(5)}
    assert first_of[3] > min(len(order) - order[::-1].index(i) - 1 for i in range(3))


@pytest.mark.parametrize(("items", "window", "most"), [(1, 16384, 2), (6, 16384, 7), (6, 3, 3)])
def test_workers_are_made_as_items_come_never_the_whole_window(
    items: int, window: int, most: int
) -> None:
    # a window of 16,384 (concurrency 4,096) once made 16,384 tasks for a chain of one item
    cfg = SimConfig(error=0.1, seed=2)
    alone = _by_item(_run_items(Latent(cfg), _batch(items, 4), VotingConfig(k=2), window=1))
    events, seen = Events(), Collect()
    events.subscribe(seen)
    backend = Latent(cfg)
    sched = Scheduler(backend, VotingConfig(k=2), events, oracle=ProcessOracle, window=window)  # type: ignore[arg-type]
    end = run_sync(sched.run(_batch(items, 4)))
    assert end.status == "completed" and _by_item(seen) == alone
    assert sched.workers <= most
    # the items still decide side by side, up to the window
    assert backend.most >= min(items, window)


def test_one_item_stopped_or_failing_does_not_stop_the_others() -> None:
    class Fails(Hanoi):
        def advance(self, state: Any, answer: Any) -> Any:
            if state[1] is not None and state[1][0] == 3:  # after the first move of disk 3
                raise ValueError("a bug in this item's process")
            return super().advance(state, answer)

    h = Fails(4)
    items = [*_batch(3, 4), Item(3, h, h.initial_state(), 0, item_id="bad")]
    events, seen = Events(), Collect()
    events.subscribe(seen)
    sched = Scheduler(
        SimBackend(SimConfig(error=0.0)), VotingConfig(k=1), events, oracle=ProcessOracle
    )
    end = run_sync(sched.run(items))
    assert end.status == "failed" and "ValueError" in end.reason
    assert end.ended == {"completed": 3, "stopped": 0, "failed": 1}
    assert [e.item_id for e in end.not_completed] == ["bad"]
    assert {d.item for d in seen.decisions if d.step == 14} == {0, 1, 2}


@pytest.mark.parametrize("depth", [1, 3])
def test_speculation_never_changes_a_decision(depth: int) -> None:
    cfg = SimConfig(error=0.2, wrong_answers=2, flag=0.05, seed=5)
    voting = VotingConfig(k=2)
    plain = _by_item(_run_items(Latent(cfg), _batch(1, 6), voting))
    events, seen = Events(), Collect()
    events.subscribe(seen)

    class Discards:
        def __init__(self) -> None:
            self.samples = 0

        def on_discarded(self, x: Any) -> None:
            self.samples += x.samples

    thrown = Discards()
    events.subscribe(thrown)
    sched = Scheduler(Latent(cfg), voting, events, oracle=ProcessOracle, speculate=depth)  # type: ignore[arg-type]
    end = run_sync(sched.run(_batch(1, 6)))
    assert end.status == "completed"
    assert _by_item(seen) == plain
    # at a 20% error rate some speculation was opened on an answer that lost
    assert thrown.samples > 0
    assert sched.totals.speculative_samples == thrown.samples
    assert sched.totals.samples == sum(d.samples for d in seen.decisions)
    # every sample the backend returned is counted as drawn: voted, or thrown away
    t = sched.totals
    assert sched.drawn == t.samples + t.speculative_samples
    assert sched.drawn_tokens == t.prompt_tokens + t.completion_tokens > 0


def test_a_request_that_fails_every_attempt_stops_its_item_only() -> None:
    from unerring.backends.resilience import RetriesExhausted

    class OneBad(SimBackend):
        async def sample(self, request: SampleRequest) -> list[Sample]:
            if request.item == 1 and request.step == 3:
                raise RetriesExhausted("timeout", "gave up after 10 attempts: timed out")
            return await super().sample(request)

    events, seen = Events(), Collect()
    events.subscribe(seen)
    sched = Scheduler(OneBad(SimConfig(error=0.0)), VotingConfig(k=1), events, oracle=ProcessOracle)
    end = run_sync(sched.run(_batch(3, 3)))
    assert end.status == "stopped" and "gave up after 10 attempts" in end.reason
    assert end.ended == {"completed": 2, "stopped": 1, "failed": 0}
    assert {d.item for d in seen.decisions if d.step == 6} == {0, 2}
    assert [d.step for d in seen.decisions if d.item == 1] == [0, 1, 2]


# -- a stop request, with and without a deadline ------------------------------------------
class Stalling:
    """The simulator, except that a request for step `stall` or later waits `wait_s`
    (None: forever, as a server that never answers) before it is answered."""

    model = "sim"

    def __init__(self, stall: int, wait_s: float | None, whole: bool) -> None:
        self.inner = SimBackend(SimConfig(error=0.0, seed=1))
        self.stall = stall
        self.wait_s = wait_s
        self.batch_rounds = whole
        self.stalled = 0

    async def sample(self, request: SampleRequest) -> list[Sample]:
        import asyncio

        if request.step >= self.stall:
            self.stalled += 1
            if self.wait_s is None:
                await asyncio.Event().wait()
            await asyncio.sleep(self.wait_s)
        return await self.inner.sample(request)

    async def aclose(self) -> None:
        return None


class Ends(Collect):
    def __init__(self) -> None:
        super().__init__()
        self.ends: list[tuple[int, str, int, str]] = []

    def on_item_end(self, e: Any) -> None:
        self.ends.append((e.item, e.status, e.next_step, e.reason))


def _stop_when_stalled(
    backend: Stalling, cancel_after: float | None, speculate: int = 0
) -> tuple[Any, Ends]:
    """Two items run until both wait at step `backend.stall`; then a stop is asked from
    another thread (as a signal handler or the journal writer asks it)."""
    import asyncio
    import threading

    events, seen = Events(), Ends()
    events.subscribe(seen)
    sched = Scheduler(backend, VotingConfig(k=2), events, oracle=ProcessOracle, speculate=speculate)

    async def go() -> Any:
        task = asyncio.create_task(sched.run(_batch(2, 4)))
        while backend.stalled < 2:
            await asyncio.sleep(0.005)
        asker = threading.Thread(target=sched.request_stop, args=("asked", cancel_after))
        asker.start()
        asker.join()
        return await asyncio.wait_for(task, 10)  # (a stop that never lands fails here)

    return run_sync(go()), seen


@pytest.mark.parametrize(("whole", "speculate"), [(True, 0), (False, 0), (False, 2)])
def test_a_stop_with_a_deadline_cancels_the_requests_it_waits_for(
    whole: bool, speculate: int
) -> None:
    end, seen = _stop_when_stalled(Stalling(3, None, whole), 0.05, speculate)
    assert end.status == "stopped" and end.reason == "asked"
    # what was decided stands; the stalled step is no decision, and each item stops there
    assert sorted((d.item, d.step) for d in seen.decisions) == [
        (i, s) for i in (0, 1) for s in range(3)
    ]
    assert sorted(seen.ends) == [(0, "stopped", 3, "asked"), (1, "stopped", 3, "asked")]


@pytest.mark.parametrize("cancel_after", [None, 5.0])
def test_a_stop_lets_steps_in_flight_finish_within_its_deadline(
    cancel_after: float | None,
) -> None:
    # a budget's stop has no deadline; a signal's gives the steps in flight a grace
    end, seen = _stop_when_stalled(Stalling(3, 0.3, whole=False), cancel_after)
    assert end.status == "stopped" and end.reason == "asked"
    assert sorted((d.item, d.step) for d in seen.decisions) == [
        (i, s) for i in (0, 1) for s in range(4)
    ]
    assert sorted(seen.ends) == [(0, "stopped", 4, "asked"), (1, "stopped", 4, "asked")]
