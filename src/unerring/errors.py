"""The exceptions a user of unerring meets, all under one base, defined here.

UnerringError           every error of ours (catch this one to catch them all)
  UsageError            bad input: exit code 2, one line, naming the parameters at fault
  GraphError            a graph that cannot run as described (a cycle, a missing node)
  OutputError           an output file cannot be written
  MissingExtra          an optional dependency is not installed (also an ImportError)
  StoreError            the journal failed while working (a write): exit code 1
    StoreRefused        the store or run named cannot be used (missing, foreign): exit 2
    StoreBusy           another process holds the store or the run; try again: exit 75
  TransportError        a sample could not be fetched (retryable: timeouts, 429, 5xx)
    FatalBackendError   retrying cannot fix it (bad key, unknown model, bad request)
    OutageError         the backend stayed unreachable longer than the run may wait
    RetriesExhausted    one request failed on every attempt while others did not

Library messages name a parameter as the library spells it (`k must be at least 1`); the
CLI prints the flag instead (`--k must be at least 1`). This module imports nothing of
unerring's: every layer may raise these.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = [
    "FatalBackendError",
    "GraphError",
    "MissingExtra",
    "OutageError",
    "OutputError",
    "RetriesExhausted",
    "StoreBusy",
    "StoreError",
    "StoreRefused",
    "TransportError",
    "UnerringError",
    "UsageError",
]


class UnerringError(Exception):
    """The base of every error unerring raises on purpose."""


class UsageError(UnerringError, ValueError):
    """Bad input from the user: exit code 2, one line.

    The message marks each parameter it names as `{name}` (listed in `params`): `str()`
    spells it as the library's keyword (`k`), `spelt(flag_of)` as the CLI's flag (`--k`).
    """

    def __init__(self, message: str, *, params: tuple[str, ...] = ()) -> None:
        super().__init__(_spell(message, params, str))
        self.template = message
        self.params = params

    def spelt(self, name_of: Callable[[str], str]) -> str:
        """The message with each parameter it names written as `name_of(parameter)`."""
        return _spell(self.template, self.params, name_of)


def _spell(template: str, params: tuple[str, ...], name_of: Callable[[str], str]) -> str:
    text = template
    for p in params:
        text = text.replace("{" + p + "}", name_of(p))
    return text


class GraphError(UnerringError, ValueError):
    """A graph that cannot run as described (a cycle, a missing node, a reused id...)."""


class OutputError(UnerringError, ValueError):
    """The output path cannot be written; the message says why."""


class MissingExtra(UnerringError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class StoreError(UnerringError):
    """The store cannot do what was asked (a write failed); the message says why and what
    to do. The CLI exits 1: work stopped part way, what was committed is safe."""


class StoreRefused(StoreError):
    """The store, or the run asked of it, cannot be used as given: none at the path, not a
    journal, damaged, newer, a directory, no such run. Bad input: the CLI exits 2."""


class StoreBusy(StoreError):
    """Another process holds the store (or the run) longer than we wait; nothing was
    changed; try again. The CLI exits 75 (EX_TEMPFAIL: a temporary failure)."""


class TransportError(UnerringError):
    """A sample could not be fetched. `kind` names the failure for failure analysis.

    `item_only`: the failure stops only the item whose request failed (resumable), and the
    run's other items go on; otherwise it stops the run.
    """

    retryable = True
    item_only = False

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class FatalBackendError(TransportError):
    """A failure that retrying cannot fix (bad key, unknown model, malformed request)."""

    retryable = False


class OutageError(TransportError):
    """The backend stayed unreachable longer than the run may wait: stop, resume later."""

    retryable = False


class RetriesExhausted(TransportError):
    """One request failed on every attempt while others did not (an outage opens the
    breaker instead): its item stops, resumable, and the run's other items go on."""

    retryable = False
    item_only = True
