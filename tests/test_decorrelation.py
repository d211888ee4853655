"""Prompt variants and model ensembles: decorrelated samples for errors voting cannot fix."""

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import run_sync
from tests.helpers import cli, one_line_error, run_task
from unerring.backends.ensemble import Ensemble, spread
from unerring.backends.factory import Transport, make_backend
from unerring.backends.sim import ProcessOracle, SimBackend, SimConfig
from unerring.backends.spec import known_error_mixture, parse_model
from unerring.core.samples import Sample, SampleRequest
from unerring.errors import UsageError
from unerring.scheduler.loop import Scheduler
from unerring.scheduler.sources import Item
from unerring.tasks.addition import VARIANTS, Addition
from unerring.tasks.hanoi import Hanoi
from unerring.voting.config import VotingConfig, variant_of


# -- prompt variants ---------------------------------------------------------------------
def test_addition_offers_variants_that_differ_only_in_the_examples() -> None:
    a = Addition(30, seed=2)
    state = a.advance(a.initial_state(), a.solve(a.initial_state(), 0))
    assert a.prompt_variants() == VARIANTS
    prompts = [a.variant_prompt(state, 1, v) for v in range(VARIANTS)]
    assert prompts[0] == a.prompt(state, 1)
    assert len(set(prompts)) == VARIANTS  # every form differs ...
    question = prompts[0].rsplit("\n", 1)[1]
    assert all(p.rsplit("\n", 1)[1] == question for p in prompts)  # ... but not the question
    assert prompts == [Addition(30, seed=2).variant_prompt(state, 1, v) for v in range(VARIANTS)]
    with pytest.raises(ValueError):
        a.variant_prompt(state, 1, VARIANTS)
    with pytest.raises(ValueError):
        Hanoi(3).variant_prompt(Hanoi(3).initial_state(), 0, 1)


def test_variants_go_round_robin_over_a_steps_samples() -> None:
    vs = (0, 3, 5)
    assert [variant_of(0, i, vs) for i in range(6)] == [0, 3, 5, 0, 3, 5]
    assert [variant_of(1, i, vs) for i in range(3)] == [3, 5, 0]


class Recording:
    """A backend that answers every addition right and records what it was asked."""

    def __init__(self, batch_rounds: bool = False) -> None:
        self.requests: list[SampleRequest] = []
        self.batch_rounds = batch_rounds

    @property
    def model(self) -> str:
        return "recording"

    async def sample(self, request: SampleRequest) -> list[Sample]:
        self.requests.append(request)
        assert request.oracle is not None
        return [Sample(request.oracle.correct(), 10, 1) for _ in range(request.n)]

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("whole", [False, True])
def test_each_sample_is_asked_with_its_variants_prompt(whole: bool) -> None:
    # whole: a backend that answers a round at once still gets one request per sample when
    # the round spans several variants
    a = Addition(4)
    backend = Recording(batch_rounds=whole)
    sched = Scheduler(backend, VotingConfig(k=3, variants=(0, 2, 7)), oracle=ProcessOracle)
    end = run_sync(sched.run([Item(0, a, a.initial_state())]))
    assert end.status == "completed"
    assert sched.totals.errors == 0 and sched.totals.steps_decided == a.total_steps()
    assert len(backend.requests) == sched.totals.samples
    for r in backend.requests:
        assert r.n == 1
        assert r.variant == variant_of(r.step, r.first_index, (0, 2, 7))
        assert r.prompt.endswith(" =") and r.prompt.split("\n")[0] in {
            a.variant_prompt(a.initial_state(), 0, v).split("\n")[0] for v in (0, 2, 7)
        }
    # a variant the process does not offer: the item fails, saying why
    sched = Scheduler(backend, VotingConfig(k=3, variants=(0, 16)), oracle=ProcessOracle)
    end = run_sync(sched.run([Item(0, a, a.initial_state())]))
    assert end.status == "failed" and "variants 0-15" in end.reason


def test_the_simulated_model_gives_each_variant_its_own_hard_steps() -> None:
    sim = SimBackend(SimConfig(error=0.0, hard=0.2, hard_error=0.9, seed=4))
    hard = {v: {s for s in range(2000) if sim.step_error(s, variant=v) > 0} for v in range(3)}
    # variant 0 keeps the steps it always had; the others are drawn on their own
    assert hard[0] == {s for s in range(2000) if sim.step_error(s) > 0}
    for v in range(3):
        assert 300 < len(hard[v]) < 500
    assert len(hard[0] & hard[1]) < 140  # about 0.2 * 0.2 * 2000 = 80 if independent


def test_variants_fix_errors_that_repeat_on_one_prompt(tmp_path: Path) -> None:
    model = "sim:error=0.05,hard=0.1,hard_error=0.7,seed=3"
    base = dict(task="addition", task_options={"digits": 150}, model=model, k=4)
    one = run_task(**base, handle_signals=False)
    many = run_task(**{**base, "variants": tuple(range(8))}, handle_signals=False)
    # on one prompt a hard step's wrong answer wins (error 0.7); spread over eight prompts
    # it is hard on about one of them, and the pooled vote is right
    assert one.summary["errors"] > 10
    assert many.summary["errors"] <= 1


def test_a_run_journals_each_samples_variant_and_a_resume_keeps_them(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    args = ["run", "addition", "--digits", "20", "--model", "sim:error=0.2,seed=1", "--k", "2"]
    res = cli(*args, "--variants", "0,5", "--record", "samples", "--store", str(db),
              "--run-id", "v", "--max-samples", "20", "--quiet")  # fmt: skip
    assert res.returncode == 1, res.stderr  # stopped by the budget
    rows = sqlite3.connect(db).execute("SELECT step, idx, variant FROM samples").fetchall()
    assert rows and all(v == variant_of(s, i, (0, 5)) for s, i, v in rows)
    res = cli("resume", "v", "--store", str(db), "--quiet")
    assert res.returncode == 0, res.stderr
    rows = sqlite3.connect(db).execute("SELECT step, idx, variant FROM samples").fetchall()
    assert all(v == variant_of(s, i, (0, 5)) for s, i, v in rows)


@pytest.mark.parametrize(
    ("task", "variants", "message"),
    [
        ("addition", "3,16", "offers prompt variants 0-15, not variant 16"),
        ("hanoi", "2", "offers one prompt only"),
    ],
)
def test_a_variant_the_process_does_not_offer_is_refused(
    tmp_path: Path, task: str, variants: str, message: str
) -> None:
    db = tmp_path / "runs.db"
    res = cli("run", task, "--variants", variants, "--k", "2", "--store", str(db))
    assert res.returncode == 2
    assert message in one_line_error(res.stderr)
    assert not db.exists()


# -- model ensembles ---------------------------------------------------------------------
def test_spreading_follows_the_weights_evenly() -> None:
    seq = spread([1.0, 2.0])
    assert seq == [1, 0, 1]
    seq = spread([0.5, 0.25, 0.25])
    counts = Counter(seq)
    assert counts[0] == 500 and counts[1] == counts[2] == 250
    # evenly interleaved: no member waits long for its turn
    assert max(len(run) for run in "".join(map(str, seq)).split("0")) <= 2
    with pytest.raises(ValueError):
        spread([1.0, 0.0])


def test_ensemble_specs_parse_with_weights() -> None:
    spec = parse_model("sim:error=0.1,seed=1 + 2*sim:error=0.2,seed=2")
    assert spec.provider == "ensemble" and len(spec.members) == 2
    assert [w for w, _ in spec.members] == [1.0, 2.0]
    assert spec.simulated
    # a sim spec's own plus signs (failure modes) do not split it
    one = parse_model("sim:modes=disk:1:0.1+disk:2:0.1")
    assert one.provider == "sim" and len(one.sim.modes) == 2  # type: ignore[union-attr]
    for bad, why in (
        ("sim:error=0.1 + 0*sim:error=0.2", "positive"),
        ("sim:error=0.1 + -1*sim:error=0.2", "positive"),
        ("sim:error=0.1 + x*sim:error=0.2", "not a number"),
        ("sim:error=0.1 + nope:thing", "unknown model provider"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_model(bad)


def test_the_ensemble_spreads_indices_and_names_each_samples_model() -> None:
    spec = parse_model("sim:error=0.3,seed=1 + 2*sim:error=0.3,seed=2")
    backend = make_backend(spec)
    assert isinstance(backend, Ensemble)
    h = Hanoi(4)
    oracle = ProcessOracle(h, h.initial_state(), 0)
    got = run_sync(backend.sample(SampleRequest("p", 5, 3, 9, 750, oracle=oracle)))
    assert len(got) == 9
    names = ["sim:error=0.3,seed=1", "sim:error=0.3,seed=2"]
    assert [s.model for s in got] == [names[backend.member_of(5, i)] for i in range(3, 12)]
    # the same index always comes from the same member and the same draw
    again = run_sync(backend.sample(SampleRequest("p", 5, 3, 9, 750, oracle=oracle)))
    assert [(s.text, s.model) for s in got] == [(s.text, s.model) for s in again]


def test_an_ensembles_known_errors_pool_its_members() -> None:
    member = "sim:error=0.1,hard=0.2,hard_error=0.5,seed={}"
    spec = parse_model(f"{member.format(1)} + {member.format(2)}")
    mix: dict[float, float] = {}
    for err, share in known_error_mixture(spec) or []:
        mix[round(err, 9)] = mix.get(round(err, 9), 0.0) + share
    # hard for neither (0.64), for one of the two (2 x 0.16), for both (0.04)
    assert mix == pytest.approx({0.1: 0.64, 0.3: 0.32, 0.5: 0.04})


def test_pooling_models_whose_hard_steps_differ_fixes_what_one_cannot() -> None:
    member = "sim:error=0.05,hard=0.05,hard_error=0.7,seed={}"
    opts = dict(task="hanoi", task_options={"disks": 8}, model=member.format(1), k=4)
    alone = run_task(**opts, handle_signals=False)
    pooled = run_task(
        **{**opts, "model": " + ".join(member.format(s) for s in (1, 2, 3))},
        handle_signals=False,
    )
    assert alone.summary["errors"] > 5
    assert pooled.summary["errors"] <= 1


def test_each_samples_model_is_journaled(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    res = cli("run", "hanoi", "--disks", "5", "--model", "sim:error=0.2,seed=1", "--model",
              "2*sim:error=0.2,seed=2", "--k", "2", "--record", "samples", "--store", str(db),
              "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    counts = dict(sqlite3.connect(db).execute("SELECT model, count(*) FROM samples GROUP BY model"))
    assert set(counts) == {"sim:error=0.2,seed=1", "sim:error=0.2,seed=2"}
    assert counts["sim:error=0.2,seed=2"] > counts["sim:error=0.2,seed=1"]


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["sim:error=0.1", "0*sim:error=0.2"], "weight must be positive"),
        (["sim:error=0.1", "sim:eror=0.2"], "unknown sim parameter 'eror'"),
        (["sim:error=0.1", "openai:m"], "cannot be reached"),
    ],
)
def test_a_bad_ensemble_member_is_refused(tmp_path: Path, models: list[str], message: str) -> None:
    db = tmp_path / "runs.db"
    args = [a for m in models for a in ("--model", m)]
    res = cli("run", "hanoi", *args, "--k", "2", "--base-url", "http://127.0.0.1:9/v1",
              "--store", str(db))  # fmt: skip
    assert res.returncode == 2
    assert message in one_line_error(res.stderr)
    assert not db.exists()


def test_the_library_refuses_an_unreachable_member() -> None:
    with pytest.raises(UsageError, match="cannot be reached"):
        run_task(
            task="hanoi",
            model="sim:error=0.1 + openai:m",
            k=2,
            transport=Transport(base_url="http://127.0.0.1:9/v1"),
        )


# -- calibration and failure analysis per variant and per model ------------------------------
def test_calibration_shows_whether_variants_decorrelate(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from unerring.cli.main import main

    args = ["plan", "--calibrate", "addition", "--digits", "400", "--samples", "400", "--json"]
    model = ["--model", "sim:error=0.05,hard=0.2,hard_error=0.7,seed=2"]
    assert main([*args, *model, "--variants", "4"]) == 0
    cal = json.loads(capsys.readouterr().out)
    groups = cal["groups"]
    assert set(groups) == {"variant 0", "variant 1", "variant 2", "variant 3", "pooled"}
    best_alone = min(groups[f"variant {v}"]["collision_rate"] for v in range(4))
    # each prompt's hard steps are its own: two samples from two prompts rarely agree wrong
    assert groups["pooled"]["collision_rate"] < 0.6 * best_alone
    assert groups["pooled"]["hard_share"] < min(
        groups[f"variant {v}"]["hard_share"] for v in range(4)
    )
    assert cal["rules"]["ahead-by-k"]["k"] >= 1 and "adaptive" in cal["rules"]


def test_calibration_measures_each_model_of_an_ensemble(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from unerring.cli.main import main

    good, bad = "sim:error=0.02,seed=1", "sim:error=0.3,seed=2"
    args = ["plan", "--calibrate", "hanoi", "--samples", "300", "--json"]
    assert main([*args, "--model", good, "--model", bad]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert groups[f"model {good}"]["p"] > 0.95 > 0.8 > groups[f"model {bad}"]["p"]
    assert "pooled" in groups


def test_calibrating_a_variant_the_process_does_not_offer_is_refused() -> None:
    res = cli("plan", "--calibrate", "addition", "--variants", "0,16")
    assert res.returncode == 2
    assert "offers prompt variants 0-15" in one_line_error(res.stderr)


def test_failures_report_collisions_per_variant_and_per_model(tmp_path: Path) -> None:
    import json

    db = tmp_path / "runs.db"
    res = cli("run", "addition", "--digits", "150", "--model",
              "sim:error=0.15,hard=0.1,hard_error=0.6,seed=1", "--model",
              "sim:error=0.15,hard=0.1,hard_error=0.6,seed=2", "--variants", "2", "--k", "3",
              "--record", "samples", "--store", str(db), "--run-id", "d", "--quiet",
              "--on-undecided", "plurality")  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = cli("failures", "d", "--store", str(db), "--json")
    assert res.returncode == 0, res.stderr
    groups = json.loads(res.stdout)["correlation"][0]["groups"]
    assert {"variant 0", "variant 1"} <= set(groups)
    assert sum(1 for g in groups if g.startswith("model ")) == 2
    for g in groups.values():
        assert g["steps"] > 0 and 0 <= g["error_rate"] <= 1
        if g["steps_paired"]:
            assert 0 <= g["collision_rate"] <= 1 and 0 <= g["hard_share"] <= 1
        else:
            assert g["collision_rate"] is None
    res = cli("failures", "d", "--store", str(db))
    assert "variant 1: error" in res.stdout and "model sim:error=0.15" in res.stdout


def test_variants_and_ensembles_decide_alike_at_once_late_or_speculating(tmp_path: Path) -> None:
    from unerring.app.options import BatchItem

    def run(latency: str, speculate: int) -> dict[str, list[tuple[object, ...]]]:
        model = " + ".join(
            f"sim:error=0.2,hard=0.1,hard_error=0.6,seed={s}{latency}" for s in (1, 2)
        )
        opts = dict(
            task="addition",
            task_options={"digits": 12},
            model=model,
            k=3,
            variants=(0, 3, 5),
            record="samples",
            on_undecided="plurality",
        )
        batch = [BatchItem(str(i), {"seed": i}) for i in range(4)]
        res = run_task(**opts, handle_signals=False, speculate=speculate, batch=batch)
        assert res.summary["status"] == "completed"
        out: dict[str, list[tuple[object, ...]]] = {}
        for it in res.store.items(res.run):
            rows = [
                (r["step"], r["idx"], r["text"], r["variant"], r["model"].replace(latency, ""))
                for r in res.store.samples(res.run, item=it.item)
            ]
            out[it.item_id] = rows
            for step, idx, _, variant, _ in rows:
                assert variant == variant_of(step, idx, (0, 3, 5))
        return out

    at_once = run("", 0)
    assert run(",latency=1", 0) == at_once
    assert run(",latency=1", 2) == at_once
    models = {m for rows in at_once.values() for *_, m in rows}
    assert models == {"sim:error=0.2,hard=0.1,hard_error=0.6,seed=1",
                      "sim:error=0.2,hard=0.1,hard_error=0.6,seed=2"}  # fmt: skip
