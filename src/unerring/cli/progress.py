"""A live progress line on stderr, drawn by its own thread from the run's counters.

It reads a few integers a few times a second, so it costs the step loop nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from unerring.executors import Execution


def _eta(seconds: float) -> str:
    if seconds != seconds or seconds < 0 or seconds > 1e8:  # NaN or absurd
        return "--"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """Context manager: shows `decided/total, steps/s, samples, flags, ETA` until exit;
    for a batch also items done of total, samples in flight and the items that stopped."""

    def __init__(
        self,
        execution: Execution,
        total: int | None,
        items: int | None = None,
        items_done: int = 0,
        stream: TextIO | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.execution = execution
        self.total = total
        self.items = items  # None for a single chain
        self.items_done = items_done  # completed before this attempt
        self.start = execution.totals.steps_decided
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        # on a terminal redraw in place; in a log file write a line every 10 s
        self.interval_s = interval_s or (0.25 if self.tty else 10.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="unerring-progress", daemon=True)
        self._t0 = time.perf_counter()

    def line(self) -> str:
        sched = self.execution
        s = sched.totals
        elapsed = time.perf_counter() - self._t0
        done_now = s.steps_decided - self.start
        rate = done_now / elapsed if elapsed > 0 else 0.0
        total = f"/{self.total:,}" if self.total else ""
        eta = _eta((self.total - s.steps_decided) / rate) if self.total and rate else "--"
        head = ""
        if self.items is not None:
            ended = sched.ended
            done = self.items_done + ended["completed"]
            head = f"items {done:,}/{self.items:,}  "
            if sched.in_flight:
                head += f"in flight {sched.in_flight}  "
        extra = f"  cost ${s.cost:.4f}" if s.cost else ""
        tokens = s.prompt_tokens + s.completion_tokens
        extra += f"  tokens {tokens:,}" if tokens else ""
        extra += f"  transport failures {s.transport_failures:,}" if s.transport_failures else ""
        line = (
            f"{head}decided {s.steps_decided:,}{total}  {rate:,.0f} steps/s  "
            f"samples {s.samples:,}  flags {s.red_flags:,}  errors {s.errors:,}"
            f"{extra}  ETA {eta}"
        )
        if self.items is not None:
            n = sched.ended["stopped"] + sched.ended["failed"]
            if n:
                names = ", ".join(e.item_id for e in sched.not_completed()[:5])
                line += f"  stopped: {names}" + (f" and {n - 5} more" if n > 5 else "")
        return line

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._draw()

    def _draw(self, end: str = "") -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line() + end)
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._draw(end="\n")
