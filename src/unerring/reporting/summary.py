"""A run's summary (the `--json` line) and one item's, read back from the journal."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from unerring import defaults
from unerring.journal.store import ItemRecord, RunRecord, Store
from unerring.scheduler.sources import RunEnd

if TYPE_CHECKING:
    pass


def summary(
    run: RunRecord,
    totals: dict[str, Any],
    outcome: RunEnd | None,
    store: Store,
    attempts: int,
) -> dict[str, Any]:
    """The run's summary (the `--json` line): totals over all its items."""
    cfg = run.config
    decided = int(totals.get("steps_decided", 0))
    samples = int(totals.get("samples", 0))
    wall = float(totals.get("wall_s", 0.0))
    k = cfg.get("k_resolved")
    has_checker = int(totals.get("checked", 0)) > 0 or decided == 0
    out = {
        "run_id": run.run_id,
        "task": run.task,
        "task_options": cfg.get("task_options", {}),
        "model": cfg.get("model"),
        "k": k,
        "stopping": cfg.get("stopping", defaults.STOPPING),
        "status": outcome.status if outcome else run.status,
        "reason": outcome.reason if outcome else run.reason,
        "steps_total": run.steps_total,
        "steps_decided": decided,
        "errors": int(totals.get("errors", 0)) if has_checker else None,
        "undecided": int(totals.get("undecided", 0)),
        "samples": samples,
        "red_flags": int(totals.get("red_flags", 0)),
        "flags": totals.get("flags", {}),
        # the first exception out of parse (step, type, message): its flag is parse_error
        "parse_error": totals.get("parse_error"),
        "samples_per_step": samples / decided if decided else 0.0,
        "prompt_tokens": int(totals.get("prompt_tokens", 0)),
        "completion_tokens": int(totals.get("completion_tokens", 0)),
        "cost": float(totals.get("cost", 0.0)),
        "transport_failures": int(totals.get("transport_failures", 0)),
        "speculative_samples": int(totals.get("speculative_samples", 0)),
        "wall_s": wall,
        "us_per_step": wall * 1e6 / decided if decided else 0.0,
        "attempts": attempts,
        "store": store.path,
    }
    if run.kind == "batch":
        counts = store.item_counts(run)
        out["items"] = sum(counts.values())
        out["items_completed"] = counts.get("completed", 0)
        out["items_stopped"] = counts.get("stopped", 0)
        out["items_failed"] = counts.get("failed", 0)
        out["items_pending"] = counts.get("pending", 0)
        out["items_not_completed"] = [
            {"id": it.item_id, "status": it.status, "reason": it.reason}
            for it in _first_unfinished(store, run, 20)
        ]
    if run.kind == "graph":
        out.update(graph_summary(run, store))
    return out


# what a graph run's end keeps in its stats for its summary (see app.outputs.graph_stats)
GRAPH_FIELDS = ("nodes", "node_statuses", "result_correct")


def graph_summary(run: RunRecord, store: Store) -> dict[str, Any]:
    """A graph run's nodes (count, and count by status) and whether its result is right
    (None: no checker, or not completed), as its end kept them in the run's stats; a run
    that kept none (stopped before its end, or older) has its nodes counted here."""
    st = run.stats
    if "nodes" in st:
        return {k: st.get(k) for k in GRAPH_FIELDS}
    counts = store.item_counts(run)
    return {"nodes": sum(counts.values()), "node_statuses": counts, "result_correct": None}


def item_summary(run: RunRecord, item: ItemRecord, store: Store) -> dict[str, Any]:
    """One item of a batch in the single-run form of `summary`."""
    s = summary(replace(run, kind="chain"), item.stats, None, store, len(store.attempts(run)))
    s["task_options"] = {**run.config.get("task_options", {}), **item.options}
    s["item"] = item.item_id
    s["status"] = item.status
    s["reason"] = item.reason
    s["steps_total"] = item.steps_total
    return s


def _first_unfinished(store: Store, run: RunRecord, n: int) -> list[ItemRecord]:
    out = []
    for it in store.items(run, unfinished=True):
        out.append(it)
        if len(out) == n:
            break
    return out
