"""API keys never reach text a run writes: every form is scrubbed, and a key that HTTP
would refuse (and quote back) is refused at start. The keys here are fake strings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests.fake_openai import Reply, fake_openai, perfect_addition
from tests.helpers import child_env, one_line_error
from unerring.backends.secrets import MASK, key_problem, scrub, secret_forms

MARK = "PLANTED"  # in every test key: its absence from everything written is the check


def _every_form(key: str) -> list[str]:
    """How a careless server or library might quote the key."""
    return [
        key,
        repr(key),
        repr(key.encode()),
        json.dumps(key),
        quote(key, safe=""),
        quote_plus(key),
        f"b'Bearer {key}'",
        repr(f"Bearer {key}".encode()),
    ]


@pytest.mark.parametrize(
    "key", ["sk-test-PLANTED\n", "\tsk-test-PLANTED", " sk-test-PLANTED ", "sk/test+PLANTED=="]
)
def test_every_form_of_a_key_is_scrubbed(key: str) -> None:
    forms = secret_forms(key)
    for form in _every_form(key):
        text = f"Illegal header value {form} (at 127.0.0.1)"
        cleaned = scrub(text, forms)
        assert MARK not in cleaned, cleaned
        assert MASK in cleaned and cleaned.endswith("(at 127.0.0.1)")
    # h11's own words for a key ending in a newline
    h11 = "LocalProtocolError: Illegal header value b'Bearer sk-test-PLANTED\\n'"
    assert MARK not in scrub(h11, secret_forms("sk-test-PLANTED\n"))


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("sk-test-PLANTED\n", True),
        ("\tsk-test-PLANTED", True),
        (" sk-test-PLANTED ", True),
        ("sk-test\x00PLANTED", True),
        ("sk-tést-PLANTED", True),
        ("   ", True),
        ("sk-test-PLANTED/+=", False),
    ],
)
def test_key_problem(key: str, bad: bool) -> None:
    problem = key_problem(key)
    assert (problem is not None) == bad
    assert problem is None or MARK not in problem


def _files_text(folder: Path) -> str:
    """Every byte under `folder` (the journal, its WAL and shared memory), as text."""
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out.append(p.read_bytes().decode("latin-1"))
    return "\n".join(out)


def _cli(key: str, url: str, store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = child_env()
    env["OPENAI_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "unerring", "run", "addition", "--digits", "3", "--model",
         "openai:m", "--api", "completions", "--base-url", url, "--k", "1",
         "--store", str(store), "--json", *extra],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    "key", ["sk-test-PLANTED\n", "\tsk-test-PLANTED", " sk-test-PLANTED ", "sk-test-PLANTED\r\n"]
)
def test_a_key_with_whitespace_is_refused_in_one_line_without_showing_it(
    key: str, tmp_path: Path
) -> None:
    store = tmp_path / "journal" / "runs.db"
    store.parent.mkdir()
    with fake_openai() as srv:
        got = _cli(key, srv.url, store)
        requests = len(srv.requests)
    assert got.returncode == 2, got.stderr
    line = one_line_error(got.stderr)
    assert "$OPENAI_API_KEY" in line and "whitespace" in line and "not shown" in line
    assert requests == 0  # refused before anything went out
    everything = got.stdout + got.stderr + _files_text(tmp_path)
    assert MARK not in everything


def test_a_key_echoed_in_every_form_never_reaches_output_or_journal(tmp_path: Path) -> None:
    key = "sk-test-PLANTED/+=="  # characters that escape and percent-encode differently
    calls = 0

    def echoes_then_answers(path: str, body: dict[str, Any], h: dict[str, str]) -> Reply:
        # a careless proxy: fails a few times, quoting the header back in every form
        nonlocal calls
        calls += 1
        if calls <= 3:
            echo = " | ".join(_every_form(h["authorization"].removeprefix("Bearer ")))
            return 503, {}, json.dumps({"error": {"message": f"bad header {echo}"}}).encode()
        if calls == 4:
            return 200, {}, f"not json: {h['authorization']!r}".encode()
        return perfect_addition(path, body, h)

    def refuses(path: str, body: dict[str, Any], h: dict[str, str]) -> Reply:
        echo = " ".join(_every_form(h["authorization"]))
        return 401, {}, json.dumps({"error": {"message": f"refused {echo}"}}).encode()

    store = tmp_path / "journal" / "runs.db"
    store.parent.mkdir()
    with fake_openai(echoes_then_answers) as srv:
        first = _cli(key, srv.url, store, "--run-id", "echo", "--max-samples", "3")
    s = json.loads(first.stdout)
    assert s["transport_failures"] >= 4 and "sample budget" in s["reason"], first.stderr
    with fake_openai(refuses) as srv:
        env = child_env()
        env["OPENAI_API_KEY"] = key
        second = subprocess.run(
            [sys.executable, "-m", "unerring", "resume", "echo", "--store", str(store),
             "--base-url", srv.url, "--json"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
    assert second.returncode == 1 and "HTTP 401" in json.loads(second.stdout)["reason"]
    everything = first.stdout + first.stderr + second.stdout + second.stderr
    everything += _files_text(tmp_path)
    assert "***" in everything  # the echoes were there, and masked
    assert MARK not in everything
    assert os.path.exists(store)
