"""Nothing is lost: kill -9 a journaled run at random moments, resume until it completes.

Each attempt runs the real CLI in a subprocess through tests/logged_cli.py, which appends
`step first_index n time` to a log before every sample request: the exact record of what
each killed attempt paid for, which the journal cannot hold (it was never committed).

The reference is an uninterrupted run with the same seed and error model but no simulated
latency (latency never changes a sample's text or count, only when it arrives).

Nothing here depends on how fast the machine is: a kill or signal lands once the attempt
has drawn a seeded number of further steps (counted in its log), and what a kill may lose
is checked against the commits the attempt itself logged, not against a time window.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import child_env, cli, decisions, run_row, run_task

HERE = Path(__file__).resolve().parent
SEED = 20261123
ERROR = "error=0.03,seed=11"
K = 4
RUN_ID = "crash"


@dataclass
class Attempt:
    log: Path
    draws: list[tuple[int, int, int, float]] = field(default_factory=list)
    commits: list[tuple[str, int]] = field(default_factory=list)  # ("B"|"C", next_step)
    killed: bool = False
    committed_after: int = 0  # the journal's next_step once this attempt ended

    def read(self) -> None:
        self.draws = []
        self.commits = []
        if not self.log.exists():
            return
        for line in self.log.read_text().splitlines():
            parts = line.split()
            if parts[0] in ("B", "C"):
                self.commits.append((parts[0], int(parts[1])))
                continue
            step, first, n, t = parts[:4]
            self.draws.append((int(step), int(first), int(n), float(t)))

    @property
    def samples(self) -> int:
        return sum(n for _, _, n, _ in self.draws)

    def last(self, kind: str, default: int) -> int:
        return next((n for k, n in reversed(self.commits) if k == kind), default)


def reference(tmp_path: Path, disks: int) -> tuple[Path, dict[str, object]]:
    db = tmp_path / "reference.db"
    opts = dict(task="hanoi", task_options={"disks": disks}, model=f"sim:{ERROR}", k=K)
    res = run_task(**opts, store=str(db), handle_signals=False, run_id="ref")
    assert res.outcome.status == "completed"
    res.store.close()
    return db, json.loads(run_row(db, "ref")["stats"])


def start(
    attempt: Attempt, db: Path, first: bool, disks: int, durability: str
) -> subprocess.Popen[str]:
    common = ["--store", str(db), "--durability", durability, "--quiet"]
    if first:
        args = [
            "run",
            "hanoi",
            "--disks",
            str(disks),
            "--model",
            f"sim:{ERROR},latency=1",
            "--k",
            str(K),
            "--run-id",
            RUN_ID,
            *common,
        ]
    else:
        args = ["resume", RUN_ID, *common]
    return subprocess.Popen(
        [sys.executable, str(HERE / "logged_cli.py"), str(attempt.log), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )


def drawn_step(log: Path) -> int:
    """The highest step an attempt has asked samples for (-1: none yet)."""
    if not log.exists():
        return -1
    top = -1
    for line in log.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] not in ("B", "C"):  # a draw: step first n time item
            top = max(top, int(parts[0]))
    return top


def wait_for_step(proc: subprocess.Popen[str], attempt: Attempt, step: int) -> None:
    """Wait until the attempt draws for `step` (counting, whatever the machine's speed)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if drawn_step(attempt.log) >= step:
            return
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"attempt ended before step {step} (rc {proc.returncode}): {err}")
        time.sleep(0.002)
    pytest.fail(f"attempt did not reach step {step}")


def crash_and_resume(tmp_path: Path, disks: int, durability: str, kills: int) -> list[Attempt]:
    """Kill -9 `kills` attempts, each after a seeded number of further steps, then resume
    to completion. The numbers add up to less than the run, so it never ends early."""
    rng = random.Random(SEED)
    steps = 2**disks - 1
    most = steps // (kills + 2)
    # one long attempt, so that group commits happen while a run goes on
    further = [most] + [rng.randint(1, most) for _ in range(kills - 1)]
    db = tmp_path / "runs.db"
    attempts: list[Attempt] = []
    committed = 0
    for i in range(kills + 1):
        attempt = Attempt(tmp_path / f"attempt-{i}.log")
        attempts.append(attempt)
        proc = start(attempt, db, i == 0, disks, durability)
        try:
            if i < kills:
                wait_for_step(proc, attempt, committed + further[i])
                assert proc.poll() is None, "the run ended before it could be killed"
                attempt.killed = True
                proc.kill()
                proc.wait()
                assert proc.returncode == -signal.SIGKILL
            else:
                _out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        attempt.committed_after = committed = run_row(db, RUN_ID)["next_step"]
        attempt.read()
        if i == 0:
            # the killed writer could not mark the run: `runs` and `show` see it is gone
            assert run_row(db, RUN_ID)["status"] == "running"
            shown = cli("show", RUN_ID, "--store", str(db), "--json")
            assert json.loads(shown.stdout)["status"] == "interrupted", shown.stderr
            listed = cli("runs", "--store", str(db), "--json")
            assert json.loads(listed.stdout)[0]["status"] == "interrupted", listed.stderr
    return attempts


def check(tmp_path: Path, attempts: list[Attempt], disks: int, sync: bool) -> None:
    db = tmp_path / "runs.db"
    ref_db, ref_stats = reference(tmp_path, disks)
    steps = 2**disks - 1

    # the decisions equal the uninterrupted run's, every step once, in order
    got = decisions(db, RUN_ID)
    assert [d["step"] for d in got] == list(range(steps))
    assert got == decisions(ref_db, "ref")
    row = run_row(db, RUN_ID)
    assert row["status"] == "completed" and row["next_step"] == steps
    stats = json.loads(row["stats"])
    for key in ("steps_decided", "samples", "prompt_tokens", "completion_tokens", "errors"):
        assert stats[key] == ref_stats[key], key

    # each attempt started where the journal said the previous one had committed
    conn_rows = json.loads(
        subprocess.run(
            [sys.executable, "-m", "unerring", "show", RUN_ID, "--store", str(db), "--json"],
            capture_output=True,
            text=True,
            env=child_env(),
            check=True,
        ).stdout
    )
    assert conn_rows["attempts"] == len(attempts)
    previous = 0
    extra_expected = 0
    most_lost = 0
    for attempt in attempts:
        drawn = sorted({s for s, _, _, _ in attempt.draws})
        # no committed step was sampled again
        assert not drawn or drawn[0] == previous, (drawn[:3], previous)
        assert drawn == list(range(previous, previous + len(drawn)))
        committed = attempt.committed_after
        assert committed >= previous
        in_flight = [s for s in drawn if s >= committed]
        if not attempt.killed:
            assert committed == steps and not in_flight
        else:
            extra_expected += sum(n for s, _, n, _ in attempt.draws if s >= committed)
            most_lost = max(most_lost, len(in_flight))
            # a commit that returned survives kill -9; a kill may land inside the last
            # commit begun: the journal holds one or the other, nothing else
            assert committed in (
                attempt.last("C", previous),
                attempt.last("B", previous),
            ), (committed, attempt.commits[-4:])
            if sync:
                # each decision is committed before the next step starts: at most the
                # step being decided is lost
                assert len(in_flight) <= 1, in_flight
        previous = committed
    if not sync:
        # the writer commits while the run goes on (not only at the end): some killed
        # attempt had returned from commits before its kill
        assert any(a.killed and a.last("C", 0) > 0 for a in attempts)
    # what was paid beyond an uninterrupted run is exactly the samples of in-flight steps
    spent = sum(a.samples for a in attempts)
    assert spent - int(ref_stats["samples"]) == extra_expected
    kills = sum(1 for a in attempts if a.killed)
    print(
        f"{kills} kills, {extra_expected} extra samples over {ref_stats['samples']}; "
        f"at most {most_lost} steps lost at one kill"
    )


@pytest.mark.slow
def test_sigkill_group_durability_loses_only_steps_in_flight(tmp_path: Path) -> None:
    attempts = crash_and_resume(tmp_path, disks=13, durability="group", kills=20)
    check(tmp_path, attempts, disks=13, sync=False)


@pytest.mark.slow
def test_sigkill_sync_durability_loses_at_most_the_step_being_decided(tmp_path: Path) -> None:
    attempts = crash_and_resume(tmp_path, disks=12, durability="sync", kills=20)
    check(tmp_path, attempts, disks=12, sync=True)


@pytest.mark.slow
def test_sigterm_and_sigint_stop_cleanly_flush_and_resume(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    db = tmp_path / "runs.db"
    disks = 11
    attempts: list[Attempt] = []
    committed = 0
    for i, sig in enumerate((signal.SIGTERM, signal.SIGINT, signal.SIGTERM, None)):
        attempt = Attempt(tmp_path / f"attempt-{i}.log")
        attempts.append(attempt)
        proc = start(attempt, db, i == 0, disks, "group")
        try:
            wait_for_step(proc, attempt, committed + rng.randint(1, 400))
            if sig is not None:
                assert proc.poll() is None
                proc.send_signal(sig)
            _out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        attempt.read()
        attempt.committed_after = committed = run_row(db, RUN_ID)["next_step"]
        if sig is None:
            assert proc.returncode == 0, err
            continue
        # a clean exit (not killed by the signal), naming the resume command
        assert proc.returncode == 1, (proc.returncode, err)
        assert "Traceback" not in err
        assert f"interrupted by {sig.name}" in err, err
        assert f"resume with: unerring resume {RUN_ID} --store {db}" in err, err
        row = run_row(db, RUN_ID)
        assert row["status"] == "stopped"
        assert row["reason"] == f"interrupted by {sig.name}"
        # everything drawn was decided and flushed: nothing is paid for twice
        drawn = {s for s, _, _, _ in attempt.draws}
        assert drawn and max(drawn) < attempt.committed_after
        assert len(decisions(db, RUN_ID)) == attempt.committed_after
    ref_db, ref_stats = reference(tmp_path, disks)
    assert decisions(db, RUN_ID) == decisions(ref_db, "ref")
    assert sum(a.samples for a in attempts) == ref_stats["samples"]
