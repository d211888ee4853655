"""Two real model families, each on its own llama.cpp server (SmolLM2-135M and Gemma 3
270M on 127.0.0.1, stopped by PID): a reliability table calibrated on one seed makes the
weighted vote decide steps of another seed otherwise than the plain ensemble, where the
table says which model to trust. Small: 25 labelled steps, 50 run steps, 4 sources.

The servers are started once for the module; if they cannot start the test fails with the
reason: it is never skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import cli, decisions
from tests.llama_server import ALIAS, GEMMA, ServerUnavailable, llama_server
from unerring.backends.spec import parse_model
from unerring.journal.store import Store
from unerring.planning.reliability_table import ReliabilityTable, cell_of
from unerring.planning.weighing import Weighing, spec_sources
from unerring.tasks.addition import Addition

pytestmark = pytest.mark.real_server

STEPS = 50
SEED = 1  # the run's operands; the calibration's are seed 2's
VARIANTS = "0,1"


@pytest.fixture(scope="module")
def members() -> Iterator[list[str]]:
    try:
        with llama_server(alias=ALIAS) as smollm2, llama_server(alias=GEMMA) as gemma:
            yield [f"openai:{ALIAS}@{smollm2}", f"openai:{GEMMA}@{gemma}"]
    except ServerUnavailable as e:
        pytest.fail(f"the real model servers are not usable here: {e}", pytrace=False)


def test_the_weighted_vote_decides_where_the_calibration_trusts(
    members: list[str], tmp_path: Path
) -> None:
    both = ["--model", members[0], "--model", members[1], "--variants", VARIANTS,
            "--api", "completions"]  # fmt: skip
    table = tmp_path / "reliability.json"
    res = cli("plan", "--calibrate", "addition", "--digits", "300", "--max-digit", "4",
              "--seed", "2", *both, "--samples", "25", "--per-step", "1",
              "--save-reliability", str(table), "--steps", str(STEPS), "--json",
              timeout=900)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "calibrating: 25/25 steps, 100 samples" in res.stderr
    cal = json.loads(res.stdout)
    assert set(cal["weighted"]) == {f"model openai:{ALIAS}", f"model openai:{GEMMA}", "ensemble"}

    db = tmp_path / "runs.db"
    task = ["addition", "--digits", str(STEPS), "--max-digit", "4", "--seed", str(SEED)]
    common = ["--first-temperature", "0", "--temperature", "0", "--max-tokens", "8",
              "--on-undecided", "plurality", "--record", "samples", "--store", str(db),
              "--json"]  # fmt: skip
    runs = {}
    for name, extra in (
        ("plain", ["--k", "2", "--max-samples-per-step", "8"]),
        ("weighted", ["--reliability", str(table), "--max-samples-per-step", "4"]),
    ):
        res = cli("run", *task, *both, *common, "--run-id", name, *extra, timeout=900)
        assert res.returncode == 0, res.stderr
        runs[name] = json.loads(res.stdout)
    assert runs["weighted"]["errors"] < runs["plain"]["errors"]

    # the steps the two votes decided otherwise: on each, the weighted winner is the answer
    # of the source the table trusts most on that step's digits, and it is the right one
    t = ReliabilityTable.from_dict(json.loads(table.read_text()))
    models, labels = spec_sources(parse_model(" + ".join(members)))
    store = Store(str(db), read_only=True)
    run = store.get_run("weighted")
    assert run is not None
    margin = run.config["margin_resolved"]
    first = {int(r["step"]): (r["model"], r["text"]) for r in store.samples(run) if r["idx"] == 0}
    store.close()
    w = Weighing(t, models, labels, (0, 1), margin)
    plain = {d["step"]: d for d in decisions(db, "plain")}
    process = Addition(STEPS, 4, SEED)
    state = process.initial_state()
    differed = 0
    for d in decisions(db, "weighted"):
        step = d["step"]
        features = process.features(state, step)
        state_before = state
        state = process.advance(state, process.solve(state, step))
        if plain[step]["winner"] == d["winner"]:
            continue
        differed += 1
        route = w.route(features)
        trusted_model = labels[route.order[0][0]]
        model, text = first[step]
        assert model == trusted_model  # asked first: the trusted source
        right = process.solve(state_before, step)
        assert process.parse(text) == right == process.parse(d["winner"])
        # the table found that source right on these digits in the calibration
        source = (models[route.order[0][0]], route.order[0][1])
        assert t.p(source, cell_of(features)) > t.p_source(source)
    assert differed >= 1
    print(
        f"errors plain {runs['plain']['errors']}, weighted {runs['weighted']['errors']}; "
        f"samples per step {runs['plain']['samples_per_step']:.2f} and "
        f"{runs['weighted']['samples_per_step']:.2f}; {differed} steps decided otherwise"
    )
