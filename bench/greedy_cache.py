"""A caching HTTP proxy for temperature-0 completions, in front of one llama.cpp server.

At temperature 0 a model's answer is a function of its prompt: the bench's runs (each
model alone, the plain ensemble, the weighted one) ask the same prompts of the same
steps, and on 2 shared CPU cores asking each again would take hours. The proxy asks the
server once per distinct request body and answers repeats from memory; every answer a
vote counts is still one the model gave. Requests at any other temperature pass through.
`recheck` asks a sample of the cached bodies again, past the cache, to show that the
server really does answer them alike.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.loopback import serving


@dataclass
class GreedyCache:
    url: str = ""  # the proxy's base URL (ending in /v1)
    upstream: str = ""
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    passed: int = 0  # requests at a temperature above 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[str, threading.Event] = field(default_factory=dict)

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "passed": self.passed}


def _forward(upstream: str, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
    target = urlsplit(upstream)
    conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=600)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@contextmanager
def greedy_cache(upstream: str) -> Iterator[GreedyCache]:
    """Proxy to `upstream` (http://host:port, no /v1)."""
    cache = GreedyCache(upstream=upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply(*_forward(upstream, "GET", self.path, None))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                greedy = json.loads(body).get("temperature", 1.0) == 0
            except (ValueError, AttributeError):
                greedy = False
            if not greedy:
                with cache.lock:
                    cache.passed += 1
                self._reply(*_forward(upstream, "POST", self.path, body))
                return
            key = hashlib.sha256(self.path.encode() + b"\0" + body).hexdigest()
            while True:
                with cache.lock:
                    got = cache.answers.get(key)
                    if got is not None:
                        cache.hits += 1
                        break
                    waiting = cache.pending.get(key)
                    if waiting is None:  # ours to ask
                        cache.pending[key] = threading.Event()
                        cache.misses += 1
                if waiting is not None:
                    waiting.wait()  # the same body is being asked: wait for its answer
                    continue
                status, data = 502, b'{"error": "the model server did not answer"}'
                try:
                    status, data = _forward(upstream, "POST", self.path, body)
                except (OSError, http.client.HTTPException):
                    pass  # the client retries: a 502 is retryable, like the drop itself
                finally:
                    with cache.lock:
                        if status == 200:
                            cache.answers[key] = (status, data)
                            cache.bodies[key] = body
                        cache.pending.pop(key).set()  # waiters ask again or take the answer
                got = (status, data)
                break
            self._reply(*got)

    with serving(Handler) as url:
        cache.url = url
        yield cache


def _text(data: bytes) -> str:
    return str(json.loads(data)["choices"][0].get("text", ""))


def recheck(cache: GreedyCache, n: int, seed: int = 0) -> dict[str, int]:
    """Ask n cached bodies again, past the cache: how many answers came back the same."""
    with cache.lock:
        keys = sorted(cache.bodies)
    picked = random.Random(seed).sample(keys, min(n, len(keys)))
    same = 0
    for key in picked:
        path_and_body = cache.bodies[key]
        status, data = _forward(cache.upstream, "POST", "/v1/completions", path_and_body)
        if status == 200 and _text(data) == _text(cache.answers[key][1]):
            same += 1
    return {"rechecked": len(picked), "same": same}
