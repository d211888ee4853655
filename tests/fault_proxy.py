"""A fault-injecting HTTP proxy on 127.0.0.1, for tests in front of a real model server.

Each request draws a fault from a seeded sequence (never global random state); faults happen
on the wire (dropped connections, cut-off bodies, 429/503 answers, stalls) so that the
client's real error handling runs.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.loopback import serving

FAULTS = ("reset", "server_error", "rate_limit", "truncated", "slow")


@dataclass
class Proxy:
    url: str
    counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0


@contextmanager
def fault_proxy(
    upstream: str,
    rates: dict[str, float],
    seed: int = 0,
    clean_first: int = 1,
    slow_s: float = 0.3,
) -> Iterator[Proxy]:
    """Proxy to `upstream` (http://host:port); the first `clean_first` requests pass."""
    target = urlsplit(upstream)
    rng = random.Random(seed)
    lock = threading.Lock()
    state = Proxy(url="")

    def draw() -> str | None:
        with lock:
            state.requests += 1
            u = rng.random()
            if state.requests <= clean_first:
                return None
            edge = 0.0
            for kind in FAULTS:
                edge += rates.get(kind, 0.0)
                if u < edge:
                    state.counts[kind] = state.counts.get(kind, 0) + 1
                    return kind
            return None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, code: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self, method: str) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length) if length else None
            fault = draw()
            if fault == "reset":
                self.close_connection = True
                self.connection.close()
                return
            if fault == "server_error":
                self._reply(503, b'{"error": "overloaded"}', {"Content-Type": "application/json"})
                return
            if fault == "rate_limit":
                self._reply(429, b'{"error": "slow down"}', {"Retry-After": "0"})
                return
            if fault == "slow":
                time.sleep(slow_s)
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            conn.request(method, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            conn.close()
            if fault == "truncated":
                # promise the whole body, send half, hang up: a cut-off answer on the wire
                self.send_response(resp.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.close_connection = True
                self.connection.close()
                return
            ctype = resp.getheader("Content-Type", "application/json")
            self._reply(resp.status, payload, {"Content-Type": ctype})

        def do_POST(self) -> None:
            try:
                self._forward("POST")
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True

        def do_GET(self) -> None:
            try:
                self._forward("GET")
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            return None

    with serving(Handler, 0.05) as url:
        state.url = url
        yield state
