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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from unerring import defaults

# defined with every other error; imported from here too
from unerring.errors import StoreBusy as StoreBusy
from unerring.errors import StoreError as StoreError
from unerring.errors import StoreRefused as StoreRefused
from unerring.journal.codec import (
    BlockColumns,
    DamagedRecord,
    NodeEnd,
    NodeEndsRow,
    block_columns,
    block_steps,
    block_winners,
    check_decision_row,
    unpack_block,
    unpack_holes,
)
from unerring.journal.filelock import try_lock, unlock
from unerring.journal.schema import APPLICATION_ID, SCHEMA_VERSION, migrate

MEMORY = ":memory:"
BUSY_TIMEOUT_S = 30.0
DEFAULT_STORE = defaults.STORE
_HEADER = b"SQLite format 3\x00"


def _json(text: str, what: str, name: str) -> Any:
    """A record's JSON column; text that is not JSON is a damaged file (the writer wrote
    JSON), named as such rather than failing as a parse error."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise DamagedRecord(f"{what} {name!r} holds a column that is not JSON") from None


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
    kind: str = "chain"  # chain: one item; batch: many items; graph: items are its nodes

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        return cls(
            id=row["id"],
            run_id=row["run_id"],
            task=row["task"],
            config=_json(row["config"], "run", row["run_id"]),
            status=row["status"],
            reason=row["reason"],
            steps_total=row["steps_total"],
            next_step=row["next_step"],
            state=row["state"],
            stats=_json(row["stats"], "run", row["run_id"]),
            created=row["created"],
            updated=row["updated"],
            kind=row["kind"],
        )

    @property
    def many_items(self) -> bool:
        """A batch or a graph: its decisions belong to many items deciding side by side,
        each counting its own steps from 0 (a chain's all belong to item 0)."""
        return self.kind != "chain"


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """One item of a run: a chain with its own options, status and resume point."""

    item: int  # its index in the run (0 for a single chain)
    item_id: str  # its name (a batch line's "id", else its line number from 1)
    options: dict[str, Any]
    status: str  # pending, completed, stopped or failed
    reason: str
    steps_total: int | None
    next_step: int
    state: str | None
    stats: dict[str, Any]
    # a graph's node: its parent's index, kind, input and deps (JSON), depth, output (JSON)
    parent: int | None = None
    kind: str | None = None
    input: str | None = None
    deps: str | None = None
    depth: int = 0
    output: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ItemRecord:
        return cls(
            item=row["item"],
            item_id=row["item_id"],
            options=_json(row["options"], "item", row["item_id"]),
            status=row["status"],
            reason=row["reason"],
            steps_total=row["steps_total"],
            next_step=row["next_step"],
            state=row["state"],
            stats=_json(row["stats"], "item", row["item_id"]),
            parent=row["parent"],
            kind=row["kind"],
            input=row["input"],
            deps=row["deps"],
            depth=row["depth"],
            output=row["output"],
        )


@dataclass(frozen=True, slots=True)
class _Header:
    version: int  # schema version, 0 for an empty file
    wal: bool  # in WAL mode (file format bytes 18-19)


def _check_file(path: Path) -> _Header:
    """Read the header bytes (never writing): the schema version and the journal mode."""
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except OSError as e:
        raise StoreRefused(f"cannot read store {path}: {e.strerror}") from None
    if not header:
        return _Header(0, wal=False)
    if len(header) < 100 or not header.startswith(_HEADER):
        raise StoreRefused(
            f"{path} is not an unerring store (not an SQLite database); "
            "pass --store with another path"
        )
    app_id = int.from_bytes(header[68:72], "big")
    version = int.from_bytes(header[60:64], "big")
    if app_id != APPLICATION_ID:
        raise StoreRefused(
            f"{path} is an SQLite database that unerring did not create; it was not "
            "touched; pass --store with another path"
        )
    if version > SCHEMA_VERSION:
        raise StoreRefused(
            f"{path} was written by a newer unerring (schema v{version}; this version "
            f"reads up to v{SCHEMA_VERSION}); upgrade unerring to use it"
        )
    return _Header(version, wal=header[18] == header[19] == 2)


def is_read_only(path: Path) -> bool:
    """No write permission bit set (honoured even for root), or not writable by us."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) or not os.access(path, os.W_OK)


def _busy(e: sqlite3.Error) -> bool:
    """Another connection holds a lock (SQLITE_BUSY or SQLITE_LOCKED, extended or not)."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "database is locked" in str(e) or "database table is locked" in str(e)


def store_error(path: str, e: sqlite3.DatabaseError, *, opening: bool = True) -> StoreError:
    """Name what went wrong opening (or, `opening` False, using) a store: busy, corrupted,
    or another reason (bad input at the open, a failure of the work after it)."""
    if _busy(e):
        return StoreBusy(
            f"store {path} is busy: another process kept it locked for over "
            f"{BUSY_TIMEOUT_S:g} s ({e}); nothing was changed; try again"
        )
    code = getattr(e, "sqlite_errorcode", None)
    if code is None or code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreRefused(f"{path} is corrupted or unreadable ({e}); it was not modified")
    if not opening:
        return StoreError(f"store {path} failed: {e}")
    return StoreRefused(f"cannot open store {path} ({e}); it was not modified")


def _journal_mode(conn: sqlite3.Connection, mode: str) -> None:
    """Switch the journal mode. The switch needs the file to itself and SQLite does not wait
    for that (no busy timeout), so wait here: another process may be reading the store."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            got = conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
        except sqlite3.OperationalError as e:
            if not _busy(e) or time.monotonic() > deadline:
                raise
            got = None
        if str(got).upper() == mode:
            return
        # a switch out of WAL that cannot get the file answers the old mode, not an error
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"database is locked (journal_mode={mode})")
        time.sleep(0.02)


def _connect(
    uri: str,
    *,
    read_only: bool = False,
    sync: bool = False,
    max_pages: int | None = None,
    wal: bool = True,
) -> sqlite3.Connection:
    # the timeout is SQLite's busy timeout: a statement waits that long for another
    # process's write transaction (each is short) before it fails with "database is locked"
    conn = sqlite3.connect(
        uri, uri=True, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
    )
    conn.row_factory = sqlite3.Row
    if max_pages is not None:
        # a size cap per connection: writes past it fail with SQLITE_FULL, as on a full disk
        conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
    if not read_only:
        if wal:
            conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a committed transaction survives a process crash (kill -9);
        # FULL adds an fsync per commit, for OS crashes and power loss.
        conn.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
    return conn


def folder_writable(folder: Path) -> bool:
    """Whether files can be made in the folder (not a read-only mount, not a folder whose
    permissions forbid it; root may write any folder of a writable mount)."""
    try:
        return os.access(folder, os.W_OK) and not os.statvfs(folder).f_flag & os.ST_RDONLY
    except OSError:
        return False


def _wal_holds_commits(p: Path) -> bool:
    try:
        return Path(f"{p}-wal").stat().st_size > 0
    except OSError:
        return False


def read_uri(p: Path, writable_folder: bool) -> str:
    """The URI that opens a store only to read it.

    SQLite reads a WAL store through a -shm file it makes beside the store at the first
    open: in a folder that cannot be written (a read-only mount or directory) there is
    none to make and the ordinary read-only open fails. No writer can make a -wal file
    there either, so when none holds commits the main file holds them all, and is read as
    immutable: no lock taken, no file made. In a folder that can be written, a writer
    may start at any moment and the ordinary open (which sees its commits) is the one."""
    uri = f"file:{p.resolve()}?mode=ro"
    if writable_folder or _wal_holds_commits(p):
        return uri
    return uri + "&immutable=1"


def _cannot_open(e: sqlite3.DatabaseError) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY)
    return "unable to open" in str(e)


def _make_parent(p: Path, path: str) -> None:
    """Only the default store's folder is made: a typo in --store must not grow a tree."""
    if p.parent.is_dir():
        return
    if path != DEFAULT_STORE:
        what = "is not a folder" if p.parent.exists() else "does not exist"
        raise StoreRefused(
            f"--store {path}: {p.parent} {what}; create the folder or pass --store with "
            "another path"
        )
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreRefused(f"cannot create {p.parent}: {e.strerror}") from None


class Store:
    """One journal file (or one in-memory database shared by this process's connections).

    `create`: make the file where there is none (a run does; what only adds to the runs
    in a store, such as learnt notes, does not). `max_pages` caps the database at that
    many pages on every connection this store opens (SQLite's max_page_count): a write
    past it fails as a full disk would.
    """

    def __init__(
        self,
        path: str,
        *,
        read_only: bool = False,
        max_pages: int | None = None,
        create: bool = True,
    ) -> None:
        # a graph run's packed node ends, decoded, by run: kept while the journal adds none
        self._ends: dict[int, tuple[tuple[int, int], dict[int, NodeEnd]]] = {}
        self.path = path
        self.read_only = read_only
        self.max_pages = max_pages
        self.memory = path == MEMORY
        if self.memory:
            self.uri = f"file:unerring-{uuid.uuid4().hex}?mode=memory&cache=shared"
            self.conn = _connect(self.uri, max_pages=max_pages)
            migrate(self.conn, 0)
            return
        p = Path(path)
        exists = p.exists()
        if exists and p.is_dir():
            raise StoreRefused(f"--store {path} is a directory; give a file path")
        header = _check_file(p) if exists else _Header(0, wal=False)
        if not exists and (read_only or not create):
            raise StoreRefused(f"no store at {path} (runs are kept where --store points)")
        if read_only:
            if 0 < header.version < SCHEMA_VERSION:
                self._read_old(p, header.version)
                return
            self.uri = read_uri(p, folder_writable(p.parent))
        else:
            if exists and is_read_only(p):
                raise StoreRefused(
                    f"store {path} is read-only; nothing was written; make it writable "
                    "or pass --store with another path"
                )
            if not exists:
                _make_parent(p, path)
            self.uri = f"file:{p.resolve()}"
        try:
            if read_only or (header.version == SCHEMA_VERSION and header.wal):
                self.conn = self._open(header.version)
            else:
                self.conn = self._create_or_migrate(p)
        except sqlite3.DatabaseError as e:
            if read_only and _cannot_open(e) and _wal_holds_commits(p):
                raise StoreRefused(
                    f"store {path} cannot be read here: its folder cannot be written and "
                    f"commits wait in {p.name}-wal, which SQLite reads only with a "
                    f"{p.name}-shm file beside it; make the folder writable once (any "
                    "unerring command that reads it then works), or copy the store with its "
                    "-wal file elsewhere"
                ) from None
            raise store_error(path, e) from None
        except UnicodeDecodeError:  # SQLite's message quotes the damaged bytes
            raise StoreRefused(
                f"{path} is corrupted (SQLite's report of it does not decode); it was not modified"
            ) from None

    def _open(self, version: int) -> sqlite3.Connection:
        conn = _connect(self.uri, read_only=self.read_only, max_pages=self.max_pages)
        try:
            # touch the schema and the runs table: a corrupted file fails here, unchanged
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if version:
                conn.execute("SELECT count(*) FROM runs").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_or_migrate(self, p: Path) -> sqlite3.Connection:
        """Create or migrate the store, one process at a time (the others wait, then find
        it done); journal-mode switches need the file to themselves, so are retried."""
        lock = Path(f"{p}-schema.lock")  # never a run's lock: those are STORE.RUN_ID.lock
        fd = try_lock(lock, patience_s=BUSY_TIMEOUT_S)
        if fd is None:
            raise StoreBusy(
                f"store {self.path} is busy: another process has been creating or upgrading "
                f"it for {BUSY_TIMEOUT_S:g} s; nothing was changed; try again"
            )
        try:
            # read again under the lock: the process we waited for may have done it all
            header = _check_file(p) if p.exists() else _Header(0, wal=False)
            if header.version == SCHEMA_VERSION and header.wal:
                return self._open(header.version)
            conn = _connect(self.uri, max_pages=self.max_pages, wal=False)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                if header.version:
                    conn.execute("SELECT count(*) FROM runs").fetchone()
                # migrate with a rollback journal, so that the header (application_id,
                # user_version) lands in the main file at once: in WAL mode it would wait in
                # the -wal file for a checkpoint, and a kill -9 before that would leave a
                # main file whose header says "not ours" (and "schema v0") to the next open
                if header.version < SCHEMA_VERSION:
                    _journal_mode(conn, "DELETE")
                    migrate(conn, header.version)
                _journal_mode(conn, "WAL")
            except BaseException:
                conn.close()
                raise
            return conn
        finally:
            unlock(lock, fd)

    def _read_old(self, p: Path, version: int) -> None:
        """A store written by an older unerring, opened to read: its records are read
        through today's schema from a migrated copy in memory; the file is not touched."""
        self.uri = f"file:unerring-{uuid.uuid4().hex}?mode=memory&cache=shared"
        try:
            src = sqlite3.connect(read_uri(p, folder_writable(p.parent)), uri=True)
            try:
                self.conn = _connect(self.uri)
                src.backup(self.conn)
            finally:
                src.close()
            migrate(self.conn, version)
        except sqlite3.DatabaseError as e:
            raise StoreRefused(f"{self.path} cannot be read ({e}); it was not modified") from None

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
        self,
        run_id: str,
        task: str,
        config: dict[str, Any],
        steps_total: int | None,
        items: Sequence[tuple[str, dict[str, Any], int | None]] = (("1", {}, None),),
        kind: str = "chain",
    ) -> RunRecord:
        """A new run and its items (id, options, steps), in one transaction.

        A single chain is a run of one item; its steps are the run's.
        """
        now = time.time()
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "INSERT INTO runs (run_id, task, config, status, steps_total, created, updated,"
                " kind) VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                (run_id, task, json.dumps(config, sort_keys=True), steps_total, now, now, kind),
            )
            rid = cur.lastrowid
            rows = (
                (rid, i, item_id, json.dumps(options, sort_keys=True),
                 steps if kind == "batch" else steps_total)
                for i, (item_id, options, steps) in enumerate(items)
            )  # fmt: skip
            conn.executemany(
                "INSERT INTO items (run, item, item_id, options, steps_total)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")
            raise StoreError(f"a run named {run_id!r} already exists in {self.path}") from None
        except sqlite3.OperationalError as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"cannot write to store {self.path}: {e}") from None
        run = self.get_run(run_id)
        assert run is not None
        return run

    # -- items ----------------------------------------------------------------------------
    def items(self, run: RunRecord, *, unfinished: bool = False) -> Iterator[ItemRecord]:
        """A run's items in order (streamed); `unfinished`: those not completed."""
        q = "SELECT * FROM items WHERE run = ?"
        if unfinished:
            q += " AND status != 'completed'"
        # a batch's items by index; a graph's nodes (indexes are hashes) as they were made
        order = " ORDER BY seq, item" if run.kind == "graph" else " ORDER BY item"
        ends = self.node_ends(run)
        for row in self.conn.execute(q + order, (run.id,)):
            it = ItemRecord.from_row(row)
            end = ends.get(it.item) if ends else None
            if end is not None:
                if unfinished:
                    continue
                it = _ended(it, end)
            yield it

    def item(self, run: RunRecord, item_id: str) -> ItemRecord | None:
        row = self.conn.execute(
            "SELECT * FROM items WHERE run = ? AND item_id = ?", (run.id, item_id)
        ).fetchone()
        if row is None:
            return None
        it = ItemRecord.from_row(row)
        end = self.node_ends(run).get(it.item)
        return it if end is None else _ended(it, end)

    def longest_item_id(self, run: RunRecord) -> int:
        """The length of a run's longest item id (a table's column width)."""
        row = self.conn.execute(
            "SELECT coalesce(max(length(item_id)), 0) FROM items WHERE run = ?", (run.id,)
        ).fetchone()
        return int(row[0])

    def item_counts(self, run: RunRecord) -> dict[str, int]:
        """How many of a run's items are in each status."""
        rows = self.conn.execute(
            "SELECT status, count(*) FROM items WHERE run = ? GROUP BY status", (run.id,)
        ).fetchall()
        counts = {r[0]: int(r[1]) for r in rows}
        # nodes whose ends are packed (their rows say pending): 8 bytes an item
        packed = self.conn.execute(
            "SELECT coalesce(sum(length(items)), 0) / 8 FROM node_ends WHERE run = ?", (run.id,)
        ).fetchone()[0]
        if packed:
            counts["completed"] = counts.get("completed", 0) + packed
            pending = counts.pop("pending", 0) - packed
            if pending:
                counts["pending"] = pending
        return counts

    def node_ends(self, run: RunRecord) -> dict[int, NodeEnd]:
        """A graph run's nodes whose ends are packed many to a row (journal/codec.py), by
        item; their items rows say only what they were made with (status pending)."""
        if run.kind != "graph":
            return {}
        key = self.conn.execute(
            "SELECT count(*), coalesce(max(seq), 0) FROM node_ends WHERE run = ?", (run.id,)
        ).fetchone()
        key = (int(key[0]), int(key[1]))
        held = self._ends.get(run.id)
        if held is not None and held[0] == key:
            return held[1]
        ends: dict[int, NodeEnd] = {}
        for row in self.conn.execute(
            "SELECT * FROM node_ends WHERE run = ? ORDER BY seq", (run.id,)
        ):
            ends.update(NodeEndsRow(row).ends)
        self._ends[run.id] = (key, ends)
        return ends

    def forget_node_ends(self) -> None:
        """Drop the decoded node ends held (a resume reads them once; a long attempt then
        must not hold every decided node of its graph)."""
        self._ends.clear()

    def reset_items(self, run: RunRecord) -> None:
        """An attempt starts: every item not completed is pending again."""
        with self._starting():
            self.conn.execute(
                "UPDATE items SET status = 'pending', reason = ''"
                " WHERE run = ? AND status != 'completed'",
                (run.id,),
            )

    @contextmanager
    def _starting(self) -> Iterator[None]:
        """The first writes of an attempt: a store another process keeps locked past the
        busy timeout is busy (try again), not a failure of the run."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if not _busy(e):
                raise
            raise StoreBusy(
                f"store {self.path} is busy: another process kept it locked for over "
                f"{BUSY_TIMEOUT_S:g} s; nothing was decided; try again"
            ) from None

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
        with self._starting():
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
    def decisions(self, run: RunRecord, start: int = 0, item: int = 0) -> Iterator[dict[str, Any]]:
        """One item's decisions from step `start` in step order, streamed (constant memory).

        Noteworthy steps have a row of their own; runs of plain steps are packed in blocks
        (see journal.codec); both come back here in one shape (and so do a graph node's
        whose end is packed: its every decision is there).
        """
        with self._decoding(run):
            end = self.node_ends(run).get(item)
            if end is not None:
                yield from (d for d in end.decisions() if d["step"] >= start)
                return
        full = self.conn.execute(
            "SELECT * FROM decisions WHERE run = ? AND item = ? AND step >= ? ORDER BY step",
            (run.id, item, start),
        )
        blocks = self.conn.execute(
            "SELECT * FROM decision_blocks WHERE run = ? AND item = ? AND last_step >= ?"
            " ORDER BY first_step",
            (run.id, item, start),
        )
        rows = (_decision_dict(r) for r in full)
        unpacked = (d for b in blocks for d in unpack_block(b) if d["step"] >= start)
        with self._decoding(run):
            expected = start
            for d in heapq.merge(rows, unpacked, key=lambda d: int(d["step"])):
                # an item's steps are decided one after another, each journaled once
                if d["step"] != expected:
                    raise DamagedRecord(f"item {item}: step {d['step']} where {expected} was due")
                expected += 1
                yield d

    @contextmanager
    def _decoding(self, run: RunRecord) -> Iterator[None]:
        """Packed decisions that do not decode are a damaged file: refused, named."""
        try:
            yield
        except (DamagedRecord, zlib.error, UnicodeDecodeError) as e:
            raise StoreRefused(
                f"{self.path} is damaged: run {run.run_id!r} holds packed decisions that "
                f"do not decode ({e}); it was not modified; restore it from a copy"
            ) from None

    def check(self) -> None:
        """SQLite's quick check of the whole file (pages, b-trees, records; not what a
        record holds): a damaged store is refused before anything is read from it."""
        try:
            # (a report may span lines, headed "*** in database main ***": one line here)
            rows = [str(r[0]) for r in self.conn.execute("PRAGMA quick_check(3)")]
            problems = [line for r in rows for line in r.splitlines() if not line.startswith("***")]
        except sqlite3.DatabaseError as e:
            raise store_error(self.path, e) from None
        except UnicodeDecodeError:  # its report quotes damaged text
            problems = ["quick_check reports damage in text that does not decode"]
        if problems == ["ok"]:
            problems = self._schema_problems()
        if problems != ["ok"]:
            more = f"; {len(problems) - 3} more" if len(problems) > 3 else ""
            raise StoreRefused(
                f"{self.path} is damaged ({'; '.join(problems[:3])}{more}); it was not "
                "modified; restore it from a copy"
            )

    def _schema_problems(self) -> list[str]:
        """The tables' columns against the journal's own (made afresh in memory): a damaged
        schema record renames a column that quick_check does not look at."""
        fresh = sqlite3.connect(":memory:", isolation_level=None)
        try:
            migrate(fresh, 0)
            want = _columns(fresh)
        finally:
            fresh.close()
        got = _columns(self.conn)
        wrong = [t for t in want if got.get(t) != want[t]]
        return [f"table {t} does not have the journal's columns" for t in wrong] or ["ok"]

    def samples(self, run: RunRecord, item: int | None = None) -> Iterator[sqlite3.Row]:
        """A run's recorded samples (of one item, or all) in item, step, index order."""
        if item is None:
            cur = self.conn.execute(
                "SELECT * FROM samples WHERE run = ? ORDER BY item, step, idx", (run.id,)
            )
        else:
            cur = self.conn.execute(
                "SELECT * FROM samples WHERE run = ? AND item = ? ORDER BY step, idx",
                (run.id, item),
            )
        yield from cur

    def decision_values(
        self, run: RunRecord, column: str, item: int = 0
    ) -> Iterator[tuple[int, Any]]:
        """(step, value) of one column ("winner" or "elapsed") for each of an item's
        decisions, in step order: what a replay or a clock needs, without a dict per step."""
        if column not in ("winner", "elapsed"):
            raise ValueError(f"decision_values reads winner or elapsed, not {column!r}")
        end = self.node_ends(run).get(item)
        if end is not None:
            if column == "winner":
                yield from enumerate(end.winners())
            else:
                yield from enumerate(e / 1e6 for e in end.block(item).elapsed_us)
            return
        full = self.conn.execute(
            f"SELECT step, {column} FROM decisions WHERE run = ? AND item = ? ORDER BY step",
            (run.id, item),
        )
        rows = (tuple(r) for r in full)
        packed: Iterator[tuple[int, Any]]
        if column == "winner":
            blocks = self.conn.execute(
                "SELECT first_step, last_step, holes, winners FROM decision_blocks"
                " WHERE run = ? AND item = ? ORDER BY first_step",
                (run.id, item),
            )
            packed = (
                pair
                for b in blocks
                for pair in zip(
                    block_steps(b["first_step"], b["last_step"], unpack_holes(b["holes"])),
                    block_winners(b),
                    strict=True,
                )
            )
        else:
            packed = (
                pair
                for c in self.block_columns(run, item)
                for pair in zip(
                    block_steps(c.first_step, c.last_step, c.holes),
                    (e / 1e6 for e in c.elapsed_us),
                    strict=True,
                )
            )
        # steps are unique across the two streams: tuples never compare their values
        yield from heapq.merge(rows, packed)

    def commits(self, run: RunRecord) -> Iterator[tuple[float, int, int, int, float]]:
        """What each commit of the run's journal writer added, in time order: (time,
        steps decided, samples, tokens, cost); none for what was written before schema 8."""
        cur = self.conn.execute(
            "SELECT time, steps, samples, tokens, cost FROM commits WHERE run = ? ORDER BY time",
            (run.id,),
        )
        for row in cur:
            yield row[0], row[1], row[2], row[3], row[4]

    def transport_failures(self, run: RunRecord) -> Iterator[sqlite3.Row]:
        cur = self.conn.execute(
            "SELECT * FROM transport_failures WHERE run = ? ORDER BY time", (run.id,)
        )
        yield from cur

    def count_decisions(self, run: RunRecord, item: int | None = None) -> int:
        """Decisions journaled for a run (or one of its items)."""
        where, args = "run = ?", [run.id]
        if item is not None:
            where, args = "run = ? AND item = ?", [run.id, item]
        full = self.conn.execute(f"SELECT count(*) FROM decisions WHERE {where}", args).fetchone()[
            0
        ]
        packed = self.conn.execute(
            "SELECT coalesce(sum(last_step - first_step + 1 - coalesce(length(holes), 0) / 4),"
            f" 0) FROM decision_blocks WHERE {where}",
            args,
        ).fetchone()[0]
        ends = self.node_ends(run)
        if item is not None:
            nodes = ends[item].steps if item in ends else 0
        else:
            nodes = sum(e.steps for e in ends.values())
        return int(full) + int(packed) + nodes

    # -- analysis queries -------------------------------------------------------------------
    # what failure analysis reads from the journal, and the two tables it writes (failures,
    # notebooks): the analysis modules hold no SQL of their own
    def noteworthy_decisions(self, run: RunRecord, item: int = 0) -> Iterator[dict[str, Any]]:
        """An item's decisions that may hold a failure: rejected by the checker, undecided,
        or with samples kept (step, winner, votes, undecided, correct, features)."""
        cur = self.conn.execute(
            "SELECT step, winner, votes, undecided, correct, features FROM decisions"
            " WHERE run = ? AND item = ? AND (correct = 0 OR undecided = 1 OR step IN"
            " (SELECT step FROM samples WHERE run = ? AND item = ?)) ORDER BY step",
            (run.id, item, run.id, item),
        )
        for row in cur:
            yield dict(row)

    def wrong_decisions(self, run: RunRecord) -> tuple[int, int]:
        """How many decisions the checker rejected, and in how many items."""
        row = self.conn.execute(
            "SELECT count(*), count(DISTINCT item) FROM decisions WHERE run = ? AND correct = 0",
            (run.id,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def first_wrong_decision(self, run: RunRecord) -> dict[str, Any] | None:
        """The first decision the checker rejected, by item then step (item, step, winner,
        votes), or None."""
        row = self.conn.execute(
            "SELECT item, step, winner, votes FROM decisions WHERE run = ? AND correct = 0"
            " ORDER BY item, step LIMIT 1",
            (run.id,),
        ).fetchone()
        return None if row is None else dict(row)

    def step_samples(self, run: RunRecord, item: int, step: int) -> list[dict[str, Any]]:
        """One step's recorded samples in index order (idx, text, vote, flag, counted)."""
        rows = self.conn.execute(
            "SELECT idx, text, vote, flag, counted FROM samples"
            " WHERE run = ? AND item = ? AND step = ? ORDER BY idx",
            (run.id, item, step),
        ).fetchall()
        return [dict(r) for r in rows]

    def sample_votes(self, run: RunRecord, item: int = 0) -> Iterator[tuple[int, int, str]]:
        """(step, index, vote) of an item's recorded valid samples, in step, index order."""
        cur = self.conn.execute(
            "SELECT step, idx, vote FROM samples WHERE run = ? AND item = ? AND vote IS NOT NULL"
            " ORDER BY step, idx",
            (run.id, item),
        )
        for row in cur:
            yield int(row[0]), int(row[1]), str(row[2])

    def sample_sources(
        self, run: RunRecord, item: int = 0
    ) -> dict[int, dict[int, tuple[int | None, str | None]]]:
        """Step -> index -> (prompt variant, model) of an item's recorded valid samples that
        name either (a run with prompt variants or a model ensemble)."""
        out: dict[int, dict[int, tuple[int | None, str | None]]] = {}
        cur = self.conn.execute(
            "SELECT step, idx, variant, model FROM samples WHERE run = ? AND item = ?"
            " AND vote IS NOT NULL AND (variant IS NOT NULL OR model IS NOT NULL)",
            (run.id, item),
        )
        for step, idx, variant, model in cur:
            out.setdefault(int(step), {})[int(idx)] = (variant, model)
        return out

    def winning_votes(self, run: RunRecord, item: int = 0) -> dict[int, str]:
        """Step -> the vote of the samples whose text won, where a sample of it was kept."""
        rows = self.conn.execute(
            "SELECT s.step, s.vote FROM samples s JOIN decisions d ON d.run = s.run"
            " AND d.item = s.item AND d.step = s.step WHERE s.run = ? AND s.item = ?"
            " AND s.vote IS NOT NULL AND s.text = d.winner",
            (run.id, item),
        ).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def replace_failures(self, runs: Sequence[RunRecord], rows: Sequence[dict[str, Any]]) -> int:
        """Replace the runs' rows of the `failures` table (one transaction); returns the
        rows written. A row names its columns: run, item, step, idx, category, nature,
        flip_rate, answer, excerpt, features, time, counted, pattern."""
        cols = (
            "run", "item", "step", "idx", "category", "nature", "flip_rate", "answer",
            "excerpt", "features", "time", "counted", "pattern",
        )  # fmt: skip
        values = [tuple(r[c] for c in cols) for r in rows]
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for run in runs:
                conn.execute("DELETE FROM failures WHERE run = ?", (run.id,))
            marks = ", ".join("?" for _ in cols)
            conn.executemany(f"INSERT INTO failures ({', '.join(cols)}) VALUES ({marks})", values)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(values)

    def saved_failures(self, run: RunRecord) -> list[dict[str, Any]]:
        """A run's saved failure records, each with its item's id, by item, step, index."""
        rows = self.conn.execute(
            "SELECT f.*, i.item_id FROM failures f JOIN items i ON i.run = f.run"
            " AND i.item = f.item WHERE f.run = ? ORDER BY f.item, f.step, f.idx",
            (run.id,),
        ).fetchall()
        return [dict(r) for r in rows]

    def add_notebook(
        self, name: str, notes: str, accepted: bool, reason: str, source: str
    ) -> tuple[int, float]:
        """Journal the next version of a notebook (notes as JSON); returns (version, created)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT coalesce(max(version), 0) FROM notebooks WHERE name = ?", (name,)
            ).fetchone()
            version = int(row[0]) + 1
            now = time.time()
            conn.execute(
                "INSERT INTO notebooks (name, version, notes, accepted, reason, source, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, version, notes, int(accepted), reason, source, now),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return version, now

    def notebook_row(
        self, name: str, version: int | None = None, *, accepted_only: bool = True
    ) -> sqlite3.Row | None:
        """One notebook version; without a version the latest (accepted, unless told)."""
        if version is not None:
            return self.conn.execute(  # type: ignore[no-any-return]
                "SELECT * FROM notebooks WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
        q = "SELECT * FROM notebooks WHERE name = ?"
        if accepted_only:
            q += " AND accepted = 1"
        return self.conn.execute(  # type: ignore[no-any-return]
            q + " ORDER BY version DESC LIMIT 1", (name,)
        ).fetchone()

    def notebook_rows(self) -> list[sqlite3.Row]:
        """Every notebook version, by name then version."""
        return self.conn.execute("SELECT * FROM notebooks ORDER BY name, version").fetchall()

    # -- report queries ---------------------------------------------------------------------
    # what `unerring report` reads: the decisions as columns, never a dict per plain step
    def block_columns(self, run: RunRecord, item: int | None = None) -> Iterator[BlockColumns]:
        """The plain decisions of one item (or of every item), one packed block at a time,
        as columns; an item's blocks in step order, items in order.

        With `decision_rows` this covers every decision once, without building a dict per
        step: what aggregates over a million steps need.
        """
        where, args = _of_item(run, item)
        cur = self.conn.execute(
            "SELECT item, first_step, last_step, data, holes FROM decision_blocks"
            f" WHERE {where} ORDER BY item, first_step",
            args,
        )
        blocks = (block_columns(row) for row in cur)
        ends = self.node_ends(run)
        if item is not None:
            ends = {item: ends[item]} if item in ends else {}
        if not ends:
            yield from blocks
            return
        # a packed node's decisions as its block, in item order among the others
        packed = (ends[i].block(i) for i in sorted(ends))
        yield from heapq.merge(blocks, packed, key=lambda c: c.item)

    def decision_rows(self, run: RunRecord, item: int | None = None) -> Iterator[dict[str, Any]]:
        """The decisions of one item (or of every item) with a row of their own (contested,
        flagged, rejected, undecided), by item then step, without their texts (winner,
        features)."""
        where, args = _of_item(run, item)
        cur = self.conn.execute(
            "SELECT item, step, votes, samples, surplus, flags, prompt_tokens,"
            " completion_tokens, cost, elapsed, undecided, correct FROM decisions"
            f" WHERE {where} ORDER BY item, step",
            args,
        )
        for row in cur:
            yield dict(row)

    def item_numbers(self, run: RunRecord) -> Iterator[tuple[int, str, int, int, float, int]]:
        """(item, status, steps decided, samples, cost, errors) of each of a run's items, in
        order: read from each item's totals inside SQLite (no JSON parsed here)."""
        cur = self.conn.execute(
            "SELECT item, status, coalesce(json_extract(stats, '$.steps_decided'), 0),"
            " coalesce(json_extract(stats, '$.samples'), 0),"
            " coalesce(json_extract(stats, '$.cost'), 0.0),"
            " coalesce(json_extract(stats, '$.errors'), 0)"
            " FROM items WHERE run = ? ORDER BY item",
            (run.id,),
        )
        ends = self.node_ends(run)
        for row in cur:
            end = ends.get(row[0]) if ends else None
            if end is not None:
                t = end.totals()
                yield row[0], "completed", end.steps, t.get("samples", 0), t.get("cost", 0.0), 0
                continue
            yield int(row[0]), str(row[1]), int(row[2]), int(row[3]), float(row[4]), int(row[5])

    def item_extent(self, run: RunRecord) -> int:
        """The furthest any item of the run got: the largest next step."""
        row = self.conn.execute(
            "SELECT coalesce(max(next_step), 0) FROM items WHERE run = ?", (run.id,)
        ).fetchone()
        return max(int(row[0]), *(e.steps for e in self.node_ends(run).values()), 0)

    def item_ids(self, run: RunRecord, items: Iterable[int]) -> dict[int, str]:
        """The ids (names) of a few of a run's items, by index."""
        out: dict[int, str] = {}
        for i in sorted(set(items)):
            row = self.conn.execute(
                "SELECT item_id FROM items WHERE run = ? AND item = ?", (run.id, i)
            ).fetchone()
            if row is not None:
                out[i] = str(row[0])
        return out


def _of_item(run: RunRecord, item: int | None) -> tuple[str, tuple[int, ...]]:
    """The WHERE clause (and its arguments) for one item of a run, or all of them."""
    if item is None:
        return "run = ?", (run.id,)
    return "run = ? AND item = ?", (run.id, item)


def _ended(it: ItemRecord, end: NodeEnd) -> ItemRecord:
    """A node's items row as its packed end completes it (as an unpacked end's update)."""
    return replace(
        it,
        status="completed",
        reason="",
        next_step=end.steps,
        state=None,
        stats=end.totals(),
        output=end.output,
    )


def _columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables}


def _decision_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d.pop("run", None)
    d.pop("item", None)
    check_decision_row(d)
    return d
