"""`unerring notes learn`: failures -> patterns -> candidate notes -> gate -> a notebook version."""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

from unerring import defaults
from unerring.analysis.cluster import Pattern, cluster
from unerring.analysis.failure import RunFailures
from unerring.analysis.incidents import in_incident
from unerring.analysis.item_records import process_of
from unerring.analysis.notebook import (
    GateResult,
    Note,
    Notebook,
    Spot,
    gate,
    load_notebook,
    model_note,
    pick,
    save_notebook,
    template_note,
    writable,
)
from unerring.analysis.records import build
from unerring.analysis.taxonomy import CONTENT
from unerring.backends.base import Backend
from unerring.backends.factory import Transport, api_key, make_backend
from unerring.backends.spec import ModelSpec, parse_model
from unerring.core.hashing import mix64
from unerring.errors import StoreError
from unerring.journal.replay import replay
from unerring.journal.store import ItemRecord, RunRecord, Store
from unerring.process import Process
from unerring.process_factory import FactoryResolver, short_name

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Candidate:
    note: Note | None
    pattern: str
    writer: str
    gate: GateResult | None
    outcome: str  # kept, rejected, skipped

    def as_dict(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "writer": self.writer,
            "note": None if self.note is None else self.note.as_dict(),
            "gate": None if self.gate is None else self.gate.as_dict(),
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class LearnResult:
    notebook: Notebook
    candidates: tuple[Candidate, ...]
    patterns: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook.as_dict(),
            "candidates": [c.as_dict() for c in self.candidates],
            "patterns": self.patterns,
        }


def content_patterns(runs: Sequence[RunFailures]) -> list[Pattern]:
    records = [
        r
        for rf in runs
        for r in rf.records
        if r.category in CONTENT and not in_incident(r, rf.incidents)
    ]
    baseline = sum((rf.baseline for rf in runs), start=runs[0].baseline.__class__())
    steps = sum(rf.baseline_steps for rf in runs)
    samples = sum(rf.samples for rf in runs)
    return list(cluster(records, baseline, steps, samples).patterns)


def _random_steps(total: int, exclude: set[int], n: int, seed: int) -> list[int]:
    out: set[int] = set()
    i = 0
    while len(out) < n and i < 50 * n and total > 0:
        s = mix64((seed << 20) + i) % total
        if s not in exclude:
            out.add(s)
        i += 1
    return sorted(out)


@dataclass(frozen=True, slots=True)
class _Layout:
    """A run's items laid end to end: a place (item, step) <-> one position, so that random
    validation steps are drawn over all items' decided steps alike (a single chain: the
    position is the step)."""

    items: tuple[ItemRecord, ...]
    offsets: tuple[int, ...]  # position of each item's step 0
    total: int

    @classmethod
    def of(cls, items: Sequence[ItemRecord]) -> _Layout:
        offsets, total = [], 0
        for it in items:
            offsets.append(total)
            total += int(it.stats.get("steps_decided", 0)) or int(it.steps_total or 0)
        return cls(tuple(items), tuple(offsets), total)

    def position(self, place: tuple[int, int]) -> int | None:
        item, step = place
        return self.offsets[item] + step if 0 <= item < len(self.offsets) else None

    def place(self, position: int) -> tuple[int, int]:
        item = bisect_right(self.offsets, position) - 1
        return item, position - self.offsets[item]


def _states(
    store: Store,
    run: RunRecord,
    places: set[tuple[int, int]],
    process_of_item: Callable[[int], Process[Any, Any]],
) -> dict[tuple[int, int], Any]:
    """The state before each wanted place, replayed along its item's winners."""
    by_item: dict[int, set[int]] = {}
    for item, step in places:
        by_item.setdefault(item, set()).add(step)
    states: dict[tuple[int, int], Any] = {}
    for item, steps in sorted(by_item.items()):
        process = process_of_item(item)
        for s, state in replay(process, store, run, item=item, limit=max(steps) + 1):
            if s in steps:
                states[(item, s)] = state
    return states


def learn(
    store: Store,
    run_ids: Sequence[str],
    model: str,
    *,
    resolve: FactoryResolver,
    writer: str = "template",
    name: str | None = None,
    validation: int = 20,
    samples: int = 5,
    seed: int = 0,
    max_notes: int = 5,
) -> LearnResult:
    """Distil a run's failure patterns into notes, gate each, journal a notebook version;
    `resolve` makes the runs' processes again (to replay states and validate notes)."""
    runs = [build(store, r, resolve=resolve) for r in run_ids]
    first = runs[0].run
    if any(rf.run.task != first.task for rf in runs):
        raise ValueError("notes learn: every run must be of the same task")
    # validation states come from the first run's items (a batch: every item of it)
    layout = _Layout.of(list(store.items(first)))
    processes: dict[int, Process[Any, Any]] = {}

    def process_of_item(item: int) -> Process[Any, Any]:
        p = processes.get(item)
        if p is None:
            p = process_of(first, layout.items[item], resolve)
            if p is None:
                raise ValueError(f"task {first.task!r} cannot be rebuilt to validate notes")
            processes[item] = p
        return p

    if not layout.items:
        raise ValueError(f"run {first.run_id!r} has no items to validate notes on")
    process = process_of_item(0)
    # validate the way the run asked: its API form and endpoint are journaled with it
    cfg = first.config
    spec = parse_model(model, "completions" if cfg.get("api") == "completions" else "chat")
    transport = Transport(base_url=cfg.get("base_url"), stop=process.stop)
    api_key(spec, transport)  # a key that cannot be sent is refused before any work
    writer_spec = None
    if writer != "template":
        # a model writes prose in chat form, at the run's endpoint
        wspec = parse_model(writer, "chat")
        # the simulated model writes no prose: its notes come from the template writer
        writer_spec = None if wspec.sim is not None else wspec
    writer_transport = replace(transport, stop=())

    def in_loop(make: Callable[[Backend], Awaitable[T]], on: ModelSpec, how: Transport) -> T:
        """Run one job in its own event loop with its own backend, closed in that loop:
        an HTTP client's connections belong to the loop that opened them."""

        async def go() -> T:
            b = make_backend(on, how)
            try:
                return await make(b)
            finally:
                await b.aclose()

        return asyncio.run(go())

    name = name or short_name(first.task)
    try:
        base = load_notebook(store, name)
        base_notes: tuple[Note, ...] = base.notes
    except StoreError:
        base_notes = ()
    noted = {n.when for n in base_notes}

    patterns = content_patterns(runs)
    chosen = [p for p in patterns if writable(p)][:max_notes]
    notes: list[tuple[Pattern, Note | None, str]] = []
    for p in chosen:
        if writer_spec is None:
            notes.append((p, template_note(p), "template"))
        else:
            note = in_loop(partial(model_note, p=p), writer_spec, writer_transport)
            notes.append((p, note, writer))

    # states for validation: replay the first run's items along their winners
    def known(places: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        return [pl for pl in places if layout.position(pl) is not None]

    affected: dict[str, list[tuple[int, int]]] = {
        p.id: pick(known(p.places), validation, seed) for p, _, _ in notes
    }
    all_affected = {layout.position(pl) for p in chosen for pl in p.places}
    exclude = {x for x in all_affected if x is not None}
    randoms = [layout.place(x) for x in _random_steps(layout.total, exclude, validation, seed)]
    states = _states(store, first, set(randoms).union(*affected.values()), process_of_item)
    randoms = [pl for pl in randoms if pl in states]

    def spots(places: Sequence[tuple[int, int]]) -> list[Spot]:
        return [
            Spot(process_of_item(item), states[(item, step)], step, item)
            for item, step in places
            if (item, step) in states
        ]

    temps = (
        float(cfg.get("first_temperature", defaults.FIRST_TEMPERATURE)),
        float(cfg.get("temperature", defaults.TEMPERATURE)),
    )
    max_tokens = int(cfg.get("max_tokens", defaults.MAX_TOKENS))
    candidates: list[Candidate] = []
    kept: list[Note] = list(base_notes)

    def validate(places: list[tuple[int, int]], trial: list[Note]) -> GateResult:
        return in_loop(
            lambda b: gate(
                b,
                spots(places),
                spots(randoms),
                trial,
                samples=samples,
                simulate=spec.simulated,
                max_tokens=max_tokens,
                temperatures=temps,
            ),
            spec,
            transport,
        )

    for p, note, who in notes:
        if note is None:
            candidates.append(Candidate(None, p.id, who, None, "rejected: no usable note"))
            continue
        if note.when in noted:
            candidates.append(Candidate(note, p.id, who, None, "skipped: already in the notebook"))
            continue
        result = validate(affected[p.id], [note])
        if result.accepted:
            kept.append(note)
            noted.add(note.when)
        candidates.append(
            Candidate(note, p.id, who, result, "kept" if result.accepted else "rejected")
        )
    new = [c for c in candidates if c.outcome == "kept"]
    accepted = bool(new)
    reason = (
        "; ".join(
            f"{c.pattern}: {c.outcome}" + (f" ({c.gate.reason})" if c.gate else "")
            for c in candidates
        )
        or "no systematic feature-bound pattern to write a note for"
    )
    set_gate: GateResult | None = None
    if len(new) > 1:
        # notes that each help alone must also help together (one may undo another)
        places = sorted({pl for c in new for pl in affected[c.pattern]})
        set_gate = validate(places, [c.note for c in new if c.note is not None])
        reason += f"; the set together: {set_gate.reason}"
        if not set_gate.accepted:
            accepted = False
    if not accepted:
        # rolled back: the proposal is journaled, marked not accepted, and never used
        proposal = list(base_notes) + [
            c.note for c in candidates if c.note is not None and not c.outcome.startswith("skipped")
        ]
        nb = save_notebook(store, name, proposal, False, reason, ",".join(run_ids))
    else:
        nb = save_notebook(store, name, kept, True, reason, ",".join(run_ids))
    return LearnResult(nb, tuple(candidates), len(patterns))
