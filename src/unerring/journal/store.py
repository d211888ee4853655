"""The SQLite store's life: opening a journal file safely (refusing what is not one),
creating and migrating it, connections, snapshots and the whole-file check.

`Store` gathers the methods of the journal's tables, each group in its own module:
runs.py (runs, attempts, items), reads.py (decisions, samples and the queries analysis
and the report make), failures.py and notebooks.py (what analysis writes).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from unerring import defaults
from unerring.journal.base import StoreBusy, StoreError, StoreRefused, is_busy
from unerring.journal.failures import Failures
from unerring.journal.filelock import try_lock, unlock
from unerring.journal.notebooks import Notebooks
from unerring.journal.reads import Reads
from unerring.journal.records import ItemRecord, RunRecord
from unerring.journal.runs import Runs
from unerring.journal.schema import APPLICATION_ID, SCHEMA_VERSION, migrate

__all__ = [
    "BUSY_TIMEOUT_S",
    "DEFAULT_STORE",
    "MEMORY",
    "ItemRecord",
    "RunRecord",
    "Store",
    "StoreBusy",
    "StoreError",
    "StoreRefused",
    "folder_writable",
    "is_read_only",
    "read_uri",
    "store_error",
]

MEMORY = ":memory:"
BUSY_TIMEOUT_S = 30.0
DEFAULT_STORE = defaults.STORE
_HEADER = b"SQLite format 3\x00"


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


def store_error(path: str, e: sqlite3.DatabaseError, *, opening: bool = True) -> StoreError:
    """Name what went wrong opening (or, `opening` False, using) a store: busy, corrupted,
    or another reason (bad input at the open, a failure of the work after it)."""
    if is_busy(e):
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
            if not is_busy(e) or time.monotonic() > deadline:
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


class Store(Runs, Reads, Failures, Notebooks):
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
        self._ends = {}
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

    @contextmanager
    def _starting(self) -> Iterator[None]:
        """The first writes of an attempt: a store another process keeps locked past the
        busy timeout is busy (try again), not a failure of the run."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if not is_busy(e):
                raise
            raise StoreBusy(
                f"store {self.path} is busy: another process kept it locked for over "
                f"{BUSY_TIMEOUT_S:g} s; nothing was decided; try again"
            ) from None


def _columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables}
