"""Localisation: the first step the checker rejected, its tally, and who out-voted whom.

In a batch, "first" is by item, then step: the first wrong step of the first item that has
one (items are independent chains; none comes before another in time).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from unerring.analysis.failure import excerpt
from unerring.analysis.item_records import process_of
from unerring.core.flags import Flag
from unerring.journal.replay import replay
from unerring.journal.store import Store
from unerring.process_factory import FactoryResolver


@dataclass(frozen=True, slots=True, kw_only=True)
class Localisation:
    run_id: str
    checked: bool  # did the task's checker judge the decisions at all
    first_wrong: int | None  # its step
    winner: str | None  # the wrong answer that won (bounded)
    tally: tuple[int, ...]  # vote counts, largest first
    outvoters: tuple[dict[str, Any], ...]  # samples that voted for the wrong winner
    right: tuple[dict[str, Any], ...]  # samples the checker would have accepted
    journaled: bool  # were the step's samples kept (contested steps are)
    wrong_steps: int  # how many decisions the checker rejected in all
    item: str | None = None  # the id of the item the first wrong step is in
    wrong_items: int = 0  # how many items have a wrong decision
    batch: bool = False  # a batch run (its text names items)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "checked": self.checked,
            "first_wrong_step": self.first_wrong,
            "first_wrong_item": self.item,
            "winner": self.winner,
            "tally": list(self.tally),
            "outvoters": list(self.outvoters),
            "right_samples": list(self.right),
            "samples_journaled": self.journaled,
            "wrong_steps": self.wrong_steps,
            "wrong_items": self.wrong_items,
            "batch": self.batch,
        }


def localize(store: Store, run_id: str, *, resolve: FactoryResolver | None) -> Localisation:
    """Where a run first went wrong, and what outvoted the right answer there (the right
    samples are known where `resolve` makes the run's process again)."""
    run = store.run(run_id)
    checked = int(run.stats.get("checked", 0)) > 0
    batch = run.many_items  # a graph's items are its nodes
    wrong_steps, wrong_items = store.wrong_decisions(run)
    row = store.first_wrong_decision(run)
    if row is None:
        return Localisation(
            run_id=run_id,
            checked=checked,
            first_wrong=None,
            winner=None,
            tally=(),
            outvoters=(),
            right=(),
            journaled=False,
            wrong_steps=0,
            batch=batch,
        )
    index, step, winner = int(row["item"]), int(row["step"]), row["winner"]
    item = next((it for it in store.items(run) if it.item == index), None)
    tally = tuple(int(c) for c in json.loads(row["votes"]))
    samples = store.step_samples(run, index, step)
    win_vote = next((s["vote"] for s in samples if s["text"] == winner and s["vote"]), None)
    right_texts: set[str] = set()
    process = process_of(run, item, resolve)
    if process is not None and samples:
        try:
            for s, state in replay(process, store, run, item=index, limit=step + 1):
                if s != step:
                    continue
                for smp in samples:
                    if smp["vote"] is None:
                        continue
                    answer = process.parse(smp["text"])
                    if not isinstance(answer, Flag) and process.check(state, step, answer):
                        right_texts.add(smp["text"])
        except Exception:  # a process that cannot replay: the right answers stay unknown
            right_texts = set()

    def view(s: dict[str, Any]) -> dict[str, Any]:
        return {
            "index": s["idx"],
            "response": excerpt(s["text"]),
            "vote": s["vote"],
            "counted": bool(s["counted"]),
        }

    return Localisation(
        run_id=run_id,
        checked=checked,
        first_wrong=step,
        winner=excerpt(winner),
        tally=tally,
        outvoters=tuple(view(s) for s in samples if win_vote is not None and s["vote"] == win_vote),
        right=tuple(view(s) for s in samples if s["text"] in right_texts),
        journaled=bool(samples),
        wrong_steps=wrong_steps,
        item=item.item_id if item is not None else str(index + 1),
        wrong_items=wrong_items,
        batch=batch,
    )
