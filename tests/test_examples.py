"""The examples in examples/ run on the simulated model and do what they say."""

from __future__ import annotations

import importlib.util
import json
import runpy
import sys
from pathlib import Path
from types import ModuleType

import pytest

import unerring
from tests.helpers import run_row
from unerring.core.flags import Flag
from unerring.voting.step import judge

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and type hints resolve through it
    spec.loader.exec_module(module)
    return module


def test_extract_records_runs_and_prints_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # wherever the default store is, it is here
    monkeypatch.setattr(sys, "argv", ["extract_records.py"])
    runpy.run_path(str(EXAMPLES / "extract_records.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "completed errors: 0"
    ex = load("extract_records")
    assert [json.loads(x) for x in lines[1:]] == list(ex.TRUTH)


def test_extract_records_votes_by_canonical_json_and_resumes_from_its_json_state(
    tmp_path: Path,
) -> None:
    ex = load("extract_records")
    p = ex.ExtractRecords()
    state = p.initial_state()
    spellings = [
        '{"name": "Ada Lovelace", "email": "ada@analytical.org", "year": 1843}',
        'Record: {"year":1843.0,"email":"ada@analytical.org","name":"Ada Lovelace"}',
        '{\n  "email": "ada@analytical.org",\n  "name": "Ada Lovelace",\n  "year": 1843\n}',
    ]
    judged = [judge(p, state, s) for s in spellings]
    assert len({j[0] for j in judged if not isinstance(j, Flag)}) == 1  # one vote
    other = judge(
        p, state, '{"name": "Ada Lovelace", "email": "ada@analytical.org", "year": "1843"}'
    )
    assert other is Flag.INVALID  # a year written as a string never votes

    # a run stopped after two steps journals its tuple of dicts as plain JSON, and a
    # resume (a fresh process object) goes on from it to the same records
    db = str(tmp_path / "runs.db")
    budget = unerring.Budget(max_samples=6)
    first = unerring.run(
        ex.ExtractRecords(), model="sim:error=0", k=3, store=db, run_id="r", budget=budget
    )
    assert first.outcome.status == "stopped"
    first.store.close()
    saved = run_row(tmp_path / "runs.db", "r")["state"]
    assert json.loads(saved) == list(ex.TRUTH[:2])
    assert p.load_state(saved) == ex.TRUTH[:2]
    done = unerring.run(ex.ExtractRecords(), model="sim:error=0", k=3, store=db, run_id="r")
    assert done.outcome.status == "completed"
    assert done.outcome.state == ex.TRUTH
