"""A threaded HTTP server on 127.0.0.1 for tests, stopped when the block ends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    # hundreds of clients connect at once in the concurrency tests: the default backlog of
    # 5 would drop their SYNs, and the retransmits would read as a slow server
    request_queue_size = 1024
    daemon_threads = True
    block_on_close = False


@contextmanager
def listening(
    handler: type[BaseHTTPRequestHandler], poll_s: float = 0.02
) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    """Serve `handler` on a free loopback port; yields the base URL (ending in /v1) and
    the server (a test may shut it down early, as a server that dies)."""
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(poll_s,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], poll_s: float = 0.02) -> Iterator[str]:
    """Serve `handler` on a free loopback port; yields the base URL (ending in /v1)."""
    with listening(handler, poll_s) as (url, _server):
        yield url
