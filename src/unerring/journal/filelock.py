"""Exclusive OS file locks (flock) on a lock file that is removed on release.

The kernel drops a flock when its holder dies, even on kill -9, so a stale lock file
proves nothing and never blocks anyone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path


def try_lock(path: Path, patience_s: float) -> int | None:
    """Lock `path` (created if missing) within `patience_s`; the locked fd, or None."""
    deadline = time.monotonic() + patience_s
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() < deadline:
                time.sleep(0.01)
                continue
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        # the holder released and removed the file between our open and flock: the lock
        # we got is on a file nobody else will look at, so take the new one
        os.close(fd)


def unlock(path: Path, fd: int) -> None:
    """Remove the lock file, then release: a waiter that locked the old file sees it gone."""
    with contextlib.suppress(OSError):
        path.unlink()
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
