"""Localisation: the first step the checker rejected, its tally, and who out-voted whom."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from unerring.analysis.records import excerpt, process_of, replay
from unerring.journal.store import Store, StoreError
from unerring.redflags import Flag


@dataclass(frozen=True, slots=True)
class Localisation:
    run_id: str
    checked: bool  # did the task's checker judge the decisions at all
    first_wrong: int | None
    winner: str | None  # the wrong answer that won (bounded)
    tally: tuple[int, ...]  # vote counts, largest first
    outvoters: tuple[dict[str, Any], ...]  # samples that voted for the wrong winner
    right: tuple[dict[str, Any], ...]  # samples the checker would have accepted
    journaled: bool  # were the step's samples kept (contested steps are)
    wrong_steps: int  # how many decisions the checker rejected in all

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "checked": self.checked,
            "first_wrong_step": self.first_wrong,
            "winner": self.winner,
            "tally": list(self.tally),
            "outvoters": list(self.outvoters),
            "right_samples": list(self.right),
            "samples_journaled": self.journaled,
            "wrong_steps": self.wrong_steps,
        }


def localize(store: Store, run_id: str) -> Localisation:
    run = store.get_run(run_id)
    if run is None:
        raise StoreError(f"no run {run_id!r} in {store.path} (see `unerring runs`)")
    checked = int(run.stats.get("checked", 0)) > 0
    conn = store.conn
    wrong_steps = int(
        conn.execute(
            "SELECT count(*) FROM decisions WHERE run = ? AND correct = 0", (run.id,)
        ).fetchone()[0]
    )
    row = conn.execute(
        "SELECT step, winner, votes FROM decisions WHERE run = ? AND correct = 0"
        " ORDER BY step LIMIT 1",
        (run.id,),
    ).fetchone()
    if row is None:
        return Localisation(run_id, checked, None, None, (), (), (), False, 0)
    step = int(row["step"])
    winner = row["winner"]
    tally = tuple(int(c) for c in json.loads(row["votes"]))
    samples = [
        dict(r)
        for r in conn.execute(
            "SELECT idx, text, vote, flag, counted FROM samples WHERE run = ? AND step = ?"
            " ORDER BY idx",
            (run.id, step),
        )
    ]
    win_vote = next((s["vote"] for s in samples if s["text"] == winner and s["vote"]), None)
    right_texts: set[str] = set()
    process = process_of(run)
    if process is not None and samples:
        try:
            for s, state in replay(process, store, run, step + 1):
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

    outvoters = tuple(view(s) for s in samples if win_vote is not None and s["vote"] == win_vote)
    right = tuple(view(s) for s in samples if s["text"] in right_texts)
    return Localisation(
        run_id,
        checked,
        step,
        excerpt(winner),
        tally,
        outvoters,
        right,
        bool(samples),
        wrong_steps,
    )
