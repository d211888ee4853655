"""A user's own process on the command line: `unerring run FILE.py:Class --set a=3` or
`--items data.jsonl`, resumed, shown, analysed and calibrated like a built-in task; bad
references and arguments refused in one line with nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli, decisions, item_decisions, kill_and_resume, one_line_error
from unerring.errors import UsageError

MODEL = "sim:error=0.05,seed=3"

# a chain that counts up by `a`, and an answer spelt one character per step: both define
# the simulation hooks (solve, render, wrong_answers) that the `sim:` model answers with
USER_MODULE = '''
from unerring import Flag, Process


class Count(Process[int, int]):
    name = "count"
    stop = ("\\n",)

    def __init__(self, a: int = 1, steps: int = 40) -> None:
        if steps < 1:
            raise ValueError("steps must be at least 1")
        self.a = a
        self.steps = steps

    def initial_state(self) -> int:
        return 0

    def done(self, state: int, step: int) -> bool:
        return step >= self.steps

    def prompt(self, state: int, step: int) -> str:
        return f"{state} + {self.a} = ? Answer with the number."

    def parse(self, text: str) -> int | Flag:
        try:
            return int(text.strip())
        except ValueError:
            return Flag.INVALID

    def advance(self, state: int, answer: int) -> int:
        return answer

    def check(self, state: int, step: int, answer: int) -> bool:
        return answer == state + self.a

    def total_steps(self) -> int:
        return self.steps

    def features(self, state: int, step: int) -> dict[str, int]:
        return {"parity": state % 2}

    def solve(self, state: int, step: int) -> int:
        return state + self.a

    def render(self, answer: int) -> str:
        return str(answer)

    def wrong_answers(self, state: int, step: int, answer: int) -> list[int]:
        return [answer + 1, answer - 1, answer + 10]


class Spell(Process[str, str]):
    """Spell the answer to a question, one character per step."""

    name = "spell"
    stop = ("\\n",)

    def __init__(self, question: str, answer: str) -> None:
        if not answer:
            raise ValueError("answer must not be empty")
        self.question = question
        self.answer = answer

    def initial_state(self) -> str:
        return ""

    def done(self, state: str, step: int) -> bool:
        return len(state) >= len(self.answer)

    def prompt(self, state: str, step: int) -> str:
        return f"{self.question} So far: {state!r}. Next character?"

    def parse(self, text: str) -> str | Flag:
        text = text.strip()
        return text if len(text) == 1 else Flag.INVALID

    def advance(self, state: str, answer: str) -> str:
        return state + answer

    def check(self, state: str, step: int, answer: str) -> bool:
        return answer == self.answer[len(state)]

    def total_steps(self) -> int:
        return len(self.answer)

    def solve(self, state: str, step: int) -> str:
        return self.answer[len(state)]

    def render(self, answer: str) -> str:
        return answer

    def wrong_answers(self, state: str, step: int, answer: str) -> list[str]:
        return [c for c in "xyz" if c != answer]


class NotAProcess:
    def __init__(self, a: int = 1) -> None:
        self.a = a
'''


@pytest.fixture
def module(tmp_path: Path) -> Path:
    path = tmp_path / "user_proc.py"
    path.write_text(USER_MODULE)
    return path


def _ok(*args: str) -> dict[str, Any]:
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def _run_config(db: Path, run_id: str) -> dict[str, Any]:
    from unerring.journal.store import Store

    store = Store(str(db), read_only=True)
    try:
        run = store.get_run(run_id)
        assert run is not None
        return dict(run.config)
    finally:
        store.close()


def test_run_a_file_class_with_set_records_the_reference(module: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    ref = f"{module}:Count"
    s = _ok("run", ref, "--set", "a=3", "--set", "steps=12", "--store", str(db),
            "--run-id", "r", "--model", MODEL, "--json")  # fmt: skip
    assert s["status"] == "completed" and s["steps_decided"] == 12 and s["errors"] == 0
    cfg = _run_config(db, "r")
    assert cfg["task"] == ref
    assert cfg["task_options"] == {"a": 3, "steps": 12}
    assert cfg["task_source"] == {"reference": ref, "path": str(module.resolve())}
    assert cfg["construction"] == {"arguments": {"a": 3, "steps": 12}}


def test_a_relative_file_reference_resumes_from_another_folder(
    module: Path, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    res = cli("run", "user_proc.py:Count", "--set", "steps=30", "--store", str(db),
              "--run-id", "rel", "--model", MODEL, "--max-samples", "20", "--quiet",
              cwd=tmp_path)  # fmt: skip
    assert res.returncode == 1, res.stderr  # stopped by its budget: resumable
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = cli("resume", "rel", "--store", str(db), "--quiet", cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    assert len(decisions(db, "rel")) == 30


def test_killed_and_resumed_ends_as_an_uninterrupted_run(module: Path, tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    ref = f"{module}:Count"
    model = f"{MODEL},latency=2"
    common = ["--store", str(db), "--quiet"]
    first = ["run", ref, "--set", "a=3", "--set", "steps=300", "--run-id", "R",
             "--model", model, "--json", *common]  # fmt: skip
    kill_and_resume(first, ["resume", "R", *common], tmp_path, kills=3, seed=7)
    ref_db = tmp_path / "ref.db"
    s = _ok("run", ref, "--set", "a=3", "--set", "steps=300", "--run-id", "R",
            "--model", MODEL, "--store", str(ref_db), "--json")  # fmt: skip
    assert s["status"] == "completed"
    got, want = decisions(db, "R"), decisions(ref_db, "R")
    assert [d["step"] for d in got] == list(range(300))
    assert got == want


def _qa_items(tmp_path: Path) -> Path:
    items = tmp_path / "data.jsonl"
    rows = [
        {"id": "q1", "question": "Capital of France?", "answer": "Paris"},
        {"id": "q2", "question": "2 + 2?", "answer": "4"},
        {"question": "Colour of the sky?", "answer": "blue"},
    ]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return items


def test_items_of_keyword_arguments_then_show_failures_and_notes(
    module: Path, tmp_path: Path
) -> None:
    db = tmp_path / "b.db"
    items = _qa_items(tmp_path)
    s = _ok("run", f"{module}:Spell", "--items", str(items), "--store", str(db),
            "--run-id", "qa", "--model", "sim:error=0.3,seed=5", "--json")  # fmt: skip
    assert s["status"] == "completed" and s["items_completed"] == 3
    got = item_decisions(db, "qa")
    assert sorted(got) == ["3", "q1", "q2"]  # "id" names an item, else its line number
    assert "".join(d["winner"].strip('"') for d in got["q1"]) == "Paris"
    res = cli("show", "qa", "--store", str(db))
    assert res.returncode == 0, res.stderr
    assert "Spell" in res.stdout
    res = cli("failures", "qa", "--store", str(db), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["runs"][0]["task"] == f"{module}:Spell"
    res = cli("notes", "learn", "qa", "--store", str(db), "--model", "sim:error=0.3,seed=5",
              "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["notebook"]["name"] == "Spell"


def test_notes_learn_on_a_user_chain(module: Path, tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    _ok("run", f"{module}:Count", "--set", "steps=60", "--store", str(db), "--run-id", "nl",
        "--model", "sim:error=0.3,seed=2", "--json")  # fmt: skip
    res = cli("notes", "learn", "nl", "--store", str(db), "--model", "sim:error=0.3,seed=2",
              "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["notebook"]["name"] == "Count"


def test_plan_calibrate_a_user_class(module: Path) -> None:
    out = _ok("plan", "--calibrate", f"{module}:Count", "--set", "a=2", "--model",
              "sim:error=0.1,seed=1", "--samples", "50", "--json")  # fmt: skip
    assert out["task"] == f"{module}:Count"
    assert 0.8 < out["p"] < 0.98


def test_plan_calibrate_a_user_class_on_a_dataset_file(module: Path, tmp_path: Path) -> None:
    items = _qa_items(tmp_path)
    out = _ok("plan", "--calibrate", f"{module}:Spell", "--items", str(items), "--model",
              "sim:error=0.1,seed=1", "--samples", "60", "--json")  # fmt: skip
    assert out["task"] == f"{module}:Spell"
    assert out["steps_sampled"] > 3  # steps of all three items, not one's
    res = cli("plan", "--items", str(items), "--error-rate", "0.1", "--steps", "5")
    assert res.returncode == 2 and "--calibrate" in one_line_error(res.stderr)


def test_plan_calibrate_a_user_class_writes_its_reliability_table(
    module: Path, tmp_path: Path
) -> None:
    table = tmp_path / "table.json"
    out = _ok("plan", "--calibrate", f"{module}:Count", "--set", "a=2", "--model",
              "sim:error=0.1,seed=1", "--model", "sim:error=0.3,seed=2", "--samples", "60",
              "--save-reliability", str(table), "--json")  # fmt: skip
    assert out["reliability_file"] == str(table)
    assert json.loads(table.read_text())["task"] == f"{module}:Count"


def test_a_reference_that_no_longer_imports_is_one_line(module: Path, tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    res = cli("run", f"{module}:Count", "--set", "steps=30", "--store", str(db),
              "--run-id", "gone", "--model", MODEL, "--max-samples", "10", "--quiet")  # fmt: skip
    assert res.returncode == 1, res.stderr
    module.unlink()
    res = cli("resume", "gone", "--store", str(db))
    assert res.returncode == 2
    assert "no such file" in one_line_error(res.stderr)
    res = cli("show", "gone", "--store", str(db))
    assert res.returncode == 0, res.stderr
    res = cli("failures", "gone", "--store", str(db))  # goes on without features
    assert res.returncode == 0, res.stderr


def _bad(tmp_path: Path, *args: str, names: str) -> None:
    db = tmp_path / "bad.db"
    res = cli("run", *args, "--store", str(db), "--model", MODEL)
    assert res.returncode == 2, res.stderr
    line = one_line_error(res.stderr)
    assert names in line, line
    assert not db.exists(), line  # nothing written


def test_bad_references_are_one_line_and_write_nothing(module: Path, tmp_path: Path) -> None:
    _bad(tmp_path, f"{tmp_path}/missing.py:Count", names="no such file")
    _bad(tmp_path, "no_such_module_xyz:Count", names="no module named")
    broken = tmp_path / "broken.py"
    broken.write_text("class Count(:\n")
    _bad(tmp_path, f"{broken}:Count", names="syntax error")
    raising = tmp_path / "raising.py"
    raising.write_text("raise RuntimeError('boom at import')\n")
    _bad(tmp_path, f"{raising}:Count", names="boom at import")
    _bad(tmp_path, f"{module}:Nope", names="defines no 'Nope'")
    _bad(tmp_path, f"{module}:NotAProcess", names="is not a subclass of unerring.Process")
    _bad(tmp_path, f"{module}:Count", "--set", "b=1", names="takes no argument 'b'")
    _bad(tmp_path, f"{module}:Count", "--set", "steps=0", names="must be at least 1")
    _bad(tmp_path, f"{module}:Count", "--set", "oops", names="NAME=VALUE")
    _bad(tmp_path, f"{module}:Count", "--disks", "3", names="--disks")
    _bad(tmp_path, "hanoi", "--set", "disks=3", names="--set")
    _bad(tmp_path, f"{module}:Count", "--batch", "3", names="--items")
    _bad(tmp_path, f"{module}:Spell", names="Spell()")  # missing required arguments


def test_bad_items_lines_name_the_file_and_line(module: Path, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    ref = f"{module}:Spell"
    good = json.dumps({"question": "q", "answer": "a"})
    items.write_text(good + "\n" + json.dumps({"question": "q", "colour": "x"}) + "\n")
    _bad(tmp_path, ref, "--items", str(items), names=f"{items} line 2")
    _bad(tmp_path, ref, "--items", str(items), names="takes no argument 'colour'")
    items.write_text(good + "\n[1, 2]\n")
    _bad(tmp_path, ref, "--items", str(items), names=f"{items} line 2 is not a JSON object")
    items.write_text(good + "\n" + json.dumps({"question": "q", "answer": ""}) + "\n")
    _bad(tmp_path, ref, "--items", str(items), names=f"{items} line 2")
    _bad(tmp_path, ref, "--items", str(items), names="answer must not be empty")
    items.write_text(good + "\n" + json.dumps({"question": "q"}) + "\n")
    _bad(tmp_path, ref, "--items", str(items), names="line 2")


def test_a_module_reference_is_found_beside_the_user(module: Path, tmp_path: Path) -> None:
    res = cli("run", "user_proc:Count", "--set", "steps=5", "--model", MODEL, "--json",
              "--store", ":memory:", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["steps_decided"] == 5


def test_the_resolver_loads_a_recorded_reference(module: Path, tmp_path: Path) -> None:
    from unerring.tasks.registry import resolve

    config = {"task_source": {"reference": "x.py:Count", "path": str(module)},
              "task_options": {"a": 2}}  # fmt: skip
    made = resolve("x.py:Count", config).make({"steps": 3})
    assert type(made).__name__ == "Count" and made.options() == {}
    assert vars(made) == {"a": 2, "steps": 3}
    with pytest.raises(UsageError, match="no such file"):
        resolve("x.py:Count", {"task_source": {"reference": "x.py:C", "path": "/nope.py"}})
    assert os.path.isabs(config["task_source"]["path"])


def test_a_graph_subclass_by_reference_runs_and_resumes(tmp_path: Path) -> None:
    graph = tmp_path / "my_graph.py"
    graph.write_text("from unerring.tasks.sort import Sort\n\nclass MySort(Sort):\n    pass\n")
    db = tmp_path / "g.db"
    res = cli("run", f"{graph}:MySort", "--set", "numbers=6", "--store", str(db),
              "--run-id", "g", "--model", MODEL, "--max-samples", "8", "--quiet")  # fmt: skip
    assert res.returncode == 1, res.stderr
    s = _ok("resume", "g", "--store", str(db), "--json")
    ref_db = tmp_path / "ref.db"
    want = _ok("run", f"{graph}:MySort", "--set", "numbers=6", "--store", str(ref_db),
               "--run-id", "g", "--model", MODEL, "--json")  # fmt: skip
    assert s["status"] == "completed" and s["result_correct"] == want["result_correct"]
    assert item_decisions(db, "g") == item_decisions(ref_db, "g")
    assert _run_config(db, "g")["task_options"] == {"numbers": 6}
