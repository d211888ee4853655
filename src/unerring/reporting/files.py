"""Output files that are whole or absent: written beside the target, then renamed onto it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from unerring.errors import OutputError

__all__ = ["OutputError", "atomic_path", "write_bytes"]


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary file's path beside `path`, renamed onto `path` only if the block ends
    without an error (removed otherwise). Fails at once with OutputError when `path`
    cannot be written, so that no work is done for nothing."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{path} is a directory; give a file path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from its readers
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes(tmp: str, data: bytes, path: str) -> None:
    """Write the temporary file of `path` (disk full and the like say so in one line)."""
    try:
        Path(tmp).write_bytes(data)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
