"""Failure records, built from what the journal already holds (no write on the hot path).

Sources: red-flagged and losing samples (the samples table: every sample of a contested
or flagged step at the default record level), decisions the checker rejected, undecided
steps, a run stopped by its budget, and transport failures. Each record gets a category,
a bounded excerpt, the step's features, an estimated time, and intermittent/systematic.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from unerring.analysis.taxonomy import Category, flag_category, is_transport, transport_category
from unerring.journal.store import RunRecord, Store, StoreError
from unerring.process import Feature, Process
from unerring.redflags import Flag
from unerring.tasks.registry import get_task

EXCERPT = 400  # characters of a response a failure record keeps
REPLAY_LIMIT = 1 << 21  # steps replayed for features and baselines (covers 20-disk Hanoi)


def excerpt(text: str | None, limit: int = EXCERPT) -> str:
    """A bounded excerpt; the stored text stays raw, display escapes it (see `safe`)."""
    if text is None:
        return ""
    if len(text) <= limit:
        return text
    return text[:limit] + f"...[{len(text) - limit} more characters]"


def safe(text: str, limit: int = 200) -> str:
    """Text fit for a terminal: control characters and escapes shown as escapes, bounded."""
    out = []
    for ch in excerpt(text, limit):
        if ch == "\n":
            out.append("\\n")
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def tokens_of(features: Mapping[str, Feature]) -> tuple[str, ...]:
    """Feature values as `name=value` tokens (the spelling notes and sim modes use)."""
    return tuple(f"{k}={str(v).lower()}" for k, v in sorted(features.items()))


@dataclass(frozen=True, slots=True)
class FailureRecord:
    run_id: str
    step: int
    index: int | None  # sample index; None for a step-level record
    category: Category
    excerpt: str
    answer: str | None  # the vote key (repr) the sample gave, if it parsed
    features: dict[str, Feature]
    time: float | None  # seconds since the epoch (estimated for samples, see build())
    counted: bool
    systematic: bool
    flip_rate: float | None  # share of the step's valid samples that disagreed with its winner
    label: str | None = None  # simulator ground truth: evaluation only, never for clustering
    retried: bool | None = None

    @property
    def nature(self) -> str:
        return "systematic" if self.systematic else "intermittent"

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "step": self.step,
            "index": self.index,
            "category": self.category.value,
            "excerpt": self.excerpt,
            "answer": self.answer,
            "features": self.features,
            "time": self.time,
            "counted": self.counted,
            "nature": self.nature,
            "flip_rate": self.flip_rate,
            "retried": self.retried,
        }


@dataclass(frozen=True, slots=True)
class Incident:
    """Failures close together in time across many steps: infrastructure, not content."""

    start: float
    end: float
    failures: int
    steps: int
    categories: dict[str, int]


@dataclass
class RunFailures:
    """Everything failure analysis needs from one run."""

    run: RunRecord
    records: list[FailureRecord]
    steps: int  # decided steps
    samples: int
    baseline: Counter[str]  # feature token -> number of steps that have it
    baseline_steps: int
    incidents: list[Incident] = field(default_factory=list)
    first_wrong: int | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id


def process_of(run: RunRecord) -> Process[Any, Any] | None:
    try:
        return get_task(run.task).make(run.config.get("task_options", {}))
    except Exception:  # an unknown or changed task: analysis goes on without features
        return None


def replay(
    process: Process[Any, Any], store: Store, run: RunRecord, limit: int = REPLAY_LIMIT
) -> Iterator[tuple[int, Any]]:
    """(step, state before the step) along the run's committed winners."""
    state = process.initial_state()
    for step, winner in store.decision_values(run, "winner"):
        if step >= limit:
            return
        yield step, state
        if winner is None:
            return
        answer = process.parse(winner)
        if isinstance(answer, Flag):
            return
        state = process.advance(state, answer)


def step_features(store: Store, run_id: str) -> dict[int, dict[str, Feature]]:
    """Every decided step's features, replayed along the run's winners (for evaluation)."""
    run = store.get_run(run_id)
    if run is None:
        raise StoreError(f"no run {run_id!r} in {store.path} (see `unerring runs`)")
    process = process_of(run)
    if process is None:
        return {}
    return {s: dict(process.features(state, s)) for s, state in replay(process, store, run)}


def _times(store: Store, run: RunRecord, wanted: set[int]) -> dict[int, float]:
    """Estimated wall time of each wanted step: its attempt's start plus elapsed so far."""
    starts = sorted((a["first_step"], a["started"]) for a in store.attempts(run))
    if not starts or not wanted:
        return {}
    out: dict[int, float] = {}
    ai = 0
    clock = starts[0][1]
    for step, elapsed in store.decision_values(run, "elapsed"):  # rows and blocks, in order
        while ai + 1 < len(starts) and step >= starts[ai + 1][0]:
            ai += 1
            clock = starts[ai][1]
        clock += elapsed
        if step in wanted:
            out[step] = clock
    # an undecided step has no decision row: it happened right after the last one
    for s in wanted:
        out.setdefault(s, clock)
    return out


def build(
    store: Store,
    run_id: str,
    *,
    replay_limit: int = REPLAY_LIMIT,
) -> RunFailures:
    """Failure records of one run, read from the journal."""
    run = store.get_run(run_id)
    if run is None:
        raise StoreError(f"no run {run_id!r} in {store.path} (see `unerring runs`)")
    conn = store.conn
    decision_of: dict[int, dict[str, Any]] = {}
    for row in conn.execute(
        "SELECT step, winner, votes, undecided, correct, features FROM decisions"
        " WHERE run = ? AND (correct = 0 OR undecided = 1 OR step IN"
        " (SELECT DISTINCT step FROM samples WHERE run = ?))",
        (run.id, run.id),
    ):
        decision_of[row["step"]] = dict(row)
    by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in conn.execute(
        "SELECT step, idx, text, vote, flag, counted, label FROM samples WHERE run = ?"
        " ORDER BY step, idx",
        (run.id,),
    ):
        by_step[row["step"]].append(dict(row))
    steps = int(run.stats.get("steps_decided", 0))
    samples = int(run.stats.get("samples", 0))

    # features: journaled for contested steps; replayed for the rest and for baselines
    process = process_of(run)
    features: dict[int, dict[str, Feature]] = {}
    for s, d in decision_of.items():
        if d["features"]:
            with contextlib.suppress(ValueError):
                features[s] = dict(json.loads(d["features"]))
    baseline: Counter[str] = Counter()
    baseline_steps = 0
    wanted = set(by_step) | set(decision_of)
    # at a rejected step a losing sample may have been right: the checker tells, if it can
    rejected = {s for s, d in decision_of.items() if d["correct"] == 0}
    right: dict[int, set[str]] = {}
    if process is not None:
        # steps share few feature combinations: count those, spell them as tokens once
        combos: Counter[tuple[tuple[str, Feature], ...]] = Counter()
        try:
            for s, state in replay(process, store, run, replay_limit):
                f = process.features(state, s)
                combos[tuple(f.items())] += 1
                baseline_steps += 1
                if s in wanted and s not in features:
                    features[s] = dict(f)
                if s in rejected:
                    right[s] = _right_texts(process, state, s, by_step.get(s, []))
        except Exception:  # a replay that cannot go on (a diverged state): use what we have
            pass
        for combo, n in combos.items():
            for token in tokens_of(dict(combo)):
                baseline[token] += n
    if baseline_steps == 0:
        for f in features.values():
            baseline.update(tokens_of(f))
        baseline_steps = len(features)

    times = _times(store, run, wanted)
    records: list[FailureRecord] = []
    for s in sorted(wanted):
        if s not in decision_of and s < run.next_step:
            # a plain step (unanimous, unflagged, not rejected) whose samples were kept
            # (--record samples): its decision lives in a packed block
            decision_of[s] = {"winner": None, "correct": None, "undecided": 0, "features": None}
        records.extend(
            _step_records(
                run, s, decision_of.get(s), by_step.get(s, []), features, times, right.get(s)
            )
        )
    if "budget reached" in run.reason:
        records.append(
            FailureRecord(
                run.run_id,
                run.next_step,
                None,
                Category.BUDGET,
                excerpt(run.reason),
                None,
                features.get(run.next_step, {}),
                run.updated,
                False,
                False,
                None,
            )
        )
    for row in store.transport_failures(run):
        records.append(
            FailureRecord(
                run.run_id,
                row["step"],
                None,
                transport_category(row["kind"]),
                excerpt(row["message"]),
                None,
                features.get(row["step"], {}),
                row["time"],
                False,
                not row["retried"],
                None,
                None,
                bool(row["retried"]),
            )
        )
    first_wrong = next((s for s in sorted(decision_of) if decision_of[s]["correct"] == 0), None)
    out = RunFailures(run, records, steps, samples, baseline, baseline_steps, [], first_wrong)
    out.incidents = incidents(records)
    return out


def _right_texts(
    process: Process[Any, Any], state: Any, step: int, rows: Sequence[dict[str, Any]]
) -> set[str]:
    out = set()
    for r in rows:
        if r["vote"] is None:
            continue
        try:
            answer = process.parse(r["text"])
            if not isinstance(answer, Flag) and process.check(state, step, answer):
                out.add(r["text"])
        except Exception:  # a sample the process cannot read is not a right one
            continue
    return out


def _step_records(
    run: RunRecord,
    step: int,
    decision: dict[str, Any] | None,
    rows: Sequence[dict[str, Any]],
    features: Mapping[int, dict[str, Feature]],
    times: Mapping[int, float],
    right: set[str] | None = None,
) -> list[FailureRecord]:
    feats = features.get(step, {})
    t = times.get(step)
    winner_text = decision["winner"] if decision else None
    correct = decision["correct"] if decision else None
    undecided = decision is None or bool(decision["undecided"])
    # the winning vote: the key of the samples whose text is the winner's
    votes = Counter(r["vote"] for r in rows if r["vote"] is not None and r["counted"])
    winner_vote = next((r["vote"] for r in rows if r["text"] == winner_text and r["vote"]), None)
    if winner_vote is None and votes and not undecided:
        winner_vote = votes.most_common(1)[0][0]
    valid = [r for r in rows if r["vote"] is not None]
    disagree = sum(1 for r in valid if r["vote"] != winner_vote)
    flip = disagree / len(valid) if valid else None
    seen = Counter(r["vote"] if r["vote"] is not None else f"flag:{r['flag']}" for r in rows)
    out: list[FailureRecord] = []
    for r in rows:
        sig = r["vote"] if r["vote"] is not None else f"flag:{r['flag']}"
        if r["flag"] is not None:
            cat = flag_category(r["flag"])
        elif undecided and decision is None:
            cat = Category.UNDECIDED
        elif right is not None and r["text"] in right:
            continue  # a right answer that lost to a wrong one: not a failure of its own
        elif r["vote"] != winner_vote:
            cat = Category.OUTVOTED
        elif correct == 0:
            cat = Category.REJECTED
        else:
            continue
        out.append(
            FailureRecord(
                run.run_id,
                step,
                r["idx"],
                cat,
                excerpt(r["text"]),
                r["vote"],
                feats,
                t,
                bool(r["counted"]),
                seen[sig] >= 2,
                flip,
                r["label"],
            )
        )
    if decision is not None and correct == 0 and not rows:
        # a unanimous wrong decision whose samples were not journaled (`--record
        # decisions`, or an older journal): all k agreed
        out.append(
            FailureRecord(
                run.run_id,
                step,
                None,
                Category.REJECTED,
                excerpt(winner_text),
                None,
                feats,
                t,
                True,
                True,
                0.0,
            )
        )
    if undecided:
        out.append(
            FailureRecord(
                run.run_id,
                step,
                None,
                Category.UNDECIDED,
                excerpt(winner_text),
                winner_vote,
                feats,
                t,
                False,
                False,
                flip,
            )
        )
    return out


def incidents(
    records: Sequence[FailureRecord], gap_s: float = 5.0, min_steps: int = 5
) -> list[Incident]:
    """Bursts of transport failures (gaps under gap_s) over at least min_steps steps."""
    timed = sorted(
        (r for r in records if is_transport(r.category) and r.time is not None),
        key=lambda r: r.time or 0.0,
    )
    out: list[Incident] = []
    burst: list[FailureRecord] = []

    def close() -> None:
        if len({r.step for r in burst}) >= min_steps:
            cats = Counter(r.category.value for r in burst)
            out.append(
                Incident(
                    burst[0].time or 0.0,
                    burst[-1].time or 0.0,
                    len(burst),
                    len({r.step for r in burst}),
                    dict(cats),
                )
            )

    for r in timed:
        if burst and (r.time or 0.0) - (burst[-1].time or 0.0) > gap_s:
            close()
            burst = []
        burst.append(r)
    if burst:
        close()
    return out


def in_incident(record: FailureRecord, found: Sequence[Incident]) -> bool:
    if not is_transport(record.category) or record.time is None:
        return False
    return any(i.start <= record.time <= i.end for i in found)


def mark_across_runs(runs: Sequence[RunFailures]) -> None:
    """A failure seen at the same step with the same answer in another run is systematic."""
    if len(runs) < 2:
        return
    where: dict[tuple[int, str], set[str]] = defaultdict(set)
    for rf in runs:
        for r in rf.records:
            if r.answer is not None:
                where[(r.step, r.answer)].add(rf.run_id)
    for rf in runs:
        rf.records = [
            r
            if r.systematic or r.answer is None or len(where[(r.step, r.answer)]) < 2
            else _with_systematic(r)
            for r in rf.records
        ]


def _with_systematic(r: FailureRecord) -> FailureRecord:
    return replace(r, systematic=True)
