"""The task memory tree of a graph run, and the scheduler's source of its ready nodes.

Each node holds its input, output (from its decided process), status, parent, children,
dependencies and vote summary (in the journal, as its item's totals). A node is complete
once it is decided and so is every node it expanded into; then its result (its own output,
or what its children made of it) goes to its dependents. A node is ready once its
dependencies are complete; its process is built from its path (root to node: each
ancestor's input and output) and its dependencies' results only. A decided node may
expand into children, checked like the first nodes (unique ids, known deps, no cycle, not
too deep); a bad expansion fails its node, never the run.

Every node is an item of the run: its decisions, resume point and totals are journaled as
any item's. Its index is a stable hash of its id, so the simulated model draws the same
samples for a node however the graph's branches interleave, resumed or not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from unerring.core.events import Events, ItemEnd, NodesAdded
from unerring.graph import Graph, GraphError, Memory, Node, compact_json
from unerring.process import Process
from unerring.scheduler.graph_check import Seen, check_nodes, check_streamed, node_index
from unerring.scheduler.sources import Item

# a node's status in the tree (the journal keeps pending, completed, stopped, failed)
PENDING, READY, RUNNING, DECIDED, UNDECIDED, FAILED = (
    "pending", "ready", "running", "decided", "undecided", "failed"
)  # fmt: skip
JOURNAL_STATUS = {"completed": DECIDED, "stopped": UNDECIDED, "failed": FAILED}


# a streamed graph's declared nodes pulled and not complete, at most: the tree pulls only
# when no node is ready, so this bounds only a stream whose next nodes all wait
HOLD = 4096
PULL = 32  # nodes pulled at once from a stream (one journal event)
__all__ = ["HOLD", "JOURNAL_STATUS", "RestoredNode", "TaskTree", "TreeNode", "node_index"]


@dataclass(slots=True)
class TreeNode:
    node: Node
    index: int
    parent: TreeNode | None
    depth: int
    status: str = PENDING
    output: Any = None
    result: Any = None  # once complete: what its dependents receive
    complete: bool = False
    open_children: int = 0  # children not complete yet
    waiting: int = 0  # dependencies not complete yet
    unstarted: int = 0  # dependents whose process is not built yet (they need the result)
    depended: bool = False  # some node depends on it (else, without a parent, its result
    # is one of the graph's results, kept to the end)
    keep: bool = False  # a streamed node that did not say its uses: kept to the end
    seen_as: Memory | None = None  # what it saw when its process was built (while running)
    next_step: int = 0  # where a resumed node goes on
    state: str | None = None  # its saved state (a resumed node), else None


# restores a resumed node's state: (process, item index, next step, saved state) -> state
Restore = Callable[[Process[Any, Any], int, int, str | None], Any]


class TaskTree:
    """A graph's nodes as the scheduler's Source: `take` the next ready node as an item,
    `ended` when its item ends (output, expansion, dependents made ready). Nodes joining
    the run go out as `NodesAdded` events (the journal writes them)."""

    closed = True  # every node is made here, by the graph or a decided node's expansion

    def __init__(
        self,
        graph: Graph,
        *,
        max_depth: int,
        events: Events | None = None,
        restore: Restore | None = None,
    ) -> None:
        self.graph = graph
        self.max_depth = max_depth
        self.events = events or Events()
        self.restore = restore
        self.nodes: dict[str, TreeNode] = {}
        self.dependents: dict[str, list[str]] = {}
        self.children: dict[str, list[str]] = {}
        self.ready: deque[str] = deque()
        self.seen = Seen()  # every node id ever made (ids are unique)
        # a graph whose nodes are an iterator: pulled as nodes are needed
        self._stream: Iterator[Node] | None = None
        self._open = 0  # streamed nodes pulled and not complete
        self._claims: dict[str, int] = {}  # streamed nodes' uses not yet taken by a dependent
        self.failure: str | None = None  # a stream that went wrong at run time
        # the default result (the last child's, else the node's output) needs no memory
        self._plain_result = type(graph).result is Graph.result

    # -- building -------------------------------------------------------------------------
    def start(self, checked: Sequence[Node] | None = None) -> None:
        """A new run: the graph's first nodes (checked, unless given `checked`: the nodes
        as the caller checked them; a bad graph raises GraphError), or its stream, pulled
        as nodes are needed."""
        if checked is not None:
            first = self.add(checked, None, checked=True)
        else:
            nodes = self.graph.nodes()
            if not isinstance(nodes, Sequence):
                self.follow(iter(nodes))
                return
            first = self.add(nodes, None)
        self._added(first)

    def follow(self, stream: Iterator[Node]) -> None:
        """Pull the graph's declared nodes from `stream` from now on (a resume hands the
        stream past the nodes the journal holds)."""
        self._stream = stream

    def _pull(self) -> None:
        """Nodes from the stream: a few, and then until one is ready, at most HOLD open."""
        stream = self._stream
        made: list[TreeNode] = []
        try:
            while stream is not None and self._open < HOLD and (len(made) < PULL or not self.ready):
                n = next(stream, None)
                if n is None:
                    self._stream = stream = None
                    break
                made.append(self._streamed(n))
        except GraphError as e:  # (checked before the run: a stream that is not the same)
            self._stream = None
            self.failure = f"the graph's nodes went wrong during the run: {e}"
        if made:
            self._added(made)

    def _streamed(self, n: Node) -> TreeNode:
        index = check_streamed(n, self.seen, self.nodes, self._claims)  # (and seen now)
        t = self._make(n, None, 0, index)
        self._open += 1
        if n.uses is None:
            t.keep = t.depended = True
        else:
            t.unstarted = n.uses
            t.depended = n.uses > 0
            if n.uses:
                self._claims[n.id] = n.uses
        claims = self._claims
        for d in n.deps:
            if d in claims:
                claims[d] -= 1
                if not claims[d]:
                    del claims[d]
        self._wait(t, needs=False)  # (its uses counted its dependents already)
        if t.waiting == 0:
            t.status = READY
            self.ready.append(n.id)
        return t

    def add(
        self, new: Iterable[Node], parent: TreeNode | None, *, checked: bool = False
    ) -> list[TreeNode]:
        """Check and add nodes (the first ones, or an expansion's children)."""
        depth = 0 if parent is None else parent.depth + 1
        nodes = list(new) if checked else check_nodes(new, self.seen, self.max_depth, depth)
        if parent is not None and len(nodes) > self.graph.max_children:
            raise GraphError(
                f"node {parent.node.id!r} expanded into {len(nodes)} children, more than "
                f"the graph allows ({self.graph.max_children})"
            )
        added = [self._make(n, parent, depth) for n in nodes]
        for t in added:  # deps may name siblings made in the same expansion
            self._wait(t)
        for t in added:
            if t.waiting == 0:
                t.status = READY
                self.ready.append(t.node.id)
        return added

    def _make(
        self, n: Node, parent: TreeNode | None, depth: int, index: int | None = None
    ) -> TreeNode:
        if index is None:  # (a streamed node's index is in `seen` from its check)
            index = node_index(n.id)
            self.seen.add(index)
        t = TreeNode(n, index, parent, depth)
        self.nodes[n.id] = t
        if parent is not None:
            self.children.setdefault(parent.node.id, []).append(n.id)
            parent.open_children += 1
        return t

    def _wait(self, t: TreeNode, *, needs: bool = True) -> None:
        """Count the dependencies t waits for (those not complete); `needs`: t will read
        their results when it starts."""
        for d in t.node.deps:
            dep = self.nodes.get(d)
            if dep is None:  # a streamed node whose uses are taken, or an expansion's
                raise GraphError(
                    f"node {t.node.id!r} depends on {d!r}, whose result is no longer held "
                    "(its uses are taken)"
                )
            if needs:
                dep.unstarted += 1
                dep.depended = True
            if not dep.complete:
                t.waiting += 1
                self.dependents.setdefault(d, []).append(t.node.id)

    def restore_rows(
        self, rows: Sequence[RestoredNode], uses: Mapping[str, int | None] | None = None
    ) -> None:
        """A resumed run: the nodes the journal holds (in the order they were made);
        decided nodes' expansions are derived again where the journal lacks them (the same
        decided output gives the same children), so an expansion committed before a crash
        is never redone differently. `uses`: a streamed graph's declared nodes the journal
        holds, with their uses (the nodes still to come may read their results)."""
        for r in rows:
            parent = None if r.parent is None else self.nodes.get(r.parent)
            t = self._make(r.node, parent, r.depth)
            t.next_step, t.state = r.next_step, r.state
            if r.status == DECIDED:
                t.status = DECIDED
                t.output = r.output
        # decided nodes whose children the journal lacks (a crash between the two)
        for t in list(self.nodes.values()):
            if t.status == DECIDED and t.node.id not in self.children:
                with contextlib.suppress(GraphError):
                    for c in check_nodes(
                        self.graph.expand(self.memory(t), t.output),
                        self.seen,
                        self.max_depth,
                        t.depth + 1,
                    ):
                        made = self._make(c, t, t.depth + 1)
                        self._added((made,))
        # who still needs whose results: the nodes that are not decided yet (and, for a
        # streamed node that said its uses, those still to come)
        said = {} if uses is None else {d: u for d, u in uses.items() if u is not None}
        claimed: Counter[str] = Counter()
        taken: Counter[str] = Counter()
        for t in self.nodes.values():
            for d in t.node.deps:
                dep = self.nodes[d]
                if t.parent is None and d in said:  # a declared dependent: one of its uses
                    claimed[d] += 1
                    taken[d] += t.status == DECIDED
                    continue
                dep.depended = True
                if t.status != DECIDED:
                    dep.unstarted += 1
        if uses is not None:
            for nid, u in uses.items():
                t = self.nodes[nid]
                if u is None:
                    t.keep = t.depended = True
                    continue
                # (a journal with more dependents than uses was refused before: the runner's
                # _journaled)
                t.unstarted += u - taken[nid]
                t.depended = t.depended or u > 0
                if u > claimed[nid]:
                    self._claims[nid] = u - claimed[nid]
        # complete what is complete, deepest first (a node's children before it)
        for t in sorted(self.nodes.values(), key=lambda t: -t.depth):
            if t.status == DECIDED and t.open_children == 0 and not t.complete:
                self._complete(t)
        for t in list(self.nodes.values()):
            if t.status != DECIDED:
                self._wait(t, needs=False)
            # a child whose parent's end the journal lost waits for the parent to end again
            # (its prompt shows the parent's output)
            if (
                t.status == PENDING
                and t.waiting == 0
                and (t.parent is None or t.parent.status == DECIDED)
            ):
                t.status = READY
                self.ready.append(t.node.id)
        self._open = sum(1 for t in self.nodes.values() if t.parent is None and not t.complete)

    def _added(self, made: Sequence[TreeNode]) -> None:
        """Tell the run's subscribers (the journal) of nodes that joined it."""
        subscribers = self.events.nodes_added
        if subscribers:
            x = self._announce(made)
            for fn in subscribers:
                fn(x)

    def _announce(self, made: Sequence[TreeNode]) -> NodesAdded:
        """New nodes as the journal's items rows take them."""
        return NodesAdded(tuple(self._row(t) for t in made))

    def _row(self, t: TreeNode) -> tuple[int, str, int | None, str, str, str, int]:
        """A node as the journal's items row holds it."""
        n = t.node
        parent = None if t.parent is None else t.parent.index
        # (ids, read back with json.loads: JSON whatever the graph makes of its outputs)
        deps = compact_json(n.deps) if n.deps else "[]"
        return (t.index, n.id, parent, n.kind, self.graph.dump_output(n.input), deps, t.depth)

    # -- the scheduler's source -------------------------------------------------------------
    def memory(self, t: TreeNode, *, held: bool = False) -> Memory:
        """What a node sees: its path (each ancestor's input and output) and its
        dependencies' results; `held`: only those still held (a complete node's, whose
        dependencies may be forgotten by now)."""
        path: list[tuple[Node, Any]] = []
        p = t.parent
        while p is not None:
            path.append((p.node, p.output))
            p = p.parent
        path.reverse()
        nodes = self.nodes
        deps = {d: nodes[d].result for d in t.node.deps if not held or d in nodes}
        return Memory(t.node, tuple(path), deps)

    def bind(self, wake: asyncio.Event) -> None:
        pass  # nodes become ready only as the run's own items end: no wake from outside

    def take(self) -> Item | None:
        # newest ready node first: a decomposition goes depth first, so a subtree completes
        # (and is dropped) before its siblings open theirs, and what is held stays near the
        # graph's depth (breadth first, a merge sort would hold every split before any
        # merge). Decisions do not depend on the order: a node's samples are drawn by its
        # index.
        while True:
            if not self.ready:
                if self._stream is None:
                    return None
                self._pull()
                if not self.ready:
                    return None
            t = self.nodes[self.ready.pop()]
            if t.status != READY:
                continue
            t.status = RUNNING
            t.seen_as = self.memory(t)
            process = self.graph.process(t.seen_as)
            for d in t.node.deps:  # the results are in the process now
                dep = self.nodes[d]
                dep.unstarted -= 1
                self._forget(dep)
            if t.next_step == 0 and t.state is None:
                state = process.initial_state()
            else:
                assert self.restore is not None
                state = self.restore(process, t.index, t.next_step, t.state)
            return Item(t.index, process, state, t.next_step, None, t.node.id)

    def ended(self, item: Item, end: ItemEnd) -> ItemEnd:
        t = self.nodes[item.item_id]
        if end.status != "completed":
            t.status = UNDECIDED if end.status == "stopped" else FAILED
            return end
        memory = t.seen_as or self.memory(t)
        t.seen_as = None
        made: NodesAdded | None = None
        try:
            output = self.graph.output(memory, item.process, end.state)
            text = self.graph.dump_output(output)
            children = self.graph.expand(memory, output)
            t.output = output
            t.status = DECIDED
            held = self.children.get(t.node.id)
            if held:
                # a resume whose journal kept this expansion but lost the node's own end (a
                # crash between the two commits): the expansion stands as it was, and its
                # nodes, held back until now, may start
                for c in held:
                    n = self.nodes[c]
                    if n.status == PENDING and n.waiting == 0:
                        n.status = READY
                        self.ready.append(c)
            elif children:
                made = self._announce(self.add(children, t))
        except Exception as e:  # a bad expansion fails this node, not the run
            t.status = FAILED
            t.output = None
            return replace(end, status="failed", reason=f"node {t.node.id!r}: {e}")
        if t.open_children == 0:
            self._complete(t)
        # the output and the children go with the end (one commit holds them all); the end
        # is the scheduler's own, not emitted yet
        end.output = text
        end.children = made
        return end

    def _complete(self, t: TreeNode) -> None:
        """t and everything it expanded into are decided: its result goes to its
        dependents, and its parent may be complete in turn."""
        nodes = self.nodes
        while True:
            nid = t.node.id
            kids = self.children.get(nid)
            if self._plain_result:
                t.result = nodes[kids[-1]].result if kids else t.output
            else:
                results = [nodes[c].result for c in kids or ()]
                t.result = self.graph.result(self.memory(t, held=True), t.output, results)
            t.complete = True
            waiting = self.dependents.pop(nid, None)
            if waiting:
                for d in waiting:
                    dep = nodes[d]
                    dep.waiting -= 1
                    if dep.waiting == 0 and dep.status == PENDING:
                        dep.status = READY
                        self.ready.append(d)
            if kids:
                # (a copy: forgetting a child takes it out of this list)
                for c in list(kids):  # their results are in t's now
                    self._forget(nodes[c])
            self._forget(t)
            p = t.parent
            if p is None:
                self._open -= 1
                return
            p.open_children -= 1
            if p.open_children or p.status != DECIDED:
                return
            t = p

    def _forget(self, t: TreeNode) -> None:
        """Drop a node nothing will read again, so memory stays flat in the graph's size:
        complete, its result handed to every dependent and to its parent, no child left.
        A node with neither parent nor dependents stays: its result is the graph's."""
        if not t.complete or t.unstarted > 0 or t.keep or t.node.id in self.children:
            return
        parent = t.parent
        if (parent is None and not t.depended) or (parent is not None and not parent.complete):
            return
        del self.nodes[t.node.id]
        if parent is not None:
            siblings = self.children.get(parent.node.id)
            if siblings is not None:
                siblings.remove(t.node.id)
                if not siblings:
                    del self.children[parent.node.id]

    def outputs(self) -> dict[str, Any]:
        """Every complete node's result still held (for the graph's checker): at the end,
        those of the nodes with neither parent nor dependents, the graph's results."""
        return {nid: t.result for nid, t in self.nodes.items() if t.complete}


@dataclass(frozen=True, slots=True)
class RestoredNode:
    """A node as the journal holds it."""

    node: Node
    parent: str | None
    depth: int
    status: str  # a tree status (pending, decided, undecided, failed)
    output: Any
    next_step: int
    state: str | None
