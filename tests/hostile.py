"""Misbehaving OpenAI-compatible servers: behaviours for tests/fake_openai.py.

Each stalls a client in its own way (silence, a trickle, a long Retry-After, errors that
open the circuit breaker, a server that dies); `after` lets a run decide a few steps on a
healthy server first.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_openai import Behaviour, FakeServer, Reply, Takeover, completion_reply


def after(n: int, first: Behaviour, then: Behaviour) -> Behaviour:
    """The first `n` requests answered by `first`, every later one by `then`."""
    lock = threading.Lock()
    seen = 0

    def behaviour(path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply | Takeover:
        nonlocal seen
        with lock:
            seen += 1
            mine = seen
        return (first if mine <= n else then)(path, body, headers)

    return behaviour


def _hold(handler: BaseHTTPRequestHandler, server: FakeServer) -> None:
    server.released.wait()


def silent(path: str, body: dict[str, Any], headers: dict[str, str]) -> Takeover:
    """Takes the request and never sends a byte, not even a status line."""
    return Takeover(_hold)


def trickle(every_s: float, reply: Behaviour = completion_reply) -> Behaviour:
    """Sends the status and headers at once, then the body a byte every `every_s` seconds
    (slow loris): every read succeeds, so no per-read timeout ever fires."""

    def behaviour(path: str, body: dict[str, Any], headers: dict[str, str]) -> Takeover:
        answer = reply(path, body, headers)
        assert not isinstance(answer, Takeover)
        status, extra, payload = answer

        def act(handler: BaseHTTPRequestHandler, server: FakeServer) -> None:
            handler.send_response(status)
            for k, v in extra.items():
                handler.send_header(k, v)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            for at in range(len(payload)):
                if server.released.wait(every_s):
                    return
                handler.wfile.write(payload[at : at + 1])

        return Takeover(act)

    return behaviour


def retry_after(value: str) -> Behaviour:
    """Rate-limited, with `Retry-After: value` (any text: a huge number, inf, garbage)."""

    def behaviour(path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        return 429, {"Retry-After": value}, b'{"error": {"message": "slow down"}}'

    return behaviour


def down(path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
    """Overloaded, every time: the failures in a row open the client's circuit breaker."""
    return 503, {"Content-Type": "application/json"}, b'{"error": "overloaded"}'


def _die(handler: BaseHTTPRequestHandler, server: FakeServer) -> None:
    server.kill()
    handler.connection.close()


def killed(path: str, body: dict[str, Any], headers: dict[str, str]) -> Takeover:
    """The server dies on this request: the connection drops, later ones are refused."""
    return Takeover(_die)
