"""The README's examples must keep working."""

import re
import shlex
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
