"""The README's examples must keep working."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_define_your_own_process_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README lost its Python example"
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "readme_example"})
    status, k, errors = capsys.readouterr().out.splitlines()[0].split()
    assert status == "completed"
    assert int(k) >= 3
    assert errors == "0"


def test_quick_start_names_the_two_make_targets() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    makefile = (README.parent / "Makefile").read_text()
    assert "unerring run hanoi --disks 10 --model sim:error=0.01" in makefile
