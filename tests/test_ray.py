"""The Ray executor against a real local Ray cluster (from the PyPI wheel, on 127.0.0.1):
the record does not depend on the executor or the worker count, a killed worker loses
nothing and decides nothing twice, a killed driver resumes, bad input says one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import child_env, cli, one_line_error, run_task
from unerring.app.options import BatchItem
from unerring.app.result import RunResult
from unerring.backends.factory import Transport
from unerring.executors import ExecutorSpec
from unerring.journal.store import Store
from unerring.tasks.hanoi import Hanoi
from unerring.voting.config import Budget

# a cluster started here listens on 127.0.0.1 only (set before Ray is imported)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
import ray

MODEL = "sim:error=0.05,flag=0.03,seed=5"  # contested and flagged steps: rows of their own


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One local Ray cluster for the module; its address, for the CLI's --ray-address."""
    import logging

    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address
        yield address
    finally:
        ray.shutdown()


def _options(disks: int = 5, model: str = MODEL, k: int = 2) -> dict[str, Any]:
    return dict(task="hanoi", task_options={"disks": disks}, model=model, k=k)


def _batch(n: int, disks: int = 5) -> list[BatchItem]:
    return [BatchItem(str(i), {"disks": disks}) for i in range(1, n + 1)]


def _run(
    db: Path, run_id: str, executor: ExecutorSpec, n: int = 12, disks: int = 5, **session: Any
) -> RunResult:
    result = run_task(
        **_options(disks, session.pop("model", MODEL), session.pop("k", 2)),
        store=str(db),
        handle_signals=False,
        executor=executor,
        **session,
        run_id=run_id,
        batch=_batch(n, disks),
    )
    result.store.close()
    return result


def _record(db: Path, run_id: str) -> dict[str, Any]:
    """Every item's decisions, samples, resume point and totals (wall time left out; and
    the work a budget cut threw away, paid for and never voted, which a run that was not
    cut does not have)."""
    store = Store(str(db), read_only=True)
    try:
        run = store.get_run(run_id)
        assert run is not None
        thrown = {
            item: (ptoks, ctoks)
            for item, ptoks, ctoks in store.conn.execute(
                "SELECT item, sum(prompt_tokens), sum(completion_tokens) FROM discarded"
                " WHERE run = ? GROUP BY item",
                (run.id,),
            )
        }
        out: dict[str, Any] = {}
        for it in store.items(run):
            rows = []
            for d in store.decisions(run, item=it.item):
                d.pop("elapsed")
                rows.append(d)
            samples = [
                {k: v for k, v in dict(r).items() if k not in ("latency", "id")}
                for r in store.samples(run, item=it.item)
            ]
            stats = {
                k: v for k, v in it.stats.items() if k not in ("wall_s", "speculative_samples")
            }
            if it.item in thrown:
                ptoks, ctoks = thrown[it.item]
                stats["prompt_tokens"] -= ptoks
                stats["completion_tokens"] -= ctoks
            out[it.item_id] = (rows, samples, it.status, it.next_step, it.state, stats)
        return out
    finally:
        store.close()


LOCAL = ExecutorSpec()


def test_ray_records_what_local_records(cluster: str, tmp_path: Path) -> None:
    local = _run(tmp_path / "l.db", "b", LOCAL)
    far = _run(tmp_path / "r.db", "b", ExecutorSpec("ray", workers=3))
    assert local.outcome.status == far.outcome.status == "completed"
    want = _record(tmp_path / "l.db", "b")
    got = _record(tmp_path / "r.db", "b")
    assert got == want
    # the batch has steps of every kind, so the comparison covers them
    rows = [d for rows, *_ in want.values() for d in rows]
    assert len(rows) == 12 * 31
    assert any(d["flags"] for d in rows) and any(len(d["votes"]) > 2 for d in rows)
    assert sum(len(s) for _, s, *_ in want.values()) > 0
    for key in ("steps_decided", "samples", "red_flags", "errors", "prompt_tokens"):
        assert far.summary[key] == local.summary[key], key
    assert far.summary["executor"] == "ray" and far.summary["workers"] == 3
    assert far.summary["worker_restarts"] == 0


def test_resume_moves_between_executors_and_worker_counts(cluster: str, tmp_path: Path) -> None:
    """Started local, resumed on Ray with 3 workers, then on Ray with 1, then local: the
    decisions are those of one uninterrupted local run."""
    db = tmp_path / "m.db"
    model = f"{MODEL},latency=fixed:2"  # a budget stops within a few samples
    common = ["--store", str(db), "--json", "--quiet"]
    first = cli(
        "run", "hanoi", "--disks", "6", "--batch", "10", "--run-id", "m", "--model", model,
        "--k", "2", "--max-samples", "400", *common,
    )  # fmt: skip
    assert first.returncode == 1, first.stderr
    assert "sample budget reached" in json.loads(first.stdout)["reason"]
    steps = []
    for extra, cap in (
        (["--executor", "ray", "--workers", "3", "--ray-address", cluster], "800"),
        (["--executor", "ray", "--workers", "1", "--ray-address", cluster], "1100"),
    ):
        res = cli("resume", "m", *common, *extra, "--max-samples", cap)
        s = json.loads(res.stdout)
        assert res.returncode == 1 and "sample budget reached" in s["reason"], res.stderr
        assert s["executor"] == "ray"
        steps.append(s["steps_decided"])
    assert steps[0] < steps[1] < 10 * 63  # each attempt got on, none finished
    last = cli("resume", "m", *common)
    s = json.loads(last.stdout)
    assert last.returncode == 0 and s["status"] == "completed", last.stderr
    assert s["attempts"] == 4
    ref = _run(tmp_path / "ref.db", "m", LOCAL, n=10, disks=6, model=model)
    assert ref.outcome.status == "completed"
    assert _record(db, "m") == _record(tmp_path / "ref.db", "m")


def _nodes(db: Path, run_id: str) -> list[tuple[Any, ...]]:
    """A graph's task tree as journaled, by node id (nodes made at run time are made in
    the order their parents end, which timing decides; what each holds does not)."""
    store = Store(str(db), read_only=True)
    try:
        run = store.get_run(run_id)
        assert run is not None and run.kind == "graph"
        return sorted(
            (it.item_id, it.parent, it.kind, it.input, it.deps, it.depth, it.output, it.status)
            for it in store.items(run)
        )
    finally:
        store.close()


@pytest.mark.parametrize(
    ("task", "options"), [("multiply", {"digits": 5}), ("sort", {"numbers": 14, "seed": 3})]
)
def test_a_graph_on_ray_records_what_local_records(
    cluster: str, tmp_path: Path, task: str, options: dict[str, Any]
) -> None:
    """The task tree stays in the driver; its ready nodes go to the actors, and what they
    decide comes back to make the next nodes ready (sort: children made at run time)."""
    runs = {}
    for name, executor in (("l", LOCAL), ("r", ExecutorSpec("ray", workers=3))):
        res = run_task(
            task=task,
            task_options=options,
            model=MODEL,
            k=2,
            store=str(tmp_path / f"{name}.db"),
            handle_signals=False,
            executor=executor,
            run_id="g",
        )
        res.store.close()
        assert res.outcome.status == "completed", res.outcome.reason
        runs[name] = res
    local, far = runs["l"].summary, runs["r"].summary
    assert far["executor"] == "ray" and far["workers"] == 3
    assert far["result_correct"] is local["result_correct"] is True
    for key in ("nodes", "steps_decided", "samples", "red_flags", "errors"):
        assert far[key] == local[key], key
    assert _nodes(tmp_path / "r.db", "g") == _nodes(tmp_path / "l.db", "g")
    assert _record(tmp_path / "r.db", "g") == _record(tmp_path / "l.db", "g")
    assert len(_nodes(tmp_path / "l.db", "g")) == local["nodes"] >= 9


def test_a_graph_resumes_between_executors(cluster: str, tmp_path: Path) -> None:
    """A sort stopped by its budget on the local executor, resumed on Ray (stopped again),
    then finished locally: the tree and every decision are those of one local run."""
    db = tmp_path / "g.db"
    model = f"{MODEL},latency=fixed:2"  # a budget stops within a few samples
    common = ["--store", str(db), "--json", "--quiet"]
    task = ["sort", "--numbers", "20", "--seed", "4", "--model", model, "--k", "2"]
    first = cli("run", *task, "--run-id", "g", "--max-samples", "60", *common)
    assert first.returncode == 1 and "sample budget" in json.loads(first.stdout)["reason"]
    ray_args = ["--executor", "ray", "--workers", "2", "--ray-address", cluster]
    mid = cli("resume", "g", *common, *ray_args, "--max-samples", "140")
    s = json.loads(mid.stdout)
    assert mid.returncode == 1 and "sample budget" in s["reason"], mid.stderr
    before = json.loads(first.stdout)["steps_decided"]
    assert s["executor"] == "ray" and 0 < before < s["steps_decided"]
    last = cli("resume", "g", *common)
    s = json.loads(last.stdout)
    assert last.returncode == 0 and s["status"] == "completed", last.stderr
    assert s["attempts"] == 3 and s["result_correct"] is True
    ref = tmp_path / "ref.db"
    done = cli("run", *task, "--run-id", "g", "--store", str(ref), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    assert _nodes(db, "g") == _nodes(ref, "g")
    assert _record(db, "g") == _record(ref, "g")


@contextmanager
def _kill_one_worker(execution: Any, when: int, killed: list[int]) -> Iterator[None]:
    """Once `when` steps are decided, SIGKILL the process of one Ray worker."""
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            if execution.totals.steps_decided >= when:
                pid = execution.worker_pids()[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_and_decides_nothing_twice(
    cluster: str, tmp_path: Path
) -> None:
    model = "sim:error=0.02,flag=0.02,seed=5,latency=lognormal:4:0.5"  # killed mid-batch
    killed: list[int] = []
    heard: list[str] = []
    n, disks = 16, 6
    total = n * 63
    result = _run(
        tmp_path / "k.db",
        "k",
        ExecutorSpec("ray", workers=2),
        n=n,
        disks=disks,
        model=model,
        progress=lambda ex, run, counts: _kill_one_worker(ex, total // 3, killed),
        notify=heard.append,
        transport=Transport(concurrency=16),
        k=3,
    )
    assert len(killed) == 1
    assert result.outcome.status == "completed", result.outcome.reason
    s = result.summary
    assert s["errors"] == 0 and s["items_completed"] == n
    assert s["worker_restarts"] == 1
    assert len(heard) == 1 and "worker" in heard[0] and "died" in heard[0], heard
    got = _record(tmp_path / "k.db", "k")
    for rows, *_ in got.values():
        assert [d["step"] for d in rows] == list(range(63))  # none missing, none twice
    ref = _run(tmp_path / "ref.db", "k", LOCAL, n=n, disks=disks, model=model, k=3)
    assert got == _record(tmp_path / "ref.db", "k")
    # the journal counts each decision once: what the dead worker drew again is reported
    assert s["samples"] == ref.summary["samples"]
    # steps half voted at the dead worker's last report are drawn again, and said so
    # (a lower bound: it can be 0 when the report caught no step half voted)
    assert "the steps in flight on it are drawn again" in heard[0]
    if s["redrawn_samples"]:
        assert f"drawn again, at least {s['redrawn_samples']} samples" in heard[0]


@pytest.mark.slow
def test_a_graph_with_a_killed_worker_completes_as_a_local_run(
    cluster: str, tmp_path: Path
) -> None:
    """A sort on Ray loses a worker mid-run: its nodes go to a new actor from their last
    decisions received; the tree and the decisions are a local run's."""
    model = "sim:error=0.02,flag=0.02,seed=5,latency=lognormal:4:0.5"
    options = dict(task="sort", task_options={"numbers": 40, "seed": 2}, model=model, k=3)
    killed: list[int] = []
    heard: list[str] = []
    result = run_task(
        **options,
        store=str(tmp_path / "k.db"),
        handle_signals=False,
        executor=ExecutorSpec("ray", workers=2),
        transport=Transport(concurrency=16),
        progress=lambda ex, run, counts: _kill_one_worker(ex, 60, killed),
        notify=heard.append,
        run_id="g",
    )
    result.store.close()
    assert len(killed) == 1 and result.summary["worker_restarts"] == 1, heard
    assert result.outcome.status == "completed", result.outcome.reason
    assert result.summary["result_correct"] is True
    ref = run_task(**options, store=str(tmp_path / "ref.db"), handle_signals=False, run_id="g")
    ref.store.close()
    assert result.summary["steps_decided"] == ref.summary["steps_decided"] > 60
    assert _nodes(tmp_path / "k.db", "g") == _nodes(tmp_path / "ref.db", "g")
    assert _record(tmp_path / "k.db", "g") == _record(tmp_path / "ref.db", "g")


@pytest.mark.slow
def test_a_killed_driver_is_a_crash_like_any_other(cluster: str, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    model = f"{MODEL},latency=fixed:3"
    args = [
        sys.executable, "-m", "unerring", "run", "hanoi", "--disks", "6", "--batch", "12",
        "--k", "2", "--model", model, "--store", str(db), "--run-id", "d", "--quiet",
        "--executor", "ray", "--workers", "2", "--ray-address", cluster,
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if _committed_steps(db) >= 150:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert 0 < _committed_steps(db) < 12 * 63
    res = cli("resume", "d", "--store", str(db), "--json", "--quiet",
              "--executor", "ray", "--workers", "3", "--ray-address", cluster)  # fmt: skip
    assert res.returncode == 0, res.stderr
    ref = _run(tmp_path / "ref.db", "d", LOCAL, n=12, disks=6, model=model)
    assert ref.outcome.status == "completed"
    assert _record(db, "d") == _record(tmp_path / "ref.db", "d")


def _committed_steps(db: Path, run_id: str = "d") -> int:
    if not db.exists():
        return 0
    try:
        store = Store(str(db), read_only=True)
    except Exception:
        return 0
    try:
        run = store.get_run(run_id)
        return 0 if run is None else int(run.stats.get("steps_decided", 0))
    finally:
        store.close()


def test_the_driver_holds_the_budget(cluster: str, tmp_path: Path) -> None:
    cap = 3000
    # a model that takes 1 ms a request paces the workers (about 8,000 samples a second in
    # all at the default 8 in flight), so what they decide between two of the driver's
    # looks at the totals does not hang on how this busy 2-core machine schedules them
    result = _run(
        tmp_path / "b.db", "b", ExecutorSpec("ray", workers=2), n=12, disks=10,
        budget=Budget(max_samples=cap), model=f"{MODEL},latency=fixed:1",
    )  # fmt: skip
    assert result.outcome.status == "stopped"
    assert "sample budget reached" in result.outcome.reason
    spent = result.summary["samples"]
    # at most what the workers decide in one exchange (20 ms each) beyond the cap: a few
    # hundred samples; the bound leaves a second's worth for a slow machine, and the batch
    # would draw about 37,000 without the cap
    assert cap <= spent < cap + 8_000
    assert result.summary["items_stopped"] + result.summary["items_pending"] > 0


# -- bad input: one line, exit 2, nothing written ----------------------------------------------
def _refused(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    db = tmp_path / "never.db"
    res = subprocess.run(
        [sys.executable, "-m", "unerring", "run", "hanoi", "--disks", "3", "--store", str(db),
         *args],
        capture_output=True, text=True, timeout=60, env=env or child_env(),
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert not db.exists() and not list(tmp_path.glob("never.db*"))
    assert "Traceback" not in res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_unknown_executor(tmp_path: Path) -> None:
    assert "invalid choice: 'spark'" in _refused(tmp_path, "--executor", "spark")


def test_workers_below_one(tmp_path: Path) -> None:
    assert "0 must be at least 1" in _refused(tmp_path, "--executor", "ray", "--workers", "0")


def test_workers_without_ray(tmp_path: Path) -> None:
    assert "workers applies to the ray executor" in _refused(tmp_path, "--workers", "2")


def test_unreachable_ray_address(tmp_path: Path) -> None:
    line = _refused(tmp_path, "--executor", "ray", "--ray-address", "127.0.0.1:9")
    assert "address 127.0.0.1:9: no Ray cluster answers there" in line
    assert "is not HOST:PORT" in _refused(tmp_path, "--executor", "ray", "--ray-address", "nope")


def test_ray_not_installed(tmp_path: Path) -> None:
    fake = tmp_path / "noray"
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = child_env()
    env["PYTHONPATH"] = f"{fake}{os.pathsep}{env['PYTHONPATH']}"
    line = _refused(tmp_path, "--executor", "ray", env=env)
    assert one_line_error(line) == line
    assert "needs Ray, which is not installed: pip install 'unerring[ray]'" in line


def test_concurrency_below_workers(cluster: str, tmp_path: Path) -> None:
    line = _refused(
        tmp_path, "--executor", "ray", "--workers", "3", "--concurrency", "2",
        "--ray-address", cluster,
    )  # fmt: skip
    assert "concurrency 2 is below workers 3" in line


class OwnHanoi(Hanoi):
    """A process of the user's own (pickled to the actors with its items)."""

    name = "own-hanoi"


def test_a_library_batch_of_own_processes_on_ray(cluster: str, tmp_path: Path) -> None:
    import unerring

    procs = {f"p{d}": OwnHanoi(d) for d in (3, 4, 5, 6)}
    kw: dict[str, Any] = {"model": MODEL, "k": 2, "run_id": "own"}
    far = unerring.run_batch(
        procs, store=str(tmp_path / "r.db"), executor=ExecutorSpec("ray", workers=2), **kw
    )
    near = unerring.run_batch(procs, store=str(tmp_path / "l.db"), **kw)
    assert far.outcome.status == near.outcome.status == "completed"
    for name in procs:
        got = [{k: v for k, v in d.items() if k != "elapsed"} for d in far.decisions(name)]
        want = [{k: v for k, v in d.items() if k != "elapsed"} for d in near.decisions(name)]
        assert got == want and len(got) == 2 ** int(name[1:]) - 1


def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process under `pid`."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True)
    children: dict[int, list[tuple[int, str]]] = {}
    for line in out.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2:
            children.setdefault(int(parts[1]), []).append(
                (int(parts[0]), parts[2] if len(parts) > 2 else "")
            )
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child[0])
    return found


@pytest.mark.slow
def test_the_cli_with_its_own_cluster_survives_a_killed_worker(tmp_path: Path) -> None:
    """No --ray-address: the CLI starts its own cluster (on 127.0.0.1) and stops it; a
    worker killed under it is reported in one line on stderr; stdout stays one JSON line."""
    db = tmp_path / "c.db"
    args = [
        sys.executable, "-m", "unerring", "run", "hanoi", "--disks", "6", "--batch", "16",
        "--k", "3", "--model", "sim:error=0.01,latency=fixed:5", "--store", str(db),
        "--run-id", "c", "--json", "--executor", "ray", "--workers", "2",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env()
    )
    try:
        deadline = time.monotonic() + 90
        victim = None
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            workers = [p for p, cmd in _descendants(proc.pid) if cmd.startswith("ray::Worker")]
            if workers and _committed_steps(db, "c") >= 100:
                victim = workers[0]
            time.sleep(0.05)
        assert victim is not None, "no worker to kill"
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    s = json.loads(out)  # stdout holds the summary alone
    assert s["status"] == "completed" and s["errors"] == 0 and s["worker_restarts"] == 1
    died = [x for x in err.splitlines() if "died" in x]
    assert len(died) == 1 and died[0].startswith("unerring: worker "), err
    assert "Traceback" not in err


@ray.remote(num_cpus=1)
class _Hog:
    def ready(self) -> bool:
        return True


def test_workers_that_cannot_start_stop_the_run_with_the_reason(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster without room for the workers: the run stops, resumable, saying why."""
    from unerring.executors import ray as ray_executor

    monkeypatch.setattr(ray_executor, "START_S", 2.0)
    hogs = [_Hog.remote() for _ in range(4)]  # every CPU of the module's cluster
    try:
        ray.get([h.ready.remote() for h in hogs], timeout=60)
        result = _run(tmp_path / "n.db", "n", ExecutorSpec("ray", workers=2), n=4, disks=4)
    finally:
        for h in hogs:
            ray.kill(h)
    assert result.outcome.status == "stopped"
    assert "2 of 2 workers did not start within 2 s" in result.outcome.reason
    assert result.summary["items_pending"] == 4
    again = _run(tmp_path / "n.db", "n", LOCAL, n=4, disks=4)
    assert again.outcome.status == "completed"


def test_adaptive_stopping_on_ray_is_refused_in_one_line(tmp_path: Path) -> None:
    # the rule learns from every item's steps in one process: refused before Ray starts
    db = tmp_path / "never.db"
    res = cli("run", "hanoi", "--disks", "4", "--batch", "3", "--stopping", "adaptive",
              "--executor", "ray", "--store", str(db))  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--stopping adaptive runs on the local executor" in res.stderr.strip().splitlines()[-1]
    assert not db.exists()


def test_a_streamed_graph_on_ray_records_what_local_records(cluster: str, tmp_path: Path) -> None:
    """`sum`: a graph whose nodes are a stream; the driver's tree pulls them as the actors
    need ready nodes, and each result goes once its one use has started."""
    runs = {}
    for name, executor in (("l", LOCAL), ("r", ExecutorSpec("ray", workers=2))):
        res = run_task(
            task="sum",
            task_options={"numbers": 300},
            model=MODEL,
            k=2,
            store=str(tmp_path / f"{name}.db"),
            handle_signals=False,
            executor=executor,
            run_id="g",
        )
        res.store.close()
        assert res.outcome.status == "completed", res.outcome.reason
        runs[name] = res.summary
    assert runs["r"]["executor"] == "ray"
    for key in ("nodes", "steps_decided", "samples", "errors", "result_correct"):
        assert runs["r"][key] == runs["l"][key], key
    assert runs["l"]["nodes"] == 299
    assert _nodes(tmp_path / "r.db", "g") == _nodes(tmp_path / "l.db", "g")
    assert _record(tmp_path / "r.db", "g") == _record(tmp_path / "l.db", "g")


def test_a_users_class_from_a_file_runs_on_ray_workers(cluster: str, tmp_path: Path) -> None:
    """`FILE.py:Class` is loaded under a module name no worker can import: its code goes
    with the pickled processes, and the run records what a local one records."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    ref = f"{examples / 'qa.py'}:Answer"
    common = ["--items", str(examples / "capitals.jsonl"), "--model", MODEL, "--k", "2"]
    local = cli("run", ref, *common, "--store", str(tmp_path / "l.db"), "--run-id", "q", "--quiet")
    assert local.returncode == 0, local.stderr
    far = cli("run", ref, *common, "--store", str(tmp_path / "r.db"), "--run-id", "q", "--quiet",
              "--executor", "ray", "--workers", "2", "--ray-address", cluster)  # fmt: skip
    assert far.returncode == 0, far.stderr
    assert _record(tmp_path / "r.db", "q") == _record(tmp_path / "l.db", "q")
