"""Where and how an OpenAI-compatible backend asks: its configuration, checked when made.

Apart from the backend (backends/openai.py) so that building a run's configuration does
not import the HTTP client: a run on the simulated model, and every Ray actor's start,
never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from unerring import defaults

Api = Literal["chat", "completions"]
NMode = Literal["auto", "n", "separate"]


@dataclass(frozen=True, slots=True)
class OpenAIConfig:
    """Where and how to ask. `n_mode`: one request with `n` (auto falls back to separate
    requests if the server returns fewer choices), or always one request per sample."""

    model: str
    base_url: str = "https://api.openai.com/v1"
    api: Api = defaults.API
    timeout_s: float = defaults.TIMEOUT_S
    n_mode: NMode = "auto"
    require_usage: bool = True
    stop: tuple[str, ...] = ()
    max_response_bytes: int = defaults.MAX_RESPONSE_BYTES  # an answer is a few kilobytes
    keepalive: int = 16  # idle connections kept for later requests (the run's concurrency)

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
        if self.keepalive < 1:
            raise ValueError(f"keep-alive connections must be at least 1, got {self.keepalive}")
        if self.max_response_bytes < 1:
            raise ValueError(
                f"--max-response-bytes must be at least 1, got {self.max_response_bytes}"
            )
