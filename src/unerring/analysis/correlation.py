"""How far a run's errors are from independent, and whether the planned k is still safe.

Two signals: the collision rate (the first two samples of a step both wrong and equal),
against e^2, the most it can be when errors are independent; and the spread of per-step
error rates (a share of hard steps), which turns into a two-part mixture for the plan.
A batch's steps are counted over all its items (each step of each item is one step).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from unerring import reliability
from unerring.journal.store import RunRecord, Store, StoreError


@dataclass(frozen=True, slots=True)
class Correlation:
    steps: int
    samples: int  # valid samples judged
    error_rate: float  # wrong valid samples / valid samples
    collisions: int
    collision_rate: float
    independent_collision: float  # e^2: the most independent errors could give
    collision_ratio: float | None  # observed / independent bound (> 1: correlated)
    dispersion: float | None  # per-step error variance / binomial variance
    hard_share: float  # steps whose own error rate is high
    hard_error: float
    easy_error: float
    k: int | None
    steps_total: int
    target: float
    p_full_independent: float | None
    p_full_mixture: float | None
    k_needed: int | None
    warnings: tuple[str, ...]
    # per prompt variant and per model of an ensemble, over the steps whose samples were kept
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def _p_full(components: list[tuple[float, float]], k: int, steps: int) -> float | None:
    log_p = 0.0
    for err, share in components:
        if share <= 0 or err <= 0:
            continue
        if err >= 0.5:
            return 0.0
        log_p -= steps * share * math.log1p((err / (1 - err)) ** k)
    return math.exp(log_p)


def _item_counts(
    store: Store,
    run: RunRecord,
    item: int,
    per_step: list[tuple[int, int]],
    groups: dict[str, _Group],
) -> tuple[int, int, int, int]:
    """One item's (steps, valid samples, wrong samples, collisions); appends each step's
    (wrong, valid) to per_step, and its kept samples to their variant's and model's group."""
    rows: dict[int, list[tuple[int, str | None]]] = defaultdict(list)
    for step, idx, vote in store.sample_votes(run, item):
        rows[step].append((idx, vote))
    sources = store.sample_sources(run, item)
    winners = store.winning_votes(run, item)
    steps = valid = wrong = collisions = 0
    for d in store.decisions(run, item=item):  # rows and packed blocks, in step order
        step, votes, correct = int(d["step"]), json.loads(d["votes"]), d["correct"]
        steps += 1
        smp = rows.get(step)
        if not smp:  # unanimous: every counted sample gave the winner
            n = int(sum(votes))
            w = n if correct == 0 else 0
            if correct == 0 and n >= 2:
                collisions += 1
        else:
            if step not in winners:  # a plain step: every counted sample gave the winner
                winners[step] = Counter(v for _, v in smp).most_common(1)[0][0] or ""
            right = winners.get(step) if correct != 0 else None
            n = len(smp)
            if correct == 0:
                # the winner was wrong; the samples that agreed with it were wrong too
                w = sum(1 for _, v in smp if v == winners.get(step))
            else:
                w = sum(1 for _, v in smp if v != right)
            if sources.get(step):
                bad = winners.get(step) if correct == 0 else right
                _by_source(groups, smp, sources[step], bad, correct == 0)
            first = dict(smp)
            a, b = first.get(0), first.get(1)
            if a is not None and a == b:
                wrong_a = (a == winners.get(step)) if correct == 0 else (a != right)
                if wrong_a:
                    collisions += 1
        valid += n
        wrong += w
        per_step.append((w, n))
    return steps, valid, wrong, collisions


def correlation(store: Store, run_id: str, hard_at: float = 0.2) -> Correlation:
    run = store.get_run(run_id)
    if run is None:
        raise StoreError(f"no run {run_id!r} in {store.path} (see `unerring runs`)")
    steps = valid = wrong = collisions = 0
    per_step: list[tuple[int, int]] = []  # (wrong, valid) of each step of each item
    groups: dict[str, _Group] = {}
    for it in list(store.items(run)):
        c = _item_counts(store, run, it.item, per_step, groups)
        steps += c[0]
        valid += c[1]
        wrong += c[2]
        collisions += c[3]
    e = wrong / valid if valid else 0.0
    cr = collisions / steps if steps else 0.0
    ind = e * e
    ratio = cr / ind if ind > 0 else None
    var_obs = sum((w - n * e) ** 2 for w, n in per_step)
    var_exp = sum(n * e * (1 - e) for _, n in per_step)
    dispersion = var_obs / var_exp if var_exp > 0 else None
    hard = [(w, n) for w, n in per_step if n and w >= 2 and w / n >= hard_at]
    easy_w = wrong - sum(w for w, _ in hard)
    easy_n = valid - sum(n for _, n in hard)
    hard_share = len(hard) / steps if steps else 0.0
    hard_error = sum(w for w, _ in hard) / max(1, sum(n for _, n in hard)) if hard else 0.0
    easy_error = easy_w / easy_n if easy_n else 0.0
    cfg = run.config
    k = cfg.get("k_resolved") or cfg.get("k")
    target = float(cfg.get("target", 0.95))
    total = int(run.steps_total or steps)
    p_ind = p_mix = None
    k_needed: int | None = None
    warnings: list[str] = []
    mixture = [(easy_error, 1.0 - hard_share), (hard_error, hard_share)]
    if k:
        p_ind = _p_full([(e, 1.0)], int(k), total)
        p_mix = _p_full(mixture, int(k), total)
    try:
        k_needed = reliability.k_min_mixture(mixture, total, target) if e > 0 else 1
    except ValueError as err:
        warnings.append(f"no k is safe: {err}")
    if ratio is not None and collisions >= 3 and ratio > 3.0:
        warnings.append(
            f"errors are correlated: the first two samples were wrong and equal on "
            f"{collisions} steps ({cr:.2%}), {ratio:.1f}x what independent errors allow"
        )
    if dispersion is not None and dispersion > 2.0 and hard:
        warnings.append(
            f"errors cluster on {len(hard)} hard steps ({hard_share:.1%} of steps, error "
            f"{hard_error:.2f} there vs {easy_error:.4f} elsewhere; dispersion {dispersion:.1f})"
        )
    if k and p_mix is not None and p_mix < target:
        extra = f"; k={k_needed} would be" if k_needed else ""
        warnings.append(
            f"planned k={k} is not safe for {total:,} steps: P(all right) is {p_mix:.3f} with "
            f"the measured hard steps (target {target}){extra}"
        )
    return Correlation(
        steps,
        valid,
        e,
        collisions,
        cr,
        ind,
        ratio,
        dispersion,
        hard_share,
        hard_error,
        easy_error,
        int(k) if k else None,
        total,
        target,
        p_ind,
        p_mix,
        k_needed,
        tuple(warnings),
        {name: groups[name].as_dict() for name in sorted(groups, key=_natural)},
    )


def _natural(name: str) -> tuple[str, int, str]:
    """`variant 2` before `variant 10`."""
    kind, _, rest = name.partition(" ")
    return (kind, int(rest), "") if rest.isdigit() else (kind, -1, rest)


@dataclass
class _Group:
    steps: int = 0
    paired: int = 0  # steps with two or more of the group's samples: collisions need two
    valid: int = 0
    wrong: int = 0
    collisions: int = 0
    hard: int = 0

    def as_dict(self) -> dict[str, Any]:
        e = self.wrong / self.valid if self.valid else 0.0
        return {
            "steps": self.steps,
            "steps_paired": self.paired,
            "samples": self.valid,
            "error_rate": e,
            "collisions": self.collisions,
            "collision_rate": self.collisions / self.paired if self.paired else None,
            "independent_collision": e * e,
            "hard": self.hard,
            "hard_share": self.hard / self.paired if self.paired else None,
        }


def _by_source(
    groups: dict[str, _Group],
    samples: list[tuple[int, str | None]],
    source: dict[int, tuple[int | None, str | None]],
    ref: str | None,
    ref_is_wrong: bool,
) -> None:
    """Add one step's kept samples to the group of their prompt variant and their model."""
    parts: dict[str, list[str | None]] = defaultdict(list)
    for idx, vote in samples:
        variant, model = source.get(idx, (None, None))
        if variant is not None:
            parts[f"variant {variant}"].append(vote)
        if model is not None:
            parts[f"model {model}"].append(vote)
    for name, votes in parts.items():
        g = groups.setdefault(name, _Group())
        # a vote is wrong if it is the (wrong) winner, or if it differs from the right one
        bad = [(v == ref) if ref_is_wrong else (v != ref) for v in votes]
        g.steps += 1
        g.paired += len(votes) >= 2
        g.valid += len(votes)
        g.wrong += sum(bad)
        if len(votes) >= 2 and bad[0] and bad[1] and votes[0] == votes[1]:
            g.collisions += 1
        if len(votes) >= 2 and 2 * sum(bad) > len(votes):
            g.hard += 1
