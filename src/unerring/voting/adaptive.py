"""Adaptive stopping: decide a step once its leader is right with the run's allotted
certainty, learning the error model from the run's own votes (pure: no I/O, no asyncio).

Each step is easy (per-sample error eps_e) or hard (eps_h) with prior share pi_h. Every
wrong vote is assumed to go to one wrong answer (the worst case for voting). For vote counts
n_1 >= n_2 >= ... (N votes), hypothesis "answer i is right" under class c has likelihood
(1 - eps_c)^n_i * eps_c^(N - n_i), and "no answer seen so far is right" eps_c^N. A step
stops when P(leader wrong | counts) <= sum_c P(c | counts) * e_c, with the per-class
allowances e_c chosen so that sum_c pi_c * e_c is the step's share of the run's error
budget; since posterior class probabilities are a martingale, the expected number of wrong
decisions stays within the budget. The model a step decides with is fitted on a set of
decided steps fixed in advance (its cut: see `AdaptiveRule`), so decisions do not depend on
the order in which steps are decided. docs/stopping.md derives the rule and its choices.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from unerring.voting.posterior import ERROR_CAP, ErrorModel, Posterior
from unerring.voting.standings import Standings


@dataclass(frozen=True, slots=True)
class AdaptiveConfig:
    """What the adaptive rule starts from; journaled with the run, kept by a resume.

    steps: the run's length (the error budget is spread over it); target: P(every step
    right); prior: the error model believed before any vote, worth `prior_steps` steps of
    `prior_votes` votes each; hard_floor: a hard step's error is never taken below it;
    z: the easy error is taken `z` posterior standard deviations above its mean;
    group: a batch's items learn from one another in groups of this many (an item learns
    from every item of the groups before the one before its own: see `AdaptiveRule`).
    """

    steps: int
    target: float
    prior: ErrorModel
    prior_steps: float = 100.0
    prior_votes: float = 10.0
    hard_floor: float = 0.3
    z: float = 1.0
    cap: int = 1000  # most votes one step may take (the scheduler's cap)
    group: int = 32

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"the adaptive rule needs the run's length, got {self.steps} steps")
        if not 0.0 < self.target < 1.0:
            raise ValueError(f"target must be in (0, 1), got {self.target}")
        if self.prior_steps <= 0 or self.prior_votes <= 0:
            raise ValueError("the prior's strength must be positive")
        if not 0.0 < self.hard_floor < 0.5:
            raise ValueError(f"hard floor must be in (0, 0.5), got {self.hard_floor}")
        if self.cap < 1:
            raise ValueError(f"cap must be at least 1, got {self.cap}")
        if self.group < 1:
            raise ValueError(f"the item group must be at least 1, got {self.group}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "target": self.target,
            "prior": self.prior.as_dict(),
            "prior_steps": self.prior_steps,
            "prior_votes": self.prior_votes,
            "hard_floor": self.hard_floor,
            "z": self.z,
            "cap": self.cap,
            "group": self.group,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AdaptiveConfig:
        p = d["prior"]
        return cls(
            steps=int(d["steps"]),
            target=float(d["target"]),
            prior=ErrorModel(
                float(p["hard_share"]), float(p["easy_error"]), float(p["hard_error"])
            ),
            prior_steps=float(d["prior_steps"]),
            prior_votes=float(d["prior_votes"]),
            hard_floor=float(d["hard_floor"]),
            z=float(d["z"]),
            cap=int(d["cap"]),
            group=int(d.get("group", 32)),
        )


def _fit(
    patterns: Mapping[tuple[int, ...], int], config: AdaptiveConfig, iterations: int = 200
) -> tuple[float, float, float, float, float]:
    """EM over decided steps' vote patterns (n votes, w of them not for the winner):
    (hard share, easy error, its posterior sd, hard error, steps seen)."""
    prior = config.prior
    n0 = config.prior_steps
    v0 = config.prior_votes
    floor = config.hard_floor
    pi0 = prior.hard_share
    # pseudo-counts: the prior is worth n0 steps of v0 votes each (at least 2 votes a class)
    a_h = n0 * pi0
    ve = max(2.0, n0 * (1.0 - pi0) * v0)
    vh = max(2.0, n0 * pi0 * v0)
    ae, be = ve * prior.easy_error, ve * (1.0 - prior.easy_error)
    eh0 = min(ERROR_CAP, max(floor, prior.hard_error))
    ah, bh = vh * eh0, vh * (1.0 - eh0)
    data = [(sum(p), sum(p) - p[0], m) for p, m in patterns.items()]
    steps = float(sum(m for _, _, m in data))
    # start with room for hard steps, so that EM can find them even under an i.i.d. prior
    pi_h = max(pi0, 0.01)
    e_e = min(prior.easy_error, eh0 - 1e-3)
    e_h = eh0
    rsum = rw = rn = ew = en = 0.0
    for _ in range(iterations):
        lpe, lph = math.log1p(-pi_h), math.log(pi_h) if pi_h > 0 else -math.inf
        lee, lqe = math.log(e_e), math.log1p(-e_e)
        leh, lqh = math.log(e_h), math.log1p(-e_h)
        rsum = rw = rn = ew = en = 0.0
        for n, w, m in data:
            le = lpe + w * lee + (n - w) * lqe
            lh = lph + w * leh + (n - w) * lqh
            d = lh - le
            r = 1.0 if d > 700 else (0.0 if d < -700 else 1.0 / (1.0 + math.exp(-d)))
            rm = r * m
            rsum += rm
            rw += rm * w
            rn += rm * n
            ew += (m - rm) * w
            en += (m - rm) * n
        new_pi = (rsum + a_h) / (steps + n0)
        new_eh = min(ERROR_CAP, max(floor, (rw + ah) / (rn + ah + bh)))
        new_ee = min(new_eh, (ew + ae) / (en + ae + be))
        done = (
            abs(new_pi - pi_h) <= 1e-12 + 1e-6 * pi_h
            and abs(new_ee - e_e) <= 1e-9
            and abs(new_eh - e_h) <= 1e-9
        )
        pi_h, e_e, e_h = new_pi, max(new_ee, 1e-9), new_eh
        if done:
            break
    if pi0 == 0.0 and steps > 0:
        # no hard steps in the plan: let the votes show them beyond doubt (BIC: the
        # mixture's two more parameters must buy more than ln(steps) of likelihood)
        # before any disagreement is priced as a possibly hard step
        wsum = sum(w * m for _, w, m in data) + ae
        nsum = sum(n * m for n, _, m in data) + ae + be
        e_iid = wsum / nsum
        gain = _gain(data, pi_h, e_e, e_h, e_iid)
        if gain < math.log(max(steps, 2.0)):
            a, b = wsum, nsum - wsum
            sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
            return 0.0, min(e_iid, ERROR_CAP), sd, eh0, steps
    a, b = ew + ae, en - ew + be
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
    return pi_h, e_e, sd, e_h, steps


def _gain(
    data: list[tuple[int, int, int]], pi_h: float, e_e: float, e_h: float, e_iid: float
) -> float:
    """Log-likelihood of the votes under the fitted mixture minus under one error rate."""
    if pi_h <= 0.0:
        return 0.0
    lpe, lph = math.log1p(-pi_h), math.log(pi_h)
    lee, lqe, leh, lqh = math.log(e_e), math.log1p(-e_e), math.log(e_h), math.log1p(-e_h)
    li, lqi = math.log(e_iid), math.log1p(-e_iid)
    total = 0.0
    for n, w, m in data:
        le = lpe + w * lee + (n - w) * lqe
        lh = lph + w * leh + (n - w) * lqh
        mix = max(le, lh) + math.log1p(math.exp(-abs(le - lh)))
        total += m * (mix - (w * li + (n - w) * lqi))
    return total


FITS_KEPT = 256  # models kept for reuse by the steps fitted on the same patterns


def refit_point(step: int) -> int:
    """The last refit point at or below `step`: 0 below 16, then 16, 32, 64, ..., 1024,
    then every 1024 (an item's own steps are learnt from at these points only)."""
    if step < 16:
        return 0
    if step < 2048:
        return 1 << (step.bit_length() - 1)
    return step - step % 1024


def _used(config: AdaptiveConfig, fitted: ErrorModel, easy_sd: float) -> ErrorModel:
    """The model decided with: the easy error z sd higher, the hard error floored."""
    return ErrorModel(
        fitted.hard_share,
        min(ERROR_CAP, fitted.easy_error + config.z * easy_sd),
        min(ERROR_CAP, max(config.hard_floor, fitted.hard_error)),
    )


def _posterior(
    config: AdaptiveConfig, fitted: ErrorModel, easy_sd: float, observed: int, spent: float
) -> Posterior:
    """The step budget: the run's even share, tightened by what the decided steps spent."""
    delta = 1.0 - config.target
    per_step = delta / config.steps
    left = max(1, config.steps - observed)
    budget = min(per_step, max(0.1 * per_step, (delta - spent) / left))
    return Posterior.make(_used(config, fitted, easy_sd), budget)


def learn(config: AdaptiveConfig, patterns: Mapping[tuple[int, ...], int], observed: int) -> Fitted:
    """The model to decide with after `observed` decided steps with these vote patterns
    (sorted counts, most first): a pure function of them. No step observed: the prior."""
    if not observed:
        return Fitted(_posterior(config, config.prior, 0.0, 0, 0.0), config.cap, 0, 0.0)
    pi_h, e_e, sd, e_h, _ = _fit(patterns, config)
    fitted = ErrorModel(pi_h, e_e, e_h)
    # what the decided steps cost the budget, judged by the newest model
    judge = Posterior.make(_used(config, fitted, sd), 1.0)
    spent = sum(m * judge.p_wrong(p) for p, m in patterns.items())
    return Fitted(_posterior(config, fitted, sd, observed, spent), config.cap, observed, spent)


class Fitted:
    """The model steps decide with, fitted on a fixed set of observed steps, and what it
    implies (cached): when a step stops, the first round, the votes still needed."""

    __slots__ = ("_first", "_need", "_stop", "cap", "observed", "posterior", "spent")

    def __init__(self, posterior: Posterior, cap: int, observed: int, spent: float) -> None:
        self.posterior = posterior
        self.cap = cap
        self.observed = observed  # the steps it was fitted on
        self.spent = spent  # their expected wrong decisions, under this model
        self._stop: dict[tuple[int, ...], bool] = {}
        self._need: dict[tuple[int, ...], int] = {}
        self._first: int | None = None

    @property
    def model(self) -> ErrorModel:
        return self.posterior.model

    def stops(self, counts: tuple[int, ...]) -> bool:
        """Does a step with these vote counts (sorted, most first) stop now?"""
        s = self._stop.get(counts)
        if s is None:
            s = self._stop[counts] = self.posterior.stops(counts)
        return s

    def first_round(self) -> int:
        """Votes that decide a step whose votes all agree (the first round's size)."""
        f = self._first
        if f is None:
            f = self._first = self.needed_from((0,))
        return f

    def needed_from(self, counts: tuple[int, ...]) -> int:
        """Fewest further votes, all for the leader, after which the step stops."""
        got = self._need.get(counts)
        if got is not None:
            return got
        lead = counts[0]
        rest = tuple(c for c in counts[1:] if c)
        need = self.cap
        for m in range(1, self.cap + 1):
            if self.stops((lead + m, *rest)):
                need = m
                break
        self._need[counts] = need
        return need

    def tally(self) -> AdaptiveTally:
        return AdaptiveTally(self)

    def describe(self) -> dict[str, Any]:
        return {
            "rule": "adaptive",
            "observed": self.observed,
            "model": self.model.as_dict(),
            "allowance": list(self.posterior.allowance),
            "step_budget": self.posterior.step_budget,
            "spent": self.spent,
            "first_round": self.first_round(),
        }


class _OwnSteps:
    """One item's own observations: applied in step order, a copy kept at each refit."""

    __slots__ = ("base", "cut", "fitted", "next_fit", "observed", "patterns", "pending", "snap")

    def __init__(self) -> None:
        self.patterns: Counter[tuple[int, ...]] = Counter()
        self.pending: dict[int, tuple[int, ...]] = {}  # observed early: wait for the steps before
        self.observed = 0  # steps applied, in order from step 0
        self.next_fit = 16
        self.cut = 0  # the last refit point reached
        self.snap: Counter[tuple[int, ...]] = Counter()  # the patterns of the steps before it
        self.base: int | None = None  # the history the item learns from (items before it)
        self.fitted: Fitted | None = None  # the model for steps from `cut` on, once made


class AdaptiveRule:
    """The run-level adaptive rule: which model each step of each item decides with.

    Deterministic whatever the order in which steps are decided (many items and steps in
    flight, speculation, a resume): the model a step decides with is `learn`ed from a set
    of steps fixed in advance, the step's cut:

    - the item's own steps before its last refit point (`refit_point`: 16, 32, 64, ...,
      1024, then every 1024; a step at or past a refit point waits until the steps before
      it are decided, which only a speculative step ever has to), and
    - with `across_items` (a batch: item indices 0, 1, 2, ... in the batch's order), every
      step of the items of every group of `config.group` items before the group before
      the item's own: item i learns from items 0 .. g * (i // g - 1) - 1. An item waits at
      its start until those have ended; they were started before it (items start in index
      order), so nothing waits on something that cannot move, and up to 2 g items decide
      side by side.

    With one item (a chain) this is: step t decides with the model fitted on steps
    0 .. refit_point(t) - 1. Observations may come in any order; each item's are applied in
    step order. An item that ends (completed, stopped, failed) observes nothing more in
    this attempt: `item_ended`. A resume replays the journal's votes with `observe` and
    says which items will run again with `begin`, before any step is decided.
    """

    def __init__(self, config: AdaptiveConfig, *, across_items: bool = True) -> None:
        self.config = config
        self.across = across_items
        self.observed = 0  # steps observed, over all items
        self._own: dict[int, _OwnSteps] = {}
        self._pending: set[int] | None = None  # items that may still observe (None: all)
        self._count: int | None = None  # how many items the run has (a batch), if known
        self._ended: set[int] = set()  # pending items that ended in this attempt
        self._prefix = 0  # items 0 .. _prefix - 1 are learnt from (in the history)
        self._history: Counter[tuple[int, ...]] = Counter()
        self._history_n = 0
        self._snapshots: dict[int, tuple[Counter[tuple[int, ...]], int]] = {0: (Counter(), 0)}
        # models by the steps they are fitted on: items whose cuts hold the same vote
        # patterns (a group's items at their start; unanimous early steps) share one, and
        # with it what it has worked out (when a step stops, the votes still needed)
        self._fits: dict[tuple[frozenset[tuple[tuple[int, ...], int]], int], Fitted] = {}

    # -- the run's items -------------------------------------------------------------------
    def begin(self, items: int, pending: Iterable[int]) -> None:
        """The run has `items` items (indices 0 .. items - 1); only `pending` ones decide
        steps in this attempt: every other one has observed all it will (the journal's)."""
        self._count = items
        self._pending = set(pending)

    def item_ended(self, item: int) -> None:
        """An item will observe nothing more in this attempt."""
        if not self.across:
            self._own.pop(item, None)
            return
        self._ended.add(item)

    def _done(self, item: int) -> bool:
        if self._count is not None and item >= self._count:
            return False  # no such item: the history stops at the run's last item
        if item in self._ended:
            return True
        return self._pending is not None and item not in self._pending

    def _advance(self) -> None:
        """Move every ended item, in index order, into the history; snapshot each group."""
        g = self.config.group
        while self._done(self._prefix):
            own = self._own.pop(self._prefix, None)
            if own is not None:
                self._history.update(own.patterns)
                self._history.update(own.pending.values())  # none: an ended item has no gap
                self._history_n += own.observed + len(own.pending)
            self._ended.discard(self._prefix)
            self._prefix += 1
            if self._prefix % g == 0:
                self._snapshots[self._prefix] = (Counter(self._history), self._history_n)

    def history_of(self, item: int) -> int:
        """The items an item learns from besides itself: 0 .. history_of(item) - 1."""
        if not self.across:
            return 0
        g = self.config.group
        return max(0, g * (item // g - 1))

    def ready(self, item: int) -> bool:
        """Has every item this item learns from ended (may its first step be decided)?"""
        h = self.history_of(item)
        if h not in self._snapshots:
            self._advance()
        return h in self._snapshots

    # -- learning ----------------------------------------------------------------------------
    def _item(self, item: int) -> _OwnSteps:
        own = self._own.get(item)
        if own is None:
            if self.across and item < self._prefix:
                raise RuntimeError(f"item {item} is already learnt from: it cannot observe")
            own = self._own[item] = _OwnSteps()
        return own

    def observe(self, step: int, counts: Iterable[int], item: int = 0) -> None:
        """Learn from one decided step's vote counts (any order; applied in step order)."""
        own = self._item(item)
        if step < own.observed or step in own.pending:
            return  # already seen (a replayed step)
        pattern = tuple(sorted((c for c in counts if c > 0), reverse=True))
        if step > own.observed:
            own.pending[step] = pattern
            return
        self._take(own, pattern)
        while own.pending and own.observed in own.pending:
            self._take(own, own.pending.pop(own.observed))

    def _take(self, own: _OwnSteps, pattern: tuple[int, ...]) -> None:
        if pattern:
            own.patterns[pattern] += 1
        own.observed += 1
        self.observed += 1
        if own.observed >= own.next_fit:
            own.next_fit = own.observed + min(max(own.observed, 16), 1024)
            own.cut = own.observed
            own.snap = Counter(own.patterns)
            own.fitted = None

    def _learn(self, patterns: Counter[tuple[int, ...]], observed: int) -> Fitted:
        key = (frozenset(patterns.items()), observed)
        f = self._fits.pop(key, None)
        if f is None:
            f = learn(self.config, patterns, observed)
            if len(self._fits) >= FITS_KEPT:  # the least recently used goes
                del self._fits[next(iter(self._fits))]
        self._fits[key] = f
        return f

    def fitted(self, step: int, item: int = 0) -> Fitted | None:
        """The model step `step` of item `item` decides with, or None while the steps it
        is fitted on are not all observed yet."""
        own = self._item(item)
        if own.base is None:
            if not self.ready(item):
                return None
            own.base = self.history_of(item)
        c = refit_point(step)
        if c != own.cut:
            if c > own.cut:
                return None  # the item's steps before c are not all decided yet
            raise RuntimeError(f"step {step} of item {item} asked after step {own.observed}")
        f = own.fitted
        if f is None:
            patterns, n = self._snapshots[own.base]
            f = own.fitted = self._learn(patterns + own.snap, n + own.cut)
        return f

    def tally(self, step: int | None = None, item: int = 0) -> AdaptiveTally:
        """A tally for one step (default: the item's next); its model must be ready."""
        if step is None:
            step = self._item(item).observed
        f = self.fitted(step, item)
        if f is None:
            raise RuntimeError(f"step {step} of item {item}: the steps it learns from are not in")
        return f.tally()

    # -- the model now (a chain's, or one item's) -----------------------------------------------
    def current(self, item: int = 0) -> Fitted:
        """The model the item's next step decides with."""
        f = self.fitted(self._item(item).observed, item)
        if f is None:
            raise RuntimeError(f"item {item}: the items it learns from have not ended")
        return f

    @property
    def model(self) -> ErrorModel:
        return self.current().model

    def stops(self, counts: tuple[int, ...]) -> bool:
        return self.current().stops(counts)

    def first_round(self) -> int:
        return self.current().first_round()

    def needed_from(self, counts: tuple[int, ...]) -> int:
        return self.current().needed_from(counts)

    def describe(self) -> dict[str, Any]:
        """The model learnt from every step observed so far (all items): what a completed
        run found, the same however its steps were scheduled."""
        patterns: Counter[tuple[int, ...]] = Counter(self._history)
        n = self._history_n
        for own in self._own.values():
            patterns.update(own.patterns)
            n += own.observed
        return learn(self.config, patterns, n).describe()


class AdaptiveTally(Standings):
    """One step's votes under the adaptive rule: the interface of `ahead_by_k.Tally`."""

    __slots__ = ("_rule",)

    def __init__(self, rule: Fitted) -> None:
        super().__init__(1)  # the rule is asked at any lead: only a tie never stops
        self._rule = rule

    def _pattern(self) -> tuple[int, ...]:
        counts = self.counts
        if len(counts) <= 2:
            lead = counts[self.leader] if self.leader is not None else 0
            return (lead, self.runner_up) if self.runner_up else (lead,)
        return tuple(sorted(counts.values(), reverse=True))

    def _stops(self) -> bool:
        return self._rule.stops(self._pattern())

    def add_many(self, key: Hashable, m: int) -> int:
        """Count up to m votes for one key; return how many it took to decide, else 0."""
        if m <= 0:
            return 0
        if (
            self.winner is None
            and (self.leader is None or key == self.leader)
            and len(self.counts) <= 2
        ):
            # no vote short of `need` decides; `need` does unless the cap ends the search
            need = self.needed()
            if m < need:
                c = self.counts[key] = self.counts.get(key, 0) + m
                self.votes += m
                self.leader = key
                self.lead = c - self.runner_up
                return 0
            lead = self.counts.get(key, 0) + need
            after = (lead, self.runner_up) if self.runner_up else (lead,)
            if self._rule.stops(after):
                self.counts[key] = lead
                self.votes += need
                self.leader = key
                self.lead = lead - self.runner_up
                self.winner = key
                self.decided = True
                return need
        return self._add_each(key, m)

    def needed(self) -> int:
        """Fewest further votes that could decide the step (all going to the leader)."""
        if self.leader is None:
            return self._rule.first_round()
        return self._rule.needed_from(self._pattern())
