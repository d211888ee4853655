"""A run records how its processes were constructed (options, else arguments, else public
fields): a resume with processes made otherwise is refused by name, even where a process
defines no `options()`; a journal that recorded none resumes as before."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import unerring
from unerring import Flag, Process
from unerring.app.fingerprint import SHOWN, construction, recorded
from unerring.errors import UsageError
from unerring.voting.config import Budget

MODEL = "sim:error=0.05,seed=4"


class Step(Process[int, int]):
    """Counts up by `by`; defines no options(): its fields are its construction."""

    name = "step"

    def __init__(self, by: int = 1, steps: int = 20) -> None:
        self.by = by
        self.steps = steps
        self._seen = 0  # private: a cache filled while running is no part of it

    def initial_state(self) -> int:
        return 0

    def done(self, state: int, step: int) -> bool:
        return step >= self.steps

    def prompt(self, state: int, step: int) -> str:
        self._seen += 1
        return f"{state} + {self.by}?"

    def parse(self, text: str) -> int | Flag:
        try:
            return int(text)
        except ValueError:
            return Flag.INVALID

    def advance(self, state: int, answer: int) -> int:
        return answer

    def total_steps(self) -> int:
        return self.steps

    def solve(self, state: int, step: int) -> int:
        return state + self.by

    def render(self, answer: int) -> str:
        return str(answer)

    def wrong_answers(self, state: int, step: int, answer: int) -> list[int]:
        return [answer + 1, answer - 1]


def _stopped(db: Path, process: Process[int, int]) -> None:
    r = unerring.run(process, model=MODEL, k=2, store=str(db), run_id="lib",
                     budget=Budget(max_samples=10))  # fmt: skip
    assert r.outcome.status == "stopped"
    r.store.close()


def test_a_library_resume_with_other_arguments_is_refused_by_name(tmp_path: Path) -> None:
    db = tmp_path / "lib.db"
    _stopped(db, Step(by=3))
    with pytest.raises(UsageError, match=r"run 'lib'.*construction.*'by': 3.*'by': 4"):
        unerring.run(Step(by=4), model=MODEL, k=2, store=str(db), run_id="lib")
    r = unerring.run(Step(by=3), model=MODEL, k=2, store=str(db), run_id="lib")
    assert r.outcome.status == "completed"
    r.store.close()


def test_a_library_batch_resume_with_other_arguments_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "batch.db"
    r = unerring.run_batch([Step(by=1), Step(by=2)], model=MODEL, k=2, store=str(db),
                           run_id="b", budget=Budget(max_samples=10))  # fmt: skip
    assert r.outcome.status == "stopped"
    r.store.close()
    with pytest.raises(UsageError, match=r"run 'b'.*construction"):
        unerring.run_batch([Step(by=1), Step(by=5)], model=MODEL, k=2, store=str(db), run_id="b")
    r = unerring.run_batch([Step(by=1), Step(by=2)], model=MODEL, k=2, store=str(db), run_id="b")
    assert r.outcome.status == "completed"
    r.store.close()


def test_a_journal_without_a_construction_resumes_as_before(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _stopped(db, Step(by=3))
    conn = sqlite3.connect(db)  # as main wrote it before constructions were recorded
    (text,) = conn.execute("SELECT config FROM runs WHERE run_id = 'lib'").fetchone()
    config = json.loads(text)
    assert config.pop("construction") == {"fields": {"by": 3, "steps": 20}}
    conn.execute("UPDATE runs SET config = ? WHERE run_id = 'lib'", (json.dumps(config),))
    conn.commit()
    conn.close()
    r = unerring.run(Step(by=3), model=MODEL, k=2, store=str(db), run_id="lib")
    assert r.outcome.status == "completed"
    r.store.close()


def test_construction_prefers_options_then_arguments_then_fields() -> None:
    class WithOptions(Step):
        def options(self) -> dict[str, int]:
            return {"by": self.by}

    assert construction(WithOptions(by=2), {"by": 9}) == {"options": {"by": 2}}
    assert construction(Step(by=2), {"by": 2}) == {"arguments": {"by": 2}}
    assert construction(Step(by=2), {}) == {"fields": {"by": 2, "steps": 20}}
    big = Step()
    big.data = list(range(1000))  # type: ignore[attr-defined]
    got = recorded(construction(big, {}))
    assert isinstance(got, str) and got.startswith("sha256:") and len(got) < SHOWN
    assert got == recorded(construction(big, {}))  # deterministic: no memory addresses
