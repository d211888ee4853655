"""The reliability table: cells of step features, rates per source and cell, its JSON."""

from __future__ import annotations

import json

import pytest

from unerring.planning.reliability_table import (
    MIN_STEPS,
    PRIOR_STEPS,
    Counts,
    ReliabilityTable,
    cell_of,
)


def test_a_cell_names_every_feature_in_name_order_or_those_asked_for() -> None:
    f = {"y": 3, "kind": "column", "x": True}
    assert cell_of(f) == "kind=column,x=true,y=3"
    assert cell_of(f, ("x", "y")) == "x=true,y=3"
    assert cell_of(f, ("z",)) == "z=none"  # a feature the step lacks is a value of its own


def test_a_cell_rate_is_pulled_toward_its_source_rate_by_its_evidence() -> None:
    t = ReliabilityTable("addition", 40)
    src = ("m", 0)
    for i in range(40):  # 30 of 40 right overall: Laplace's rule gives 31/42
        t.add(src, "c=0" if i < 10 else "c=1", ok=i >= 10)
    p0 = 31 / 42
    assert t.p_source(src) == pytest.approx(p0)
    # 10 wrong in cell 0: (0 + 2 p0) / (10 + 2); 30 right in cell 1: (30 + 2 p0) / 32
    assert t.p(src, "c=0") == pytest.approx(PRIOR_STEPS * p0 / (10 + PRIOR_STEPS))
    assert t.p(src, "c=1") == pytest.approx((30 + PRIOR_STEPS * p0) / (30 + PRIOR_STEPS))
    assert t.p(src, "never seen") == pytest.approx(p0)
    # a source the table never measured knows nothing: one half
    assert t.p(("other", 0), "c=0") == pytest.approx(0.5)


def test_red_flagged_samples_count_against_the_valid_rate_not_the_success_rate() -> None:
    t = ReliabilityTable("addition", 4)
    for ok in (True, None, None, False):
        t.add(("m", 1), "c", ok)
    assert t.overall[("m", 1)] == Counts(right=1, valid=2, total=4)
    assert t.valid_rate(("m", 1)) == pytest.approx(3 / 6)
    assert t.p_source(("m", 1)) == pytest.approx(2 / 4)


def test_json_round_trip_keeps_every_count_and_share() -> None:
    t = ReliabilityTable("addition", 25, by=("x", "y"))
    t.add(("openai:a", 0), "x=0,y=0", True)
    t.add(("openai:a", 0), "x=0,y=1", None)
    t.add(("openai:b", 3), "x=0,y=0", False)
    t.shares = {"x=0,y=0": 0.5, "x=0,y=1": 0.5}
    again = ReliabilityTable.from_dict(json.loads(json.dumps(t.as_dict())))
    assert again.as_dict() == t.as_dict()
    assert again.by == ("x", "y")
    assert again.cells[("openai:b", 3)]["x=0,y=0"] == Counts(0, 1, 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other"), "not a reliability table"),
        (lambda d: d.update(steps=-1), '"steps" a count'),
        (lambda d: d["sources"][0].update(counts=[3, 2, 5]), "out of order"),
        (lambda d: d["sources"][0].update(counts=[1, 2]), "[right, valid, total]"),
        (lambda d: d["sources"][0].update(variant="0"), '"variant" number'),
        (lambda d: d["sources"].append(dict(d["sources"][0])), "appears twice"),
        (lambda d: d.update(shares={"c": 2}), "shares in [0, 1]"),
        (lambda d: d["sources"][0]["cells"].update(c=[True, 1, 1]), "[right, valid, total]"),
    ],
)
def test_a_bad_table_is_refused_naming_what_is_wrong(change: object, message: str) -> None:
    t = ReliabilityTable("addition", 30)
    t.add(("m", 0), "c", True)
    d = t.as_dict()
    change(d)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ReliabilityTable.from_dict(d)


def test_too_few_labelled_steps_says_how_many_more_it_needs() -> None:
    assert ReliabilityTable("addition", MIN_STEPS).too_few() is None
    why = ReliabilityTable("addition", MIN_STEPS - 7).too_few()
    assert why is not None and "\n" not in why
    assert f"{MIN_STEPS - 7} labelled steps" in why and "(7 more)" in why
