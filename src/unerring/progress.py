"""A live progress line on stderr, drawn by its own thread from the engine's counters.

It reads a few integers a few times a second, so it costs the step loop nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

from unerring.events import Stats


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
    """Context manager: shows `decided/total, steps/s, samples, flags, ETA` until exit."""

    def __init__(
        self,
        stats: Stats,
        total: int | None,
        start_step: int = 0,
        stream: TextIO | None = None,
        interval_s: float | None = None,
    ) -> None:
        self.stats = stats
        self.total = total
        self.start = stats.steps_decided
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        # on a terminal redraw in place; in a log file write a line every 10 s
        self.interval_s = interval_s or (0.25 if self.tty else 10.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="unerring-progress", daemon=True)
        self._t0 = time.perf_counter()

    def line(self) -> str:
        s = self.stats
        elapsed = time.perf_counter() - self._t0
        done_now = s.steps_decided - self.start
        rate = done_now / elapsed if elapsed > 0 else 0.0
        total = f"/{self.total:,}" if self.total else ""
        eta = _eta((self.total - s.steps_decided) / rate) if self.total and rate else "--"
        extra = f"  cost ${s.cost:.4f}" if s.cost else ""
        tokens = s.prompt_tokens + s.completion_tokens
        extra += f"  tokens {tokens:,}" if tokens else ""
        extra += f"  transport failures {s.transport_failures:,}" if s.transport_failures else ""
        return (
            f"decided {s.steps_decided:,}{total}  {rate:,.0f} steps/s  "
            f"samples {s.samples:,}  flags {s.red_flags:,}  errors {s.errors:,}"
            f"{extra}  ETA {eta}"
        )

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
