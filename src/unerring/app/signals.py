"""SIGINT and SIGTERM during a run: the first asks a clean stop (pending work cancelled
after a grace period), a second forces it. A library call (`unerring.run` in a script)
leaves SIGTERM alone, stops cleanly on Ctrl-C, and then raises one KeyboardInterrupt."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from unerring.executors import Execution

# a stop (Ctrl-C, SIGTERM) lets the steps in flight finish this long, so that answers on
# their way are not paid for twice, then cancels what is still pending (a server that
# stalls, a back-off sleep, the circuit breaker's wait): a resume draws it again
STOP_GRACE_S = 3.0


# a second signal cancels at once; if the run has still not ended this long after it
# (the loop held by a process's own code), the process exits without waiting
FORCE_S = 2.0


@contextmanager
def stop_on_signals(execution: Execution, enabled: bool, say: bool = False) -> Iterator[None]:
    """SIGINT and SIGTERM stop the run; a second one forces it. `say`: tell stderr."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = 0
    over = threading.Event()

    def tell(text: str) -> None:
        if say:  # (os.write: a signal handler must not re-enter a buffered stream)
            with contextlib.suppress(OSError):
                clear = "\r\x1b[K" if os.isatty(2) else ""  # over a live progress line
                os.write(2, f"{clear}unerring: {text}\n".encode())

    def handler(signum: int, _frame: object) -> None:
        nonlocal signals
        signals += 1
        name = signal.Signals(signum).name
        if signals == 1:
            tell(
                f"stopping ({name}): steps in flight get {STOP_GRACE_S:g} s to finish, "
                "then what is pending is cancelled (resume draws it again); "
                f"{name} again to stop at once"
            )
            execution.request_stop(f"interrupted by {name}", STOP_GRACE_S)
        elif signals == 2:
            execution.request_stop(f"interrupted by {name}", 0.0)
            threading.Thread(target=_force, args=(over, signum, tell), daemon=True).start()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        over.set()
        for s, h in old.items():
            signal.signal(s, h)


def _force(over: threading.Event, signum: int, tell: Callable[[str], None]) -> None:
    """Exit if the run has not ended FORCE_S after a second signal. What the journal
    writer committed stands (it commits on its own thread); the rest is drawn again."""
    if over.wait(FORCE_S):
        return
    tell(
        f"forced to stop ({signal.Signals(signum).name}); what was committed stands, "
        "resume the run to go on"
    )
    os._exit(128 + signum)


@contextmanager
def interrupt_on_sigint(execution: Execution) -> Iterator[None]:
    """A library call's Ctrl-C: the first SIGINT stops the run cleanly (steps in flight get
    STOP_GRACE_S), a second cancels what is pending at once (a third is the caller's
    again). Once the run is over, and its journal says stopped, one KeyboardInterrupt is
    raised: not asyncio's, which would come chained to the cancellation of its loop.

    Only where Ctrl-C still raises KeyboardInterrupt (the caller set no handler of its
    own) and on the main thread, as asyncio itself does."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    got: list[BaseException] = []

    def handler(signum: int, _frame: object) -> None:
        got.append(KeyboardInterrupt())
        reason = f"interrupted by {signal.Signals(signum).name}"
        if len(got) == 1:
            execution.request_stop(reason, STOP_GRACE_S)
        else:
            execution.request_stop(reason, 0.0)
            signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if got:  # (not raised where the run itself raised: that error is the news)
        raise got[0]
