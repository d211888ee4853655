"""A run against a misbehaving model server on 127.0.0.1, through the real CLI.

A stop request (SIGINT, SIGTERM) ends a run within seconds however the server stalls it,
and a second one forces it; a request's --timeout bounds the whole request; a gzip bomb
stays within --max-response-bytes in memory; many requests in flight wait for no
connection. Each test is bounded in time and fails on a client that waits for the server.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import Behaviour, FakeServer, Reply, fake_openai, perfect_addition
from tests.helpers import child_env, cli, decisions, run_row
from tests.hostile import after, down, killed, retry_after, silent, trickle
from unerring.app.signals import FORCE_S, STOP_GRACE_S

KEY = "sk-test-PLANTED-0000"
HEALTHY = 3  # steps decided on a healthy server before it turns hostile (k=1: a request each)


def _env() -> dict[str, str]:
    env = child_env()
    env["OPENAI_API_KEY"] = KEY
    return env


def _args(url: str, db: Path, run_id: str = "r", *extra: str) -> list[str]:
    return ["run", "addition", "--digits", "12", "--model", "openai:m", "--api",
            "completions", "--base-url", url, "--k", "1", "--concurrency", "1", "--store",
            str(db), "--run-id", run_id, "--quiet", *extra]  # fmt: skip


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "unerring", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip


def _wait(done: Callable[[], bool], what: str, proc: subprocess.Popen[str], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not done():
        assert proc.poll() is None, f"the run ended before {what}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.05)


def _failures(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM transport_failures").fetchone()[0])
    except sqlite3.Error:
        return 0  # not made yet


def _stalled(srv: FakeServer) -> Callable[[], bool]:
    return lambda: len(srv.requests) > HEALTHY


def _breaker_open(db: Path) -> Callable[[], bool]:
    # five failures in a row (the breaker's threshold at --concurrency 1) open it
    return lambda: _failures(db) >= 5


# (the hostile behaviour, what to wait for before the stop request: it is stalled there)
STALLS: dict[str, tuple[Behaviour, Callable[[FakeServer, Path], Callable[[], bool]]]] = {
    "never sends headers": (silent, lambda srv, db: _stalled(srv)),
    "slow loris": (trickle(0.5), lambda srv, db: _stalled(srv)),
    "long Retry-After": (retry_after("100000"), lambda srv, db: _stalled(srv)),
    "open circuit breaker": (down, lambda srv, db: _breaker_open(db)),
    "killed mid-run": (killed, lambda srv, db: _stalled(srv)),
}


def _stop(
    behaviour: Behaviour,
    stalled: Callable[[FakeServer, Path], Callable[[], bool]],
    db: Path,
    signals: tuple[signal.Signals, ...],
    gap_s: float = 0.3,
) -> tuple[subprocess.Popen[str], str, float]:
    """Run until the hostile server stalls the run, send `signals` (`gap_s` apart); the
    exit code, stderr and the seconds from the first signal to the exit."""
    with fake_openai(after(HEALTHY, perfect_addition, behaviour)) as srv:
        proc = _start(_args(srv.url, db))
        try:
            _wait(stalled(srv, db), "stalled", proc, 60)
            time.sleep(0.5)  # well inside the stall (a read, a sleep, a breaker's wait)
            t0 = time.monotonic()
            for i, sig in enumerate(signals):
                if i:
                    time.sleep(gap_s)
                proc.send_signal(sig)
            _out, err = proc.communicate(timeout=60)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return proc, err, took


def _intact(db: Path, sig: signal.Signals) -> None:
    row = run_row(db, "r")
    assert row["status"] == "stopped" and row["reason"] == f"interrupted by {sig.name}"
    # the healthy steps are committed; the stalled one was cancelled, not decided
    assert row["next_step"] == HEALTHY
    assert [d["step"] for d in decisions(db, "r")] == list(range(HEALTHY))


@pytest.mark.parametrize("mode", list(STALLS))
def test_a_stop_request_ends_a_stalled_run_within_seconds(mode: str, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    proc, err, took = _stop(*STALLS[mode], db, (signal.SIGINT,))
    assert took < 10, f"{mode}: exited {took:.1f} s after SIGINT"
    assert proc.returncode == 1 and "Traceback" not in err, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("unerring: run stopped:")]
    assert "interrupted by SIGINT" in line
    assert f"resume with: unerring resume r --store {db}" in line
    _intact(db, signal.SIGINT)


@pytest.mark.parametrize("mode", ["never sends headers", "open circuit breaker"])
def test_sigterm_ends_a_stalled_run_as_sigint_does(mode: str, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    proc, err, took = _stop(*STALLS[mode], db, (signal.SIGTERM,))
    assert took < 10 and proc.returncode == 1 and "Traceback" not in err, (took, err)
    assert "interrupted by SIGTERM" in err
    _intact(db, signal.SIGTERM)


def test_a_second_sigint_stops_at_once(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    proc, err, took = _stop(*STALLS["never sends headers"], db, (signal.SIGINT, signal.SIGINT))
    # the first stop alone would wait out its grace for the steps in flight
    assert took < STOP_GRACE_S, f"exited {took:.1f} s after the first SIGINT"
    assert proc.returncode == 1 and "Traceback" not in err, err
    _intact(db, signal.SIGINT)


def test_a_run_stopped_on_a_dead_server_resumes_to_the_uninterrupted_decisions(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    proc, err, took = _stop(*STALLS["killed mid-run"], db, (signal.SIGINT,))
    assert took < 10 and proc.returncode == 1, (took, err)
    with fake_openai(perfect_addition) as srv:  # back up, on another port
        again = cli("resume", "r", "--store", str(db), "--base-url", srv.url, "--json")
        ref = subprocess.run(
            [sys.executable, "-m", "unerring", *_args(srv.url, tmp_path / "ref.db", "ref")],
            capture_output=True, text=True, timeout=120, env=_env(),
        )  # fmt: skip
    assert ref.returncode == 0, ref.stderr
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "completed", again
    assert decisions(db, "r") == decisions(tmp_path / "ref.db", "ref")


BLOCKING = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from unerring.app.options import Hooks, RunConfig, Session
    from unerring.app.runner import execute
    from unerring.backends.spec import parse_model
    from unerring.planning.plan import VotingOptions
    from unerring.process_factory import OwnProcesses
    from unerring.tasks.addition import Addition

    class Blocking(Addition):
        # a process whose own code never returns at step 3: the loop itself is held
        def prompt(self, state, step):
            if step == 3:
                Path(sys.argv[2]).touch()
                time.sleep(3600)
            return super().prompt(state, step)

    config = RunConfig(parse_model("sim:error=0.0"), VotingOptions(k=1),
                       session=Session(store=sys.argv[1]))
    hooks = Hooks(notify=lambda text: print(text, file=sys.stderr))
    execute(config, OwnProcesses.of(Blocking(12)), run_id="b", hooks=hooks)
    """
)


def test_a_second_sigint_forces_a_run_whose_loop_is_held(tmp_path: Path) -> None:
    script, db, held = tmp_path / "blocking.py", tmp_path / "runs.db", tmp_path / "held"
    script.write_text(BLOCKING)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), str(held)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
    )  # fmt: skip
    try:
        _wait(held.exists, "held", proc, 60)
        time.sleep(0.5)  # the journal writer commits what was decided (every 200 ms)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert took < FORCE_S + 8, f"exited {took:.1f} s after the first SIGINT"
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "forced to stop (SIGINT)" in err and "Traceback" not in err, err
    assert [d["step"] for d in decisions(db, "b")] == [0, 1, 2]  # committed before the hold


# -- --timeout bounds the whole request, Retry-After has a cap ------------------------------------
def test_a_trickled_answer_times_out_after_the_timeout(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with fake_openai(after(HEALTHY, perfect_addition, trickle(0.5))) as srv:
        started = time.monotonic()
        # each byte comes well within --timeout, the whole answer (~70 s) does not: every
        # attempt times out, the breaker opens, and the run stops after --max-outage
        args = _args(srv.url, db, "r", "--timeout", "2", "--max-outage", "5")
        done = subprocess.run(
            [sys.executable, "-m", "unerring", *args],
            capture_output=True, text=True, timeout=120, env=_env(),
        )  # fmt: skip
        took = time.monotonic() - started
    assert done.returncode == 1 and "outage" in done.stderr, done.stderr
    with sqlite3.connect(db) as conn:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM transport_failures")]
    assert len(kinds) >= 5 and set(kinds) == {"timeout"}, kinds
    assert took < 60


def test_a_huge_retry_after_waits_no_longer_than_the_outage_limit(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    once = after(1, retry_after("100000000"), perfect_addition)
    with fake_openai(after(HEALTHY, perfect_addition, once)) as srv:
        done = subprocess.run(
            [sys.executable, "-m", "unerring", *_args(srv.url, db, "r", "--max-outage", "1")],
            capture_output=True, text=True, timeout=60, env=_env(),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert run_row(db, "r")["status"] == "completed"


# -- a gzip bomb stays within --max-response-bytes in memory ----------------------------------
BOMB_MB = 1


def _bomb() -> tuple[bytes, int]:
    """About 1 MB of gzip that inflates to about 1 GB of zeros (made a MiB at a time), and
    the bytes it inflates to."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts: list[bytes] = []
    size = inflated = 0
    while size < BOMB_MB << 20:
        parts.append(z.compress(block))
        size += len(parts[-1])
        inflated += len(block)
    parts.append(z.flush())
    return b"".join(parts), inflated


# the CLI, writing its own peak resident memory (VmHWM, kB) to argv[1] as it exits. Not
# getrusage: a child spawned from a large process (pytest, late in a suite) inherits that
# process's peak in ru_maxrss when it execs; VmHWM belongs to the new program alone
MEASURED = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def peak():
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
    open(out, "w").write(hwm[0].split()[1])
atexit.register(peak)
sys.argv[0] = "unerring"
runpy.run_module("unerring", run_name="__main__", alter_sys=True)
"""


def test_a_gzip_bomb_at_concurrency_8_stays_under_200_mb(tmp_path: Path) -> None:
    bomb, inflated = _bomb()
    assert len(bomb) >= BOMB_MB << 20 and inflated > 500 * len(bomb)

    def reply(path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        return 200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, bomb

    db = tmp_path / "runs.db"
    with fake_openai(reply) as srv:
        args = ["run", "addition", "--digits", "3", "--batch", "8", "--concurrency", "8",
                "--model", "openai:m", "--api", "completions", "--base-url", srv.url, "--k",
                "1", "--store", str(db), "--quiet"]  # fmt: skip
        peak = tmp_path / "peak"
        done = subprocess.run(
            [sys.executable, "-c", MEASURED, str(peak), *args],
            capture_output=True, text=True, timeout=120, env=_env(),
        )  # fmt: skip
        asked = len(srv.requests)
    assert done.returncode == 1 and asked >= 8, done.stderr
    peak_mb = int(peak.read_text()) / 1024
    with sqlite3.connect(db) as conn:
        kinds = {k for (k,) in conn.execute("SELECT kind FROM transport_failures")}
    assert kinds == {"oversize"}, kinds
    print(
        f"gzip bomb ({len(bomb):,} bytes, {inflated:,} inflated) x {asked} requests: "
        f"peak RSS {peak_mb:.0f} MB"
    )
    assert peak_mb < 200


# -- many requests in flight wait for no connection ---------------------------------------------
def test_256_requests_in_flight_on_a_slow_server_see_no_false_timeouts(tmp_path: Path) -> None:
    def slow(path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        time.sleep(2)
        return perfect_addition(path, body, headers)

    db = tmp_path / "runs.db"
    with fake_openai(slow) as srv:
        # a 2 s answer within a 7 s --timeout: the last of 256 requests queued for 64 pooled
        # connections would wait three answers' time and time out (8 s); the 5 s of slack
        # is for a loaded machine
        args = ["run", "addition", "--digits", "1", "--batch", "256", "--concurrency", "256",
                "--timeout", "7", "--model", "openai:m", "--api", "completions", "--base-url",
                srv.url, "--k", "1", "--store", str(db), "--quiet", "--json"]  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "unerring", *args],
            capture_output=True, text=True, timeout=180, env=_env(),
        )  # fmt: skip
    with sqlite3.connect(db) as conn:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM transport_failures")]
    assert kinds == [], f"{len(kinds)} failures: {sorted(set(kinds))}"
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["items_completed"] == 256
