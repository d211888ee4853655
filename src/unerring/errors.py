"""The exceptions a user of unerring meets, in one place.

UsageError      bad input from the user: exit code 2, one line
StoreError      the journal failed while working (a write): exit code 1, one line
  StoreRefused  the store or run named cannot be used (missing, foreign, damaged): exit 2
  StoreBusy     another process holds the store or the run; try again: exit code 75
TransportError  a sample could not be fetched (retryable: timeouts, resets, 429, 5xx)
  FatalBackendError   retrying cannot fix it (bad key, unknown model, bad request)
"""

from __future__ import annotations

from unerring.backends.base import FatalBackendError, TransportError
from unerring.journal.store import StoreBusy, StoreError, StoreRefused

__all__ = [
    "FatalBackendError",
    "StoreBusy",
    "StoreError",
    "StoreRefused",
    "TransportError",
    "UsageError",
]


class UsageError(ValueError):
    """Bad input from the user: exit code 2, one line."""
