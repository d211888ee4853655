"""An OpenAI-compatible HTTP backend: chat or plain completions, `n` sampling, usage.

Works with hosted APIs and local servers (vLLM, llama.cpp, Ollama, LM Studio). The API key
lives only in the client's headers: it is never part of a repr, a message or an exception.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import zlib
from collections.abc import Mapping
from typing import Any

import httpx

from unerring.backends.base import FatalBackendError, TransportError
from unerring.backends.decoding import ACCEPT_ENCODING, BoundedDecoder, Overflow, UnknownEncoding
from unerring.backends.openai_config import Api, OpenAIConfig
from unerring.backends.secrets import Redactor, key_problem, redact_error
from unerring.core.flags import estimate_tokens
from unerring.core.samples import Sample, SampleRequest

# no request reads or writes a billion tokens: a larger count is garbage, and summed over a
# run it would overflow the journal's 64-bit integers
MAX_USAGE_TOKENS = 10**9


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's Retry-After in seconds; None when absent or unusable (the retry layer
    caps a usable one at the run's patience, see RetryPolicy)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        # an HTTP date: rare from model APIs; backoff alone then paces the retry
        return None
    # "inf", "nan" and negative values are garbage, not instructions
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _split(total: int, weights: list[int]) -> list[int]:
    """Split `total` over items proportionally to `weights`, summing exactly to `total`."""
    if not weights:
        return []
    w_sum = sum(weights)
    if w_sum <= 0:
        weights = [1] * len(weights)
        w_sum = len(weights)
    parts = [total * w // w_sum for w in weights]
    parts[0] += total - sum(parts)
    return parts


class OpenAICompatible:
    """A Backend over `/chat/completions` or `/completions` of an OpenAI-compatible server."""

    def __init__(
        self,
        config: OpenAIConfig,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        headers = {"Content-Type": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
        if api_key:
            problem = key_problem(api_key)
            if problem is not None:
                raise ValueError(f"the API key {problem}; fix it (the key is not shown)")
            headers["Authorization"] = f"Bearer {api_key}"
        # kept only to mask it in text a server or library echoes back, in any form
        self.__redactor = Redactor(api_key) if api_key else None
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s),
            transport=transport,
            # no cap on connections: the retry layer's limiter bounds the requests in flight
            # (--concurrency), and a request waiting here for a connection would spend its
            # --timeout before it is even sent; idle ones are kept for the next requests
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=config.keepalive),
        )
        self._n_works: bool | None = None if config.n_mode == "auto" else config.n_mode == "n"

    def __repr__(self) -> str:
        c = self.config
        return f"OpenAICompatible(model={c.model!r}, base_url={c.base_url!r}, api={c.api!r})"

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def batch_rounds(self) -> bool:
        # each sample its own request, fed to the vote as it arrives (a round's answers
        # come back at different times, and `n` is not honoured by every server)
        return False

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- sampling -----------------------------------------------------------------------
    async def sample(self, request: SampleRequest) -> list[Sample]:
        """The samples of `request`. The one way out of this backend: every text in them or
        in an error it raises (a server's, a library's) has the key masked here."""
        redactor = self.__redactor
        if redactor is None:
            return await self._sample(request)
        try:
            samples = await self._sample(request)
        except Exception as e:
            redact_error(e, redactor)
            raise
        scrub = redactor.scrub
        return [
            s
            if (text := scrub(s.text)) is s.text
            else Sample(text, s.prompt_tokens, s.completion_tokens, s.latency_s)
            for s in samples
        ]

    async def _sample(self, request: SampleRequest) -> list[Sample]:
        """Sample index 0 goes alone (its temperature differs); the rest share requests."""
        groups: list[tuple[int, int, float]] = []  # (first index, count, temperature)
        first, n = request.first_index, request.n
        if n <= 0:
            return []
        if first == 0:
            groups.append((0, 1, request.first_temperature))
            first, n = 1, n - 1
        if n:
            groups.append((first, n, request.temperature))
        results = await asyncio.gather(*(self._group(request, *g) for g in groups))
        return [s for group in results for s in group]

    async def _group(
        self, request: SampleRequest, first: int, n: int, temperature: float
    ) -> list[Sample]:
        if n == 1 or self._n_works is False:
            parts = await asyncio.gather(
                *(self._call(request, first + i, 1, temperature) for i in range(n))
            )
            return [s for p in parts for s in p]
        got = await self._call(request, first, n, temperature)
        if self._n_works is None:
            self._n_works = len(got) == n
        if len(got) < n:
            # the server ignored `n`: top up with one request per missing sample
            more = await asyncio.gather(
                *(self._call(request, first + i, 1, temperature) for i in range(len(got), n))
            )
            got.extend(s for p in more for s in p)
        return got[:n]

    def _body(self, request: SampleRequest, n: int, temperature: float) -> dict[str, Any]:
        c = self.config
        body: dict[str, Any] = {
            "model": c.model,
            # one token over the red-flag limit, so that an overlong answer shows as one
            "max_tokens": request.max_tokens + 1,
            "temperature": temperature,
        }
        if n != 1:
            body["n"] = n
        if c.stop:
            body["stop"] = list(c.stop)
        if c.api == "chat":
            # the shared instructions first: servers with prefix caching reuse them
            messages = []
            if request.system:
                messages.append({"role": "system", "content": request.system})
            messages.append({"role": "user", "content": request.prompt})
            body["messages"] = messages
        else:
            # a completion has no system slot: the shared instructions lead the prompt
            body["prompt"] = (
                f"{request.system}\n\n{request.prompt}" if request.system else request.prompt
            )
        return body

    async def _call(
        self, request: SampleRequest, first: int, n: int, temperature: float
    ) -> list[Sample]:
        path = "chat/completions" if self.config.api == "chat" else "completions"
        body = self._body(request, n, temperature)
        started = time.perf_counter()
        limit = self.config.timeout_s
        try:
            # a deadline on the whole request: httpx's timeouts are per read, so a server
            # trickling a byte at a time would never meet them
            async with (
                asyncio.timeout(limit),
                self._client.stream("POST", path, content=json.dumps(body)) as response,
            ):
                raw = await self._read(response)
        except TimeoutError:
            raise TransportError(
                "timeout", f"no whole answer within {limit:g} s (--timeout)"
            ) from None
        except httpx.TimeoutException as e:
            raise TransportError(
                "timeout", self._clean(f"request timed out ({type(e).__name__})")
            ) from None
        except (httpx.TransportError, OSError) as e:
            raise TransportError(
                "reset",
                self._clean(f"cannot reach {self.config.base_url}: {type(e).__name__}: {e}"),
            ) from None
        latency = time.perf_counter() - started
        self._check_status(response, raw)
        return self._parse(raw, request, first, n, latency)

    async def _read(self, response: httpx.Response) -> bytes:
        """The body, read no further than the cap: a hostile or broken server must not
        fill memory. The cap bounds the decoded bytes as they are decompressed (a gzip
        bomb never grows past it) and the raw bytes read."""
        cap = self.config.max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise TransportError(
                "oversize",
                f"the server's answer announces {int(declared)} bytes, over the cap of {cap} "
                "(--max-response-bytes); not read",
            )
        if response.is_stream_consumed:
            # a transport that hands over responses already read (httpx.MockTransport)
            # read and decoded it whole itself: only the cap is left to apply
            if len(response.content) > cap:
                raise TransportError(
                    "oversize",
                    f"the server's answer runs past the cap of {cap} bytes (--max-response-bytes)",
                )
            return response.content
        encoding = response.headers.get("content-encoding", "")
        try:
            decoder = BoundedDecoder(encoding, cap)
        except UnknownEncoding as e:
            raise TransportError(
                "malformed",
                f"the server's answer is encoded as {str(e)!r}, which is not decoded here "
                f"(requests ask for {ACCEPT_ENCODING} or none)",
            ) from None
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > cap:
                    raise Overflow
                chunks.append(decoder.decode(chunk))
            chunks.append(decoder.flush())
        except Overflow:
            raise TransportError(
                "oversize",
                f"the server's answer runs past the cap of {cap} bytes "
                "(--max-response-bytes); not read further",
            ) from None
        except zlib.error:
            raise TransportError(
                "malformed", f"the server's {encoding.strip()} body does not decompress"
            ) from None
        return b"".join(chunks)

    def _check_status(self, response: httpx.Response, raw: bytes) -> None:
        code = response.status_code
        if code < 300:
            return
        where = self._clean(str(response.request.url))
        if code < 400:
            # not followed: a redirected POST may lose its body or the key may go to
            # another host; and its body is no answer, so it must not become samples
            to = self._clean(" ".join(response.headers.get("location", "").split()), 200)
            raise FatalBackendError(
                "redirect",
                f"the server at {where} answered a redirect (HTTP {code}) to "
                f"{to or '(no location)'}; give --base-url the address it redirects to",
            )
        detail = self._clean(_error_detail(raw), 200) or "(no detail)"
        if code == 429:
            raise TransportError(
                "rate_limit",
                f"rate limited (HTTP 429) by {where}: {detail}",
                _retry_after(response.headers),
            )
        if code in (401, 403):
            raise FatalBackendError(
                "auth", f"the server refused the API key (HTTP {code}) at {where}: {detail}"
            )
        if code == 404:
            raise FatalBackendError(
                "not_found",
                f"not found (HTTP 404) at {where}: unknown model {self.config.model!r} or "
                f"wrong base URL: {detail}",
            )
        if code in (408, 409) or code >= 500:
            raise TransportError(
                "server_error",
                f"server error (HTTP {code}) at {where}: {detail}",
                _retry_after(response.headers),
            )
        raise FatalBackendError(
            "bad_request", f"the server rejected the request (HTTP {code}) at {where}: {detail}"
        )

    def _parse(
        self,
        raw: bytes,
        request: SampleRequest,
        first: int,
        n: int,
        latency: float,
    ) -> list[Sample]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # JSON over HTTP is UTF-8 (RFC 8259); guessing another encoding could misread
            raise TransportError(
                "malformed", "the server answered a body that is not UTF-8"
            ) from None
        try:
            data = json.loads(text)
        except ValueError:
            shown = self._clean(text, 80)
            raise TransportError("malformed", f"the server answered non-JSON: {shown!r}") from None
        except RecursionError:
            raise TransportError(
                "malformed", "the server answered JSON nested too deeply to read"
            ) from None
        if not isinstance(data, dict):
            raise TransportError("malformed", "the server answered JSON that is not an object")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise TransportError("malformed", "the server answered an empty choice list")
        by_index: dict[int, str] = {}
        for pos, choice in enumerate(choices):
            said = _choice_text(choice, self.config.api)
            if said is None:
                raise TransportError("malformed", "a choice in the server's answer has no text")
            at = choice.get("index") if isinstance(choice, dict) else None
            if at is None:  # no index: the choice's place in the list says which
                at = pos
            if not isinstance(at, int) or isinstance(at, bool):
                raise TransportError("malformed", f"a choice's index is not a number: {at!r:.40}")
            if not 0 <= at < n:
                # more choices than asked, or a stray index: not a sample of this request
                continue
            if at in by_index:
                # two answers claim one sample: counting both would give one response two
                # votes, and picking one would be a guess
                raise TransportError(
                    "malformed", f"two choices in the server's answer share index {at}"
                )
            by_index[at] = _valid_text(said)
        if not by_index:
            raise TransportError(
                "malformed", f"no choice in the server's answer has an index below {n}"
            )
        texts = [by_index[i] for i in sorted(by_index)]
        usage = data.get("usage")
        prompt_tokens, completion_tokens = _usage(usage)
        if prompt_tokens is None or completion_tokens is None:
            if self.config.require_usage:
                raise FatalBackendError(
                    "no_usage",
                    "the server's answer has no token usage, so cost and token budgets "
                    "cannot be kept (allow estimates with --estimate-usage)",
                )
            prompt_tokens = estimate_tokens((request.system or "") + request.prompt)
            completion_tokens = sum(estimate_tokens(t) for t in texts)
        # usage covers the whole request: spread it so that per-sample sums stay exact
        p_parts = _split(prompt_tokens, [1] * len(texts))
        c_parts = _split(completion_tokens, [max(1, estimate_tokens(t)) for t in texts])
        return [Sample(t, p_parts[i], c_parts[i], latency) for i, t in enumerate(texts)]

    def _clean(self, text: str, limit: int | None = None) -> str:
        """`text` (at most `limit` characters of it) with the key masked: a server or a
        library may echo the Authorization header."""
        if self.__redactor is None:
            return text if limit is None else text[:limit]
        if limit is None:
            return self.__redactor.scrub(text)
        return self.__redactor.shown(text, limit)


def _choice_text(choice: object, api: Api) -> str | None:
    if not isinstance(choice, dict):
        return None
    if api == "chat":
        message = choice.get("message")
        if not isinstance(message, dict):
            return None
        content = message.get("content")
        # a null content (refusal or tool call) is an empty answer: a red flag, not a crash
        if content is None:
            return ""
        return content if isinstance(content, str) else None
    text = choice.get("text")
    return text if isinstance(text, str) else None


def _usage(usage: object) -> tuple[int | None, int | None]:
    """The answer's token counts; None for none reported. Counts no request can have
    (negative, or a billion and more) make the answer malformed."""
    if not isinstance(usage, dict):
        return None, None
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not (_is_count(p) and _is_count(c)):
        return None, None
    assert isinstance(p, int) and isinstance(c, int)
    if not (0 <= p <= MAX_USAGE_TOKENS and 0 <= c <= MAX_USAGE_TOKENS):
        # (cut short: a count may have thousands of digits)
        raise TransportError(
            "malformed",
            f"the server reported impossible token counts (prompt {str(p)[:24]}, "
            f"completion {str(c)[:24]})",
        )
    return p, c


def _is_count(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _valid_text(text: str) -> str:
    """`text`, with what UTF-8 cannot hold (a lone surrogate from a JSON escape) replaced:
    the journal stores UTF-8, and such a sample must become a red flag, not a crash."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _error_detail(raw: bytes) -> str:
    """The server's own error message, on one line (whole: the caller scrubs, then cuts)."""
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
        err = data.get("error") if isinstance(data, dict) else None
        msg = err.get("message") if isinstance(err, dict) else err
        if msg is None and isinstance(data, dict):
            msg = data.get("detail") or data.get("message")
        if msg is not None:
            text = str(msg)
    except (ValueError, RecursionError):
        pass  # not the JSON expected: the text itself is the detail
    return " ".join(text.split())
