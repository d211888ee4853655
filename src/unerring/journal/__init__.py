"""The journal: an append-only record of runs, decisions and samples (SQLite)."""

from unerring.journal.store import RunRecord, Store, StoreError

__all__ = ["RunRecord", "Store", "StoreError"]
