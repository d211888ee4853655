"""Planted failure modes of the simulated model."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping

import pytest

from unerring.backends.sim import Mode, SimBackend, SimConfig
from unerring.core.samples import SampleRequest


class StepOracle:
    """A minimal oracle: fixed answers and features, counting feature look-ups."""

    def __init__(self, features: Mapping[str, int | str | bool], notes: tuple[str, ...] = ()):
        self._features = features
        self._notes = notes
        self.feature_calls = 0

    def correct(self) -> str:
        return "right"

    def wrong(self, variant: int) -> str:
        return f"wrong{variant % 3}"

    def features(self) -> Mapping[str, int | str | bool]:
        self.feature_calls += 1
        return self._features

    def notes(self) -> tuple[str, ...]:
        return self._notes


def draw(cfg: SimConfig, oracle: StepOracle, step: int = 5, n: int = 2000) -> list[str]:
    req = SampleRequest("p", step, 0, n, 750, oracle=oracle)
    return [s.label or "" for s in asyncio.run(SimBackend(cfg).sample(req))]


def test_parse_modes_and_describe_round_trip() -> None:
    cfg = SimConfig.parse("error=0.01,seed=3,modes=disk:3:0.4:cure+empty_pegs:1:0.25:w2")
    assert cfg.modes == (
        Mode("disk", "3", 0.4, curable=True, variant=0),
        Mode("empty_pegs", "1", 0.25, curable=False, variant=2),
    )
    assert SimConfig.parse(cfg.describe().removeprefix("sim:")) == cfg


@pytest.mark.parametrize(
    "spec", ["modes=disk:3", "modes=disk:3:x", "modes=disk:3:1.5", "modes=disk:3:0.2:maybe"]
)
def test_bad_modes_are_refused_with_a_message(spec: str) -> None:
    with pytest.raises(ValueError, match="sim mode"):
        SimConfig.parse(spec)


def test_mode_fires_only_on_matching_steps_at_its_rate_with_one_wrong_answer() -> None:
    cfg = SimConfig.parse("error=0,seed=1,modes=disk:3:0.4:w1")
    on = draw(cfg, StepOracle({"disk": 3}))
    off = draw(cfg, StepOracle({"disk": 2}))
    assert set(off) == {"correct"}
    share = on.count("mode:disk=3") / len(on)
    assert 0.35 < share < 0.45
    texts = asyncio.run(
        SimBackend(cfg).sample(SampleRequest("p", 5, 0, 200, 750, oracle=StepOracle({"disk": 3})))
    )
    assert {s.text for s in texts if s.label == "mode:disk=3"} == {"wrong1"}


def test_mode_randomness_is_reproducible_and_per_step() -> None:
    cfg = SimConfig.parse("error=0.05,seed=9,modes=disk:3:0.4")
    a = draw(cfg, StepOracle({"disk": 3}), step=7)
    assert a == draw(cfg, StepOracle({"disk": 3}), step=7)
    assert a != draw(cfg, StepOracle({"disk": 3}), step=8)


def test_a_note_naming_the_trigger_cures_a_curable_mode_only() -> None:
    cure = SimConfig.parse("error=0,seed=1,modes=disk:3:0.5:cure")
    stubborn = SimConfig.parse("error=0,seed=1,modes=disk:3:0.5")
    note = ("On steps where disk=3, check the move again.",)
    assert set(draw(cure, StepOracle({"disk": 3}, note))) == {"correct"}
    assert "mode:disk=3" in draw(stubborn, StepOracle({"disk": 3}, note))
    # a note about another value does not name this trigger
    other = ("On steps where disk=30, check again.",)
    assert "mode:disk=3" in draw(cure, StepOracle({"disk": 3}, other))


def test_step_pseudo_feature_and_bool_values() -> None:
    cfg = SimConfig.parse("error=0,seed=1,modes=step:12:1.0+prev_disk1:true:1.0:w2")
    assert set(draw(cfg, StepOracle({}), step=12, n=20)) == {"mode:step=12"}
    assert set(draw(cfg, StepOracle({"prev_disk1": True}), step=3, n=20)) == {
        "mode:prev_disk1=true"
    }
    assert set(draw(cfg, StepOracle({"prev_disk1": False}), step=3, n=20)) == {"correct"}


def test_without_modes_features_are_never_computed() -> None:
    oracle = StepOracle({"disk": 3})
    labels = draw(SimConfig.parse("error=0.2,seed=1"), oracle, n=500)
    assert oracle.feature_calls == 0
    assert Counter(labels)["correct"] > 300
    with_modes = StepOracle({"disk": 3})
    draw(SimConfig.parse("error=0.2,seed=1,modes=disk:3:0.1"), with_modes, n=500)
    assert with_modes.feature_calls == 1  # once per request, not per sample
