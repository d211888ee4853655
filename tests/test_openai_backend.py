"""The OpenAI-compatible backend against a small real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
import zlib
from typing import Any

import httpx
import pytest

from tests.fake_openai import Reply, completion_reply, fake_openai
from tests.hostile import retry_after, trickle
from unerring.backends.base import FatalBackendError, TransportError
from unerring.backends.openai import OpenAICompatible
from unerring.backends.openai_config import OpenAIConfig
from unerring.core.samples import SampleRequest

KEY = "sk-test-PLANTED-0000"


def _req(first: int = 0, n: int = 1, **kw: Any) -> SampleRequest:
    return SampleRequest(
        prompt="2 + 2 =",
        step=7,
        first_index=first,
        n=n,
        max_tokens=5,
        first_temperature=0.0,
        temperature=0.7,
        **kw,
    )


def _sample(url: str, request: SampleRequest, **cfg: Any) -> Any:
    async def go() -> Any:
        backend = OpenAICompatible(OpenAIConfig(model="m", base_url=url, **cfg), api_key=KEY)
        try:
            return await backend.sample(request)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def _status(code: int, body: object, headers: dict[str, str] | None = None) -> Any:
    def reply(path: str, req: dict[str, Any], h: dict[str, str]) -> Reply:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return code, {"Content-Type": "application/json", **(headers or {})}, raw

    return reply


def test_chat_sends_system_and_prompt_and_key() -> None:
    with fake_openai() as srv:
        out = _sample(srv.url, _req(system="You add numbers."), api="chat")
    assert [s.text for s in out] == ["answer 0 0.0"]
    path, body, headers = srv.requests[0]
    assert path == "/v1/chat/completions"
    assert body["messages"] == [
        {"role": "system", "content": "You add numbers."},
        {"role": "user", "content": "2 + 2 ="},
    ]
    assert body["model"] == "m" and body["max_tokens"] == 6
    assert headers["authorization"] == f"Bearer {KEY}"
    assert out[0].prompt_tokens == 11 and out[0].completion_tokens == 3


def test_completions_uses_prompt_and_n_in_index_order() -> None:
    with fake_openai() as srv:
        out = _sample(srv.url, _req(first=3, n=4), api="completions")
    assert len(srv.requests) == 1
    path, body, _ = srv.requests[0]
    assert path == "/v1/completions" and body["prompt"] == "2 + 2 =" and body["n"] == 4
    assert [s.text for s in out] == [f"answer {i} 0.7" for i in range(4)]
    # usage is for the whole request: split so that the sums stay exact
    assert sum(s.prompt_tokens or 0 for s in out) == 11
    assert sum(s.completion_tokens or 0 for s in out) == 12


def test_completions_put_the_shared_instructions_ahead_of_the_prompt() -> None:
    with fake_openai() as srv:
        _sample(srv.url, _req(system="You add numbers."), api="completions")
    _, body, _ = srv.requests[0]
    assert body["prompt"] == "You add numbers.\n\n2 + 2 ="


def test_hanoi_rules_travel_once_per_request() -> None:
    from unerring.tasks.hanoi import Hanoi

    h = Hanoi(4)
    state = h.initial_state()
    req = SampleRequest(h.prompt(state, 0), 0, 0, 1, 750, system=h.system())
    with fake_openai() as srv:
        _sample(srv.url, req, api="chat")
        _sample(srv.url, req, api="completions")
    (_, chat, _), (_, completion, _) = srv.requests
    sent_chat = json.dumps(chat["messages"])
    assert sent_chat.count("Strategy (follow it exactly") == 1
    assert completion["prompt"].count("Strategy (follow it exactly") == 1
    assert completion["prompt"].endswith("Current state: [[4, 3, 2, 1], [], []]\nYour answer:")


def test_sample_zero_goes_alone_at_its_own_temperature() -> None:
    with fake_openai() as srv:
        out = _sample(srv.url, _req(first=0, n=3), api="completions")
    temps = sorted((b.get("n", 1), b["temperature"]) for _, b, _ in srv.requests)
    assert temps == [(1, 0.0), (2, 0.7)]
    assert len(out) == 3 and out[0].text == "answer 0 0.0" and out[2].text == "answer 1 0.7"


def test_server_ignoring_n_is_topped_up_and_then_asked_separately() -> None:
    def one_choice(path: str, body: dict[str, Any], h: dict[str, str]) -> Reply:
        return completion_reply(path, {**body, "n": 1}, h)

    async def go(url: str) -> tuple[list[str], list[str]]:
        b = OpenAICompatible(OpenAIConfig("m", url, api="completions"), api_key=KEY)
        first = await b.sample(_req(first=1, n=3))
        second = await b.sample(_req(first=4, n=2))
        await b.aclose()
        return [s.text for s in first], [s.text for s in second]

    with fake_openai(one_choice) as srv:
        first, second = asyncio.run(go(srv.url))
        assert len(first) == 3 and len(second) == 2
        # 1 request with n=3 answered once + 2 top-ups; then 2 separate requests without n
        assert [b.get("n", 1) for _, b, _ in srv.requests] == [3, 1, 1, 1, 1]


def test_separate_mode_never_sends_n() -> None:
    with fake_openai() as srv:
        out = _sample(srv.url, _req(first=1, n=3), api="completions", n_mode="separate")
    assert len(out) == 3 and len(srv.requests) == 3
    assert all("n" not in b for _, b, _ in srv.requests)


@pytest.mark.parametrize(
    ("code", "kind"),
    [(401, "auth"), (403, "auth"), (404, "not_found"), (400, "bad_request"), (422, "bad_request")],
)
def test_client_errors_are_fatal_and_name_the_cause(code: int, kind: str) -> None:
    with (
        fake_openai(_status(code, {"error": {"message": "nope"}})) as srv,
        pytest.raises(FatalBackendError) as info,
    ):
        _sample(srv.url, _req())
    assert info.value.kind == kind and not info.value.retryable
    assert f"HTTP {code}" in str(info.value) and "nope" in str(info.value)
    assert "\n" not in str(info.value)


def test_rate_limit_carries_retry_after() -> None:
    with (
        fake_openai(_status(429, {"error": "slow down"}, {"Retry-After": "3"})) as srv,
        pytest.raises(TransportError) as info,
    ):
        _sample(srv.url, _req())
    assert info.value.kind == "rate_limit" and info.value.retry_after == 3.0
    assert info.value.retryable


@pytest.mark.parametrize("code", [500, 502, 503])
def test_server_errors_are_retryable(code: int) -> None:
    with (
        fake_openai(_status(code, {"error": "boom"})) as srv,
        pytest.raises(TransportError) as info,
    ):
        _sample(srv.url, _req())
    assert info.value.kind == "server_error" and info.value.retryable


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<html>Bad Gateway</html>", "non-JSON"),
        ({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 0}}, "empty choice"),
        ({"choices": [{"index": 0}]}, "no text"),
        ([1, 2], "not an object"),
    ],
)
def test_malformed_answers(body: object, words: str) -> None:
    with fake_openai(_status(200, body)) as srv, pytest.raises(TransportError) as info:
        _sample(srv.url, _req(), api="completions")
    assert info.value.kind == "malformed" and words in str(info.value)


def test_missing_usage_stops_unless_estimates_are_allowed() -> None:
    body = {"choices": [{"index": 0, "text": "four"}]}
    with fake_openai(_status(200, body)) as srv:
        with pytest.raises(FatalBackendError) as info:
            _sample(srv.url, _req(), api="completions")
        out = _sample(srv.url, _req(), api="completions", require_usage=False)
    assert info.value.kind == "no_usage" and "usage" in str(info.value)
    assert out[0].text == "four" and out[0].prompt_tokens == 2 and out[0].completion_tokens == 1


def test_null_chat_content_is_an_empty_answer() -> None:
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 0},
    }
    with fake_openai(_status(200, body)) as srv:
        out = _sample(srv.url, _req(), api="chat")
    assert out[0].text == ""


def test_unreachable_server_is_a_reset() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportError) as info:
        _sample(f"http://127.0.0.1:{port}/v1", _req())
    assert info.value.kind == "reset" and f"127.0.0.1:{port}" in str(info.value)


def test_slow_server_is_a_timeout() -> None:
    def slow(path: str, body: dict[str, Any], h: dict[str, str]) -> Reply:
        time.sleep(0.5)
        return completion_reply(path, body, h)

    with fake_openai(slow) as srv:
        started = time.perf_counter()
        with pytest.raises(TransportError) as info:
            _sample(srv.url, _req(), timeout_s=0.1)
        assert time.perf_counter() - started < 0.45
    assert info.value.kind == "timeout"


def test_key_never_appears_in_errors_or_repr() -> None:
    def echo_auth(path: str, body: dict[str, Any], h: dict[str, str]) -> Reply:
        # a careless server that echoes the Authorization header in its error
        return 401, {}, json.dumps({"error": {"message": f"bad {h['authorization']}"}}).encode()

    with fake_openai(echo_auth) as srv, pytest.raises(FatalBackendError) as info:
        _sample(srv.url, _req())
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    assert "***" in str(info.value)
    backend = OpenAICompatible(OpenAIConfig("m", "http://127.0.0.1:9/v1"), api_key=KEY)
    assert KEY not in repr(backend) and KEY not in str(backend)
    asyncio.run(backend.aclose())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api": "rest"},
        {"n_mode": "many"},
        {"base_url": "127.0.0.1:80"},
        {"timeout_s": 0},
        {"base_url": "https://user:sk-secret@example.com/v1"},
        {"base_url": "https://example.com/v1?api-key=sk-secret"},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        OpenAIConfig("m", **kwargs)


# -- hostile answers, over real HTTP ---------------------------------------------------------
USAGE = {"prompt_tokens": 4, "completion_tokens": 2}


def _choices(*pairs: tuple[object, str]) -> dict[str, Any]:
    return {"choices": [{"index": i, "text": t} for i, t in pairs], "usage": USAGE}


@pytest.mark.parametrize("chunked", [False, True])
def test_an_answer_over_the_size_cap_is_not_read(chunked: bool) -> None:
    # 8 MiB of a valid-looking answer; with no length announced (chunked) only reading
    # can tell, and reading stops at the cap
    huge = json.dumps(_choices((0, "4" * (8 << 20)))).encode()
    headers = {"Transfer-Encoding": "chunked"} if chunked else {}
    with fake_openai(_status(200, huge, headers)) as srv, pytest.raises(TransportError) as info:
        _sample(srv.url, _req(), api="completions", max_response_bytes=64 << 10)
    assert info.value.kind == "oversize" and info.value.retryable
    assert "65536" in str(info.value) and "--max-response-bytes" in str(info.value)
    words = "runs past" if chunked else "announces"
    assert words in str(info.value)


def test_an_answer_under_the_cap_reads_whole_in_chunks() -> None:
    body = json.dumps(_choices((0, " 4" + " " * (200 << 10)))).encode()
    headers = {"Transfer-Encoding": "chunked"}
    with fake_openai(_status(200, body, headers)) as srv:
        out = _sample(srv.url, _req(), api="completions", max_response_bytes=len(body))
    assert out[0].text.strip() == "4" and len(out[0].text) == 2 + (200 << 10)


def test_a_body_that_is_not_utf8_is_malformed() -> None:
    raw = b'{"choices": [{"index": 0, "text": "\xff\xfe 4"}], "usage": {"prompt_tokens": 1,'
    raw += b' "completion_tokens": 1}}'
    with fake_openai(_status(200, raw)) as srv, pytest.raises(TransportError) as info:
        _sample(srv.url, _req(), api="completions")
    assert info.value.kind == "malformed" and "not UTF-8" in str(info.value)


def test_a_lone_surrogate_becomes_text_the_journal_can_hold() -> None:
    raw = json.dumps(_choices((0, "\ud800 4"))).encode()  # json writes it as \\ud800
    with fake_openai(_status(200, raw)) as srv:
        out = _sample(srv.url, _req(), api="completions")
    assert out[0].text == "? 4"
    out[0].text.encode("utf-8")  # storable


def test_duplicate_choice_indices_are_malformed() -> None:
    body = _choices((0, " 4"), (1, " 5"), (1, " 4"))
    with fake_openai(_status(200, body)) as srv, pytest.raises(TransportError) as info:
        _sample(srv.url, _req(first=1, n=2), api="completions")
    assert info.value.kind == "malformed" and "share index 1" in str(info.value)


def test_out_of_range_choice_indices_are_ignored_and_topped_up() -> None:
    calls = 0

    def stray(path: str, body: dict[str, Any], h: dict[str, str]) -> Reply:
        nonlocal calls
        calls += 1
        if calls == 1:  # asked for 3: a stray -1 and 7 around two real choices
            return _status(200, _choices((7, " 9"), (1, " b"), (-1, " 8"), (0, " a")))(
                path, body, h
            )
        return _status(200, _choices((0, " c")))(path, body, h)

    with fake_openai(stray) as srv:
        out = _sample(srv.url, _req(first=1, n=3), api="completions")
    # index order; the missing third sample is asked for alone
    assert [s.text for s in out] == [" a", " b", " c"]
    assert [b.get("n", 1) for _, b, _ in srv.requests] == [3, 1]


@pytest.mark.parametrize(
    ("choices", "words"),
    [
        (_choices((5, " 4"), (-2, " 4")), "no choice in the server's answer has an index below"),
        (_choices(("0", " 4")), "index is not a number"),
        (_choices((True, " 4")), "index is not a number"),
    ],
)
def test_unusable_choice_indices_are_malformed(choices: dict[str, Any], words: str) -> None:
    with fake_openai(_status(200, choices)) as srv, pytest.raises(TransportError) as info:
        _sample(srv.url, _req(), api="completions")
    assert info.value.kind == "malformed" and words in str(info.value)


def test_a_key_cut_by_a_short_message_is_scrubbed_before_the_cut() -> None:
    # the key straddles the cut of a 200-character error detail and an 80-character
    # non-JSON excerpt: scrubbing after the cut would leave half the key
    def straddles(path: str, body: dict[str, Any], h: dict[str, str]) -> Reply:
        key = h["authorization"].removeprefix("Bearer ")
        if body.get("temperature") == 0.0:
            return 401, {}, json.dumps({"error": {"message": "x" * 190 + key}}).encode()
        return 200, {}, ("y" * 70 + key).encode()

    with fake_openai(straddles) as srv:
        with pytest.raises(FatalBackendError) as refused:
            _sample(srv.url, _req())
        with pytest.raises(TransportError) as garbled:
            _sample(srv.url, _req(first=1))
    for err in (refused.value, garbled.value):
        text = str(err)
        assert not any(KEY[i : i + 6] in text for i in range(len(KEY) - 5)), text


# -- compressed answers, decoded within the cap ---------------------------------------------
def _encoded(encoding: str, data: bytes) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)
    return data


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("chunked", [False, True])
def test_a_compressed_answer_is_decoded(encoding: str, chunked: bool) -> None:
    raw = _encoded(encoding, json.dumps(_choices((0, " 4"))).encode())
    headers = {"Content-Encoding": encoding}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    with fake_openai(_status(200, raw, headers)) as srv:
        out = _sample(srv.url, _req(), api="completions")
    assert out[0].text == " 4"
    # asked for exactly what can be decoded with a bound (never brotli or zstd)
    assert srv.requests[0][2]["accept-encoding"] == "gzip, deflate"


def test_a_gzip_bomb_is_oversize() -> None:
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(z.compress(bytes(1 << 20)) for _ in range(256)) + z.flush()  # 256 MiB
    headers = {"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"}
    with fake_openai(_status(200, bomb, headers)) as srv, pytest.raises(TransportError) as info:
        _sample(srv.url, _req(), api="completions", max_response_bytes=64 << 10)
    assert info.value.kind == "oversize" and "65536" in str(info.value)


@pytest.mark.parametrize(
    ("encoding", "words"),
    [("br", "encoded as 'br'"), ("gzip, gzip", "encoded as 'gzip, gzip'")],
)
def test_an_encoding_that_cannot_be_bounded_is_malformed(encoding: str, words: str) -> None:
    headers = {"Content-Encoding": encoding}
    with (
        fake_openai(_status(200, b"\x00" * 64, headers)) as srv,
        pytest.raises(TransportError) as info,
    ):
        _sample(srv.url, _req(), api="completions")
    assert info.value.kind == "malformed" and words in str(info.value)


def test_a_corrupt_gzip_body_is_malformed() -> None:
    headers = {"Content-Encoding": "gzip"}
    corrupt = _status(200, b"\x1f\x8b\x08\x00not deflate at all", headers)
    with fake_openai(corrupt) as srv, pytest.raises(TransportError) as info:
        _sample(srv.url, _req(), api="completions")
    assert info.value.kind == "malformed" and "does not decompress" in str(info.value)


# -- a deadline on the whole request ------------------------------------------------------------
def test_a_trickled_answer_is_a_timeout_after_the_timeout() -> None:
    # every byte comes 0.2 s after the last, well within a per-read timeout of 1 s; the
    # whole answer (~150 bytes, ~30 s) does not come within 1 s
    with fake_openai(trickle(0.2)) as srv:
        started = time.perf_counter()

        async def bounded() -> Any:
            return await asyncio.wait_for(
                asyncio.to_thread(_sample, srv.url, _req(), timeout_s=1.0), 15
            )

        with pytest.raises(TransportError) as info:
            asyncio.run(bounded())
        took = time.perf_counter() - started
    assert info.value.kind == "timeout" and "within 1 s (--timeout)" in str(info.value)
    assert took < 5


# -- what a server may say that it cannot mean --------------------------------------------------
@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), ("0.5", 0.5), ("100000000", 1e8), ("inf", None), ("-5", None),
     ("nan", None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)  # fmt: skip
def test_retry_after_is_read_only_when_it_is_a_wait(value: str, seconds: float | None) -> None:
    # (a long but finite wait is capped by the retry layer, at --max-outage)
    with fake_openai(retry_after(value)) as srv, pytest.raises(TransportError) as info:
        _sample(srv.url, _req())
    assert info.value.kind == "rate_limit" and info.value.retry_after == seconds


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 2**63, "completion_tokens": 1},
        {"prompt_tokens": 1, "completion_tokens": 10**300},
        {"prompt_tokens": -1, "completion_tokens": 1},
        {"prompt_tokens": 3, "completion_tokens": 10**9 + 1},
    ],
)
def test_impossible_token_counts_are_malformed(usage: dict[str, int]) -> None:
    body = {"choices": [{"index": 0, "text": " 4"}], "usage": usage}
    with fake_openai(_status(200, body)) as srv, pytest.raises(TransportError) as info:
        _sample(srv.url, _req(), api="completions")
    assert info.value.kind == "malformed" and "impossible token counts" in str(info.value)
    assert len(str(info.value)) < 200


def test_deeply_nested_json_is_malformed_not_a_crash() -> None:
    nested = b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with fake_openai(_status(200, nested)) as srv, pytest.raises(TransportError) as info:
        _sample(srv.url, _req(), api="completions")
    assert info.value.kind == "malformed" and "nested too deeply" in str(info.value)
    # an error answer nested as deep still names its status
    with fake_openai(_status(503, nested)) as srv, pytest.raises(TransportError) as info:
        _sample(srv.url, _req(), api="completions")
    assert info.value.kind == "server_error" and "HTTP 503" in str(info.value)


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_a_redirect_is_refused_and_its_body_never_read_as_samples(code: int) -> None:
    def redirect(path: str, body: dict[str, Any], h: dict[str, str]) -> Reply:
        answer = json.dumps(_choices((0, " 4"))).encode()  # a body that parses as an answer
        return code, {"Location": "https://elsewhere.example/v1/completions"}, answer

    with fake_openai(redirect) as srv, pytest.raises(FatalBackendError) as info:
        _sample(srv.url, _req(), api="completions")
    text = str(info.value)
    assert info.value.kind == "redirect" and f"HTTP {code}" in text
    assert "https://elsewhere.example/v1/completions" in text and "--base-url" in text
    assert len(srv.requests) == 1  # not followed


def test_a_transport_that_hands_over_read_responses_is_still_capped() -> None:
    # httpx.MockTransport (tests of a caller's own) gives responses already read and decoded
    def handler(request: httpx.Request) -> httpx.Response:
        small = json.loads(request.content)["temperature"] == 0.0  # sample 0: a small answer
        text = " 4" if small else "x" * 5000
        return httpx.Response(200, json=_choices((0, text)))

    async def go(first: int) -> Any:
        config = OpenAIConfig("m", "http://127.0.0.1:9/v1", api="completions",
                              max_response_bytes=1000)  # fmt: skip
        backend = OpenAICompatible(config, transport=httpx.MockTransport(handler))
        try:
            return await backend.sample(_req(first=first))
        finally:
            await backend.aclose()

    assert asyncio.run(go(0))[0].text == " 4"
    with pytest.raises(TransportError) as info:
        asyncio.run(go(1))
    assert info.value.kind == "oversize"
