"""Bad input to an openai: run: one line naming the cause, a clean stop, exit 1 (2 for
usage errors), never a traceback. The server is a small real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import Reply, completion_reply, fake_openai
from tests.fake_openai import perfect_addition as _perfect
from unerring.cli.main import main

KEY = "sk-test-PLANTED-0000"


def _status(code: int, body: object) -> Any:
    def reply(path: str, req: dict[str, Any], h: dict[str, str]) -> Reply:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return code, {"Content-Type": "application/json"}, raw

    return reply


def _redirect(code: int) -> Any:
    def reply(path: str, req: dict[str, Any], h: dict[str, str]) -> Reply:
        # the body parses as an answer: it must not be taken as one
        answer = {"choices": [{"index": 0, "text": " 5"}],
                  "usage": {"prompt_tokens": 1, "completion_tokens": 1}}  # fmt: skip
        return code, {"Location": "http://127.0.0.1:1/v1/completions"}, json.dumps(answer).encode()

    return reply


def _run(url: str, store: Path, *extra: str) -> list[str]:
    return ["run", "addition", "--digits", "3", "--model", "openai:m", "--api", "completions",
            "--base-url", url, "--k", "1", "--store", str(store), *extra]  # fmt: skip


CASES = [
    (_status(401, {"error": {"message": "Incorrect API key"}}), "HTTP 401"),
    (_status(404, {"error": {"message": "model m does not exist"}}), "unknown model 'm'"),
    (_status(400, {"error": {"message": "max_tokens too large"}}), "HTTP 400"),
    (_status(200, b"<html>gateway</html>"), "non-JSON"),
    (_status(200, {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 0}}),
     "empty choice list"),
    (_status(200, {"choices": [{"index": 0, "text": " 5"}]}), "no token usage"),
    (_status(200, b"[" * (5 << 20)), "over the cap of 4194304 (--max-response-bytes)"),
    # a count past SQLite's integers once failed the journal, losing the uncommitted group
    (_status(200, {"choices": [{"index": 0, "text": " 5"}],
                   "usage": {"prompt_tokens": 2**63, "completion_tokens": 1}}),
     "impossible token counts"),
    (_status(200, b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
     "nested too deeply"),
    (_redirect(302), "answered a redirect (HTTP 302) to http://127.0.0.1:1/v1/completions"),
]  # fmt: skip


@pytest.mark.parametrize(("behaviour", "words"), CASES)
def test_bad_server_answers_stop_cleanly(
    behaviour: Any, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    store = tmp_path / "runs.db"
    with fake_openai(behaviour) as srv:
        code = main(_run(srv.url, store))
        calls = len(srv.requests)
    err = capsys.readouterr().err
    assert code == 1
    ends = ("unerring: run failed:", "unerring: run stopped:")
    failure = [ln for ln in err.splitlines() if ln.startswith(ends)]
    assert len(failure) == 1 and words in failure[0], err
    assert "resume with: unerring resume addition-" in failure[0]
    assert "Traceback" not in err and KEY not in err
    # a refusal is not retried: a wrong key must not burn through retries
    assert calls <= 3
    with sqlite3.connect(store) as db:
        (status,) = db.execute("SELECT status FROM runs").fetchone()
    assert status in ("failed", "stopped")


def test_unreachable_base_url_stops_quickly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(_run(f"http://127.0.0.1:{port}/v1", tmp_path / "runs.db"))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"cannot reach http://127.0.0.1:{port}/v1" in err and "unreachable" in err


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--inject-faults", "lightning=0.1"], "is not KIND=CHANCE"),
        (["--inject-faults", "timeout=2"], "must be between 0 and 1"),
        (["--max-cost", "1"], "--max-cost needs the price of model 'm'"),
        (["--rpm", "0"], "--rpm must be positive"),
        (["--timeout", "-1"], "--timeout must be positive"),
        (["--base-url", "http://u:sk-x@127.0.0.1/v1"], "must not carry credentials"),
        (["--prices", "/nonexistent/p.toml", "--max-cost", "1"], "cannot read price file"),
    ],
)
def test_usage_errors_exit_2(
    extra: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_openai() as srv:
        code = main(_run(srv.url, tmp_path / "runs.db", *extra))
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err


def test_a_good_run_reports_tokens_cost_and_injected_faults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text('{"m": {"input": 100, "output": 1000}}')
    with fake_openai(_perfect) as srv:
        faults = "server_error=0.3,rate_limit=0.2"
        code = main(_run(srv.url, tmp_path / "runs.db", "--json", "--prices", str(prices),
                         "--inject-faults", faults, "--max-cost", "5"))  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    s = json.loads(out.out)
    assert s["status"] == "completed" and s["errors"] == 0
    assert s["prompt_tokens"] == 11 * s["samples"]
    assert s["cost"] == pytest.approx(
        (100 * s["prompt_tokens"] + 1000 * s["completion_tokens"]) / 1e6
    )
    assert s["transport_failures"] > 0


def test_a_run_stopped_at_its_budget_resumes_with_its_endpoint_and_api(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    with fake_openai(_perfect) as srv:
        first = subprocess.run(
            [sys.executable, "-m", "unerring", *_run(srv.url, tmp_path / "runs.db"),
             "--max-samples", "2", "--json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        s = json.loads(first.stdout)
        assert first.returncode == 1 and "sample budget reached" in s["reason"]
        # no --base-url, no --api: the journal has both
        again = subprocess.run(
            [sys.executable, "-m", "unerring", "resume", s["run_id"], "--store", store, "--json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    done = json.loads(again.stdout)
    assert again.returncode == 0, again.stderr
    assert done["status"] == "completed" and done["errors"] == 0
    assert all("prompt" in body for _, body, _ in srv.requests)  # completions throughout


def test_an_outage_stops_cleanly_with_the_resume_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = 0

    def dies_after_two(path: str, body: dict[str, Any], h: dict[str, str]) -> Reply:
        nonlocal calls
        calls += 1
        if calls > 2:
            return 503, {"Content-Type": "application/json"}, b'{"error": "down"}'
        return _perfect(path, body, h)

    with fake_openai(dies_after_two) as srv:
        code = main(_run(srv.url, tmp_path / "runs.db", "--max-outage", "1"))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("unerring: run stopped:")]
    assert "outage" in line and "resume with: unerring resume addition-" in line
    with sqlite3.connect(tmp_path / "runs.db") as db:
        (status, next_step) = db.execute("SELECT status, next_step FROM runs").fetchone()
        (failures,) = db.execute("SELECT count(*) FROM transport_failures").fetchone()
    # the two answered steps are committed; every failed attempt is on record
    assert status == "stopped" and next_step == 2 and failures >= 5


def test_human_summary_shows_tokens_cost_and_transport_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text('{"m": {"input": 100, "output": 1000}}')
    with fake_openai(_perfect) as srv:
        code = main(_run(srv.url, tmp_path / "runs.db", "--prices", str(prices),
                         "--inject-faults", "server_error=0.4"))  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "tokens " in out.out and "cost $" in out.out
    assert "transport failures " in out.out and "transport failures " in out.err


def _off_by_one_on_sixes(path: str, body: dict[str, Any], h: dict[str, str]) -> Reply:
    """A model with a systematic slip: every sum with a 6 in it comes out one too high."""
    if path.endswith("chat/completions"):  # asked to write a note: prose, not JSON
        return completion_reply(path, body, h)
    a, b = body["prompt"].rsplit("\n", 1)[1].rstrip("=").split("+")
    status, headers, raw = completion_reply(path, body, h)
    data = json.loads(raw)
    slip = 1 if "6" in (a.strip(), b.strip()) else 0
    for c in data["choices"]:
        c["text"] = f" {int(a) + int(b) + slip}"
    return status, headers, json.dumps(data).encode()


def test_notes_learn_validates_on_the_runs_endpoint_in_the_runs_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # regression: each gate ran in a new event loop with one HTTP client made in the first
    store = tmp_path / "runs.db"
    with fake_openai(_off_by_one_on_sixes) as srv:
        run = ["run", "addition", "--digits", "40", "--model", "openai:m", "--api",
               "completions", "--base-url", srv.url, "--k", "2", "--store", str(store),
               "--run-id", "slips", "--quiet"]  # fmt: skip
        assert main(run) == 0
        capsys.readouterr()
        before = len(srv.requests)
        for writer in ("template", "openai:m"):
            code = main(["notes", "learn", "slips", "--model", "openai:m", "--writer", writer,
                         "--name", f"nb-{writer[:4]}", "--store", str(store),
                         "--validation", "4", "--samples", "2"])  # fmt: skip
            out = capsys.readouterr()
            assert code == 0, out.err
            assert "Traceback" not in out.err and "notebook nb-" in out.out
        gate_paths = {p for p, _, _ in srv.requests[before:]}
    # the gate asked in the run's form (completions), the model writer in chat form
    assert any(p.endswith("/v1/completions") for p in gate_paths)
    assert any(p.endswith("/v1/chat/completions") for p in gate_paths)
