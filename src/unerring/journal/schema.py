"""The journal's schema, versioned; each migration moves a store up one version."""

from __future__ import annotations

import sqlite3

# PRAGMA application_id marks a file as ours ("UNER" in ASCII).
APPLICATION_ID = 0x554E4552

MIGRATIONS: tuple[str, ...] = (
    # 1: runs, attempts, decisions (noteworthy steps, one row each), decision_blocks (runs
    # of plain steps packed into one row), samples
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        task TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        steps_total INTEGER,
        next_step INTEGER NOT NULL DEFAULT 0,
        state TEXT,
        stats TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE attempts (
        run INTEGER NOT NULL REFERENCES runs(id),
        attempt INTEGER NOT NULL,
        started REAL NOT NULL,
        ended REAL,
        first_step INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL,
        PRIMARY KEY (run, attempt)
    );
    CREATE TABLE decisions (
        run INTEGER NOT NULL,
        step INTEGER NOT NULL,
        winner TEXT,
        votes TEXT NOT NULL,
        samples INTEGER NOT NULL,
        surplus INTEGER NOT NULL,
        flags TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost REAL NOT NULL,
        elapsed REAL NOT NULL,
        undecided INTEGER NOT NULL,
        correct INTEGER,
        features TEXT,
        PRIMARY KEY (run, step)
    ) WITHOUT ROWID;
    CREATE TABLE decision_blocks (
        run INTEGER NOT NULL,
        first_step INTEGER NOT NULL,
        last_step INTEGER NOT NULL,
        winners BLOB NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (run, first_step)
    ) WITHOUT ROWID;
    CREATE TABLE samples (
        run INTEGER NOT NULL,
        step INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        text TEXT NOT NULL,
        vote TEXT,
        flag TEXT,
        counted INTEGER NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        latency REAL NOT NULL,
        label TEXT,
        PRIMARY KEY (run, step, idx)
    ) WITHOUT ROWID;
    """,
    # 2: transport failures (kind, attempt, step, time), for failure analysis
    """
    CREATE TABLE transport_failures (
        run INTEGER NOT NULL,
        step INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        kind TEXT NOT NULL,
        time REAL NOT NULL,
        retried INTEGER NOT NULL,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX transport_failures_run ON transport_failures (run, step);
    """,
    # 3: mistake notebooks, versioned (rejected versions kept with the reason), and
    # failure records materialised by `unerring failures --save`
    """
    CREATE TABLE failures (
        run INTEGER NOT NULL,
        step INTEGER NOT NULL,
        idx INTEGER,
        category TEXT NOT NULL,
        nature TEXT NOT NULL,
        flip_rate REAL,
        answer TEXT,
        excerpt TEXT NOT NULL,
        features TEXT NOT NULL,
        time REAL,
        counted INTEGER NOT NULL,
        pattern TEXT
    );
    CREATE INDEX failures_run ON failures (run, step);
    CREATE TABLE notebooks (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        notes TEXT NOT NULL,
        accepted INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        PRIMARY KEY (name, version)
    );
    """,
    # 4: a block may span steps that have their own row in `decisions` (holes, int32
    # offsets from first_step), so a contested step no longer cuts a block in two
    """
    ALTER TABLE decision_blocks ADD COLUMN holes BLOB;
    """,
    # 5: a run holds items (a single chain is a run of one item, index 0): every record
    # names its item; `items` holds each item's options, status and resume point (next step,
    # state, totals); `discarded` holds speculative work thrown away (paid, never voted)
    """
    ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'chain';
    CREATE TABLE items (
        run INTEGER NOT NULL,
        item INTEGER NOT NULL,
        item_id TEXT NOT NULL,
        options TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'pending',
        reason TEXT NOT NULL DEFAULT '',
        steps_total INTEGER,
        next_step INTEGER NOT NULL DEFAULT 0,
        state TEXT,
        stats TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (run, item)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX items_by_id ON items (run, item_id);
    INSERT INTO items (run, item, item_id, status, reason, steps_total, next_step, state, stats)
        SELECT id, 0, '1', status, reason, steps_total, next_step, state, stats FROM runs;
    CREATE TABLE decisions_v5 (
        run INTEGER NOT NULL,
        item INTEGER NOT NULL,
        step INTEGER NOT NULL,
        winner TEXT,
        votes TEXT NOT NULL,
        samples INTEGER NOT NULL,
        surplus INTEGER NOT NULL,
        flags TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost REAL NOT NULL,
        elapsed REAL NOT NULL,
        undecided INTEGER NOT NULL,
        correct INTEGER,
        features TEXT,
        PRIMARY KEY (run, item, step)
    ) WITHOUT ROWID;
    INSERT INTO decisions_v5
        SELECT run, 0, step, winner, votes, samples, surplus, flags, prompt_tokens,
               completion_tokens, cost, elapsed, undecided, correct, features FROM decisions;
    DROP TABLE decisions;
    ALTER TABLE decisions_v5 RENAME TO decisions;
    CREATE TABLE decision_blocks_v5 (
        run INTEGER NOT NULL,
        item INTEGER NOT NULL,
        first_step INTEGER NOT NULL,
        last_step INTEGER NOT NULL,
        winners BLOB NOT NULL,
        data BLOB NOT NULL,
        holes BLOB,
        PRIMARY KEY (run, item, first_step)
    ) WITHOUT ROWID;
    INSERT INTO decision_blocks_v5
        SELECT run, 0, first_step, last_step, winners, data, holes FROM decision_blocks;
    DROP TABLE decision_blocks;
    ALTER TABLE decision_blocks_v5 RENAME TO decision_blocks;
    CREATE TABLE samples_v5 (
        run INTEGER NOT NULL,
        item INTEGER NOT NULL,
        step INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        text TEXT NOT NULL,
        vote TEXT,
        flag TEXT,
        counted INTEGER NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        latency REAL NOT NULL,
        label TEXT,
        PRIMARY KEY (run, item, step, idx)
    ) WITHOUT ROWID;
    INSERT INTO samples_v5
        SELECT run, 0, step, idx, text, vote, flag, counted, prompt_tokens, completion_tokens,
               latency, label FROM samples;
    DROP TABLE samples;
    ALTER TABLE samples_v5 RENAME TO samples;
    ALTER TABLE transport_failures ADD COLUMN item INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE failures ADD COLUMN item INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE discarded (
        run INTEGER NOT NULL,
        item INTEGER NOT NULL,
        step INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost REAL NOT NULL,
        time REAL NOT NULL
    );
    CREATE INDEX discarded_run ON discarded (run, item, step);
    """,
    # 6: a graph run's items are its nodes (the task memory tree): parent, kind, input,
    # dependencies and depth when created, output once decided; seq keeps creation order
    """
    ALTER TABLE items ADD COLUMN parent INTEGER;
    ALTER TABLE items ADD COLUMN kind TEXT;
    ALTER TABLE items ADD COLUMN input TEXT;
    ALTER TABLE items ADD COLUMN deps TEXT;
    ALTER TABLE items ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE items ADD COLUMN output TEXT;
    ALTER TABLE items ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX items_by_parent ON items (run, parent);
    """,
    # 7: decorrelation: the prompt variant each sample was asked with, and the model of an
    # ensemble that answered it (NULL: the run's one prompt, the run's one model)
    """
    ALTER TABLE samples ADD COLUMN variant INTEGER;
    ALTER TABLE samples ADD COLUMN model TEXT;
    """,
    # 8: what each commit of the journal writer added, and when: a batch's or a graph's
    # items decide side by side, so a step's own elapsed time is no clock for the run; the
    # report draws their progress and spending over time from these (a row per commit,
    # a few per second at most under group commit)
    """
    CREATE TABLE commits (
        run INTEGER NOT NULL,
        time REAL NOT NULL,
        steps INTEGER NOT NULL,
        samples INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        cost REAL NOT NULL
    );
    CREATE INDEX commits_run ON commits (run, time);
    """,
    # 9: graph nodes decided in a few plain steps within one commit end many to a row (see
    # journal/codec.py): their items rows keep what they were made with, and a node_ends
    # row says, for each: its item, how many steps it took (0 .. n-1), its output, and its
    # decisions packed as a decision block's (every node's one after another). Nothing reads
    # nodes by their parent: that index only cost a b-tree insert for every node made
    """
    DROP INDEX IF EXISTS items_by_parent;
    CREATE TABLE node_ends (
        run INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        items BLOB NOT NULL,
        steps BLOB NOT NULL,
        outputs TEXT NOT NULL,
        winners BLOB NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (run, seq)
    ) WITHOUT ROWID;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, current: int, target: int = SCHEMA_VERSION) -> None:
    """Apply migrations current+1 .. target, each in its own transaction.

    `conn` must be in autocommit mode (isolation_level=None). Each version is checked again
    inside its write transaction: another process may have applied it since `current`
    was read, and a migration applied twice would fail ("table already exists").
    """
    for version in range(current + 1, target + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] < version:
                for statement in _statements(MIGRATIONS[version - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except BaseException:
            if conn.in_transaction:  # SQLite rolls back by itself after some errors
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """The statements of a migration script, one by one (executescript would commit first)."""
    out: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    assert not pending.strip(), f"incomplete statement in a migration: {pending!r}"
    return out
