"""The exceptions a user of unerring meets, in one place.

UsageError      bad input from the user: exit code 2, one line
StoreError      the journal cannot be used as asked: exit code 1, one line
TransportError  a sample could not be fetched (retryable: timeouts, resets, 429, 5xx)
  FatalBackendError   retrying cannot fix it (bad key, unknown model, bad request)
"""

from __future__ import annotations

from unerring.backends.base import FatalBackendError, TransportError
from unerring.journal.store import StoreError

__all__ = ["FatalBackendError", "StoreError", "TransportError", "UsageError"]


class UsageError(ValueError):
    """Bad input from the user: exit code 2, one line."""
