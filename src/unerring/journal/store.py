"""The SQLite store: opening safely, runs, attempts, and reading records back."""

from __future__ import annotations

import heapq
import json
import os
import sqlite3
import stat
import time
import uuid
import zlib
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unerring.journal.schema import APPLICATION_ID, SCHEMA_VERSION, migrate

MEMORY = ":memory:"
DEFAULT_STORE = os.path.join(".unerring", "runs.db")
_HEADER = b"SQLite format 3\x00"


class StoreError(Exception):
    """The store cannot be used as asked; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    run_id: str
    task: str
    config: dict[str, Any]
    status: str
    reason: str
    steps_total: int | None
    next_step: int
    state: str | None
    stats: dict[str, Any]
    created: float
    updated: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        return cls(
            id=row["id"],
            run_id=row["run_id"],
            task=row["task"],
            config=json.loads(row["config"]),
            status=row["status"],
            reason=row["reason"],
            steps_total=row["steps_total"],
            next_step=row["next_step"],
            state=row["state"],
            stats=json.loads(row["stats"]),
            created=row["created"],
            updated=row["updated"],
        )


def _check_file(path: Path) -> int:
    """Read the header bytes (never writing) and return the schema version, 0 if empty."""
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except OSError as e:
        raise StoreError(f"cannot read store {path}: {e.strerror}") from None
    if not header:
        return 0
    if len(header) < 100 or not header.startswith(_HEADER):
        raise StoreError(
            f"{path} is not an unerring store (not an SQLite database); "
            "pass --store with another path"
        )
    app_id = int.from_bytes(header[68:72], "big")
    version = int.from_bytes(header[60:64], "big")
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"{path} is an SQLite database that unerring did not create; it was not "
            "touched; pass --store with another path"
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer unerring (schema v{version}; this version "
            f"reads up to v{SCHEMA_VERSION}); upgrade unerring to use it"
        )
    return version


def is_read_only(path: Path) -> bool:
    """No write permission bit set (honoured even for root), or not writable by us."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) or not os.access(path, os.W_OK)


def _connect(
    uri: str, *, read_only: bool = False, sync: bool = False, max_pages: int | None = None
) -> sqlite3.Connection:
    conn = sqlite3.connect(
        uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10.0
    )
    conn.row_factory = sqlite3.Row
    if max_pages is not None:
        # a size cap per connection: writes past it fail with SQLITE_FULL, as on a full disk
        conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
    if not read_only:
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a committed transaction survives a process crash (kill -9);
        # FULL adds an fsync per commit, for OS crashes and power loss.
        conn.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
    return conn


class Store:
    """One journal file (or one in-memory database shared by this process's connections).

    `max_pages` caps the database at that many pages on every connection this store opens
    (SQLite's max_page_count): a write past it fails as a full disk would.
    """

    def __init__(self, path: str, *, read_only: bool = False, max_pages: int | None = None) -> None:
        self.path = path
        self.read_only = read_only
        self.max_pages = max_pages
        self.memory = path == MEMORY
        if self.memory:
            self.uri = f"file:unerring-{uuid.uuid4().hex}?mode=memory&cache=shared"
            self.conn = _connect(self.uri, max_pages=max_pages)
            migrate(self.conn, 0)
            self.version = SCHEMA_VERSION
            return
        p = Path(path)
        exists = p.exists()
        if exists and p.is_dir():
            raise StoreError(f"--store {path} is a directory; give a file path")
        version = _check_file(p) if exists else 0
        # the schema the file has once open: a read-only store is never migrated
        self.version = version if read_only else SCHEMA_VERSION
        if read_only:
            if not exists:
                raise StoreError(f"no store at {path} (runs are kept where --store points)")
            self.uri = f"file:{p.resolve()}?mode=ro"
        else:
            if exists and is_read_only(p):
                raise StoreError(
                    f"store {path} is read-only; nothing was written; make it writable "
                    "or pass --store with another path"
                )
            if not exists:
                try:
                    p.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise StoreError(f"cannot create {p.parent}: {e.strerror}") from None
            self.uri = f"file:{p.resolve()}"
        try:
            self.conn = _connect(self.uri, read_only=read_only, max_pages=max_pages)
            # touch the schema and the runs table: a corrupted file fails here, unchanged
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if version:
                self.conn.execute("SELECT count(*) FROM runs").fetchone()
            if not read_only and version < SCHEMA_VERSION:
                # migrate with a rollback journal, so that the header (application_id,
                # user_version) lands in the main file at once: in WAL mode it would wait in
                # the -wal file for a checkpoint, and a kill -9 before that would leave a
                # main file whose header says "not ours" (and "schema v0") to the next open
                self.conn.execute("PRAGMA journal_mode=DELETE")
                migrate(self.conn, version)
                self.conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"{path} is corrupted or unreadable ({e}); it was not modified"
            ) from None

    def connect(self, *, sync: bool = False) -> sqlite3.Connection:
        """A second connection to the same store (for the writer thread)."""
        return _connect(self.uri, read_only=self.read_only, sync=sync, max_pages=self.max_pages)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one committed state, while another process goes on writing."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    # -- runs -----------------------------------------------------------------------------
    def create_run(
        self, run_id: str, task: str, config: dict[str, Any], steps_total: int | None
    ) -> RunRecord:
        now = time.time()
        try:
            self.conn.execute(
                "INSERT INTO runs (run_id, task, config, status, steps_total, created, updated)"
                " VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (run_id, task, json.dumps(config, sort_keys=True), steps_total, now, now),
            )
        except sqlite3.IntegrityError:
            raise StoreError(f"a run named {run_id!r} already exists in {self.path}") from None
        except sqlite3.OperationalError as e:
            raise StoreError(f"cannot write to store {self.path}: {e}") from None
        run = self.get_run(run_id)
        assert run is not None
        return run

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self.conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else RunRecord.from_row(row)

    def list_runs(self) -> list[RunRecord]:
        rows = self.conn.execute("SELECT * FROM runs ORDER BY created").fetchall()
        return [RunRecord.from_row(r) for r in rows]

    def set_status(self, run: RunRecord, status: str, reason: str = "") -> None:
        self.conn.execute(
            "UPDATE runs SET status = ?, reason = ?, updated = ? WHERE id = ?",
            (status, reason, time.time(), run.id),
        )

    def begin_attempt(self, run: RunRecord) -> int:
        row = self.conn.execute(
            "SELECT coalesce(max(attempt), 0) + 1 FROM attempts WHERE run = ?", (run.id,)
        ).fetchone()
        attempt = int(row[0])
        self.conn.execute(
            "INSERT INTO attempts (run, attempt, started, first_step, status, pid)"
            " VALUES (?, ?, ?, ?, 'running', ?)",
            (run.id, attempt, time.time(), run.next_step, os.getpid()),
        )
        self.conn.execute(
            "UPDATE runs SET status = 'running', reason = '', updated = ? WHERE id = ?",
            (time.time(), run.id),
        )
        return attempt

    def end_attempt(self, run: RunRecord, attempt: int, status: str, reason: str) -> None:
        now = time.time()
        self.conn.execute(
            "UPDATE attempts SET ended = ?, status = ?, reason = ? WHERE run = ? AND attempt = ?",
            (now, status, reason, run.id, attempt),
        )
        self.set_status(run, status, reason)

    def attempts(self, run: RunRecord) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT * FROM attempts WHERE run = ? ORDER BY attempt", (run.id,)
        ).fetchall()
        return [dict(r) for r in rows]

    # -- records --------------------------------------------------------------------------
    def decisions(self, run: RunRecord, start: int = 0) -> Iterator[dict[str, Any]]:
        """Every decision from step `start` in step order, streamed (constant memory).

        Noteworthy steps have a row of their own; runs of plain steps are packed in blocks
        (see journal.writer); both come back here in one shape.
        """
        full = self.conn.execute(
            "SELECT * FROM decisions WHERE run = ? AND step >= ? ORDER BY step", (run.id, start)
        )
        blocks = self.conn.execute(
            "SELECT * FROM decision_blocks WHERE run = ? AND last_step >= ? ORDER BY first_step",
            (run.id, start),
        )
        rows = (_decision_dict(r) for r in full)
        unpacked = (d for b in blocks for d in unpack_block(b) if d["step"] >= start)
        yield from heapq.merge(rows, unpacked, key=lambda d: int(d["step"]))

    def samples(self, run: RunRecord) -> Iterator[sqlite3.Row]:
        cur = self.conn.execute("SELECT * FROM samples WHERE run = ? ORDER BY step, idx", (run.id,))
        yield from cur

    def transport_failures(self, run: RunRecord) -> Iterator[sqlite3.Row]:
        cur = self.conn.execute(
            "SELECT * FROM transport_failures WHERE run = ? ORDER BY time", (run.id,)
        )
        yield from cur

    def count_decisions(self, run: RunRecord) -> int:
        full = self.conn.execute(
            "SELECT count(*) FROM decisions WHERE run = ?", (run.id,)
        ).fetchone()[0]
        packed = self.conn.execute(
            "SELECT coalesce(sum(last_step - first_step + 1 - coalesce(length(holes), 0) / 4),"
            " 0) FROM decision_blocks WHERE run = ?",
            (run.id,),
        ).fetchone()[0]
        return int(full) + int(packed)

    @property
    def _holes(self) -> str:
        # blocks have had holes since schema v4; an older store read as is has none
        return "holes" if self.version >= 4 else "NULL AS holes"

    def block_columns(self, run: RunRecord) -> Iterator[BlockColumns]:
        """The run's plain decisions, one packed block at a time, as columns (in step order).

        With `noteworthy_decisions` this covers every decision once, without building a
        dict per step: what aggregates over a million steps need.
        """
        cur = self.conn.execute(
            f"SELECT first_step, last_step, data, {self._holes} FROM decision_blocks"
            " WHERE run = ? ORDER BY first_step",
            (run.id,),
        )
        for row in cur:
            yield block_columns(row)

    def decision_values(self, run: RunRecord, column: str) -> Iterator[tuple[int, Any]]:
        """(step, value) of one column ("winner" or "elapsed") for every decision, in step
        order: what a replay or a clock needs, without a dict per step."""
        if column not in ("winner", "elapsed"):
            raise ValueError(f"decision_values reads winner or elapsed, not {column!r}")
        full = self.conn.execute(
            f"SELECT step, {column} FROM decisions WHERE run = ? ORDER BY step", (run.id,)
        )
        rows = (tuple(r) for r in full)
        packed: Iterator[tuple[int, Any]]
        if column == "winner":
            blocks = self.conn.execute(
                f"SELECT first_step, last_step, {self._holes}, winners FROM decision_blocks"
                " WHERE run = ? ORDER BY first_step",
                (run.id,),
            )
            packed = (
                pair
                for b in blocks
                for pair in zip(
                    _block_steps(b),
                    zlib.decompress(b["winners"]).decode().split(BLOCK_SEPARATOR),
                    strict=True,
                )
            )
        else:
            packed = (
                pair
                for c in self.block_columns(run)
                for pair in zip(_block_steps(c), (e / 1e6 for e in c.elapsed_us), strict=True)
            )
        # steps are unique across the two streams: tuples never compare their values
        yield from heapq.merge(rows, packed)

    def noteworthy_decisions(self, run: RunRecord) -> Iterator[dict[str, Any]]:
        """The decisions with a row of their own (contested, flagged, rejected, undecided),
        in step order, without their texts (winner, features)."""
        cur = self.conn.execute(
            "SELECT step, votes, samples, surplus, flags, prompt_tokens, completion_tokens,"
            " cost, elapsed, undecided, correct FROM decisions WHERE run = ? ORDER BY step",
            (run.id,),
        )
        for row in cur:
            yield dict(row)


BLOCK_SEPARATOR = "\x1e"


def _decision_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d.pop("run", None)
    return d


# A block's numbers, column after column, as int32 (then float64 for cost, only when some
# step cost anything): array packing is C-speed, where JSON of the same numbers was the
# writer's largest cost. Winners are zlib-compressed text joined by BLOCK_SEPARATOR.
_INT_COLUMNS = ("samples", "surplus", "prompt_tokens", "completion_tokens", "elapsed_us", "correct")


def pack_holes(first: int, holes: list[int]) -> bytes | None:
    """The steps inside a block that are not in it, as int32 offsets (None if none)."""
    return array("i", [h - first for h in holes]).tobytes() if holes else None


def pack_block(
    samples: list[int],
    surplus: list[int],
    prompt: list[int],
    completion: list[int],
    elapsed_us: list[int],
    correct: list[int],
    cost: list[float],
) -> bytes:
    """A block's numbers; a plain step is unanimous and unflagged: votes = samples - surplus.

    `correct`: 1 right, 0 wrong, -1 not checked. A step of over 35 minutes saturates.
    """
    ints = array("i", samples)
    for column in (surplus, prompt, completion):
        ints.extend(column)
    if elapsed_us and max(elapsed_us) > _INT32_MAX:
        elapsed_us = [min(e, _INT32_MAX) for e in elapsed_us]
    ints.extend(elapsed_us)
    ints.extend(correct)
    blob = ints.tobytes()
    return blob + array("d", cost).tobytes() if any(cost) else blob


_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class BlockColumns:
    """The plain decisions of one decision_blocks row, column by column (C arrays).

    For aggregates over many steps (reports): no dict per step, no winner texts.
    `holes`: offsets from first_step of the steps in the range that are not in the block.
    """

    first_step: int
    last_step: int
    holes: array[int]
    samples: array[int]
    surplus: array[int]
    prompt_tokens: array[int]
    completion_tokens: array[int]
    elapsed_us: array[int]
    correct: array[int]  # 1 right, 0 wrong, -1 not checked
    cost: array[float]  # empty when no step of the block cost anything


def block_columns(row: sqlite3.Row) -> BlockColumns:
    """Decode a decision_blocks row's numbers (the winners are not read)."""
    first, last = int(row["first_step"]), int(row["last_step"])
    holes = array("i")
    # steps in the range that have their own row in `decisions` (a v1-3 store has none;
    # `in row` would look at a Row's values, not its column names)
    if "holes" in row.keys() and row["holes"]:  # noqa: SIM118
        holes.frombytes(row["holes"])
    n = last - first + 1 - len(holes)
    ints = array("i")
    blob = row["data"]
    width = ints.itemsize * n * len(_INT_COLUMNS)
    ints.frombytes(blob[:width])
    costs = array("d")
    costs.frombytes(blob[width:])
    col = {name: ints[i * n : (i + 1) * n] for i, name in enumerate(_INT_COLUMNS)}
    return BlockColumns(
        first_step=first,
        last_step=last,
        holes=holes,
        samples=col["samples"],
        surplus=col["surplus"],
        prompt_tokens=col["prompt_tokens"],
        completion_tokens=col["completion_tokens"],
        elapsed_us=col["elapsed_us"],
        correct=col["correct"],
        cost=costs,
    )


def _block_steps(block: sqlite3.Row | BlockColumns) -> list[int]:
    """The steps a block holds: its range less its holes."""
    if isinstance(block, BlockColumns):
        first, last, holes = block.first_step, block.last_step, block.holes
    else:
        first, last = int(block["first_step"]), int(block["last_step"])
        holes = array("i")
        if block["holes"]:
            holes.frombytes(block["holes"])
    if not holes:
        return list(range(first, last + 1))
    skip = set(holes)
    return [first + o for o in range(last - first + 1) if o not in skip]


def unpack_block(row: sqlite3.Row) -> Iterator[dict[str, Any]]:
    """The decisions packed in one decision_blocks row, as decision rows."""
    winners = zlib.decompress(row["winners"]).decode().split(BLOCK_SEPARATOR)
    c = block_columns(row)
    first = c.first_step
    skip = set(c.holes)
    steps = [first + o for o in range(c.last_step - first + 1) if o not in skip]
    for i, winner in enumerate(winners):
        correct = c.correct[i]
        yield {
            "step": steps[i],
            "winner": winner,
            "votes": f"[{c.samples[i] - c.surplus[i]}]",
            "samples": c.samples[i],
            "surplus": c.surplus[i],
            "flags": None,
            "prompt_tokens": c.prompt_tokens[i],
            "completion_tokens": c.completion_tokens[i],
            "cost": c.cost[i] if c.cost else 0.0,
            "elapsed": c.elapsed_us[i] / 1e6,
            "undecided": 0,
            "correct": None if correct < 0 else correct,
            "features": None,
        }
