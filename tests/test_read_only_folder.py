"""Reading a store in a folder that cannot be written (a read-only mount, a directory
without write permission): runs, show, export, report and failures work and make no file.

SQLite reads a WAL store through a -shm file made beside it; where none can be made the
store is read as immutable (journal.store.read_uri). A folder is made read-only here as
the test's user allows: a non-root user by its permissions; root, whom permissions do not
stop, by a read-only tmpfs mounted in a mount namespace of its own (unshare -m).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import child_env, cli
from unerring.journal.store import Store, read_uri

MODEL = "sim:error=0.1,seed=2"

# every reader, with its output (if any) outside the store's folder; OUT is replaced
READERS = [
    ["runs"],
    ["runs", "--json"],
    ["show", "r"],
    ["show", "r", "--json"],
    ["export", "r"],
    ["export", "r", "--format", "csv", "--what", "samples"],
    ["export", "r", "--format", "parquet", "-o", "OUT/r.parquet"],
    ["report", "r", "-o", "OUT/r.html"],
    ["failures", "r", "--json"],
]

# run in the read-only folder: each reader in a subprocess, what it made beside the store
DRIVER = """
import json, os, subprocess, sys
folder, store, out = sys.argv[1], sys.argv[2], sys.argv[3]
readers = json.loads(sys.argv[4])
before = sorted(os.listdir(folder))
results = []
for args in readers:
    args = [a.replace("OUT", out) for a in args]
    r = subprocess.run([sys.executable, "-m", "unerring", *args, "--store", store],
                       capture_output=True, text=True)
    results.append({"args": args, "rc": r.returncode, "stderr": r.stderr[-500:],
                    "stdout": r.stdout})
print(json.dumps({"before": before, "after": sorted(os.listdir(folder)), "results": results}))
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("ro-source") / "runs.db"
    res = cli("run", "hanoi", "--disks", "6", "--model", MODEL, "--store", str(db),
              "--run-id", "r", "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    # the writer closed it: every commit is in the main file, no -wal or -shm beside it
    assert sorted(p.name for p in db.parent.iterdir()) == ["runs.db"]
    return db


def _in_read_only_folder(store: Path, tmp_path: Path) -> dict[str, object]:
    out = tmp_path / "out"
    out.mkdir()
    readers = json.dumps(READERS)
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        shutil.copy(store, folder / store.name)
        folder.chmod(0o555)
        try:
            assert not os.access(folder, os.W_OK)
            res = subprocess.run(
                [sys.executable, "-c", DRIVER, str(folder), str(folder / store.name), str(out),
                 readers],
                capture_output=True, text=True, timeout=300, env=child_env(),
            )  # fmt: skip
        finally:
            folder.chmod(0o755)
    else:
        folder = tmp_path / "mnt"
        folder.mkdir()
        script = (
            'mount -t tmpfs -o size=16m tmpfs "$1" && cp "$2" "$1"/ && '
            'mount -o remount,ro "$1" && exec "$3" -c "$4" "$1" "$1/$5" "$6" "$7"'
        )
        res = subprocess.run(
            ["unshare", "-m", "sh", "-c", script, "sh", str(folder), str(store),
             sys.executable, DRIVER, store.name, str(out), readers],
            capture_output=True, text=True, timeout=300, env=child_env(),
        )  # fmt: skip
        if res.returncode != 0 and not res.stdout:
            pytest.fail(
                "root needs a read-only folder that permissions cannot give it: a tmpfs "
                f"mounted read-only in its own mount namespace failed: {res.stderr.strip()}"
            )
    assert res.returncode == 0, res.stderr
    got: dict[str, object] = json.loads(res.stdout)
    return got


def test_readers_work_in_a_read_only_folder_and_make_no_file(store: Path, tmp_path: Path) -> None:
    got = _in_read_only_folder(store, tmp_path)
    assert got["before"] == got["after"] == ["runs.db"]
    results = got["results"]
    assert isinstance(results, list)
    for r in results:
        assert r["rc"] == 0, r
        assert "Traceback" not in r["stderr"], r
    by = {" ".join(r["args"]): r for r in results}
    assert [r["run_id"] for r in json.loads(by["runs --json"]["stdout"])] == ["r"]
    assert "steps_decided" in by["show r"]["stdout"]
    # the same records as read where the folder can be written
    here = cli("export", "r", "--store", str(store))
    assert by["export r"]["stdout"] == here.stdout and here.stdout
    assert (tmp_path / "out" / "r.parquet").stat().st_size > 0
    assert (tmp_path / "out" / "r.html").stat().st_size > 0


def test_the_read_only_open_of_a_closed_store_makes_no_file(store: Path, tmp_path: Path) -> None:
    # the open a read-only folder gets, tried in a folder this test can write (where SQLite
    # would otherwise make a -wal and a -shm file beside the store)
    db = tmp_path / "runs.db"
    shutil.copy(store, db)
    uri = read_uri(db, writable_folder=False)
    assert "immutable=1" in uri
    conn = sqlite3.connect(uri, uri=True)
    assert conn.execute("SELECT run_id FROM runs").fetchall() == [("r",)]
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]
    # where the folder can be written, the ordinary read-only open (it sees a live writer)
    assert "immutable" not in read_uri(db, writable_folder=True)
    store_ = Store(str(db), read_only=True)
    assert store_.get_run("r") is not None
    store_.close()


def test_commits_waiting_in_a_wal_are_never_read_as_immutable(tmp_path: Path) -> None:
    # a writer killed with commits in its -wal file: the main file alone misses them, so
    # the immutable open is never chosen; where the folder cannot be written the store is
    # refused in one line saying what to do (the real case needs a read-only folder: the
    # test above makes one; here the choice itself)
    db = tmp_path / "runs.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    assert Path(f"{db}-wal").stat().st_size > 0  # (the connection is open: not checkpointed)
    assert "immutable" not in read_uri(db, writable_folder=False)
    conn.close()
