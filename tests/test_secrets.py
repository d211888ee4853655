"""API keys never reach text a run writes: every form is scrubbed, and a key that HTTP
would refuse (and quote back) is refused at start. The keys here are fake strings."""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests.fake_openai import echoing_key, fake_openai
from tests.helpers import child_env, one_line_error
from tests.test_telemetry import otlp_receiver
from unerring.backends.base import TransportError
from unerring.backends.secrets import (
    FRAGMENT,
    MASK,
    Redacting,
    Redactor,
    key_problem,
    redact_error,
    redacting,
)
from unerring.cli.main import main
from unerring.core.samples import Sample, SampleRequest, TransportFailure

MARK = "PLANTED"  # in every test key: its absence from everything written is the check
# base64-style: `/ + = & "` escape differently in each encoding
KEY = 'sk-test-PLANTED/+=&"xyz/0123+abc=='


def _codes(text: str, case: Callable[[str], str]) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: case(m.group()), text)


def _each(text: str, code: Callable[[str], str]) -> str:
    """`text` with each character other than a letter or a digit written by `code`."""
    return "".join(c if c.isalnum() else code(c) for c in text)


# how careless servers, proxies and libraries echo a key
FORMS: dict[str, Callable[[str], str]] = {
    "as sent": lambda k: k,
    "percent-encoded, / kept": quote,
    "percent-encoded, lower-case codes": lambda k: _codes(quote(k, safe=""), str.lower),
    "form-encoded": quote_plus,
    "percent-encoded twice": lambda k: quote(quote(k, safe=""), safe=""),
    "HTML-escaped": html.escape,
    "HTML hex references": lambda k: _each(k, lambda c: f"&#x{ord(c):X};"),
    "HTML decimal references": lambda k: _each(k, lambda c: f"&#{ord(c)};"),
    "JSON with escaped slashes": lambda k: json.dumps(k)[1:-1].replace("/", "\\/"),
    "JSON unicode escapes": lambda k: _each(k, lambda c: f"\\u{ord(c):04x}"),
    "a Python bytes repr's body": lambda k: repr(k.encode())[2:-1],
    "its first 20 characters": lambda k: k[:20],
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("key", [KEY, "sk-test-PLANTED-0000", "PLANTED1"])
def test_every_form_of_a_key_is_masked_and_nothing_else(key: str, form: str) -> None:
    text = f"x%20y &amp; bad header [{FORMS[form](key)}] (at 127.0.0.1) \\n"
    assert Redactor(key).scrub(text) == "x%20y &amp; bad header [***] (at 127.0.0.1) \\n"


@pytest.mark.parametrize(
    "key", ["sk-test-PLANTED\n", "\tsk-test-PLANTED", " sk-test-PLANTED ", "sk/test+PLANTED=="]
)
def test_a_key_with_whitespace_around_it_is_masked_in_every_form(key: str) -> None:
    redactor = Redactor(key)
    for form in FORMS.values():
        cleaned = redactor.scrub(f"Illegal header value {form(key)} (at 127.0.0.1)")
        assert MARK not in cleaned and cleaned.endswith("(at 127.0.0.1)"), cleaned
    # h11's own words for a key ending in a newline
    h11 = "LocalProtocolError: Illegal header value b'Bearer sk-test-PLANTED\\n'"
    assert MARK not in Redactor("sk-test-PLANTED\n").scrub(h11)


def test_any_fragment_of_ten_characters_is_masked_and_shorter_ones_are_not() -> None:
    redactor = Redactor(KEY)
    for start in range(len(KEY) - FRAGMENT + 1):
        piece = KEY[start : start + FRAGMENT]
        assert redactor.scrub(f"<{piece}>") == "<***>", piece
        assert redactor.scrub(f"<{quote(piece, safe='')}>") == "<***>", piece
    # nine characters are not enough to be told from chance (and leak too little)
    assert redactor.scrub(f"<{KEY[:9]}>") == f"<{KEY[:9]}>"
    # a key shorter than a fragment is masked whole, and only whole
    short = Redactor("PLANTED")
    assert short.scrub("a PLANTED b PLANTE") == "a *** b PLANTE"


def test_ordinary_text_comes_back_untouched() -> None:
    redactor = Redactor("sk-proj-" + "aZ09" * 39)
    texts = [
        "Incorrect API key provided: sk-proj-****aZ09. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "the server answered non-JSON: '<html>&lt;p&gt;502 Bad Gateway%2F\\u0041</html>'",
        "",
    ]
    for text in texts:
        assert redactor.scrub(text) is text


def test_masking_is_linear_in_a_megabyte() -> None:
    key = "sk-proj-" + "Zq4/+Rt=" * 20
    redactor = Redactor(key)
    plain = ("All work and no play makes a dull model. " * 25_000)[:1_000_000]
    escaped = ("%20&amp;\\/x" * 100_000)[:1_000_000]
    echoed = ((" " * 900 + quote(key, safe="")) * 1000)[:1_000_000]
    for text in (plain, escaped, echoed):
        started = time.perf_counter()
        out = redactor.scrub(text)
        elapsed = time.perf_counter() - started
        # measured 2-280 ms here; a scan quadratic in the text takes minutes
        assert elapsed < 10.0, elapsed
        assert "Zq4" not in out.replace(key[:9], "")
    assert redactor.scrub(echoed).count(MASK) == echoed.count(quote(key[:16], safe=""))


def test_shown_reads_a_window_and_masks_a_key_cut_by_it() -> None:
    redactor = Redactor(KEY)
    huge = "y" * 70 + quote(KEY) + "z" * 50_000_000
    started = time.perf_counter()
    assert redactor.shown(huge, 80) == "y" * 70 + "***" + "z" * 7
    assert time.perf_counter() - started < 5.0
    assert redactor.shown("x" * 78 + KEY, 80) == "x" * 78 + "**"


def test_an_error_and_its_causes_are_masked_in_place() -> None:
    try:
        try:
            raise OSError(f"header b'Bearer {KEY}'")
        except OSError:
            raise TransportError("reset", f"cannot reach: {quote(KEY)}") from None
    except TransportError as e:
        redact_error(e, Redactor(KEY))
        assert str(e) == "cannot reach: ***" and e.kind == "reset"
        assert e.__context__ is not None and str(e.__context__) == "header b'Bearer ***'"


class _Careless:
    """A backend whose own errors quote the key (as a library's might)."""

    batch_rounds = False  # one request per sample

    model = "m"

    async def sample(self, request: SampleRequest) -> list[Sample]:
        raise TransportError("reset", f"cannot send {quote(KEY, safe='')}")

    async def aclose(self) -> None:
        pass


def test_the_last_line_masks_what_any_layer_of_the_stack_says() -> None:
    redactor = Redactor(KEY)
    stack = Redacting(_Careless(), redactor)
    request = SampleRequest("2 + 2 =", 0, 0, 1, 5)
    with pytest.raises(TransportError, match=r"^cannot send \*\*\*$"):
        asyncio.run(stack.sample(request))
    heard: list[TransportFailure] = []
    record = redacting(heard.append, redactor)
    record(TransportFailure("reset", 0, 1, 0.0, True, f"echo {html.escape(KEY)}!"))
    assert [f.message for f in heard] == ["echo ***!"] and heard[0].kind == "reset"


def test_redactor_never_shows_its_secret() -> None:
    assert MARK not in repr(Redactor(KEY)) and MARK not in str(Redactor(KEY))


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


OUTPUTS = ("stderr", "summary", "journal", "report", "failures", "otel")


@pytest.fixture(scope="module", params=[pytest.param(f, marks=pytest.mark.slow) for f in FORMS])
def echoed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A run against a server that echoes the key in one form, everywhere it can: what
    each output of the run then holds (by name), and the form."""
    form = request.param
    folder = tmp_path_factory.mktemp("echo")
    store = folder / "journal" / "runs.db"
    store.parent.mkdir()
    with fake_openai(echoing_key(FORMS[form])) as srv, otlp_receiver() as (endpoint, wire, _):
        env = child_env()
        for name in [n for n in env if n.startswith("OTEL_")]:
            del env[name]
        env.update(
            OPENAI_API_KEY=KEY, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_BSP_SCHEDULE_DELAY="50"
        )
        run = subprocess.run(
            [sys.executable, "-m", "unerring", "run", "addition", "--digits", "3", "--model",
             "openai:m", "--api", "completions", "--base-url", srv.url, "--k", "1",
             "--store", str(store), "--json", "--run-id", "echo"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
    assert run.returncode == 1 and "HTTP 401" in json.loads(run.stdout)["reason"], run.stderr
    failures = io.StringIO()
    with contextlib.redirect_stdout(failures):
        assert main(["failures", "echo", "--store", str(store), "--json"]) == 0
    page = folder / "report.html"
    assert main(["report", "echo", "--store", str(store), "-o", str(page)]) == 0
    outputs = {
        "stderr": run.stderr,
        "summary": run.stdout,
        "journal": _files_text(store.parent),  # the file's bytes, its WAL's too
        "report": page.read_text(),
        "failures": failures.getvalue(),
        "otel": b"".join(wire).decode("latin-1"),  # every span and event, as sent
    }
    return form, outputs


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_key_echoed_in_any_form_is_masked_in_every_output(
    echoed: tuple[str, dict[str, str]], output: str
) -> None:
    form, outputs = echoed
    text = outputs[output]
    assert MASK in text  # the echo reached this output: masked, not left out
    assert MARK not in text and FORMS[form](KEY) not in text
