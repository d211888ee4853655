"""The largest values of the options that size what a run holds in memory.

Each is far above any real use and far below what fills a machine: a typo (an extra zero,
or ten) is refused in one line before anything is written, instead of a run that grows
until the kernel kills it. Lazy allocation keeps memory in step with the work actually
under way where that is cheap (workers as items come); these bounds are the backstop.
"""

from __future__ import annotations

import math

from unerring.errors import UsageError

# a step's first round draws k samples at once; a per-sample error of 0.49 over a billion
# steps needs k = 593, and the planner looks no further than this
MAX_K = 1000
# samples per later round of a step: each is a request in flight
MAX_PARALLEL = 1000
# samples one step may draw (the default cap is 50 x k, at most 50,000)
MAX_SAMPLES_PER_STEP = 1_000_000
# requests in flight: no server serves more from one client; the scheduler keeps up to
# 4 x this many items deciding
MAX_CONCURRENCY = 4096
# items of one batch: each is a journal row made when the run starts, and about 1 KB of
# memory while it is made (a million took ~1.1 GB and about ten minutes); split more
# into several runs
MAX_ITEMS = 1_000_000
# characters of an item's id: a name that messages, tables and the journal's index repeat
# (a 50 MB id was copied into each)
MAX_ITEM_ID = 200
# prompt variants of a run (a process offers a handful)
MAX_VARIANTS = 1000


def check_at_most(name: str, value: int | None, bound: int) -> None:
    """Refuse `value` above `bound`, naming the parameter (UsageError, one line)."""
    if value is not None and value > bound:
        raise UsageError(
            f"{{{name}}} must be at most {bound:,}, got {shown(value)}", params=(name,)
        )


def check_cap(name: str, value: float | None) -> None:
    """Refuse a budget cap that is not a positive, finite number, naming the parameter."""
    if value is not None and not (value > 0 and (isinstance(value, int) or math.isfinite(value))):
        raise UsageError(f"{{{name}}} must be a positive number, got {value}", params=(name,))


def shown(value: int) -> str:
    """A number for a message: 10^20 as 1e+20, not 21 digits."""
    return f"{value:,}" if value < 10**12 else f"{value:.0e}"
