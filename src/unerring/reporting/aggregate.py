"""A run's journal folded into a bounded picture: sums per bin of steps, histograms, the
time axis (a chain's rebuilt from the attempts and each step's elapsed time; a batch's or
a graph's from the journal's commits), and a batch's items.

Reads the journal in columns (`Store.block_columns`, `Store.decision_rows`), gathered into
chunks of CHUNK steps, so a million steps cost a few hundred array operations whether they
are one chain or many small items, and what comes out is bounded by MAX_BINS, never one
value per step. A batch's items are read from their committed totals, a few numbers each.
Needs numpy (the `report` extra).
"""

from __future__ import annotations

import json
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from unerring.backends.spec import known_error_mixture, known_valid_rate, parse_model
from unerring.journal.codec import BlockColumns
from unerring.journal.store import RunRecord, Store
from unerring.planning.predict import predict
from unerring.planning.reliability import expected_samples
from unerring.voting.adaptive import AdaptiveConfig
from unerring.voting.posterior import ErrorModel

MAX_BINS = 2000  # bins over the steps of one run
CHUNK = 65536  # decisions turned into columns at a time (bounds memory)
SLOWEST = 10

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt (start or resume) of a run, its times in seconds from the run's start."""

    number: int
    first_step: int
    start_s: float
    end_s: float | None  # None while it runs (or if it died without a word)
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class PlanLine:
    """What the planner expects per step, and how that was worked out."""

    samples_per_step: float
    basis: str


@dataclass
class Bins:
    """Per-bin sums over consecutive steps: bin i covers steps edges[i] .. edges[i+1] - 1
    (the last ends at `end`). Of a batch, a bin sums those steps of every item (a step is
    its place within its item). A chain's attempt boundaries are bin edges, so each bin
    has one clock."""

    edges: Ints
    end: int
    steps: Ints
    samples: Ints
    samples_max: Ints
    prompt_tokens: Ints
    completion_tokens: Ints
    cost: Floats
    elapsed: Floats
    elapsed_max: Floats
    contested: Ints
    against: Ints  # valid votes not for the winner
    undecided: Ints
    wrong: Ints
    flags: dict[str, Ints]
    # seconds from the run's start when the bin's last step was decided; a batch or a graph
    # has none (its items decide side by side: its clock is the Timeline of its commits)
    t_end: Floats | None

    @property
    def mid(self) -> Floats:
        """Each bin's middle step, for plotting."""
        right = np.append(self.edges[1:], self.end)
        return np.asarray((self.edges + right - 1) / 2.0, np.float64)


@dataclass
class Timeline:
    """A batch's or a graph's progress over time, from the journal's commits (one row per
    commit, a few per second): per bin of consecutive commits, the moment of its last
    commit (seconds from the run's start) and what the bin committed."""

    t: Floats
    steps: Ints
    samples: Ints
    tokens: Ints
    cost: Floats

    def __len__(self) -> int:
        return len(self.t)


def timeline(store: Store, run: RunRecord, start: float, max_bins: int = MAX_BINS) -> Timeline:
    """The run's commits, in at most `max_bins` bins of consecutive commits."""
    rows = list(store.commits(run))
    t = np.fromiter((r[0] for r in rows), np.float64, len(rows)) - start
    cols = [np.fromiter((r[i] for r in rows), np.int64, len(rows)) for i in (1, 2, 3)]
    cost = np.fromiter((r[4] for r in rows), np.float64, len(rows))
    if len(rows) > max_bins:
        firsts = np.linspace(0, len(rows), max_bins, endpoint=False).astype(np.int64)
        lasts = np.append(firsts[1:], len(rows)) - 1
        t = t[lasts]
        cols = [np.add.reduceat(c, firsts) for c in cols]
        cost = np.add.reduceat(cost, firsts)
    return Timeline(t, cols[0], cols[1], cols[2], cost)


@dataclass
class Items:
    """A batch's items, from their committed totals: one value per item, in item order
    (numbers only: a million items are a few arrays)."""

    by_status: dict[str, int]
    steps: Ints  # steps decided
    samples: Ints
    cost: Floats
    errors: Ints

    @property
    def count(self) -> int:
        return len(self.steps)


@dataclass
class RunAggregate:
    run: RunRecord
    start: float  # seconds since the epoch
    attempts: list[Attempt]
    bins: Bins
    samples_hist: dict[int, int]
    # (votes for the winner, valid votes against it) -> steps: the shape of each tally
    tallies: dict[tuple[int, int], int]
    slowest: list[tuple[float, int, int]]  # (elapsed s, item, step), slowest first
    transport: dict[str, list[float]]  # failure kind -> seconds from the run's start
    plan: PlanLine | None
    k: int | None
    decided: int = 0
    samples: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    flags: dict[str, int] = field(default_factory=dict)
    items: Items | None = None  # a batch's items; None for a chain or a graph
    timeline: Timeline | None = None  # a batch's or a graph's commits; None for a chain

    @property
    def many(self) -> bool:
        """A batch or a graph: steps are places within items, all items summed."""
        return self.run.many_items

    @property
    def end_s(self) -> float:
        """The latest moment the journal knows of, in seconds from the run's start."""
        times = [a.end_s or a.start_s for a in self.attempts]
        times += [max(v) for v in self.transport.values() if v]
        if self.bins.t_end is not None and len(self.bins.t_end):
            times.append(float(self.bins.t_end.max()))
        if self.timeline is not None and len(self.timeline):
            times.append(float(self.timeline.t.max()))
        return max(times, default=0.0)


@dataclass
class _Chunk:
    """Decisions in columns, in any order (bins are summed by index, not by position)."""

    items: Ints
    steps: Ints
    samples: Ints
    prompt_tokens: Ints
    completion_tokens: Ints
    cost: Floats | None
    elapsed: Floats
    wrong: Ints
    contested: Ints | None = None
    against: Ints | None = None
    undecided: Ints | None = None


class _Acc:
    """Accumulates chunks of decisions into the bins."""

    def __init__(self, edges: Ints) -> None:
        n = len(edges)
        self.edges = edges
        self.steps = np.zeros(n, np.int64)
        self.samples = np.zeros(n, np.int64)
        self.samples_max = np.zeros(n, np.int64)
        self.prompt_tokens = np.zeros(n, np.int64)
        self.completion_tokens = np.zeros(n, np.int64)
        self.cost = np.zeros(n, np.float64)
        self.elapsed = np.zeros(n, np.float64)
        self.elapsed_max = np.zeros(n, np.float64)
        self.contested = np.zeros(n, np.int64)
        self.against = np.zeros(n, np.int64)
        self.undecided = np.zeros(n, np.int64)
        self.wrong = np.zeros(n, np.int64)
        self.flags: dict[str, Ints] = {}
        self.samples_hist: defaultdict[int, int] = defaultdict(int)
        self.tallies: defaultdict[tuple[int, int], int] = defaultdict(int)
        self.slowest: list[tuple[float, int, int]] = []

    def _bin(self, steps: Ints) -> Ints:
        return np.searchsorted(self.edges, steps, side="right") - 1

    def add(self, c: _Chunk) -> None:
        if len(c.steps) == 0:
            return
        idx = self._bin(c.steps)
        n = len(self.edges)
        self.steps += np.bincount(idx, minlength=n)
        for target, values in (
            (self.samples, c.samples),
            (self.prompt_tokens, c.prompt_tokens),
            (self.completion_tokens, c.completion_tokens),
            (self.wrong, c.wrong),
            (self.contested, c.contested),
            (self.against, c.against),
            (self.undecided, c.undecided),
        ):
            if values is not None:
                # whole numbers summed as float64: exact below 2**53
                target += np.bincount(idx, weights=values, minlength=n).astype(np.int64)
        self.elapsed += np.bincount(idx, weights=c.elapsed, minlength=n)
        if c.cost is not None:
            self.cost += np.bincount(idx, weights=c.cost, minlength=n)
        np.maximum.at(self.samples_max, idx, c.samples)
        np.maximum.at(self.elapsed_max, idx, c.elapsed)
        counts = np.bincount(np.clip(c.samples, 0, None))
        for v in np.flatnonzero(counts):
            self.samples_hist[int(v)] += int(counts[v])
        top = np.argsort(c.elapsed, kind="stable")[-SLOWEST:]
        found = ((float(c.elapsed[i]), int(c.items[i]), int(c.steps[i])) for i in top)
        self.slowest = sorted([*self.slowest, *found], reverse=True)[:SLOWEST]

    def add_flags(self, kind: str, steps: Ints, counts: Ints) -> None:
        target = self.flags.setdefault(kind, np.zeros(len(self.edges), np.int64))
        np.add.at(target, self._bin(steps), counts)


def _edges(end: int, attempts: Iterable[Attempt], max_bins: int) -> Ints:
    width = max(1, -(-end // max_bins))
    cuts = {a.first_step for a in attempts if 0 < a.first_step < end}
    return np.array(sorted(set(range(0, max(end, 1), width)) | cuts), np.int64)


_BLOCK_INTS = ("samples", "surplus", "prompt_tokens", "completion_tokens", "elapsed_us", "correct")


def _block_chunks(blocks: Iterator[BlockColumns]) -> Iterator[tuple[_Chunk, Ints]]:
    """Plain decisions, a chunk of blocks at a time (many small items' blocks together:
    their number columns gathered as C arrays, not one numpy call each), with the votes
    for each winner (a plain step is unanimous: every counted vote)."""
    cols: dict[str, array[int]] = {name: array("i") for name in _BLOCK_INTS}
    steps: list[Ints] = []
    items: list[Ints] = []
    costs: list[Floats] = []
    size = 0
    priced = False

    def flush() -> tuple[_Chunk, Ints]:
        def ints(name: str) -> Ints:
            return np.frombuffer(cols[name], np.int32).astype(np.int64)

        samples = ints("samples")
        chunk = _Chunk(
            items=np.concatenate(items),
            steps=np.concatenate(steps),
            samples=samples,
            prompt_tokens=ints("prompt_tokens"),
            completion_tokens=ints("completion_tokens"),
            cost=np.concatenate(costs) if priced else None,
            elapsed=ints("elapsed_us") / 1e6,
            wrong=(ints("correct") == 0).astype(np.int64),
        )
        return chunk, samples - ints("surplus")

    for c in blocks:
        n = len(c.samples)
        for name in _BLOCK_INTS:
            cols[name].extend(getattr(c, name))
        at = np.arange(c.first_step, c.last_step + 1, dtype=np.int64)
        steps.append(np.delete(at, np.frombuffer(c.holes, np.int32)) if c.holes else at)
        items.append(np.full(n, c.item, np.int64))
        costs.append(np.frombuffer(c.cost, np.float64) if c.cost else np.zeros(n))
        priced = priced or bool(c.cost)
        size += n
        if size >= CHUNK:
            yield flush()
            cols = {name: array("i") for name in _BLOCK_INTS}
            steps, items, costs, size, priced = [], [], [], 0, False
    if size:
        yield flush()


def _row_chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _add_rows(acc: _Acc, rows: list[dict[str, Any]]) -> None:
    """Decisions with a row of their own: contested, flagged, rejected, undecided."""
    contested = []
    against = []
    flag_steps: defaultdict[str, list[int]] = defaultdict(list)
    flag_counts: defaultdict[str, list[int]] = defaultdict(list)
    for r in rows:
        votes = json.loads(r["votes"]) or [0]
        acc.tallies[(votes[0], sum(votes[1:]))] += 1
        contested.append(1 if len(votes) > 1 else 0)
        against.append(sum(votes[1:]))
        if r["flags"]:
            for kind, c in json.loads(r["flags"]).items():
                flag_steps[kind].append(r["step"])
                flag_counts[kind].append(c)

    def col(name: str) -> Ints:
        return np.fromiter((r[name] for r in rows), np.int64, len(rows))

    acc.add(
        _Chunk(
            items=col("item"),
            steps=col("step"),
            samples=col("samples"),
            prompt_tokens=col("prompt_tokens"),
            completion_tokens=col("completion_tokens"),
            cost=np.fromiter((r["cost"] for r in rows), np.float64, len(rows)),
            elapsed=np.fromiter((r["elapsed"] for r in rows), np.float64, len(rows)),
            wrong=np.fromiter((r["correct"] == 0 for r in rows), np.int64, len(rows)),
            contested=np.array(contested, np.int64),
            against=np.array(against, np.int64),
            undecided=col("undecided"),
        )
    )
    for kind, steps in flag_steps.items():
        acc.add_flags(kind, np.array(steps, np.int64), np.array(flag_counts[kind], np.int64))


def plan_line(run: RunRecord) -> PlanLine | None:
    """The planner's expected samples per step for this run's k and model, if it knows."""
    cfg = run.config
    k = cfg.get("k_resolved")
    if not isinstance(k, int):
        return None
    try:
        spec = parse_model(str(cfg.get("model", "")))
    except ValueError:
        return None
    mixture = known_error_mixture(spec)
    rule = f"k={k}"
    adaptive = cfg.get("stopping") == "adaptive" and cfg.get("stopping_resolved")
    if adaptive:
        rule = "the adaptive rule"
    basis = f"{rule}, the simulated model's error rates"
    if cfg.get("error_rate") is not None:
        mixture = [(float(cfg["error_rate"]), 1.0)]
        basis = f"{rule}, --error-rate {cfg['error_rate']}"
    if mixture is None:
        return None
    valid = known_valid_rate(spec) or 1.0
    if adaptive:  # at its learnt state on this error model (planning.predict)
        try:
            config = AdaptiveConfig.from_dict(cfg["stopping_resolved"])
            pred = predict(config, ErrorModel.from_components(mixture))
        except (KeyError, TypeError, ValueError):
            return None
        return PlanLine(pred.samples_per_step / valid, f"{basis}, valid rate {valid:g}")
    per_step = 0.0
    for err, share in mixture:
        if err >= 0.5:
            return None
        per_step += share * (float(k) if err <= 0.0 else expected_samples(1.0 - err, k))
    return PlanLine(per_step / valid, f"{basis}, valid rate {valid:g}")


def items_of(store: Store, run: RunRecord) -> Items:
    """A batch's items: status counts and each item's steps, samples, cost and errors."""
    status: list[str] = []
    steps: list[int] = []
    samples: list[int] = []
    cost: list[float] = []
    errors: list[int] = []
    for _, st, decided, drawn, spent, wrong in store.item_numbers(run):
        status.append(st)
        steps.append(decided)
        samples.append(drawn)
        cost.append(spent)
        errors.append(wrong)
    by_status = {s: 0 for s in ("completed", "stopped", "failed", "pending")}
    for s in status:
        by_status[s] = by_status.get(s, 0) + 1
    return Items(
        by_status=by_status,
        steps=np.array(steps, np.int64),
        samples=np.array(samples, np.int64),
        cost=np.array(cost, np.float64),
        errors=np.array(errors, np.int64),
    )


def aggregate(store: Store, run: RunRecord, max_bins: int = MAX_BINS) -> RunAggregate:
    """Everything the report draws for one run, in one pass over its journal."""
    many = run.many_items
    rows = store.attempts(run)
    start = min((float(a["started"]) for a in rows), default=run.created)
    attempts = [
        Attempt(
            number=int(a["attempt"]),
            first_step=int(a["first_step"]),
            start_s=float(a["started"]) - start,
            end_s=None if a["ended"] is None else float(a["ended"]) - start,
            status=str(a["status"]),
            reason=str(a["reason"]),
        )
        for a in rows
    ]
    # a batch's (a graph's) steps are places within items, and its attempts start no step
    # of their own
    end = store.item_extent(run) if many else int(run.next_step)
    edges = _edges(end, () if many else attempts, max_bins)
    acc = _Acc(edges)
    only = None if many else 0
    for chunk, votes in _block_chunks(store.block_columns(run, only)):
        counts = np.bincount(votes)
        for v in np.flatnonzero(counts):
            acc.tallies[(int(v), 0)] += int(counts[v])
        acc.add(chunk)
    for rows_ in _row_chunks(store.decision_rows(run, only)):
        _add_rows(acc, rows_)

    t_end: Floats | None = None
    if not many:
        # the clock: each attempt starts at its own start, then adds its steps' elapsed times
        firsts = np.array([a.first_step for a in attempts] or [0], np.int64)
        starts = np.array([a.start_s for a in attempts] or [0.0], np.float64)
        owner = np.clip(np.searchsorted(firsts, edges, side="right") - 1, 0, None)
        t_end = np.zeros(len(edges), np.float64)
        for a in np.unique(owner):
            mine = owner == a
            t_end[mine] = starts[a] + np.cumsum(acc.elapsed[mine])

    transport: defaultdict[str, list[float]] = defaultdict(list)
    for f in store.transport_failures(run):
        transport[str(f["kind"])].append(float(f["time"]) - start)

    bins = Bins(
        edges=edges,
        end=end,
        steps=acc.steps,
        samples=acc.samples,
        samples_max=acc.samples_max,
        prompt_tokens=acc.prompt_tokens,
        completion_tokens=acc.completion_tokens,
        cost=acc.cost,
        elapsed=acc.elapsed,
        elapsed_max=acc.elapsed_max,
        contested=acc.contested,
        against=acc.against,
        undecided=acc.undecided,
        wrong=acc.wrong,
        flags=acc.flags,
        t_end=t_end,
    )
    k = run.config.get("k_resolved")
    if run.config.get("stopping") == "adaptive":
        k = None  # k only set the cap: the rule decides
    return RunAggregate(
        run=run,
        start=start,
        attempts=attempts,
        bins=bins,
        samples_hist=dict(sorted(acc.samples_hist.items())),
        tallies=dict(sorted(acc.tallies.items(), key=lambda kv: -kv[1])),
        slowest=acc.slowest,
        transport=dict(transport),
        plan=plan_line(run),
        k=k if isinstance(k, int) else None,
        decided=int(acc.steps.sum()),
        samples=int(acc.samples.sum()),
        prompt_tokens=int(acc.prompt_tokens.sum()),
        completion_tokens=int(acc.completion_tokens.sum()),
        cost=float(acc.cost.sum()),
        flags={k: int(v.sum()) for k, v in sorted(acc.flags.items())},
        items=items_of(store, run) if run.kind == "batch" else None,
        timeline=timeline(store, run, start, max_bins) if many else None,
    )
