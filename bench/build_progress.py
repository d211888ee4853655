"""Follow a long build on standard input: keep its output whole in a log file, and every
few seconds say how long it has run and how far it is (ninja's [n/N], make's [ n%]).

    SOMETHING 2>&1 | python bench/build_progress.py LOG [SECONDS]
"""

from __future__ import annotations

import re
import sys
import time

PROGRESS = re.compile(r"\[\s*\d+/\d+\]|\[\s*\d+%\]")


def follow(lines: object, log_path: str, every_s: float) -> None:
    start = last = time.monotonic()
    where = "preparing the build"
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        for line in lines:  # type: ignore[attr-defined]
            log.write(line)
            found = PROGRESS.search(line)
            if found:
                where = f"step {found.group(0).strip('[] ')}"
            now = time.monotonic()
            if now - last >= every_s:
                minutes, seconds = divmod(int(now - start), 60)
                print(f"  ... {minutes} min {seconds:02d} s: {where}", flush=True)
                last = now
    minutes, seconds = divmod(int(time.monotonic() - start), 60)
    print(f"  ... ended after {minutes} min {seconds:02d} s (log: {log_path})", flush=True)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: build_progress.py LOG [SECONDS]")
    follow(sys.stdin, sys.argv[1], float(sys.argv[2]) if len(sys.argv) == 3 else 30.0)
