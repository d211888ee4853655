"""The SQLite store: opening, listing, refusing what is not ours, migrations, locks, full disk."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import child_env, cli, decisions, one_line_error, run_row, run_task, sha256
from unerring import Flag, Process
from unerring.journal.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, migrate
from unerring.journal.store import Store, StoreError
from unerring.voting.config import Budget

MODEL = "sim:error=0.05,seed=3"
SMALL = dict(task="hanoi", task_options={"disks": 5}, model=MODEL, k=3)


def hanoi_args(path: Path, run_id: str, disks: int = 5, k: int = 3) -> list[str]:
    """`unerring run hanoi` on MODEL into the store at `path`."""
    task = ["run", "hanoi", "--disks", str(disks), "--model", MODEL, "--k", str(k)]
    return [*task, "--run-id", run_id, "--store", str(path)]


def make_store(path: Path, run_id: str = "r1", disks: int = 5) -> None:
    res = cli(*hanoi_args(path, run_id, disks), "--quiet")
    assert res.returncode == 0, res.stderr


# -- open / create / list ------------------------------------------------------------------
def test_create_list_and_reopen(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = Store(str(db))
    assert db.exists()
    header = db.read_bytes()[:100]
    assert int.from_bytes(header[68:72], "big") == APPLICATION_ID
    assert int.from_bytes(header[60:64], "big") == SCHEMA_VERSION
    a = store.create_run("a", "hanoi", {"x": 1}, 31)
    b = store.create_run("b", "hanoi", {"x": 2}, None)
    assert [r.run_id for r in store.list_runs()] == ["a", "b"]
    assert (a.status, a.next_step, a.steps_total, a.config) == ("running", 0, 31, {"x": 1})
    assert b.steps_total is None
    with pytest.raises(StoreError, match="already exists"):
        store.create_run("a", "hanoi", {}, None)
    store.close()
    again = Store(str(db), read_only=True)
    assert [r.run_id for r in again.list_runs()] == ["a", "b"]
    assert again.get_run("missing") is None
    again.close()


def test_only_the_default_store_gets_its_folder_made(tmp_path: Path) -> None:
    # a typo in --store must not grow a tree: the missing folder is named, nothing made
    typo = tmp_path / "tpyo" / "dir" / "x.db"
    res = cli("run", "hanoi", "--disks", "3", "--model", MODEL, "--store", str(typo), "--quiet")
    assert res.returncode == 2
    line = one_line_error(res.stderr)
    assert f"{typo.parent} does not exist" in line, line
    assert not (tmp_path / "tpyo").exists()
    with pytest.raises(StoreError, match="does not exist"):
        Store(str(typo))
    # the default store's folder is made where the command runs
    res = subprocess.run(
        [sys.executable, "-m", "unerring", "run", "hanoi", "--disks", "3", "--model", MODEL,
         "--quiet"],
        capture_output=True, text=True, timeout=120, env=child_env(), cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (tmp_path / ".unerring" / "runs.db").is_file()


def test_cli_runs_lists_runs(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    make_store(db, "first", disks=3)
    make_store(db, "second", disks=4)
    res = cli("runs", "--store", str(db))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:5] == ["RUN", "TASK", "STATUS", "ITEMS", "STEPS"]
    assert lines[1].split()[:5] == ["first", "hanoi", "completed", "-", "7/7"]
    assert lines[2].split()[:5] == ["second", "hanoi", "completed", "-", "15/15"]


def test_memory_store_keeps_nothing(tmp_path: Path) -> None:
    res = cli(
        "run", "hanoi", "--disks", "3", "--model", MODEL, "--store", ":memory:", "--quiet", "--json"
    )
    assert res.returncode == 0, res.stderr
    assert list(tmp_path.iterdir()) == []
    assert "resume" not in res.stderr


# -- files that are not ours, or not usable -------------------------------------------------
def foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('my data')")
    conn.commit()
    conn.close()


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))


def truncated(path: Path) -> None:
    make_store(path, disks=8)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def bad_schema_page(path: Path) -> None:
    make_store(path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    # page 1 holds the schema (sqlite_master) after the 100-byte file header
    data[100:page] = bytes([0xA5]) * (page - 100)
    path.write_bytes(bytes(data))


def newer(path: Path) -> None:
    make_store(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


def empty_header_only(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 40)


CASES = {
    "foreign": (foreign, "did not create"),
    "garbage": (garbage, "not an unerring store"),
    "truncated": (truncated, "corrupted"),
    "schema-page": (bad_schema_page, "corrupted"),
    "newer": (newer, "newer unerring"),
    "short-header": (empty_header_only, "not an unerring store"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_files_are_left_byte_identical(tmp_path: Path, case: str) -> None:
    make, message = CASES[case]
    db = tmp_path / "store.db"
    make(db)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    before = sha256(db)
    commands = [
        ("run", "hanoi", "--disks", "3", "--model", MODEL, "--store", str(db), "--quiet"),
        ("runs", "--store", str(db)),
        ("show", "r1", "--store", str(db)),
        ("export", "r1", "--store", str(db)),
        ("resume", "r1", "--store", str(db), "--quiet"),
    ]
    for args in commands:
        res = cli(*args)
        assert res.returncode != 0, (args, res.stdout)
        line = one_line_error(res.stderr)
        assert message in line, (args, line)
        assert str(db) in line or db.name in line, line
        assert sha256(db) == before, f"{args[0]} modified the file"


def test_read_only_store_refuses_to_run_and_is_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    make_store(db, "done")
    res = cli(*hanoi_args(db, "part", 4), "--quiet", "--max-samples", "20")
    assert res.returncode == 1
    before = sha256(db)
    db.chmod(0o444)
    try:
        for args in (
            ("run", "hanoi", "--disks", "3", "--model", MODEL, "--store", str(db), "--quiet"),
            ("resume", "part", "--store", str(db), "--quiet"),
        ):
            res = cli(*args)
            assert res.returncode == 2, res.stdout  # the store given cannot be written
            assert "read-only" in one_line_error(res.stderr)
            assert sha256(db) == before
        # reading a read-only store is fine, and still writes nothing
        res = cli("runs", "--store", str(db))
        assert res.returncode == 0, res.stderr
        assert "done" in res.stdout and "part" in res.stdout
        res = cli("show", "part", "--store", str(db), "--json")
        assert res.returncode == 0, res.stderr
        assert sha256(db) == before
    finally:
        db.chmod(0o644)
    # and once writable again, the stopped run resumes
    res = cli("resume", "part", "--store", str(db), "--quiet")
    assert res.returncode == 0, res.stderr


def test_directory_as_store_is_refused(tmp_path: Path) -> None:
    res = cli("runs", "--store", str(tmp_path))
    assert res.returncode == 2
    assert "directory" in one_line_error(res.stderr)


# -- migrations ----------------------------------------------------------------------------
def test_v1_store_is_migrated_on_open_with_its_data_intact(tmp_path: Path) -> None:
    # a stopped run in a current store, copied row by row into a store made at schema v1
    src = tmp_path / "src.db"
    # committed one by one, so that no block holds a hole (v1 blocks have none)
    session = dict(
        store=str(src), budget=Budget(max_samples=40), handle_signals=False, durability="sync"
    )
    first = run_task(**SMALL, **session, run_id="old")
    assert first.outcome.status == "stopped"
    first.store.close()
    v1 = tmp_path / "v1.db"
    conn = sqlite3.connect(v1, isolation_level=None)
    migrate(conn, 0, target=1)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert len(MIGRATIONS[:1]) == 1
    conn.execute("ATTACH ? AS src", (str(src),))
    for table in ("runs", "attempts", "decisions", "samples"):
        # the columns v1 had (later versions added some)
        columns = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))
        conn.execute(f"INSERT INTO main.{table} SELECT {columns} FROM src.{table}")
    # v1 blocks have no holes
    assert (
        conn.execute("SELECT count(*) FROM src.decision_blocks WHERE holes IS NOT NULL").fetchone()[
            0
        ]
        == 0
    )
    conn.execute(
        "INSERT INTO main.decision_blocks"
        " SELECT run, first_step, last_step, winners, data FROM src.decision_blocks"
    )
    conn.execute("DETACH src")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "transport_failures" not in tables
    conn.close()
    before_rows = decisions(v1, "old")
    before_run = run_row(v1, "old")
    assert len(before_rows) == before_run["next_step"] > 0

    assert run_row(v1, "old") == before_run  # reading an old store leaves it as it was
    # a v1 store exports as it is (read-only: not migrated), nested values as JSON values
    before_export = sha256(v1)
    res = cli("export", "old", "--store", str(v1), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    exported = [json.loads(line) for line in res.stdout.splitlines()]
    assert [d["votes"] for d in exported] == [json.loads(d["votes"]) for d in before_rows]
    assert all(isinstance(d["votes"], list) for d in exported)
    assert sha256(v1) == before_export

    store = Store(str(v1))
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.conn.execute("SELECT count(*) FROM transport_failures").fetchone()[0] == 0
    # the single chain became a run of one item, at the run's resume point
    item = store.conn.execute("SELECT item_id, next_step FROM items").fetchone()
    assert tuple(item) == ("1", before_run["next_step"])
    store.close()
    assert decisions(v1, "old") == before_rows
    after = run_row(v1, "old")
    assert after.pop("kind") == "chain"
    assert after == before_run

    # the migrated run resumes to the same decisions as an uninterrupted run
    done = run_task(**SMALL, store=str(v1), handle_signals=False, run_id="old", resume=True)
    assert done.outcome.status == "completed"
    done.store.close()
    ref = run_task(**SMALL, store=str(tmp_path / "ref.db"), handle_signals=False, run_id="ref")
    ref.store.close()
    assert decisions(v1, "old") == decisions(tmp_path / "ref.db", "ref")


def test_migrate_applies_each_version_once(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    for version in range(1, SCHEMA_VERSION + 1):
        migrate(conn, version - 1, target=version)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == version
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()
    Store(str(tmp_path / "m.db")).close()  # already current: opens without migrating


# -- refusing to mix configurations --------------------------------------------------------
def test_resume_with_other_task_options_is_refused_naming_the_difference(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    res = cli(*hanoi_args(db, "x", 8), "--quiet", "--max-samples", "30")
    assert res.returncode == 1
    before = decisions(db, "x")
    res = cli("resume", "x", "--disks", "9", "--store", str(db), "--quiet")
    assert res.returncode == 2
    line = one_line_error(res.stderr)
    assert "task_options" in line and "'disks': 8" in line and "'disks': 9" in line, line
    res = cli("resume", "x", "--model", "sim:error=0.2,seed=3", "--store", str(db), "--quiet")
    assert res.returncode == 2
    line = one_line_error(res.stderr)
    assert "model" in line and "error=0.2" in line, line
    assert decisions(db, "x") == before
    assert run_row(db, "x")["status"] == "stopped"


def test_run_id_reused_with_other_options_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    make_store(db, "named", disks=4)
    res = cli(*hanoi_args(db, "named", 4, 4), "--quiet")
    assert res.returncode == 2
    line = one_line_error(res.stderr)
    assert "'named'" in line and "k: journal has 3, given 4" in line, line
    # the same options name the same run: it is completed, so its recorded result
    before = decisions(db, "named")
    res = cli(*hanoi_args(db, "named", 4, 3), "--json")
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    assert s["status"] == "completed" and s["steps_decided"] == 15 and s["attempts"] == 1
    assert decisions(db, "named") == before
    res = cli("resume", "named", "--store", str(db), "--quiet")  # a resume: nothing to do
    assert res.returncode == 2
    assert "already completed" in one_line_error(res.stderr)
    res = cli("resume", "nobody", "--store", str(db))
    assert res.returncode == 2
    assert "no run 'nobody'" in one_line_error(res.stderr)


# -- one writer per run --------------------------------------------------------------------
def test_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    model = "sim:error=0.05,seed=3,latency=5"
    args = ["run", "hanoi", "--disks", "10", "--k", "3", "--model", model, "--run-id", "w"]
    args += ["--store", str(db)]
    first = subprocess.Popen(
        [sys.executable, "-m", "unerring", *args, "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(),
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if db.exists() and Path(f"{db}.w.lock").exists():
                try:
                    if run_row(db, "w")["next_step"] > 0:
                        break
                except (AssertionError, sqlite3.Error):
                    pass
            time.sleep(0.05)
        else:
            pytest.fail("the first writer did not start")
        res = cli("resume", "w", "--store", str(db), "--quiet")
        assert res.returncode == 75  # busy: try again
        assert "being written by another process" in one_line_error(res.stderr)
        assert first.poll() is None, "the first writer should still be running"
        res = cli(*args)
        assert res.returncode == 75
        assert "being written by another process" in one_line_error(res.stderr)
    finally:
        first.kill()
        first.wait()
    # the kernel released the lock with the process: the run resumes, never interleaved
    res = cli(
        "resume",
        "w",
        "--store",
        str(db),
        "--quiet",
        "--model",
        "sim:error=0.05,seed=3,latency=5",
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    steps = [d["step"] for d in decisions(db, "w")]
    assert steps == list(range(1023))


# -- several processes on one store --------------------------------------------------------
# the CLI, started only when the gate file appears; it says it is ready (imported, waiting)
GATED = (
    "import os, sys, time\n"
    "from unerring.cli.main import main\n"
    "gate = sys.argv[1]\n"
    "open(f'{gate}.ready.{os.getpid()}', 'w').close()\n"
    "while not os.path.exists(gate):\n"
    "    time.sleep(0.001)\n"
    "raise SystemExit(main(sys.argv[2:]))\n"
)


def start_at_once(n: int, args: list[str], gate: Path) -> list[tuple[int, str, str]]:
    """Start `n` CLI processes that begin `args` at the same moment: (rc, stdout, stderr)."""
    gate.unlink(missing_ok=True)
    for ready in gate.parent.glob(f"{gate.name}.ready.*"):
        ready.unlink()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", GATED, str(gate), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for _ in range(n)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(gate.parent.glob(f"{gate.name}.ready.*"))) < n:
            assert time.monotonic() < deadline, "the processes did not start"
            assert all(p.poll() is None for p in procs), "a process ended before the gate"
            time.sleep(0.01)
        gate.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
        return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_four_runs_started_at_once_on_a_new_then_an_existing_store_all_complete(
    tmp_path: Path,
) -> None:
    # no run may be refused as "corrupted" or "locked", and no run's decisions may be
    # touched by another's: all equal those of the same run made alone
    task = ["run", "hanoi", "--disks", "8", "--model", MODEL, "--k", "3", "--json"]
    ref = tmp_path / "ref.db"
    res = cli(*task, "--run-id", "ref", "--store", str(ref))
    assert res.returncode == 0, res.stderr
    want = decisions(ref, "ref")
    assert [d["step"] for d in want] == list(range(255))
    assert sum(d["correct"] == 0 for d in want) == 0

    db = tmp_path / "new" / "runs.db"
    db.parent.mkdir()
    seen: list[str] = []
    for round_ in ("new store", "existing store"):
        results = start_at_once(4, [*task, "--store", str(db)], tmp_path / "gate")
        for rc, out, err in results:
            assert rc == 0, (round_, err)
            summary = json.loads(out)
            assert summary["status"] == "completed" and summary["errors"] == 0, summary
            assert summary["steps_decided"] == 255
            seen.append(summary["run_id"])
            assert decisions(db, summary["run_id"]) == want, (round_, summary["run_id"])
    assert len(set(seen)) == 8
    res = cli("runs", "--store", str(db), "--json")
    assert res.returncode == 0, res.stderr
    assert sorted(r["run_id"] for r in json.loads(res.stdout)) == sorted(seen)
    # the creation lock and the runs' locks are gone with their holders
    assert sorted(p.name for p in db.parent.iterdir()) == ["runs.db", "runs.db-shm", "runs.db-wal"]


def test_a_busy_store_is_reported_busy_never_corrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unerring.journal import store as store_module
    from unerring.journal.filelock import try_lock, unlock

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.3)
    # another process is creating the store: wait for it, then say busy (not created)
    db = tmp_path / "runs.db"
    lock = Path(f"{db}-schema.lock")
    fd = try_lock(lock, patience_s=0)
    assert fd is not None
    with pytest.raises(StoreError, match=r"store .*runs\.db is busy") as e:
        Store(str(db))
    assert "corrupt" not in str(e.value)
    assert not db.exists()
    unlock(lock, fd)
    Store(str(db)).close()

    # an older store that another process has open cannot change its journal mode to
    # migrate: busy too, and migrated once the other process lets go
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrate(conn, 0, target=SCHEMA_VERSION - 1)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("SELECT count(*) FROM runs").fetchone()
    with pytest.raises(StoreError, match="is busy") as e:
        Store(str(old))
    assert "corrupt" not in str(e.value)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION - 1
    conn.close()
    store = Store(str(old))
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close()


# -- a full disk ---------------------------------------------------------------------------
def test_full_disk_fails_the_run_cleanly_and_keeps_what_was_committed(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    opts = dict(task="hanoi", task_options={"disks": 10}, model=MODEL, k=3, record="samples")
    Store(str(db)).close()
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    # room for the run's row and a few groups of decisions, not for 1,023 decisions with
    # every sample
    session = dict(store=str(db), durability="sync", max_pages=pages + 12, handle_signals=False)
    res = run_task(**opts, **session, run_id="full")
    assert res.outcome.status == "failed"
    assert "journal write failed" in res.outcome.reason and "full" in res.outcome.reason
    res.store.close()
    row = run_row(db, "full")
    assert row["status"] == "failed"
    assert "full" in row["reason"]
    committed = decisions(db, "full")
    assert 0 < len(committed) < 1023
    assert [d["step"] for d in committed] == list(range(len(committed)))
    assert row["next_step"] == len(committed)
    # the summary reports what the journal holds, not what the failed group held
    assert res.summary["steps_decided"] == len(committed)
    assert res.summary["status"] == "failed"

    # with room again, the run resumes and ends exactly as an uninterrupted run
    done = run_task(**opts, store=str(db), handle_signals=False, run_id="full", resume=True)
    assert done.outcome.status == "completed"
    done.store.close()
    ref = run_task(**opts, store=str(tmp_path / "ref.db"), handle_signals=False, run_id="ref")
    ref.store.close()
    assert decisions(db, "full") == decisions(tmp_path / "ref.db", "ref")
    got = json.loads(run_row(db, "full")["stats"])
    want = json.loads(run_row(tmp_path / "ref.db", "ref")["stats"])
    for key in ("steps_decided", "samples", "prompt_tokens", "completion_tokens", "errors"):
        assert got[key] == want[key], key


def test_contested_steps_are_holes_in_one_block_and_read_back_in_place(tmp_path: Path) -> None:
    # grouped commits pack a whole group into one block, the contested steps being holes
    # with rows of their own; one-by-one commits make no holes: both read back the same
    options = dict(task="hanoi", task_options={"disks": 7}, model=MODEL, k=3)
    for name, durability in (("group", "group"), ("sync", "sync")):
        session = dict(
            store=str(tmp_path / f"{name}.db"), durability=durability, handle_signals=False
        )
        result = run_task(**options, **session, run_id="r")
        assert result.outcome.status == "completed"
        result.store.close()
    conn = sqlite3.connect(tmp_path / "group.db")
    blocks = conn.execute("SELECT first_step, last_step, holes FROM decision_blocks").fetchall()
    contested = conn.execute("SELECT count(*) FROM decisions").fetchone()[0]
    conn.close()
    assert len(blocks) == 1 and blocks[0][2] is not None and contested > 5
    grouped = decisions(tmp_path / "group.db", "r")
    assert [d["step"] for d in grouped] == list(range(127))
    assert grouped == decisions(tmp_path / "sync.db", "r")
    store = Store(str(tmp_path / "group.db"), read_only=True)
    run = store.get_run("r")
    assert run is not None and store.count_decisions(run) == 127
    store.close()


# -- the writer's groups -------------------------------------------------------------------
def _writer_run(tmp_path: Path, name: str, **writer_options: Any) -> tuple[Any, Any, Any]:
    """A store, a run in it, and a writer for a 6-disk Hanoi with contested steps."""
    from unerring.journal.writer import JournalWriter

    store = Store(str(tmp_path / f"{name}.db"))
    run = store.create_run(name, "hanoi", {}, 63)
    store.begin_attempt(run)
    writer = JournalWriter(store, run, **writer_options)
    return store, run, writer


def _scheduler(writer: Any) -> Any:
    from unerring.backends.sim import ProcessOracle, SimBackend, SimConfig
    from unerring.core.events import Events
    from unerring.scheduler.loop import Scheduler
    from unerring.voting.config import VotingConfig

    events = Events()
    events.subscribe(writer)
    sim = SimBackend(SimConfig(error=0.1, seed=2))
    return Scheduler(sim, VotingConfig(k=2), events, oracle=ProcessOracle)


def test_groups_cut_by_size_commit_every_decision_once(tmp_path: Path) -> None:
    import asyncio

    from unerring.scheduler.sources import Item
    from unerring.tasks.hanoi import Hanoi

    store, run, writer = _writer_run(tmp_path, "sized", max_group=8, interval_s=60.0)
    engine = _scheduler(writer)
    h = Hanoi(6)
    outcome = asyncio.run(engine.run([Item(0, h, h.initial_state())]))
    writer.close()
    assert outcome.status == "completed"
    blocks = store.conn.execute("SELECT count(*) FROM decision_blocks").fetchone()[0]
    assert blocks >= 63 // 16  # groups of about 8 were cut while the run went on
    got = [d["step"] for d in store.decisions(run)]
    assert got == list(range(63))
    fresh = store.get_run("sized")
    assert fresh is not None and fresh.next_step == 63
    assert writer.totals.samples == engine.totals.samples
    assert writer.totals.errors == engine.totals.errors
    store.close()


def test_the_writer_commits_a_waiting_group_without_a_next_decision(tmp_path: Path) -> None:
    # a slow model: decisions stop coming for a while; the writer cuts the group itself
    # on its interval, so what was decided is durable before the next step arrives
    import asyncio

    from unerring.scheduler.sources import Item
    from unerring.tasks.hanoi import Hanoi

    class FiveSteps(Hanoi):
        def done(self, state: Any, step: int) -> bool:
            return step == 5

    store, _, writer = _writer_run(tmp_path, "slow", max_group=4096, interval_s=0.05)
    engine = _scheduler(writer)
    h = FiveSteps(6)
    asyncio.run(engine.run([Item(0, h, h.initial_state())]))
    deadline = time.monotonic() + 10.0
    committed = 0
    while time.monotonic() < deadline and committed < 5:
        time.sleep(0.05)
        reader = Store(str(tmp_path / "slow.db"), read_only=True)
        row = reader.get_run("slow")
        committed = 0 if row is None else row.next_step
        reader.close()
    assert committed == 5
    writer.close()
    store.close()


# -- user code that fails in the writer ----------------------------------------------------
def _brittle_dump(after: int) -> Any:
    """Hanoi's dump_state, failing from its (after + 1)-th call on."""
    from unerring.tasks.hanoi import Hanoi

    calls = 0
    real = Hanoi.dump_state

    def dump_state(self: Any, state: Any) -> str:
        nonlocal calls
        calls += 1
        if calls > after:
            raise ValueError("peg too heavy to serialise")
        return real(self, state)

    return dump_state


def test_a_failing_dump_state_stops_the_run_in_one_line_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from unerring.cli.main import main
    from unerring.tasks.hanoi import Hanoi

    db = tmp_path / "runs.db"
    # sync: one commit per decision, so the failure lands exactly at step 40
    monkeypatch.setattr(Hanoi, "dump_state", _brittle_dump(after=40))
    code = main([*hanoi_args(db, "brittle", disks=7), "--durability", "sync", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("unerring: run failed:")]
    assert "process 'hanoi' dump_state failed at step 40: ValueError: peg too heavy" in line
    assert "resume with: unerring resume brittle" in line
    # everything decided up to the failure is committed; the snapshot is gone, so that a
    # resume replays the committed winners
    row = run_row(db, "brittle")
    assert row["status"] == "failed" and row["next_step"] == 41 and row["state"] is None
    assert [d["step"] for d in decisions(db, "brittle")] == list(range(41))

    monkeypatch.undo()  # the user fixes dump_state
    assert main(["resume", "brittle", "--store", str(db), "--quiet"]) == 0
    make_store(tmp_path / "ref.db", "ref", disks=7)
    assert decisions(db, "brittle") == decisions(tmp_path / "ref.db", "ref")


def test_the_writer_thread_survives_user_code_and_stops_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    from unerring.tasks.hanoi import Hanoi

    monkeypatch.setattr(Hanoi, "dump_state", _brittle_dump(after=1))
    died: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda a: died.append(repr(a.exc_value)))
    from unerring.scheduler.sources import Item

    store, run, writer = _writer_run(tmp_path, "brittle", max_group=4, interval_s=60.0)
    engine = _scheduler(writer)
    writer.on_error = engine.request_stop
    h = Hanoi(6)
    outcome = asyncio.run(engine.run([Item(0, h, h.initial_state())]))
    # a group holds at most 8 decisions before the step loop waits for the writer: the
    # second group fails by step 16, and the loop, at most one more group on, stops by
    # step 24 (bounded by counting, not by the clock), not 63 steps later
    assert outcome.status == "stopped" and outcome.step <= 3 * 8
    assert "dump_state failed" in outcome.reason and "ValueError" in outcome.reason
    assert writer.error == outcome.reason and not died
    writer.close()
    fresh = store.get_run("brittle")
    assert fresh is not None and fresh.state is None
    assert [d["step"] for d in store.decisions(run)] == list(range(fresh.next_step))
    assert 4 <= fresh.next_step <= outcome.step
    store.close()


# -- durability, record levels, and resuming without a snapshot ----------------------------
@pytest.mark.parametrize(("durability", "level"), [("sync", 2), ("group", 1)])
def test_durability_sets_the_synchronous_level_of_the_committing_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: str, level: int
) -> None:
    from unerring.cli.main import main
    from unerring.journal.writer import JournalWriter

    # FULL (2) fsyncs every commit, for OS crashes and power loss; NORMAL (1) survives a
    # process crash: read on the connection each commit actually goes through
    seen: set[int] = set()
    commit = JournalWriter._commit

    def probed(self: JournalWriter, group: Any) -> None:
        seen.add(self._conn.execute("PRAGMA synchronous").fetchone()[0])
        commit(self, group)

    monkeypatch.setattr(JournalWriter, "_commit", probed)
    db = tmp_path / "runs.db"
    assert main([*hanoi_args(db, "d"), "--durability", durability, "--quiet"]) == 0
    assert seen == {level}


def test_record_decisions_keeps_no_sample_and_contested_keeps_some(tmp_path: Path) -> None:
    counts = {}
    for level in ("decisions", "contested", "samples"):
        db = tmp_path / f"{level}.db"
        res = cli(*hanoi_args(db, "r", disks=6), "--record", level, "--quiet")
        assert res.returncode == 0, res.stderr
        with sqlite3.connect(db) as conn:
            (counts[level],) = conn.execute("SELECT count(*) FROM samples").fetchone()
        # the decisions are the same whatever is recorded (features go with samples)
        got = [{**d, "features": None} for d in decisions(db, "r")]
        assert got == decisions(tmp_path / "decisions.db", "r")
    samples = json.loads(run_row(tmp_path / "samples.db", "r")["stats"])["samples"]
    assert counts["decisions"] == 0 < counts["contested"] < counts["samples"] == samples


NUMBERS = (17, 4, 9, 23, 8, 15, 42, 16, 5, 11, 30, 2, 7, 19, 3, 26)


class RunningSum(Process[tuple[int, int], int]):
    """The README's kind of process: no dump_state of its own (the default writes it)."""

    name = "running-sum"

    def initial_state(self) -> tuple[int, int]:
        return (0, 0)

    def total_steps(self) -> int:
        return len(NUMBERS)

    def done(self, state: tuple[int, int], step: int) -> bool:
        return state[0] == len(NUMBERS)

    def prompt(self, state: tuple[int, int], step: int) -> str:
        return f"The total so far is {state[1]}. Add {NUMBERS[state[0]]}."

    def parse(self, text: str) -> int | Flag:
        head, _, value = text.partition("total = ")
        return int(value) if head == "" and value.lstrip("-").isdigit() else Flag.PARSE

    def advance(self, state: tuple[int, int], answer: int) -> tuple[int, int]:
        return (state[0] + 1, answer)

    def check(self, state: tuple[int, int], step: int, answer: int) -> bool:
        return answer == state[1] + NUMBERS[state[0]]

    def solve(self, state: tuple[int, int], step: int) -> int:
        return state[1] + NUMBERS[state[0]]

    def render(self, answer: int) -> str:
        return f"total = {answer}"

    def wrong_answers(self, state: tuple[int, int], step: int, answer: int) -> list[int]:
        return [answer + 1, answer - 10]


class Replayed(RunningSum):
    """Journals no state: a resume replays the winners from the initial state."""

    def dump_state(self, state: tuple[int, int]) -> str:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("process", "saved"),
    [(RunningSum, "[5,61]"), (Replayed, None)],
    ids=["default-dump", "replay"],
)
def test_a_process_without_its_own_dump_state_resumes(
    tmp_path: Path, process: type[RunningSum], saved: str | None
) -> None:
    import unerring

    db = str(tmp_path / "runs.db")
    model = "sim:error=0.2,seed=1"
    first = unerring.run(
        process(), model=model, k=3, store=db, run_id="sum", budget=Budget(max_samples=20)
    )
    assert first.outcome.status == "stopped" and first.summary["steps_decided"] == 5
    first.store.close()
    row = run_row(tmp_path / "runs.db", "sum")
    # the default writes the tuple state as JSON; a process that opts out journals none
    assert row["state"] == saved and row["next_step"] == first.summary["steps_decided"]
    # a fresh process object, as after a restart: the state comes from the journal alone
    done = unerring.run(process(), model=model, k=3, store=db, run_id="sum")
    assert done.outcome.status == "completed" and done.summary["errors"] == 0
    assert done.outcome.state == (16, sum(NUMBERS))  # a tuple again, not a list
    done.store.close()
    ref = unerring.run(process(), model=model, k=3, store=str(tmp_path / "ref.db"), run_id="sum")
    ref.store.close()
    assert decisions(tmp_path / "runs.db", "sum") == decisions(tmp_path / "ref.db", "sum")
