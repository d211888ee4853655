"""The README's examples must keep working."""

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from unerring.cli.main import main

README = Path(__file__).resolve().parent.parent / "README.md"


def _example(name: str) -> str:
    """The README's Python block that defines `name`."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    found = [b for b in blocks if f"class {name}(" in b]
    assert found, f"README lost its {name} example"
    return str(found[0])


def test_define_your_own_process_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(_example("RunningSum"), "README.md", "exec"), {"__name__": "readme_example"})
    status, k, errors = capsys.readouterr().out.splitlines()[0].split()
    assert status == "completed"
    assert int(k) >= 3
    assert errors == "0"


def test_own_graph_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(_example("TreeSum"), "README.md", "exec"), {"__name__": "readme_graph"})
    status, nodes, correct = capsys.readouterr().out.splitlines()[0].split()
    assert (status, nodes, correct) == ("completed", "7", "True")


def test_quick_start_names_the_two_make_targets() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    makefile = (README.parent / "Makefile").read_text()
    assert "unerring run hanoi --disks 10 --model sim:error=0.01" in makefile


def test_the_parquet_export_example_reads_into_pandas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = README.read_text()
    shell = next(b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if "parquet" in b)
    code = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "parquet" in b)
    monkeypatch.chdir(tmp_path)
    for line in shell.strip().splitlines():
        command = shlex.split(line)
        assert command[0] == "unerring"
        assert main(command[1:]) == 0, line
    capsys.readouterr()
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_parquet"})
    rows, mean, contested = capsys.readouterr().out.split()
    assert int(rows) == 255  # 8 disks: 2^8 - 1 steps
    assert float(mean) >= 2 and int(contested) > 0


def test_the_dataset_walk_through_runs_from_the_repository_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The "Your own process" walk-through, command by command, then its Python half, in a
    copy of the repository's examples (its commands name examples/ relative paths)."""
    text = README.read_text()
    shell = next(b for b in re.findall(r"```sh\n(.*?)```", text, re.S) if "examples/qa.py" in b)
    code = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "examples.qa" in b)
    shutil.copytree(README.parent / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    outputs: list[dict[str, object]] = []
    for line in shell.strip().splitlines():
        command = shlex.split(line)
        assert command[0] == "unerring"
        assert main(command[1:]) == 0, line
        out = capsys.readouterr().out
        if "--what" in command:
            outputs = [json.loads(row) for row in out.splitlines()]
    lines = (tmp_path / "examples" / "capitals.jsonl").read_text().splitlines()
    gold = [json.loads(row)["answer"] for row in lines]
    assert [o["output"] for o in outputs] == gold
    assert all(o["status"] == "completed" and o["correct"] is True for o in outputs)
    assert (tmp_path / "capitals.html").stat().st_size > 10_000
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_dataset"})
    first, *pairs = capsys.readouterr().out.splitlines()
    assert first.split() == ["completed", "0", str(len(gold))]
    assert [p.split(maxsplit=1)[1] for p in pairs] == gold
