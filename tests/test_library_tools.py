"""The CLI's calibration and note learning as library functions taking one's own process."""

from __future__ import annotations

from pathlib import Path

import pytest

import unerring
from tests.analysis_helpers import sim
from tests.test_results import Count
from unerring.tasks.hanoi import Hanoi


def test_calibrate_measures_a_process_of_ones_own() -> None:
    cal = unerring.calibrate(Count(500), model="sim:error=0.1,seed=4", samples=200)
    assert cal.steps == 200
    assert 0.85 < cal.p < 0.95 and cal.p_low < cal.p < cal.p_high
    with pytest.raises(unerring.UsageError, match="samples"):
        unerring.calibrate(Count(), samples=0)


def test_calibrate_shares_its_steps_among_a_dataset_s_processes() -> None:
    """A one-step process per item (a dataset's questions): each item draws apart, so the
    estimate is the model's error rate, not one draw repeated over the items."""
    from examples.qa import Answer

    items = {str(i): Answer(f"q{i}?", f"answer {i}") for i in range(100)}
    cal = unerring.calibrate(items, model="sim:error=0.2,seed=4", samples=300)
    assert cal.steps == 100 and cal.samples == 200  # every item's one step, twice
    assert 0.7 < cal.p < 0.9
    with pytest.raises(unerring.UsageError, match="process must be a Process"):
        unerring.calibrate([Count(), "not a process"])  # type: ignore[list-item]


def test_learn_notes_on_a_library_run_keeps_the_note_that_cures(tmp_path: Path) -> None:
    db = str(tmp_path / "j.db")
    model = sim(3)  # disk=2: curable; disk=4: not curable by any note
    r = unerring.run(Hanoi(9), model=model, k=4, store=db, run_id="before", record="samples")
    r.store.close()
    result = unerring.learn_notes("before", process=Hanoi(9), model=model, store=db, name="nb")
    outcomes = {c.pattern: c.outcome for c in result.candidates}
    assert outcomes["outvoted_wrong/disk=2"] == "kept"
    assert result.notebook.accepted and result.notebook.name == "nb"
    after = unerring.run(Hanoi(9), model=model, k=4, store=db, run_id="after", notes="nb")
    assert after.run.config["notes"] == "nb@1"


def test_learn_notes_refuses_a_store_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(unerring.StoreRefused, match="no such journal"):
        unerring.learn_notes("r", process=Count(), store=str(tmp_path / "none.db"))
    assert not (tmp_path / "none.db").exists()
