"""An OpenAI-compatible HTTP backend: chat or plain completions, `n` sampling, usage.

Works with hosted APIs and local servers (vLLM, llama.cpp, Ollama, LM Studio). The API key
lives only in the client's headers: it is never part of a repr, a message or an exception.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from unerring.backends.base import FatalBackendError, Sample, SampleRequest, TransportError
from unerring.redflags import estimate_tokens

Api = Literal["chat", "completions"]
NMode = Literal["auto", "n", "separate"]


@dataclass(frozen=True, slots=True)
class OpenAIConfig:
    """Where and how to ask. `n_mode`: one request with `n` (auto falls back to separate
    requests if the server returns fewer choices), or always one request per sample."""

    model: str
    base_url: str = "https://api.openai.com/v1"
    api: Api = "chat"
    timeout_s: float = 60.0
    n_mode: NMode = "auto"
    require_usage: bool = True
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.api not in ("chat", "completions"):
            raise ValueError(f"--api must be chat or completions, got {self.api!r}")
        if self.n_mode not in ("auto", "n", "separate"):
            raise ValueError(f"n mode must be auto, n or separate, got {self.n_mode!r}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base URL {self.base_url!r} must start with http:// or https://")
        parts = urlsplit(self.base_url)
        if "@" in parts.netloc or parts.query:
            # the URL is journaled with the run: a credential in it would be journaled too
            raise ValueError(
                "the base URL must not carry credentials or a query; pass the key through "
                "--api-key-env"
            )
        if self.timeout_s <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout_s}")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        # an HTTP date: rare from model APIs; backoff alone then paces the retry
        return None


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
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # kept only to scrub it from any text a server or library might echo back
        self.__secret = api_key or None
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s),
            transport=transport,
            # a long run reuses a handful of keep-alive connections
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
        self._n_works: bool | None = None if config.n_mode == "auto" else config.n_mode == "n"

    def __repr__(self) -> str:
        c = self.config
        return f"OpenAICompatible(model={c.model!r}, base_url={c.base_url!r}, api={c.api!r})"

    @property
    def model(self) -> str:
        return self.config.model

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- sampling -----------------------------------------------------------------------
    async def sample(self, request: SampleRequest) -> list[Sample]:
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
        try:
            response = await self._client.post(path, content=json.dumps(body))
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
        self._check_status(response)
        return self._parse(response, request, first, n, latency)

    def _check_status(self, response: httpx.Response) -> None:
        code = response.status_code
        if code < 400:
            return
        detail = self._clean(_error_detail(response))
        where = self._clean(str(response.request.url))
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
        response: httpx.Response,
        request: SampleRequest,
        first: int,
        n: int,
        latency: float,
    ) -> list[Sample]:
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            raise TransportError(
                "malformed", f"the server answered non-JSON: {self._clean(response.text[:80])!r}"
            ) from None
        if not isinstance(data, dict):
            raise TransportError("malformed", "the server answered JSON that is not an object")
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise TransportError("malformed", "the server answered an empty choice list")
        texts: list[tuple[int, str]] = []
        for pos, choice in enumerate(choices):
            text = _choice_text(choice, self.config.api)
            if text is None:
                raise TransportError("malformed", "a choice in the server's answer has no text")
            at = choice.get("index", pos) if isinstance(choice, dict) else pos
            texts.append((at if isinstance(at, int) else pos, text))
        texts.sort(key=lambda t: t[0])
        texts = texts[:n]
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
            completion_tokens = sum(estimate_tokens(t) for _, t in texts)
        # usage covers the whole request: spread it so that per-sample sums stay exact
        p_parts = _split(prompt_tokens, [1] * len(texts))
        c_parts = _split(completion_tokens, [max(1, estimate_tokens(t)) for _, t in texts])
        return [Sample(text, p_parts[i], c_parts[i], latency) for i, (_, text) in enumerate(texts)]

    def _clean(self, text: str) -> str:
        """Remove the key from text a server or library produced (some echo headers)."""
        secret = self.__secret
        if secret and secret in text:
            text = text.replace(secret, "***")
        return text


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
    if not isinstance(usage, dict):
        return None, None
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    ok = isinstance(p, int) and isinstance(c, int) and p >= 0 and c >= 0
    return (p, c) if ok else (None, None)


def _error_detail(response: httpx.Response) -> str:
    """The server's own error message, short, on one line."""
    try:
        data = response.json()
        err = data.get("error") if isinstance(data, dict) else None
        msg = err.get("message") if isinstance(err, dict) else err
        if msg is None and isinstance(data, dict):
            msg = data.get("detail") or data.get("message")
        text = str(msg) if msg is not None else response.text
    except (ValueError, UnicodeDecodeError):
        text = response.text
    text = " ".join(text.split())
    return text[:200] or "(no detail)"
