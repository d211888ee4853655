"""A small real HTTP server on 127.0.0.1 that speaks just enough of the OpenAI API.

Tests script its answers with `behaviour`; it records every request it receives. A reply
with the header `Transfer-Encoding: chunked` is sent in chunks, with no length announced.
A behaviour may also answer a `Takeover`, which gets the connection itself: the hostile
servers of tests/hostile.py (silence, a trickle, a server that dies) are takeovers.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.loopback import listening

Reply = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Takeover:
    """An answer that takes the connection over: `act(handler, server)` writes (or does
    not write) whatever it likes; it should return once `server.released` is set."""

    act: Callable[[BaseHTTPRequestHandler, FakeServer], None]


Behaviour = Callable[[str, dict[str, Any], dict[str, str]], "Reply | Takeover"]


def completion_reply(path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
    """A well-formed answer with `n` choices: text 'answer I T' (choice I, temperature T)."""
    n = int(body.get("n", 1))
    t = body.get("temperature")
    choices: list[dict[str, Any]] = []
    for i in range(n):
        text = f"answer {i} {t}"
        if path.endswith("chat/completions"):
            choices.append({"index": i, "message": {"role": "assistant", "content": text}})
        else:
            choices.append({"index": i, "text": text})
    choices.reverse()  # servers may list choices in any order; the index says which
    usage = {"prompt_tokens": 11, "completion_tokens": 3 * n, "total_tokens": 11 + 3 * n}
    return (
        200,
        {"Content-Type": "application/json"},
        json.dumps({"choices": choices, "usage": usage}).encode(),
    )


@dataclass
class FakeServer:
    url: str
    behaviour: Behaviour = completion_reply
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    # set when the test's block ends: takeovers still holding a connection let it go
    released: threading.Event = field(default_factory=threading.Event)
    dead: bool = False  # killed: nothing is answered any more
    server: ThreadingHTTPServer | None = None

    def kill(self) -> None:
        """Die as a killed server does: stop listening (connections are refused) and
        drop every request that still arrives on a kept-alive connection."""
        self.dead = True
        if self.server is not None:
            # (from a handler's thread: the accepting thread is another one)
            self.server.shutdown()
            self.server.server_close()


@contextmanager
def fake_openai(behaviour: Behaviour = completion_reply) -> Iterator[FakeServer]:
    state = FakeServer(url="", behaviour=behaviour)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if state.dead:
                self.close_connection = True
                self.connection.close()
                return
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append((self.path, body, headers))
            answer = state.behaviour(self.path, body, headers)
            if isinstance(answer, Takeover):
                # (an OSError: the client gave up, as a stopped run does)
                with contextlib.suppress(OSError):
                    answer.act(self, state)
                self.close_connection = True
                return
            status, extra, payload = answer
            try:
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                if extra.get("Transfer-Encoding") == "chunked":
                    # no length announced: the client learns the size only by reading
                    self.end_headers()
                    for at in range(0, len(payload), 65536):
                        part = payload[at : at + 65536]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test): nothing left to answer

        def log_message(self, format: str, *args: Any) -> None:
            return None

    with listening(Handler, 0.02) as (url, server):
        state.url, state.server = url, server
        try:
            yield state
        finally:
            state.released.set()


def perfect_addition(path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
    """Answer the addition task's last line ("a + b =") correctly, like a perfect model."""
    a, b = body["prompt"].rsplit("\n", 1)[1].rstrip("=").split("+")
    status, extra, raw = completion_reply(path, body, headers)
    data = json.loads(raw)
    for c in data["choices"]:
        c["text"] = f" {int(a) + int(b)}"
    return status, extra, json.dumps(data).encode()


def echoing_key(encode: Callable[[str], str]) -> Behaviour:
    """A careless server that echoes the API key it was sent, written by `encode`, in
    each place a server's text reaches a run: a non-JSON body, then a choice's index (both
    malformed, retried), then a wrong answer followed by the echo (decided and journaled
    with its samples), then an error message of a 401 (which ends the run)."""
    calls = 0

    def reply(path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        nonlocal calls
        calls += 1
        echo = encode(headers["authorization"].removeprefix("Bearer "))
        if calls == 1:
            return 200, {}, f"not json: {echo}".encode()
        if calls == 2:
            return 200, {}, json.dumps({"choices": [{"index": echo, "text": " 1"}]}).encode()
        if calls == 3:
            status, extra, raw = perfect_addition(path, body, headers)
            data = json.loads(raw)
            for c in data["choices"]:
                c["text"] = f" {int(c['text']) + 1}\n{echo}"  # wrong: a failure record
            return status, extra, json.dumps(data).encode()
        return 401, {}, json.dumps({"error": {"message": f"refused {echo}"}}).encode()

    return reply
