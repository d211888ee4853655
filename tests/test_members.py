"""Ensemble members on servers of their own: `openai:NAME@URL#KEY_VAR`, each member's
endpoint and key checked before anything is written, keys never in the journal, and a
member whose server goes down mid-run dropped while the others carry on."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import Reply, fake_openai, perfect_addition
from tests.helpers import cli, one_line_error
from unerring.backends.factory import Transport, api_key
from unerring.backends.members import Endpoint, member_key, split_endpoint
from unerring.backends.spec import parse_model
from unerring.cli.main import main

KEY_A = "sk-test-PLANTED-AAAA"
KEY_B = "sk-test-PLANTED-BBBB"


def test_a_model_spec_may_name_its_own_endpoint_and_key_variable() -> None:
    spec = parse_model("openai:gemma@http://127.0.0.1:8081/v1#GEMMA_KEY")
    assert (spec.provider, spec.name, spec.text) == ("openai", "gemma", "openai:gemma")
    assert spec.endpoint == Endpoint("http://127.0.0.1:8081/v1", "GEMMA_KEY")
    two = parse_model("openai:a@http://h1:1/v1 + 2*openai:b@https://h2/v1")
    assert [(w, m.endpoint) for w, m in two.members] == [
        (1.0, Endpoint("http://h1:1/v1")),
        (2.0, Endpoint("https://h2/v1")),
    ]
    assert [m.label for _, m in two.members] == [
        "openai:a@http://h1:1/v1",
        "openai:b@https://h2/v1",
    ]
    # an @ not followed by a URL is part of the name, as before
    assert parse_model("openai:org@model").endpoint is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("openai:m#KEY", "follows an endpoint"),
        ("openai:@http://h/v1", "model name before @ is empty"),
        ("openai:m@http://h/v1#1KEY", "environment variable"),
        ("openai:m@http://user:secret@h/v1", "credentials"),
    ],
)
def test_a_bad_endpoint_is_refused_in_words(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        split_endpoint(text.split(":", 1)[1])


def test_each_member_reads_its_own_key_variable() -> None:
    spec = parse_model("openai:a@http://h/v1#KEY_A + openai:b@http://g/v1")
    env = {"KEY_A": KEY_A, "OPENAI_API_KEY": KEY_B}
    a, b = (m for _, m in spec.members)
    assert member_key(a.endpoint, "OPENAI_API_KEY", env, "a") == KEY_A
    assert member_key(b.endpoint, "OPENAI_API_KEY", env, "b") == KEY_B
    # a variable named for one member that is not set is a mistake, not a keyless server
    with pytest.raises(ValueError, match=r"\$KEY_A is not set"):
        api_key(spec, Transport(), {"OPENAI_API_KEY": KEY_B})
    with pytest.raises(ValueError, match=r"\$KEY_A") as e:
        api_key(spec, Transport(), {"KEY_A": KEY_A + "\n"})
    assert KEY_A not in str(e.value)


def _ensemble_args(url_a: str, url_b: str, store: Path, *extra: str) -> list[str]:
    return ["run", "addition", "--digits", "12", "--api", "completions", "--k", "2",
            "--model", f"openai:ma@{url_a}#KEY_A", "--model", f"openai:mb@{url_b}#KEY_B",
            "--store", str(store), "--run-id", "r", "--record", "samples", "--json",
            *extra]  # fmt: skip


def test_each_member_asks_its_own_server_with_its_own_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEY_A", KEY_A)
    monkeypatch.setenv("KEY_B", KEY_B)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    store = tmp_path / "runs.db"
    with fake_openai(perfect_addition) as a, fake_openai(perfect_addition) as b:
        code = main(_ensemble_args(a.url, b.url, store))
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "completed" and out["errors"] == 0
    assert a.requests and b.requests
    assert {body["model"] for _, body, _ in a.requests} == {"ma"}
    assert {body["model"] for _, body, _ in b.requests} == {"mb"}
    assert {h["authorization"] for _, _, h in a.requests} == {f"Bearer {KEY_A}"}
    assert {h["authorization"] for _, _, h in b.requests} == {f"Bearer {KEY_B}"}
    raw = store.read_bytes()
    for wal in tmp_path.glob("runs.db-wal"):
        raw += wal.read_bytes()
    assert KEY_A.encode() not in raw and KEY_B.encode() not in raw
    with sqlite3.connect(store) as db:
        models = {m for (m,) in db.execute("SELECT DISTINCT model FROM samples")}
    assert models == {f"openai:ma@{a.url}#KEY_A", f"openai:mb@{b.url}#KEY_B"}


def test_a_member_that_cannot_run_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "runs.db"
    monkeypatch.setenv("KEY_A", KEY_A)
    monkeypatch.setenv("KEY_B", KEY_B)
    with fake_openai(perfect_addition) as a:
        # member b's own server does not answer at all
        res = cli(*_ensemble_args(a.url, "http://127.0.0.1:9/v1", store))
        assert res.returncode == 2
        assert "ensemble member 'openai:mb' cannot be reached" in one_line_error(res.stderr)
        # member a's key variable is not set
        monkeypatch.delenv("KEY_A")
        res = cli(*_ensemble_args(a.url, a.url, store))
        assert res.returncode == 2
        assert "$KEY_A is not set" in one_line_error(res.stderr)
        assert not a.requests
    assert not store.exists()


def _down_after(n: int) -> Any:
    """A server that answers n completions perfectly, then drops every connection."""
    seen = [0]

    def reply(path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        seen[0] += 1
        if seen[0] > n:
            raise ConnectionResetError("down")
        return perfect_addition(path, body, headers)

    return reply


def test_a_member_whose_server_goes_down_is_dropped_and_the_other_carries_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEY_A", KEY_A)
    monkeypatch.setenv("KEY_B", KEY_B)
    store = tmp_path / "runs.db"
    with fake_openai(perfect_addition) as a, fake_openai(_down_after(6)) as b:
        code = main(_ensemble_args(a.url, b.url, store, "--max-outage", "1", "--concurrency", "1"))
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 0, captured.err
    assert out["status"] == "completed" and out["errors"] == 0
    assert out["steps_decided"] == out["steps_total"]
    # the run says so: a failure record of its own, and the summary names the member
    assert out["members_down"] == [f"openai:mb@{b.url}#KEY_B"]
    with sqlite3.connect(store) as db:
        downs = db.execute(
            "SELECT step, message FROM transport_failures WHERE kind = 'member_down'"
        ).fetchall()
        late = db.execute(
            "SELECT DISTINCT model FROM samples WHERE step > ?", (downs[0][0] + 1,)
        ).fetchall()
    assert len(downs) == 1 and "its samples go to the members still answering" in downs[0][1]
    assert late == [(f"openai:ma@{a.url}#KEY_A",)]  # after the drop, member a answers all
    # without --json, the run says so on stderr
    with fake_openai(perfect_addition) as a, fake_openai(_down_after(6)) as b:
        args = _ensemble_args(a.url, b.url, tmp_path / "again.db", "--max-outage", "1")
        code = main([x for x in args if x != "--json"] + ["--quiet", "--concurrency", "1"])
    err = capsys.readouterr().err
    assert code == 0
    assert f"ensemble members that stopped answering: openai:mb@{b.url}#KEY_B" in err
