"""The journal: an append-only record of runs, decisions and samples (SQLite).

store.py       `Store`: opening a file safely, migrating, connections, the whole-file check
base.py        the store's errors, and the connection its parts read and write through
records.py     `RunRecord`, `ItemRecord`
runs.py        runs, attempts, items: what the runner writes, and reads back to resume
reads.py       decisions, samples, commits, transport failures; analysis's and the report's queries
failures.py    the failures table, notebooks.py the notebooks table (what analysis writes)
schema.py      the tables, versioned; codec.py and rows.py what a decision becomes in them
group.py       a commit group; writer.py commits groups off the step loop
replay.py      an item's states rebuilt along its winners; lock.py one writer per run
"""

from unerring.journal.store import RunRecord, Store, StoreError

__all__ = ["RunRecord", "Store", "StoreError"]
