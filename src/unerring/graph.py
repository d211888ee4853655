"""Graphs of subtasks: processes that branch and decompose, every node voted.

A graph names its first nodes. Each node is decided by a Process: a voted step is a process
of one step, a sub-chain a process of many. A node runs once its dependencies are complete
(decided, with every node they expanded into);
what it may see is its `Memory`: its own input, its path from the root (each ancestor's
input and output) and its dependencies' outputs, never a concatenated history, so a
prompt grows with the node's depth, not with the number of nodes decided. A decided node
may expand into children (a decomposition node's decided answer names them): the split is
voted like any step, so a model's bad split is outvoted or red-flagged, never followed.

Inputs and outputs travel through the journal as JSON (`dump_output`/`load_output` for
anything else), so a resumed graph sees exactly what an uninterrupted one saw.
"""

from __future__ import annotations

import hashlib
import json
import sys
from array import array
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from unerring.process import Process

MAX_DEPTH = 32  # default --max-depth: a graph deeper than this is refused


@dataclass(frozen=True, slots=True)
class Node:
    """One subtask. `id` is unique in the graph; `kind` names what the node does (a feature
    for failure analysis); `input` is JSON; `deps` are ids of nodes whose outputs it needs.

    `uses`, for a graph whose `nodes` is an iterator: how many later nodes depend on this
    one, so its result is dropped once they have all started (None: not said, kept to the
    end). A graph given as a list needs none: its dependents are known from the start."""

    id: str
    kind: str = "step"
    input: Any = None
    deps: tuple[str, ...] = ()
    uses: int | None = None


@dataclass(frozen=True, slots=True)
class Memory:
    """What a node may see when its process is built: the task memory tree's path to it."""

    node: Node
    path: tuple[tuple[Node, Any], ...] = ()  # (ancestor, its output), root first, parent last
    deps: Mapping[str, Any] = field(default_factory=dict)  # dependency id -> its result

    @property
    def depth(self) -> int:
        return len(self.path)

    def context(self) -> str:
        """The path and the dependencies' outputs as prompt text (one line each)."""
        lines = [
            f"- {n.kind} {n.id}: input {_short(n.input)}, output {_short(o)}" for n, o in self.path
        ]
        lines += [f"- result of {d}: {_short(out)}" for d, out in self.deps.items()]
        return "\n".join(lines)


# json.dumps(x, separators=(",", ":")), without making an encoder each call (a graph dumps
# a few values for every node: its input, dependencies and output)
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def compact_json(value: Any) -> str:
    """json.dumps(value, separators=(",", ":"))."""
    return _COMPACT.encode(value)


def _short(value: Any, limit: int = 200) -> str:
    text = _COMPACT.encode(value)
    return text if len(text) <= limit else text[:limit] + "..."


class Graph:
    """A process that branches and decomposes. Subclass it; `nodes` and `process` are
    required, the rest have defaults."""

    name: str = "graph"
    max_children: int = 64  # an expansion with more children than this fails its node
    # where a completion-API answer ends, for every node (as `Process.stop`)
    stop: tuple[str, ...] = ()

    def nodes(self) -> Iterable[Node]:
        """The graph's first nodes (more may come from expansions).

        A sequence (a list) is checked whole and held until its nodes are done, in any
        order. Any other iterable (a generator) is a stream: pulled as the run needs ready
        nodes, each node after its dependencies, so a graph of millions of nodes is held
        only near its frontier (give nodes their `uses`, and order them depth first)."""
        raise NotImplementedError

    def process(self, memory: Memory) -> Process[Any, Any]:
        """The process that decides a node, built from the node's memory only."""
        raise NotImplementedError

    def output(self, memory: Memory, process: Process[Any, Any], state: Any) -> Any:
        """A decided node's output, from its process's final state (default: the state)."""
        return state

    def expand(self, memory: Memory, output: Any) -> Sequence[Node]:
        """The children a decided node expands into (default: none). Their ids must be
        new; their deps may name earlier nodes and each other."""
        return ()

    def result(self, memory: Memory, output: Any, children: Sequence[Any]) -> Any:
        """What a node hands its dependents once it and all its descendants are decided:
        by default its last child's result (a decomposition's answer is what its last
        child, the reduce, made of it), or its own output when it has no children."""
        return children[-1] if children else output

    def options(self) -> Mapping[str, Any]:
        """The graph's options, recorded with the run (a resume must match them)."""
        return {}

    def total_steps(self) -> int | None:
        """How many voted steps the graph will take, or an estimate (for planning k)."""
        return None

    def check(self, outputs: Mapping[str, Any]) -> bool | None:
        """Is the graph's result right, given every decided node's output? (None: no
        checker.) Counts errors afterwards; never picks answers."""
        return None

    def dump_output(self, output: Any) -> str:
        # what json.dumps makes of an int or a list of ints, without it: most nodes
        cls = output.__class__
        if cls is int:
            return str(output)
        if cls is list and all(x.__class__ is int for x in output):
            return "[" + ",".join(map(str, output)) + "]"
        return _COMPACT.encode(output)

    def load_output(self, text: str) -> Any:
        return json.loads(text)


class GraphError(ValueError):
    """A graph that cannot run as described (a cycle, a missing node, a reused id...)."""


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
