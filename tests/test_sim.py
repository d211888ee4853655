import pytest

from tests.conftest import run_sync
from unerring.backends.sim import Latency, ProcessOracle, SimBackend, SimConfig
from unerring.core.samples import SampleRequest
from unerring.tasks.hanoi import Hanoi


def draw(cfg: SimConfig, step: int = 5, n: int = 200, first: int = 0) -> list:
    h = Hanoi(4)
    state = h.initial_state()
    for i in range(step):
        state = h.advance(state, h.solve(state, i))
    req = SampleRequest(
        h.prompt(state, step), step, first, n, 750, oracle=ProcessOracle(h, state, step)
    )
    return run_sync(SimBackend(cfg).sample(req))


def test_samples_come_from_seed_step_and_index_only() -> None:
    cfg = SimConfig(error=0.3, seed=11, wrong_answers=3, flag=0.1)
    whole = draw(cfg, n=40)
    # drawing indices 20..39 alone gives the same samples as part of a bigger request
    tail = draw(cfg, n=20, first=20)
    assert [s.text for s in whole[20:]] == [s.text for s in tail]
    assert [s.text for s in draw(cfg, n=40)] == [s.text for s in whole]
    other_seed = draw(SimConfig(error=0.3, seed=12, wrong_answers=3, flag=0.1), n=40)
    assert [s.text for s in other_seed] != [s.text for s in whole]


def test_error_rate_and_wrong_answer_spread() -> None:
    texts = []
    for step in range(0, 14):
        texts += [
            (step, s.label) for s in draw(SimConfig(error=0.2, seed=1, wrong_answers=2), step, 300)
        ]
    wrong = [lbl for _, lbl in texts if lbl != "correct"]
    assert 0.17 < len(wrong) / len(texts) < 0.23
    assert set(wrong) == {"wrong:0", "wrong:1"}


def test_hard_steps_have_their_own_error_rate() -> None:
    b = SimBackend(SimConfig(error=0.0, hard=0.2, hard_error=0.4, seed=3))
    rates = [b.step_error(s) for s in range(5000)]
    share_hard = sum(1 for r in rates if r == 0.4) / len(rates)
    assert 0.17 < share_hard < 0.23
    assert set(rates) == {0.0, 0.4}


def test_flagged_samples_are_overlong_or_malformed() -> None:
    h = Hanoi(4)
    samples = draw(SimConfig(error=0.0, flag=0.5, seed=2), n=400)
    labels = {s.label for s in samples}
    assert labels == {"correct", "flag:overlong", "flag:malformed"}
    for s in samples:
        if s.label == "flag:overlong":
            assert s.completion_tokens > 750
        if s.label == "flag:malformed":
            assert isinstance(h.parse(s.text), str)  # a Flag


def test_latency_is_drawn_and_awaited() -> None:
    import time

    t0 = time.perf_counter()
    samples = draw(SimConfig(error=0.0, latency=Latency(20.0)), n=3)
    assert time.perf_counter() - t0 >= 0.02
    assert all(s.latency_s == pytest.approx(0.02) for s in samples)
    ln = Latency.parse("lognormal:10:0.5")
    assert ln.draw_s(0.5) == pytest.approx(0.010)
    assert ln.draw_s(0.9) > ln.draw_s(0.1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("error=2", "between 0 and 1"),
        ("error=abc", "not a number"),
        ("bogus=1", "unknown sim parameter"),
        ("error", "NAME=VALUE"),
        ("wrong_answers=0", "wrong_answers"),
        ("latency=fast", "latency"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimConfig.parse(spec)


def test_spec_parses_every_parameter() -> None:
    c = SimConfig.parse(
        "error=0.02,seed=7,hard=0.1,hard_error=0.3,flag=0.01,"
        "wrong_answers=3,latency=lognormal:5:0.2"
    )
    assert (c.error, c.seed, c.hard, c.hard_error, c.flag, c.wrong_answers) == (
        0.02,
        7,
        0.1,
        0.3,
        0.01,
        3,
    )
    assert c.latency == Latency(5.0, 0.2)


@pytest.mark.parametrize("wrong_answers", [1, 2, 3, 7])
def test_the_fast_path_draws_exactly_what_the_general_path_draws(wrong_answers: int) -> None:
    # no flags, modes or latency take the fast path; a latency of a nanosecond takes the
    # general one: the same (seed, step, index) must give the same sample either way,
    # including which wrong answer (only visible with more than one)
    fast = SimConfig(error=0.35, seed=5, wrong_answers=wrong_answers)
    general = SimConfig(error=0.35, seed=5, wrong_answers=wrong_answers, latency=Latency(1e-6))
    seen: set[str | None] = set()
    for step in range(12):
        a = draw(fast, step, n=60, first=step)
        b = draw(general, step, n=60, first=step)
        assert [(s.text, s.label, s.prompt_tokens, s.completion_tokens) for s in a] == [
            (s.text, s.label, s.prompt_tokens, s.completion_tokens) for s in b
        ]
        seen |= {s.label for s in a}
    assert seen == {"correct"} | {f"wrong:{v}" for v in range(wrong_answers)}
