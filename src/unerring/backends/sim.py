"""The simulated model: seedable, with a configurable error model, real response text.

Randomness comes from (seed, item, step, sample index) only, through a counter-based hash, so a
run is bit-for-bit reproducible whatever the order in which samples are drawn or resumed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from statistics import NormalDist
from typing import Any

from unerring.core.flags import estimate_tokens
from unerring.core.hashing import _M64, _TO_UNIT, mix64, unit
from unerring.core.samples import Oracle, Sample, SampleRequest
from unerring.process import Process

_FILLER = "Let me think about this step carefully once more before answering. " * 60
_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency per sample in milliseconds: fixed, or log-normal (median, sigma)."""

    median_ms: float = 0.0
    sigma: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Latency:
        parts = text.split(":")
        try:
            if len(parts) == 1:
                return cls(float(parts[0]))
            if parts[0] == "fixed" and len(parts) == 2:
                return cls(float(parts[1]))
            if parts[0] == "lognormal" and len(parts) == 3:
                return cls(float(parts[1]), float(parts[2]))
        except ValueError:
            pass
        raise ValueError(f"latency {text!r} is not MS, fixed:MS or lognormal:MEDIAN_MS:SIGMA")

    def draw_s(self, u: float) -> float:
        if self.sigma == 0.0:
            return self.median_ms / 1000.0
        z = _NORMAL.inv_cdf(min(max(u, 1e-12), 1 - 1e-12))
        return self.median_ms * math.exp(self.sigma * z) / 1000.0


def feature_text(value: object) -> str:
    """How a feature value is spelled in mode specs, note conditions and triggers."""
    return str(value).lower()


def _names(note: str, trigger: str) -> bool:
    """Does the note name the trigger as a whole token (`disk=3` but not `disk=30`)?"""
    start = note.find(trigger)
    while start >= 0:
        end = start + len(trigger)
        before = note[start - 1] if start else " "
        after = note[end] if end < len(note) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            return True
        start = note.find(trigger, start + 1)
    return False


@dataclass(frozen=True, slots=True)
class Mode:
    """A planted systematic failure: on steps whose feature `feature` equals `value`, a
    sample gives the same wrong answer (variant `variant`) with probability `rate`.

    `curable`: the mode stops firing on a step whose prompt carries a mistake note that
    names its trigger (`feature=value`, e.g. `disk=3`). Samples it produces are labelled
    `mode:feature=value` (ground truth for tests; analysis never reads labels). The feature
    `step` (the step index) is always available, for faults planted on one step.
    """

    feature: str
    value: str
    rate: float
    curable: bool = False
    variant: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"sim mode {self.trigger}: rate {self.rate} must be in [0, 1]")
        if self.variant < 0:
            raise ValueError(f"sim mode {self.trigger}: variant must not be negative")

    @property
    def trigger(self) -> str:
        return f"{self.feature}={self.value}"

    @property
    def label(self) -> str:
        return f"mode:{self.trigger}"

    @classmethod
    def parse(cls, text: str) -> Mode:
        """`FEATURE:VALUE:RATE[:cure][:wN]`, e.g. `disk:3:0.4:cure` or `prev_disk1:true:0.3:w1`."""
        parts = [p.strip() for p in text.strip().split(":")]
        if len(parts) < 3 or not parts[0] or not parts[1]:
            raise ValueError(
                f"sim mode {text!r} is not FEATURE:VALUE:RATE[:cure][:wN] (e.g. disk:3:0.4:cure)"
            )
        try:
            rate = float(parts[2])
        except ValueError:
            raise ValueError(f"sim mode {text!r}: rate {parts[2]!r} is not a number") from None
        curable = False
        variant = 0
        for opt in parts[3:]:
            if opt == "cure":
                curable = True
            elif opt.startswith("w") and opt[1:].isdigit():
                variant = int(opt[1:])
            else:
                raise ValueError(f"sim mode {text!r}: unknown option {opt!r} (cure or wN)")
        return cls(parts[0], parts[1].lower(), rate, curable, variant)

    def describe(self) -> str:
        return (
            f"{self.feature}:{self.value}:{self.rate}"
            + (":cure" if self.curable else "")
            + (f":w{self.variant}" if self.variant else "")
        )


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Parameters of `sim:` (all optional).

    error: chance a sample is wrong; hard: share of steps that are hard; hard_error: a hard
    step's error rate; flag: chance a sample is overlong or malformed (half each);
    wrong_answers: how many distinct wrong answers errors spread over (1 is the worst case
    for voting); latency: MS, fixed:MS or lognormal:MEDIAN_MS:SIGMA; seed: the run's seed;
    modes: planted failure modes, `MODE+MODE+...` (see `Mode.parse`), e.g.
    `modes=disk:3:0.4:cure+empty_pegs:1:0.3:w1`.
    """

    error: float = 0.01
    seed: int = 0
    hard: float = 0.0
    hard_error: float = 0.5
    flag: float = 0.0
    wrong_answers: int = 1
    latency: Latency = Latency()
    modes: tuple[Mode, ...] = ()

    def __post_init__(self) -> None:
        for name in ("error", "hard", "hard_error", "flag"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"sim parameter {name}={v} must be between 0 and 1")
        if self.wrong_answers < 1:
            raise ValueError(f"sim parameter wrong_answers={self.wrong_answers} must be >= 1")
        if self.latency.median_ms < 0 or self.latency.sigma < 0:
            raise ValueError("sim parameter latency must not be negative")

    @classmethod
    def parse(cls, spec: str) -> SimConfig:
        """Parse 'error=0.01,seed=7,...' (the part after 'sim:')."""
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, object] = {}
        for item in filter(None, (p.strip() for p in spec.split(","))):
            name, eq, value = item.partition("=")
            name = name.strip()
            if not eq:
                raise ValueError(f"sim parameter {item!r} is not NAME=VALUE")
            if name not in known:
                raise ValueError(
                    f"unknown sim parameter {name!r} (known: {', '.join(sorted(known))})"
                )
            try:
                if name == "latency":
                    kwargs[name] = Latency.parse(value)
                elif name == "modes":
                    kwargs[name] = tuple(Mode.parse(m) for m in value.split("+") if m.strip())
                elif name in ("seed", "wrong_answers"):
                    kwargs[name] = int(value)
                else:
                    kwargs[name] = float(value)
            except ValueError as e:
                if name in ("latency", "modes"):
                    raise
                raise ValueError(f"sim parameter {name}={value!r} is not a number") from e
        return cls(**kwargs)  # type: ignore[arg-type]

    def describe(self) -> str:
        return (
            f"sim:error={self.error},seed={self.seed},hard={self.hard},"
            f"hard_error={self.hard_error},flag={self.flag},"
            f"wrong_answers={self.wrong_answers},"
            f"latency=lognormal:{self.latency.median_ms}:{self.latency.sigma}"
            + (f",modes={'+'.join(m.describe() for m in self.modes)}" if self.modes else "")
        )


class SimBackend:
    """A simulated model that answers any process that provides an oracle."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._seed_base = mix64(config.seed * 0x100000001B3 + 0x51ED)
        self._system: str | None = None
        self._system_tokens = 0

    @property
    def model(self) -> str:
        return "sim"

    @property
    def batch_rounds(self) -> bool:
        # without latency a round is answered at once; with it, each sample takes its own
        # time and goes out as its own request
        return not self.config.latency.median_ms

    def _step_base(self, item: int, step: int) -> int:
        """The seed of one step of one item (item 0, a single chain, keeps the formula
        that predates batches, so its runs are unchanged)."""
        if item:
            return self._seed_base + step + mix64(item * 0xA24BAED4963EE407)
        return self._seed_base + step

    def step_error(self, step: int, item: int = 0, variant: int = 0) -> float:
        """This step's per-sample error rate (hard steps are drawn from (seed, item, step)).

        Each prompt variant other than 0 has hard steps of its own (drawn from (seed, item,
        step, variant)): the model of a prompt whose errors are decorrelated from the
        others'."""
        c = self.config
        if c.hard > 0.0:
            h = self._seed_base ^ (step * 0xD6E8FEB86659FD93)
            if item:
                h ^= mix64(item * 0x9FB21C651E98DF25)
            if variant:
                h = mix64(h ^ (variant * 0xA24BAED4963EE407 & _M64))
            if unit(mix64(h)) < c.hard:
                return c.hard_error
        return c.error

    async def sample(self, request: SampleRequest) -> list[Sample]:
        oracle = request.oracle
        if oracle is None:
            raise ValueError("the simulated model needs a process that can be simulated")
        c = self.config
        err = self.step_error(request.step, request.item, request.variant)
        flag = c.flag
        # what a server would count: the shared instructions and the step's prompt
        system = request.system
        if system is not self._system:  # the same text every step: counted once
            self._system = system
            self._system_tokens = estimate_tokens(system) if system else 0
        prompt_tokens = estimate_tokens(request.prompt) + self._system_tokens
        base = mix64(self._step_base(request.item, request.step))
        good = oracle.correct()
        good_tokens = estimate_tokens(good)
        # at most one planted mode fires on a step; features are computed once per request
        mode = self._active_mode(request.step, oracle) if c.modes else None
        first = request.first_index
        if mode is None and not flag and not c.latency.median_ms:
            return self._plain(
                oracle, base, first, request.n, err, good, good_tokens, prompt_tokens
            )
        out: list[Sample] = []
        longest = 0.0
        for i in range(request.first_index, request.first_index + request.n):
            # mix64(base ^ (i * golden)), inlined: this loop runs for every sample
            h = ((base ^ (i * 0x9E3779B97F4A7C15 & _M64)) + 0x9E3779B97F4A7C15) & _M64
            h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _M64
            h ^= h >> 31
            if flag and unit(mix64(h ^ 0xF1A6)) < flag:
                if h & 1:
                    text = _FILLER + good
                    label = "flag:overlong"
                else:
                    text = good[: len(good) // 2]
                    label = "flag:malformed"
                tokens = estimate_tokens(text)
            elif mode is not None and unit(mix64(h ^ 0x30DE)) < mode.rate:
                text = oracle.wrong(mode.variant)
                tokens = estimate_tokens(text)
                label = mode.label
            elif (h >> 11) * _TO_UNIT < err:
                variant = int(unit(mix64(h ^ 0x3E7)) * c.wrong_answers)
                text = oracle.wrong(variant)
                tokens = estimate_tokens(text)
                label = f"wrong:{variant}"
            else:
                text = good
                tokens = good_tokens
                label = "correct"
            latency = 0.0
            if c.latency.median_ms:
                latency = c.latency.draw_s(unit(mix64(h ^ 0x1A7)))
                longest = max(longest, latency)
            out.append(Sample(text, prompt_tokens, tokens, latency, label))
        if longest:
            # the n samples of one request are drawn concurrently: they take the longest
            # (the scheduler asks for each sample alone, so each takes its own time)
            await asyncio.sleep(longest)
        return out

    def _active_mode(self, step: int, oracle: Oracle) -> Mode | None:
        features = oracle.features()
        notes: tuple[str, ...] | None = None
        for m in self.config.modes:
            v = step if m.feature == "step" else features.get(m.feature)
            if v is None or feature_text(v) != m.value:
                continue
            if m.curable:
                if notes is None:
                    notes = tuple(n.lower() for n in oracle.notes())
                if any(_names(n, m.trigger.lower()) for n in notes):
                    continue  # a note named this mode's trigger: the model heeds it
            return m
        return None

    def _plain(
        self,
        oracle: Oracle,
        base: int,
        first: int,
        n: int,
        err: float,
        good: str,
        good_tokens: int,
        prompt_tokens: int,
    ) -> list[Sample]:
        """The sample loop without flags or latency: the same draws, fewer branches.

        Every correct sample of the request is one shared object (samples never change),
        and the error draw compares the hash's top 53 bits with err * 2**53: the same test
        as unit(h) < err, without a float per sample."""
        good_sample = Sample(good, prompt_tokens, good_tokens, 0.0, "correct")
        limit = err * 9007199254740992.0  # 2**53
        out = [good_sample] * n
        for i in range(first, first + n):
            h = ((base ^ (i * 0x9E3779B97F4A7C15 & _M64)) + 0x9E3779B97F4A7C15) & _M64
            h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _M64
            if (h ^ (h >> 31)) >> 11 < limit:
                h ^= h >> 31
                variant = int(unit(mix64(h ^ 0x3E7)) * self.config.wrong_answers)
                text = oracle.wrong(variant)
                out[i - first] = Sample(
                    text, prompt_tokens, estimate_tokens(text), 0.0, f"wrong:{variant}"
                )
        return out

    async def aclose(self) -> None:
        return None


class ProcessOracle:
    """Lets the simulated model answer a process's step; computes only what is asked."""

    __slots__ = (
        "_correct",
        "_notes",
        "_right",
        "_step",
        "_wrong",
        "_wrong_text",
        "process",
        "state",
    )

    def __init__(
        self, process: Process[Any, Any], state: Any, step: int, notes: tuple[str, ...] = ()
    ) -> None:
        self.process = process
        self.state = state
        self._step = step
        self._notes = notes
        self._correct: str | None = None
        self._right: Any = None  # the correct answer, once solved
        self._wrong: list[Any] | None = None  # the process's wrong answers, unrendered
        self._wrong_text: dict[int, str] = {}

    def notes(self) -> tuple[str, ...]:
        return self._notes

    def correct(self) -> str:
        if self._correct is None:
            p = self.process
            self._right = p.solve(self.state, self._step)
            self._correct = p.render(self._right)
        return self._correct

    def wrong(self, variant: int) -> str:
        p = self.process
        wrong = self._wrong
        if wrong is None:
            if self._right is None:
                self._right = p.solve(self.state, self._step)
            wrong = self._wrong = p.wrong_answers(self.state, self._step, self._right)
            if not wrong:
                raise ValueError(f"process {p.name!r} offers no wrong answer to simulate")
        i = variant % len(wrong)
        text = self._wrong_text.get(i)
        if text is None:  # render only the wrong answers a sample actually gives
            text = self._wrong_text[i] = p.render(wrong[i])
        return text

    def features(self) -> Mapping[str, int | str | bool]:
        return self.process.features(self.state, self._step)
