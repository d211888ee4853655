"""`python tests/logged_cli.py LOG ARGS...`: the CLI, logging every sample request first.

Test instrumentation for the crash tests: before the simulated model draws samples, one
line `step first_index n monotonic_time` is appended to LOG with a single write(2), so a
process killed with SIGKILL leaves an exact record of every sample it paid for. Around
each journal commit, `B next_step` (begun) and `C next_step` (returned) are appended too:
the journal after a kill must hold what the last commit begun or returned says.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from unerring.backends import sim
from unerring.cli.main import main
from unerring.journal.writer import JournalWriter


def install(log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    draw = sim.SimBackend.sample

    async def logged(self: sim.SimBackend, request: Any) -> Any:
        line = f"{request.step} {request.first_index} {request.n} {time.monotonic():.6f}\n"
        os.write(fd, line.encode())
        return await draw(self, request)

    sim.SimBackend.sample = logged  # type: ignore[method-assign]

    commit = JournalWriter._commit

    def logged_commit(self: JournalWriter, group: Any) -> None:
        upto = self.next_step if group.last is None else group.last.step + 1
        os.write(fd, f"B {upto}\n".encode())
        commit(self, group)
        if self.error is None:
            os.write(fd, f"C {self.next_step}\n".encode())

    JournalWriter._commit = logged_commit  # type: ignore[method-assign]


if __name__ == "__main__":
    install(sys.argv[1])
    raise SystemExit(main(sys.argv[2:]))
