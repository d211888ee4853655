"""A graph run's task memory tree, read from the journal: `show --tree` and nodes export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from unerring.journal.store import RunRecord, Store
from unerring.reporting.rows import node_rows


def _short(value: Any, limit: int = 48) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_tree(store: Store, run: RunRecord, depth: int | None) -> Iterator[str]:
    """The tree, one node a line, indented by depth; below `depth`, counts by status."""
    rows = list(node_rows(store, run))
    kids: dict[str | None, list[dict[str, Any]]] = {}
    for r in rows:
        kids.setdefault(r["parent"], []).append(r)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    yield (
        f"{len(rows):,} nodes, depth {max((r['depth'] for r in rows), default=0)}: "
        + ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items()))
    )

    def below(node_id: str) -> dict[str, int]:
        out: dict[str, int] = {}
        stack = list(kids.get(node_id, ()))
        while stack:
            r = stack.pop()
            out[r["status"]] = out.get(r["status"], 0) + 1
            stack.extend(kids.get(r["id"], ()))
        return out

    stack = [(r, 0) for r in reversed(kids.get(None, []))]
    while stack:
        r, level = stack.pop()
        deps = f" after {', '.join(r['dependencies'])}" if r["dependencies"] else ""
        out = f" -> {_short(r['output'])}" if r["output"] is not None else ""
        why = f" ({r['reason']})" if r["reason"] and r["status"] != "decided" else ""
        yield (
            f"{'  ' * level}{r['id']} [{r['kind']}] {r['status']}, {r['steps']} steps, "
            f"{r['errors']} errors{deps}{out}{why}"
        )
        children = kids.get(r["id"], [])
        if not children:
            continue
        if depth is not None and level + 1 > depth:
            hidden = below(r["id"])
            total = sum(hidden.values())
            parts = ", ".join(f"{n:,} {s}" for s, n in sorted(hidden.items()))
            yield f"{'  ' * (level + 1)}... {total:,} nodes below ({parts})"
            continue
        stack.extend((c, level + 1) for c in reversed(children))
