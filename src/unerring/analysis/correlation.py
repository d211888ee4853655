"""How far a run's errors are from independent, and whether the planned k is still safe.

Two tests (see `unerring.planning.independence`): hard steps (the votes of every step, a two-class
mixture against one error rate) and both wrong (the first two votes of every step); the
collision rate (the first two wrong and equal, against e^2) is shown beside them. A
warning needs a test beyond chance; a k is called unsafe only under the error model the
run's votes support. A batch's steps are counted over all its items.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from unerring import defaults
from unerring.journal.store import RunRecord, Store
from unerring.planning import reliability
from unerring.planning.independence import BothWrong, HardSteps, StepCounts, hard_steps, pairs_test


@dataclass(frozen=True, slots=True)
class Correlation:
    steps: int
    samples: int  # valid votes counted
    error_rate: float  # wrong votes / votes
    collisions: int | None  # None: a contested step's samples were not kept
    collision_rate: float | None
    independent_collision: float | None  # e^2 of the first two votes: independent's most
    collision_ratio: float | None  # observed / independent bound (> 1: correlated)
    dispersion: float | None  # per-step error variance / binomial variance
    hard_share: float  # the hard steps found (0 when the test finds none)
    hard_error: float
    easy_error: float
    k: int | None
    steps_total: int
    target: float
    p_full_independent: float | None
    p_full_mixture: float | None  # under the error model the votes support
    k_needed: int | None
    warnings: tuple[str, ...]
    hard_steps: dict[str, Any]  # the test (see independence.HardSteps)
    both_wrong: dict[str, Any] | None  # the test (see independence.BothWrong)
    plan_command: str | None  # the planner call that gives k_needed
    # per prompt variant and per model of an ensemble, over the steps whose samples were kept
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def step_wrong(votes: Sequence[int], correct: int | None) -> int:
    """Wrong votes of a step from its tally (counts, largest first): all but the winner's
    when the winner was right (or nothing says otherwise); all but the runner-up's, the
    likeliest right answer, when the checker rejected the winner."""
    n = sum(votes)
    if correct == 0:
        return n - (votes[1] if len(votes) > 1 else 0)
    return n - (votes[0] if votes else 0)


@dataclass
class _Pairs:
    """The first two valid votes of each step: wrong among them, and collisions."""

    known: bool = True  # False once a contested step's samples are missing
    wrong: Counter[int] = field(default_factory=Counter)  # steps by wrong votes (0-2)
    collisions: int = 0


def _item_counts(
    store: Store,
    run: RunRecord,
    item: int,
    counts: StepCounts,
    pairs: _Pairs,
    groups: dict[str, _Group],
) -> None:
    """Add one item's steps: (votes, wrong) to counts, the first two votes to pairs, and
    the kept samples to their variant's and model's group."""
    rows: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for step, idx, vote in store.sample_votes(run, item):
        rows[step].append((idx, vote))
    sources = store.sample_sources(run, item)
    for d in store.decisions(run, item=item):  # rows and packed blocks, in step order
        step, votes, correct = int(d["step"]), json.loads(d["votes"]), d["correct"]
        n = int(sum(votes))
        counts.add(n, step_wrong(votes, correct))
        if n < 2:
            continue
        smp = rows.get(step)
        if len(votes) == 1 and not smp:  # unanimous: the first two are the winner's
            wrong_first = 2 if correct == 0 else 0
            pairs.wrong[wrong_first] += 1
            pairs.collisions += wrong_first == 2
            continue
        if not smp:
            pairs.known = False
            continue
        tally = Counter(v for _, v in smp)
        ranked = [v for v, _ in tally.most_common()]
        # the winner leads the tally; when it was rejected the runner-up is the likeliest
        # right answer (the same reading as `step_wrong`)
        right = ranked[0] if correct != 0 else (ranked[1] if len(ranked) > 1 else None)
        first = [v for _, v in sorted(smp)[:2]]
        bad = [v != right for v in first]
        pairs.wrong[sum(bad)] += 1
        pairs.collisions += len(first) == 2 and all(bad) and first[0] == first[1]
        if sources.get(step):
            _by_source(groups, smp, sources[step], right)


def _plan_command(components: list[tuple[float, float]], steps: int, target: float) -> str:
    easy = components[0][0]
    cmd = f"unerring plan --steps {steps} --error-rate {easy:.4g}"
    if len(components) > 1:
        err, share = components[1]
        cmd += f" --hard-share {share:.4g} --hard-error {err:.4g}"
    return cmd + f" --target {target}"


def _rounded(components: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The components as the planner command spells them (so that its k is ours)."""
    if len(components) == 1:
        return [(float(f"{components[0][0]:.4g}"), 1.0)]
    share = float(f"{components[1][1]:.4g}")
    return [
        (float(f"{components[0][0]:.4g}"), 1.0 - share),
        (float(f"{components[1][0]:.4g}"), share),
    ]


def correlation(store: Store, run_id: str) -> Correlation:
    run = store.run(run_id)
    counts = StepCounts()
    pairs = _Pairs()
    groups: dict[str, _Group] = {}
    for it in list(store.items(run)):
        _item_counts(store, run, it.item, counts, pairs, groups)
    hs = hard_steps(counts.halves)
    cfg = run.config
    ahead_by_k = cfg.get("stopping", defaults.STOPPING) == "ahead-by-k"
    k = cfg.get("k_resolved") or cfg.get("k")
    # the first two votes are drawn whatever they say only where no step stops at one
    bw = pairs_test(pairs.wrong) if pairs.known and ahead_by_k and k and k >= 2 else None
    disp = _dispersion(counts.both(), hs.error)
    return _judge(run, hs, disp, bw, pairs, groups, int(k) if k else None, ahead_by_k)


def _judge(
    run: RunRecord,
    hs: HardSteps,
    dispersion: float | None,
    bw: BothWrong | None,
    pairs: _Pairs,
    groups: dict[str, _Group],
    k: int | None,
    ahead_by_k: bool,
) -> Correlation:
    e = hs.error
    cfg = run.config
    target = float(cfg.get("target", defaults.TARGET))
    total = int(run.steps_total or hs.steps)
    warnings: list[str] = []
    coll = cr = ind = ratio = None
    if bw is not None:
        coll = pairs.collisions
        cr = coll / bw.steps if bw.steps else 0.0
        e2 = bw.wrong / (2 * bw.steps) if bw.steps else 0.0
        ind = e2 * e2
        ratio = cr / ind if ind > 0 else None
        if bw.significant:
            warnings.append(
                f"errors are not independent: the first two votes were both wrong on "
                f"{bw.both} of {bw.steps:,} steps where independent errors give about "
                f"{bw.expected:.1f} (p = {bw.p_value:.1g}); {coll} of them agreed on the same "
                "wrong answer"
            )
    components = hs.components()
    f = hs.fitted
    if hs.found:
        assert f is not None
        warnings.append(
            f"errors cluster on hard steps: about {f.hard_share:.1%} of steps err at "
            f"{f.hard_error:.3f}, the rest at {f.easy_error:.4f} (the votes are "
            f"{_times(hs.evidence)} times likelier with hard steps than with one error rate, "
            f"by a split likelihood ratio that independent errors take to "
            f"{_times(hs.threshold)} at most once in {_times(hs.threshold)} runs)"
        )
    p_ind = p_mix = None
    k_needed: int | None = None
    command: str | None = None
    if k and e < 0.5:
        p_ind = reliability.p_full_mixture([(e, 1.0)], k, total)
    if k:
        p_mix = reliability.p_full_mixture(components, k, total)
    if e > 0:
        command = _plan_command(components, total, target)
        try:
            k_needed = reliability.k_min_mixture(_rounded(components), total, target)
        except ValueError as err:
            k_needed = None
            if hs.found or e >= 0.5:
                warnings.append(f"no k is safe: {err}")
    else:
        k_needed = 1
    if k and ahead_by_k and k_needed is not None:
        # beyond doubt: the hard steps found, or (without them) the lowest error rate the
        # votes allow, still leave P(all right) below the target
        if hs.found and p_mix is not None and p_mix < target:
            warnings.append(
                f"planned k={k} is not safe for {total:,} steps: P(all right) is {p_mix:.3f} "
                f"with the hard steps found (target {target}); k={k_needed} would be "
                f"(`{command}`)"
            )
        elif not hs.found and hs.error_low > 0:
            p_low = reliability.p_full_mixture([(hs.error_low, 1.0)], k, total)
            if p_low < target:
                warnings.append(
                    f"planned k={k} is not safe for {total:,} steps: the votes err at "
                    f"{e:.4f} (at least {hs.error_low:.4f}, a 99.9% bound), which gives "
                    f"P(all right) {p_ind:.3f}, at most {p_low:.3f} at that bound (target "
                    f"{target}); "
                    f"k={k_needed} would be (`{command}`)"
                )
    hard_share = f.hard_share if hs.found and f else 0.0
    hard_error = f.hard_error if hs.found and f else 0.0
    easy_error = f.easy_error if hs.found and f else e
    record_all = cfg.get("record") == "samples"
    return Correlation(
        steps=hs.steps,
        samples=hs.votes,
        error_rate=e,
        collisions=coll,
        collision_rate=cr,
        independent_collision=ind,
        collision_ratio=ratio,
        dispersion=dispersion,
        hard_share=hard_share,
        hard_error=hard_error,
        easy_error=easy_error,
        k=k,
        steps_total=total,
        target=target,
        p_full_independent=p_ind,
        p_full_mixture=p_mix,
        k_needed=k_needed,
        warnings=tuple(warnings),
        hard_steps=hs.as_dict(),
        both_wrong=None if bw is None else bw.as_dict(),
        plan_command=command,
        groups={name: groups[name].as_dict(record_all) for name in sorted(groups, key=_natural)},
    )


def _times(log_x: float) -> str:
    """A likelihood ratio given by its log, for a message."""
    if log_x > 690:
        return "more than 1e300"
    return f"{math.exp(log_x):,.0f}" if log_x < math.log(1e6) else f"{math.exp(log_x):.2g}"


def _dispersion(counts: Counter[tuple[int, int]], e: float) -> float | None:
    """Per-step variance of wrong votes over the binomial's; 1 expected under independent
    errors, adaptive sampling included (Wald's second identity)."""
    obs = sum(c * (w - n * e) ** 2 for (n, w), c in counts.items())
    exp = sum(c * n * e * (1 - e) for (n, _), c in counts.items())
    return obs / exp if exp > 0 else None


def _natural(name: str) -> tuple[str, int, str]:
    """`variant 2` before `variant 10`."""
    kind, _, rest = name.partition(" ")
    return (kind, int(rest), "") if rest.isdigit() else (kind, -1, rest)


@dataclass
class _Group:
    steps: int = 0
    valid: int = 0
    wrong: int = 0
    collisions: int = 0
    # each step's wrong votes among the group's first two (steps with two of its votes)
    pairs: Counter[int] = field(default_factory=Counter)

    def as_dict(self, every_sample: bool) -> dict[str, Any]:
        e = self.wrong / self.valid if self.valid else 0.0
        paired = sum(self.pairs.values())
        # steps with both wrong beyond what independent errors give: the least share of
        # hard steps the group's votes show. Only where every sample was kept: the kept
        # samples of contested steps alone are chosen by their disagreement
        hard: int | None = None
        if every_sample and paired:
            bw = pairs_test(self.pairs)
            hard = max(0, round(bw.both - bw.expected)) if bw.significant else 0
        return {
            "steps": self.steps,
            "steps_paired": paired,
            "samples": self.valid,
            "error_rate": e,
            "collisions": self.collisions,
            "collision_rate": self.collisions / paired if paired else None,
            "independent_collision": e * e,
            "hard": hard,
            "hard_share": None if hard is None else hard / paired,
        }


def _by_source(
    groups: dict[str, _Group],
    samples: list[tuple[int, str]],
    source: dict[int, tuple[int | None, str | None]],
    right: str | None,
) -> None:
    """Add one step's kept samples to the group of their prompt variant and their model."""
    parts: dict[str, list[str]] = defaultdict(list)
    for idx, vote in sorted(samples):
        variant, model = source.get(idx, (None, None))
        if variant is not None:
            parts[f"variant {variant}"].append(vote)
        if model is not None:
            parts[f"model {model}"].append(vote)
    for name, votes in parts.items():
        g = groups.setdefault(name, _Group())
        bad = [v != right for v in votes]
        g.steps += 1
        g.valid += len(votes)
        g.wrong += sum(bad)
        if len(votes) >= 2:
            g.pairs[bad[0] + bad[1]] += 1
            g.collisions += bad[0] and bad[1] and votes[0] == votes[1]
