"""One writer per run: an OS file lock that the kernel releases even on kill -9."""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from unerring.journal.filelock import try_lock, unlock
from unerring.journal.store import MEMORY, StoreBusy

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise ValueError(
            f"run id {run_id!r} must be 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return run_id


class RunLock:
    """Held while a process writes a run; a second writer is refused with a clear message."""

    def __init__(self, store_path: str, run_id: str) -> None:
        self.path = Path(f"{store_path}.{run_id}.lock")
        self._fd: int | None = None
        self.run_id = run_id

    def acquire(self) -> None:
        # a reader probing the lock (see is_held) holds it for microseconds: wait that out
        fd = try_lock(self.path, patience_s=0.25)
        if fd is None:
            raise StoreBusy(
                f"run {self.run_id!r} is being written by another process; wait for "
                f"it to stop (see `unerring show {self.run_id}`)"
            )
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            unlock(self.path, self._fd)
            self._fd = None


def is_held(store_path: str, run_id: str) -> bool:
    """Whether a live process holds the run's lock (its lock file alone proves nothing:
    a process killed with SIGKILL leaves the file, and the kernel drops the lock)."""
    try:
        fd = os.open(f"{store_path}.{run_id}.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def live_status(store_path: str, status: str, run_id: str, *, superseded: bool = False) -> str:
    """A run's (or an attempt's) status as the journal has it, except that one marked
    running whose writer is gone (killed before it could say so) is `interrupted`. An
    attempt followed by another (`superseded`) has lost its writer whoever holds the lock
    now: the later attempt's."""
    if status != "running":
        return status
    if superseded:
        return "interrupted"
    # an in-memory store is written by this process only: its writer is alive
    return "interrupted" if store_path != MEMORY and not is_held(store_path, run_id) else status
