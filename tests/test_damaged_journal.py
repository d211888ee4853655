"""A damaged journal is refused in one line (exit 2), never exported, reported or analysed
wrong with exit code 0: SQLite's quick check before reading, and every record read checked
for what the writer always writes."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from array import array
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import cli, one_line_error

MODEL = "sim:error=0.1,seed=3"
READERS = (("export", "d"), ("failures", "d"))


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("damaged") / "good.db"
    res = cli("run", "hanoi", "--disks", "8", "--model", MODEL, "--store", str(db),
              "--run-id", "d", "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the whole journal in the main file
    conn.close()
    return db


def _copy(journal: Path, folder: Path) -> Path:
    db = folder / "copy.db"
    shutil.copy(journal, db)
    return db


def _refused(db: Path, *words: str) -> None:
    for args in READERS:
        res = cli(*args, "--store", str(db))
        assert res.returncode == 2, (args, res.returncode, res.stderr)
        line = one_line_error(res.stderr)
        assert "damaged" in line and all(w in line for w in words), (args, line)


def test_a_damaged_page_is_refused_before_anything_is_read(journal: Path, tmp_path: Path) -> None:
    db = _copy(journal, tmp_path)
    conn = sqlite3.connect(db)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'decisions'").fetchone()
    conn.close()
    data = bytearray(db.read_bytes())
    data[(root[0] - 1) * page] = 0x07  # not a b-tree page type
    db.write_bytes(bytes(data))
    _refused(db, "btreeInitPage")
    res = cli("export", "d", "--store", str(db))
    assert res.stdout == ""  # refused before the first row
    report = tmp_path / "r.html"
    res = cli("report", "d", "--store", str(db), "-o", str(report))
    assert res.returncode == 2 and "damaged" in one_line_error(res.stderr)
    assert not report.exists()


def _negative_votes(conn: sqlite3.Connection) -> int:
    """A plain step of a block with more surplus samples than samples: negative votes."""
    first, last, holes, data = conn.execute(
        "SELECT first_step, last_step, holes, data FROM decision_blocks LIMIT 1"
    ).fetchone()
    n = last - first + 1 - len(holes or b"") // 4
    ints = array("i")
    ints.frombytes(data[: 4 * 6 * n])
    ints[n] = ints[0] + 3  # surplus of the first step (column 2) past its samples
    blob = ints.tobytes() + data[4 * 6 * n :]
    return conn.execute(
        "UPDATE decision_blocks SET data = ? WHERE first_step = ?", (blob, first)
    ).rowcount


FIRST_ROW = "(SELECT min(step) FROM decisions)"


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (_negative_votes, ("surplus",)),
        ("UPDATE decision_blocks SET data = substr(data, 2)", ("do not fit",)),
        ("UPDATE decision_blocks SET winners = x'00ff00ff'", ("do not decode",)),
        (f"UPDATE decisions SET votes = '[3, 1' WHERE step = {FIRST_ROW}", ("not JSON",)),
        (f"UPDATE decisions SET votes = '[300, 1]' WHERE step = {FIRST_ROW}", ("[300, 1]",)),
        (f"DELETE FROM decisions WHERE step = {FIRST_ROW}", ("was due",)),
        ("UPDATE runs SET config = '{\"task\": '", ("not JSON",)),
    ],
)
def test_records_that_the_writer_never_writes_are_refused(
    journal: Path, tmp_path: Path, damage: str | Callable[[sqlite3.Connection], int],
    words: tuple[str, ...],
) -> None:  # fmt: skip
    db = _copy(journal, tmp_path)
    conn = sqlite3.connect(db, isolation_level=None)
    changed = damage(conn) if callable(damage) else conn.execute(damage).rowcount
    conn.close()
    assert changed > 0
    _refused(db, *words)


def test_a_renamed_column_is_refused(journal: Path, tmp_path: Path) -> None:
    db = _copy(journal, tmp_path)
    conn = sqlite3.connect(db, isolation_level=None)
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_master SET sql = replace(sql, 'undecided', 'undecidex')"
        " WHERE name = 'decisions'"
    )
    conn.execute(f"PRAGMA schema_version = {version + 1}")
    conn.close()
    _refused(db, "table decisions does not have the journal's columns")


def _sound(stdout: str, steps: int) -> bool:
    """An export that holds every step once, each with votes its samples can pay for."""
    rows = [json.loads(line) for line in stdout.splitlines()]
    if [r["step"] for r in rows] != list(range(steps)):
        return False
    return all(
        isinstance(r["votes"], list)
        and min(r["votes"]) >= 0
        and sum(r["votes"]) <= r["samples"]
        and 0 <= r["surplus"] < r["samples"]
        for r in rows
    )


def test_random_bit_flips_are_refused_or_export_a_sound_run(journal: Path, tmp_path: Path) -> None:
    # what the issue saw: 8 bits flipped at random exported missing decisions and negative
    # vote counts with exit code 0. Now each export is refused in one line, or holds every
    # step once with counts that add up (a flip to another plausible value, a token count
    # or a character of a winner, cannot be told from the truth without checksums)
    rng = random.Random(24)
    good = journal.read_bytes()
    refused = 0
    for trial in range(30):
        data = bytearray(good)
        for _ in range(8):
            data[rng.randrange(100, len(data))] ^= 1 << rng.randrange(8)
        db = tmp_path / f"flip-{trial}.db"
        db.write_bytes(bytes(data))
        res = cli("export", "d", "--store", str(db))
        assert res.returncode in (0, 2), (trial, res.returncode, res.stderr)
        if res.returncode == 2:
            one_line_error(res.stderr)
            refused += 1
        else:
            assert _sound(res.stdout, 255), trial
        db.unlink()
    assert refused >= 10  # most flips land in records (the file is mostly records)
