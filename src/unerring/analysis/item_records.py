"""One item's failure records, read from its decisions and samples in the journal:
red-flagged and losing samples, rejected and undecided steps, a stop by the budget."""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from unerring.analysis.failure import FailureRecord, excerpt, tokens_of
from unerring.analysis.taxonomy import Category, flag_category
from unerring.core.flags import Flag
from unerring.journal.replay import replay
from unerring.journal.store import ItemRecord, RunRecord, Store
from unerring.process import Feature, Process
from unerring.process_factory import FactoryResolver


def process_of(
    run: RunRecord, item: ItemRecord | None, resolve: FactoryResolver | None
) -> Process[Any, Any] | None:
    """An item's process, made again by the factory `resolve` gives for the run (None:
    processes are not known here, and analysis goes on without features)."""
    if resolve is None:
        return None
    try:
        made = resolve(run.task, run.config).make(
            item.options if item else {}, item.item_id if item else None
        )
    except Exception:  # an unknown or changed task: analysis goes on without features
        return None
    return made if isinstance(made, Process) else None


def answer_text(process: Process[Any, Any] | None, text: str) -> str:
    """The answer a response gives, spelt so that equal answers read alike across steps,
    items and runs: the process's own serialisation (`dump_answer`), else the repr of its
    vote key; the response itself (bounded) where the process cannot be rebuilt (a graph's
    node, a task no longer known) or does not parse it."""
    if process is not None:
        try:
            answer = process.parse(text)
        except Exception:  # a sample the process cannot read: its text stands for it
            answer = Flag.INVALID
        if not isinstance(answer, Flag):
            try:
                return process.dump_answer(answer)
            except Exception:  # no serialisation: the vote key is what votes compare
                with contextlib.suppress(Exception):
                    return repr(process.key(answer))
    return excerpt(text)


def _decoder(process: Process[Any, Any] | None) -> Callable[[str], str]:
    """`answer_text` for one item, each distinct response parsed once."""
    seen: dict[str, str] = {}

    def decode(text: str) -> str:
        got = seen.get(text)
        if got is None:
            got = seen[text] = answer_text(process, text)
        return got

    return decode


def stopped_by_budget(status: str, reason: str) -> bool:
    """An item the run's budget stopped (the budget's reason says "... budget reached").

    The journal keeps an item's end as a status and a reason; until the stop cause is
    journaled as data of its own, this one test reads it (voting.config.Budget.reached).
    """
    return status == "stopped" and "budget reached" in reason


def _times(
    store: Store, run: RunRecord, item: int, attempts: Sequence[dict[str, Any]], wanted: set[int]
) -> dict[int, float]:
    """Estimated wall time of each wanted step of an item: an attempt's start plus the
    elapsed times of the item's decisions since.

    A single chain knows where each attempt began (its first step): exact up to the
    journal's rounding. In a batch the items of an attempt run side by side, each from the
    attempt's start (an approximation: an item that waited for a free slot, or that a later
    attempt resumed, reads as earlier than it ran); an item's clock moves on to the next
    attempt's start when it passes the end of the one it is in.
    """
    if not attempts or not wanted:
        return {}
    chain = not run.many_items
    order = (lambda a: (a[0], a[1])) if chain else (lambda a: a[1])
    starts = sorted(((a["first_step"], a["started"], a["ended"]) for a in attempts), key=order)
    out: dict[int, float] = {}
    ai = 0
    clock = starts[0][1]
    for step, elapsed in store.decision_values(run, "elapsed", item):  # in step order
        if chain:
            while ai + 1 < len(starts) and step >= starts[ai + 1][0]:
                ai += 1
                clock = starts[ai][1]
        elif ai + 1 < len(starts) and starts[ai][2] is not None and clock > starts[ai][2]:
            ai += 1
            clock = starts[ai][1]
        clock += elapsed
        if step in wanted:
            out[step] = clock
    # an undecided step has no decision row: it happened right after the last one
    for s in wanted:
        out.setdefault(s, clock)
    return out


@dataclass
class ItemFailures:
    """One item's failure records, and what it adds to the run's features' base rates."""

    records: list[FailureRecord]
    features: dict[int, dict[str, Feature]]  # of the steps with a failure
    baseline: Counter[str]
    replayed: int  # steps replayed (they make the baseline)
    first_wrong: int | None


def item_records(
    store: Store,
    run: RunRecord,
    it: ItemRecord,
    attempts: Sequence[dict[str, Any]],
    replay_limit: int,
    resolve: FactoryResolver | None,
) -> ItemFailures:
    """The failure records of one item, and its share of the features' base rates."""
    decision_of = {d["step"]: d for d in store.noteworthy_decisions(run, it.item)}
    by_step: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in store.samples(run, it.item):
        by_step[row["step"]].append(dict(row))

    # features: journaled for contested steps; replayed for the rest and for baselines
    features: dict[int, dict[str, Feature]] = {}
    for s, d in decision_of.items():
        if d["features"]:
            with contextlib.suppress(ValueError):
                features[s] = dict(json.loads(d["features"]))
    baseline: Counter[str] = Counter()
    replayed = 0
    wanted = set(by_step) | set(decision_of)
    # at a rejected step a losing sample may have been right: the checker tells, if it can
    rejected = {s for s, d in decision_of.items() if d["correct"] == 0}
    right: dict[int, set[str]] = {}
    process = process_of(run, it, resolve) if replay_limit > 0 else None
    if run.kind == "graph":
        # a node's process is built from the graph's memory, not from options: its kind and
        # depth describe each of its steps, and make the base rates
        node: dict[str, Feature] = {"node_kind": it.kind or "step", "depth": it.depth}
        for s in wanted:
            features[s] = {**features.get(s, {}), **node}
        steps = int(it.stats.get("steps_decided", 0))
        for token in tokens_of(node):
            baseline[token] += steps
        replayed += steps
        process = None
    if process is not None:
        # steps share few feature combinations: count those, spell them as tokens once
        # (a value's type is part of its combination: True and 1 spell differently)
        combos: Counter[tuple[tuple[str, type, Feature], ...]] = Counter()
        try:
            for s, state in replay(process, store, run, item=it.item, limit=replay_limit):
                f = process.features(state, s)
                combos[tuple([(k, v.__class__, v) for k, v in f.items()])] += 1
                replayed += 1
                if s in wanted and s not in features:
                    features[s] = dict(f)
                if s in rejected:
                    right[s] = _right_texts(process, state, s, by_step.get(s, []))
        except Exception:  # a replay that cannot go on (a diverged state): use what we have
            pass
        for combo, n in combos.items():
            for token in tokens_of({k: v for k, _, v in combo}):
                baseline[token] += n

    times = _times(store, run, it.item, attempts, wanted)
    where = _Where(run.run_id, it.item_id, it.item)
    # answers are read with the item's own process (past the replay limit too)
    if process is None and run.kind != "graph" and wanted:
        process = process_of(run, it, resolve)
    decode = _decoder(process)
    records: list[FailureRecord] = []
    for s in sorted(wanted):
        if s not in decision_of and s < it.next_step:
            # a plain step (unanimous, unflagged, not rejected) whose samples were kept
            # (--record samples): its decision lives in a packed block
            decision_of[s] = {"winner": None, "correct": None, "undecided": 0, "features": None}
        records.extend(
            _step_records(
                where,
                s,
                decision_of.get(s),
                by_step.get(s, []),
                features,
                times,
                decode,
                right.get(s),
            )
        )
    if stopped_by_budget(it.status, it.reason):
        # the budget stopped the item before its next step: one record there
        records.append(
            FailureRecord(
                run_id=run.run_id,
                item_id=it.item_id,
                item=it.item,
                step=it.next_step,
                index=None,
                category=Category.BUDGET,
                excerpt=excerpt(it.reason),
                answer=None,
                features=features.get(it.next_step, {}),
                time=run.updated,
                counted=False,
                systematic=False,
                flip_rate=None,
            )
        )
    return ItemFailures(records, features, baseline, replayed, min(rejected, default=None))


@dataclass(frozen=True, slots=True)
class _Where:
    run_id: str
    item_id: str
    item: int


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
    where: _Where,
    step: int,
    decision: dict[str, Any] | None,
    rows: Sequence[dict[str, Any]],
    features: Mapping[int, dict[str, Feature]],
    times: Mapping[int, float],
    decode: Callable[[str], str],
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
                run_id=where.run_id,
                item_id=where.item_id,
                item=where.item,
                step=step,
                index=r["idx"],
                category=cat,
                excerpt=excerpt(r["text"]),
                answer=None if r["vote"] is None else decode(r["text"]),
                features=feats,
                time=t,
                counted=bool(r["counted"]),
                systematic=seen[sig] >= 2,
                flip_rate=flip,
                label=r["label"],
            )
        )
    if decision is not None and correct == 0 and not rows:
        # a unanimous wrong decision whose samples were not journaled (`--record
        # decisions`, or an older journal): all k agreed
        out.append(
            FailureRecord(
                run_id=where.run_id,
                item_id=where.item_id,
                item=where.item,
                step=step,
                index=None,
                category=Category.REJECTED,
                excerpt=excerpt(winner_text),
                answer=None if winner_text is None else decode(winner_text),
                features=feats,
                time=t,
                counted=True,
                systematic=True,
                flip_rate=0.0,
            )
        )
    if undecided:
        # the answer that led, from a sample that gave it
        leader = winner_text or next(
            (r["text"] for r in rows if winner_vote is not None and r["vote"] == winner_vote),
            None,
        )
        out.append(
            FailureRecord(
                run_id=where.run_id,
                item_id=where.item_id,
                item=where.item,
                step=step,
                index=None,
                category=Category.UNDECIDED,
                excerpt=excerpt(winner_text),
                answer=None if leader is None else decode(leader),
                features=feats,
                time=t,
                counted=False,
                systematic=False,
                flip_rate=flip,
            )
        )
    return out
