"""A graph run's task memory tree, read from the journal: `show --tree` and nodes export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from unerring.journal.store import RunRecord, Store
from unerring.reporting.rows import node_rows

CHILDREN = 20  # children of a node drawn by default (a flat graph may have 100,000)


def _short(value: Any, limit: int = 48) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_tree(
    store: Store, run: RunRecord, depth: int | None, children: int | None = CHILDREN
) -> Iterator[str]:
    """The tree, one node a line, indented by depth; below `depth`, counts by status; of a
    node's children (and of the first nodes) the first `children` (None: all), then one
    line counting the rest."""
    rows = list(node_rows(store, run))
    kids: dict[str | None, list[dict[str, Any]]] = {}
    for r in rows:
        kids.setdefault(r["parent"], []).append(r)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    yield (
        f"{len(rows):,} nodes, depth {max((r['depth'] for r in rows), default=0)}: "
        + _counts(counts)
    )

    def below(nodes: list[dict[str, Any]]) -> dict[str, int]:
        """The nodes under these (themselves included), by status."""
        out: dict[str, int] = {}
        stack = list(nodes)
        while stack:
            r = stack.pop()
            out[r["status"]] = out.get(r["status"], 0) + 1
            stack.extend(kids.get(r["id"], ()))
        return out

    def shown(nodes: list[dict[str, Any]], level: int) -> list[tuple[dict[str, Any] | str, int]]:
        """The nodes to draw at this level, the hidden rest as one line of counts."""
        if children is None or len(nodes) <= children:
            return [(r, level) for r in nodes]
        rest = nodes[children:]
        hidden = below(rest)
        under = " with those below them" if sum(hidden.values()) > len(rest) else ""
        more = (
            f"{'  ' * level}... {len(rest):,} more: {_counts(hidden)}{under} "
            "(--children all draws them)"
        )
        return [*((r, level) for r in nodes[:children]), (more, level)]

    stack = list(reversed(shown(kids.get(None, []), 0)))
    while stack:
        r, level = stack.pop()
        if isinstance(r, str):
            yield r
            continue
        deps = f" after {', '.join(r['dependencies'])}" if r["dependencies"] else ""
        out = f" -> {_short(r['output'])}" if r["output"] is not None else ""
        why = f" ({r['reason']})" if r["reason"] and r["status"] != "decided" else ""
        yield (
            f"{'  ' * level}{r['id']} [{r['kind']}] {r['status']}, {r['steps']} steps, "
            f"{r['errors']} errors{deps}{out}{why}"
        )
        under = kids.get(r["id"], [])
        if not under:
            continue
        if depth is not None and level + 1 > depth:
            hidden = below(under)
            total = sum(hidden.values())
            yield f"{'  ' * (level + 1)}... {total:,} nodes below ({_counts(hidden)})"
            continue
        stack.extend(reversed(shown(under, level + 1)))


def _counts(by_status: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {s}" for s, n in sorted(by_status.items()))
