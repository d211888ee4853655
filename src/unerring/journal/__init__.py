"""The journal: an append-only record of runs, decisions and samples (SQLite)."""

from unerring.journal.store import RunRecord, Store, StoreError, open_store

__all__ = ["RunRecord", "Store", "StoreError", "open_store"]
