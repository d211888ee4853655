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

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from unerring import defaults
from unerring.errors import GraphError as GraphError  # defined with every other error
from unerring.process import Process

MAX_DEPTH = defaults.MAX_DEPTH  # a graph deeper than this is refused


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


class Graph(ABC):
    """A process that branches and decomposes. Subclass it; `nodes` and `process` are
    required (abstract: a class without one cannot be constructed), the rest have
    defaults."""

    name: str = "graph"
    max_children: int = 64  # an expansion with more children than this fails its node
    # where a completion-API answer ends, for every node (as `Process.stop`)
    stop: tuple[str, ...] = ()

    @abstractmethod
    def nodes(self) -> Iterable[Node]:
        """The graph's first nodes (more may come from expansions).

        A sequence (a list) is checked whole and held until its nodes are done, in any
        order. Any other iterable (a generator) is a stream: pulled as the run needs ready
        nodes, each node after its dependencies, so a graph of millions of nodes is held
        only near its frontier (give nodes their `uses`, and order them depth first)."""

    @abstractmethod
    def process(self, memory: Memory) -> Process[Any, Any]:
        """The process that decides a node, built from the node's memory only."""

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
