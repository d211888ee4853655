"""`python tests/logged_cli.py LOG ARGS...`: the CLI, logging every sample request first.

Test instrumentation for the crash tests: before the simulated model draws samples, one
line `step first_index n monotonic_time item` is appended to LOG with a single write(2)
(item: 0 for a single chain), so a process killed with SIGKILL leaves an exact record of
every sample it paid for. Around each journal commit of a single chain, `B next_step`
(begun) and `C next_step` (returned) are appended too: the journal after a kill must hold
what the last commit begun or returned says.
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
        line = (
            f"{request.step} {request.first_index} {request.n} {time.monotonic():.6f}"
            f" {request.item}\n"
        )
        os.write(fd, line.encode())
        return await draw(self, request)

    sim.SimBackend.sample = logged  # type: ignore[method-assign]

    commit = JournalWriter._commit
    upto = {"next": -1}  # the single chain's resume point the last commit moved it to

    def logged_commit(self: JournalWriter, group: Any) -> None:
        if upto["next"] < 0:
            upto["next"] = self.run.next_step  # where this attempt started
        block = group.blocks.get(0)
        if block is not None and block.last_step >= 0:
            upto["next"] = block.last_step + 1
        os.write(fd, f"B {upto['next']}\n".encode())
        commit(self, group)
        if self.error is None:
            os.write(fd, f"C {upto['next']}\n".encode())

    JournalWriter._commit = logged_commit  # type: ignore[method-assign]


if __name__ == "__main__":
    install(sys.argv[1])
    raise SystemExit(main(sys.argv[2:]))
