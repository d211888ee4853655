"""Checking a graph's declared nodes before anything is written: ids, dependencies,
cycles, depth; and the compact index of every id a streamed graph made."""

from __future__ import annotations

import hashlib
import sys
from array import array
from collections.abc import Container, Iterable, Mapping

from unerring.graph import GraphError, Node


def node_index(node_id: str) -> int:
    """A node's item index: a stable 62-bit hash of its id (never 0, a chain's index)."""
    h = int.from_bytes(hashlib.blake2b(node_id.encode(), digest_size=8).digest(), "big")
    return (h & ((1 << 62) - 1)) or 1


class Seen:
    """Every node id made so far, held as its index (a 62-bit hash, never 0), so a reused id
    is refused however many nodes a run makes: an open-addressing table of 8-byte slots at
    most half full (16 to 32 bytes a node, where a set of ints takes about 70)."""

    __slots__ = ("_mask", "_slots", "count")

    def __init__(self) -> None:
        self._slots = array("q", bytes(8 * 1024))
        self._mask = 1023
        self.count = 0

    def _slot(self, index: int) -> int:
        """Where `index` is, or the free slot where it would go (linear probing)."""
        slots, mask = self._slots, self._mask
        i = index & mask
        while True:
            v = slots[i]
            if v == index or not v:
                return i
            i = (i + 1) & mask

    def has(self, index: int) -> bool:
        return self._slots[self._slot(index)] == index

    def add(self, index: int) -> bool:
        """Hold `index` (a node's: 1 .. 2^62 - 1); False if it was held already."""
        if 2 * (self.count + 1) > len(self._slots):
            self._grow()
        i = self._slot(index)
        if self._slots[i]:
            return False
        self._slots[i] = index
        self.count += 1
        return True

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("q", bytes(16 * len(old)))
        self._mask = 2 * len(old) - 1
        for v in old:  # (the count stays: the same indices, placed again)
            if v:
                self._slots[self._slot(v)] = v

    def __contains__(self, node_id: object) -> bool:
        # (none yet: a new graph's first nodes are hashed only once, when made)
        return bool(self.count) and isinstance(node_id, str) and self.has(node_index(node_id))

    def __len__(self) -> int:
        return self.count


def check_streamed(n: Node, seen: Seen, held: Container[str], left: Mapping[str, int]) -> int:
    """Check one node of a stream against those before it: a new, non-empty id, `uses`
    not negative, and dependencies on earlier nodes whose results are still held (`held`)
    and, where they said their `uses`, not used up (`left`: uses not yet taken). Returns
    the node's index, added to `seen`."""
    if not isinstance(n.id, str) or not n.id:
        raise GraphError(f"node id {n.id!r} must be a non-empty string")
    index = node_index(n.id)
    if not seen.add(index):
        raise GraphError(f"node id {n.id!r} is used twice")
    if n.uses is not None and n.uses < 0:
        raise GraphError(f"node {n.id!r}: uses must not be negative, got {n.uses}")
    for d in n.deps:
        if d in held and left.get(d, 1) > 0:
            continue
        if d in seen:
            raise GraphError(
                f"node {n.id!r} depends on {d!r}, whose uses are used up (more nodes depend "
                f"on it than its `uses` says)"
            )
        raise GraphError(
            f"node {n.id!r} depends on {d!r}, which is not declared before it (a graph whose "
            "nodes are an iterator names each node after its dependencies)"
        )
    return index


def check_stream(nodes: Iterable[Node]) -> int:
    """Check a stream of nodes whole, holding each node's index and the uses still to be
    taken (near the frontier, when the stream says its uses): how many nodes it has."""
    seen = Seen()
    # nodes whose results later nodes may still read -> uses left (a node that said no
    # uses is never used up)
    left: dict[str, int] = {}
    count = 0
    for n in nodes:
        check_streamed(n, seen, left, left)
        for d in n.deps:
            left[d] -= 1  # (held: checked just now)
            if not left[d]:
                del left[d]
        if n.uses is None:
            left[n.id] = sys.maxsize
        elif n.uses:
            left[n.id] = n.uses
        count += 1
    return count


def check_nodes(
    nodes: Iterable[Node], known: Container[str], max_depth: int, depth: int = 0
) -> list[Node]:
    """Check new nodes against the ids already known: unique ids, deps on known or new
    nodes, no cycle (named), not deeper than `max_depth`. Returns them."""
    new = list(nodes)
    if depth > max_depth:
        raise GraphError(
            f"the graph is deeper than --max-depth {max_depth} (node {new[0].id!r} "
            f"would be at depth {depth})"
            if new
            else f"the graph is deeper than --max-depth {max_depth}"
        )
    ids: dict[str, Node] = {}
    for n in new:
        if not isinstance(n.id, str) or not n.id:
            raise GraphError(f"node id {n.id!r} must be a non-empty string")
        if n.id in ids or n.id in known:
            raise GraphError(f"node id {n.id!r} is used twice")
        ids[n.id] = n
    for n in new:
        for d in n.deps:
            if d not in ids and d not in known:
                raise GraphError(f"node {n.id!r} depends on {d!r}, which is not in the graph")
    cycle = _cycle(ids)
    if cycle:
        raise GraphError(f"the graph has a cycle: {' -> '.join(cycle)}")
    return new


def _cycle(nodes: Mapping[str, Node]) -> list[str]:
    """A dependency cycle among `nodes` (its ids, first repeated at the end), or []."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for start in nodes:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        trail: list[str] = []
        while stack:
            nid, i = stack.pop()
            if i == 0:
                state[nid] = 1
                trail.append(nid)
            deps = [d for d in nodes[nid].deps if d in nodes]
            if i < len(deps):
                stack.append((nid, i + 1))
                d = deps[i]
                if state.get(d) == 1:
                    return [*trail[trail.index(d) :], d]
                if not state.get(d):
                    stack.append((d, 0))
            else:
                state[nid] = 2
                trail.pop()
    return []
