"""A commit group: the events of one journal commit, plain decisions held as columns.

The journal writer fills one from the step loop and commits it whole. A remote executor's
worker fills its own from its scheduler's events and ships it to the driver, whose writer
merges it into the group it is filling: a plain decision is reduced to a few column
values where it is made, and a worker `seal`s its group before shipping it (blocks packed,
noteworthy decisions turned into their rows), so what crosses the wire is bytes and rows
of plain values, not Decision objects, and the driver does nothing per decision. A group
pickles (every value in it does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from unerring.core.events import Decision, Discarded, ItemEnd, NodesAdded, TransportFailure
from unerring.core.totals import Totals
from unerring.journal.codec import BLOCK_SEPARATOR, pack_block, pack_holes, pack_winners
from unerring.journal.rows import decision_row, sample_rows
from unerring.process import Process

_SEP = BLOCK_SEPARATOR  # ASCII record separator: joins the winner texts of a block
FEW = 8  # an item's plain decisions in a group up to this many get rows of their own


class Columns:
    """An item's plain decisions as columns (the writer packs them whole at C speed into
    one `decision_blocks` row)."""

    __slots__ = (
        "completion",
        "correct",
        "cost",
        "elapsed_us",
        "first",
        "last_plain",
        "prompt",
        "samples",
        "surplus",
        "winners",
    )

    def __init__(self) -> None:
        self.winners: list[str] = []
        self.samples: list[int] = []
        self.surplus: list[int] = []
        self.prompt: list[int] = []
        self.completion: list[int] = []
        self.elapsed_us: list[int] = []
        self.correct: list[int] = []  # 1 right, -1 unchecked (a plain step is never wrong)
        self.cost: list[float] = []
        self.first = 0  # the first plain step
        self.last_plain = 0

    def append(self, d: Decision) -> None:
        if not self.winners:
            self.first = d.step
        self.last_plain = d.step
        self.winners.append(d.winner_text)  # type: ignore[arg-type]  # plain: a text
        self.samples.append(d.samples)
        self.surplus.append(d.surplus)  # unanimous, unflagged: votes = samples - surplus
        self.prompt.append(d.prompt_tokens)
        self.completion.append(d.completion_tokens)
        # integer microseconds: exact enough, and packs as an integer column
        self.elapsed_us.append(int(d.elapsed_s * 1e6))
        self.correct.append(-1 if d.correct is None else 1)
        self.cost.append(d.cost)

    @classmethod
    def of(cls, decisions: list[Decision]) -> Columns:
        """Plain decisions as columns, a column at a time (what `append` makes of them one
        by one, without a call a decision: a commit packs thousands of graph nodes')."""
        c = cls()
        if decisions:
            c.first, c.last_plain = decisions[0].step, decisions[-1].step
        c.winners = [d.winner_text for d in decisions]  # type: ignore[misc]  # plain: texts
        c.samples = [d.samples for d in decisions]
        c.surplus = [d.surplus for d in decisions]
        c.prompt = [d.prompt_tokens for d in decisions]
        c.completion = [d.completion_tokens for d in decisions]
        c.elapsed_us = [int(d.elapsed_s * 1e6) for d in decisions]
        c.correct = [-1 if d.correct is None else 1 for d in decisions]
        c.cost = [d.cost for d in decisions]
        return c

    def extend(self, later: Columns) -> None:
        if not later.winners:
            return
        if not self.winners:
            self.first = later.first
        self.last_plain = later.last_plain
        self.winners += later.winners
        self.samples += later.samples
        self.surplus += later.surplus
        self.prompt += later.prompt
        self.completion += later.completion
        self.elapsed_us += later.elapsed_us
        self.correct += later.correct
        self.cost += later.cost

    def pack(self, noteworthy: list[int]) -> Packed | None:
        n = len(self.winners)
        if not n:
            return None
        first, last = self.first, self.last_plain
        # noteworthy steps inside the block's range are its holes
        holes = [h for h in noteworthy if first < h < last]
        data = pack_block(
            self.samples,
            self.surplus,
            self.prompt,
            self.completion,
            self.elapsed_us,
            self.correct,
            self.cost,
        )
        return Packed(
            first,
            last,
            pack_winners(self.winners),
            data,
            pack_holes(first, holes),
            n,
            sum(self.samples),
            sum(self.prompt),
            sum(self.completion),
            sum(self.cost),
            n - self.correct.count(-1),
        )


class Block:
    """One item's plain decisions in a group: the Decisions themselves while there are few
    (a graph's one-step nodes: they get rows of their own, a block being worth it only for
    many), then columns; inside a block's range, noteworthy steps are holes."""

    __slots__ = ("cols", "few", "last_state", "last_step", "noteworthy", "sealed")

    def __init__(self) -> None:
        self.few: list[Decision] | None = []  # None: many, held as `cols`
        self.cols: Columns | None = None
        self.noteworthy: list[int] = []  # steps that moved the state with a row of their own
        # the last step that moved the item's state, and that state (the resume point)
        self.last_step = -1
        self.last_state: Any = None
        # runs packed where they were made (a worker's, see `seal`), before the columns
        self.sealed: list[Packed] = []

    def plain(self) -> int:
        """How many plain decisions it holds."""
        n = sum(p.steps for p in self.sealed)
        if self.few:
            n += len(self.few)
        if self.cols is not None:
            n += len(self.cols.winners)
        return n

    def spill(self) -> Columns:
        """From few to many: the columns, made of the few Decisions held so far."""
        if self.cols is None:  # (while few are held there are no columns)
            self.cols = Columns.of(self.few or [])
        self.few = None
        return self.cols

    def extend(self, later: Block) -> None:
        """Append a later block of the same item (its steps follow this one's)."""
        if later.sealed:  # packed runs: what this block holds goes before them, packed too
            self._seal()
            self.sealed += later.sealed
        if self.few is not None and later.few is not None and len(self.few) + len(later.few) <= FEW:
            self.few += later.few
        elif later.few or later.cols is not None:
            self.spill().extend(later.spill())
        self.noteworthy += later.noteworthy
        if later.last_step >= 0:
            self.last_step = later.last_step
            self.last_state = later.last_state

    def packed(self) -> Packed | None:
        """The plain decisions held (not sealed), packed (None if none)."""
        if self.few:
            self.spill()
        return None if self.cols is None else self.cols.pack(self.noteworthy)

    def block(
        self, run_id: int, item: int, run_totals: Totals, item_totals: Totals
    ) -> tuple[Any, ...] | None:
        """The block row of the plain decisions (None if none), counted into the totals."""
        p = self.packed()
        return None if p is None else p.row(run_id, item, run_totals, item_totals)

    def seal(self) -> None:
        """Pack the columns now, where they were made (a worker's): what crosses the wire
        and what the driver writes is then bytes. A handful stays as Decisions: they get
        rows of their own, and may still join the same item's next ones."""
        if self.few is None:
            self._seal()

    def _seal(self) -> None:
        p = self.packed()
        if p is not None:
            self.sealed.append(p)
        self.cols = None
        self.few = []


class Packed(NamedTuple):
    """A run of one item's plain decisions, packed (a decision_blocks row's values) with
    the sums the totals need."""

    first: int
    last: int
    winners: bytes
    data: bytes
    holes: bytes | None
    steps: int
    samples: int
    prompt: int
    completion: int
    cost: float
    checked: int

    def row(
        self, run_id: int, item: int, run_totals: Totals, item_totals: Totals
    ) -> tuple[Any, ...]:
        """The decision_blocks row, counted into the totals."""
        self.add_to(run_totals)
        self.add_to(item_totals)
        return (run_id, self.first, self.last, self.winners, self.data, self.holes, item)

    def add_to(self, t: Totals) -> None:
        """Count the run into totals (plain decisions: decided, unflagged, never wrong)."""
        t.steps_decided += self.steps
        t.samples += self.samples
        t.prompt_tokens += self.prompt
        t.completion_tokens += self.completion
        t.cost += self.cost
        t.checked += self.checked


class Noted:
    """A noteworthy decision as its journal rows (run id 0, set by the writer) and what it
    adds to the totals: what a worker ships instead of the Decision (its states, samples
    and answers stay in the worker)."""

    __slots__ = ("item", "row", "samples", "step", "totals")

    def __init__(self, d: Decision, process: Process[Any, Any]) -> None:
        self.item = d.item
        self.step = d.step
        # an undecided step that moved no state has no decisions row (a resume decides it
        # again); its samples and cost are still the run's
        self.row = None if d.state_after is None else decision_row(0, d, process)
        self.samples = sample_rows(0, d) if d.outcomes else []
        self.totals = Totals()
        self.totals.add(d)


Event = Decision | TransportFailure | Discarded | ItemEnd | NodesAdded | Noted


class Group:
    """The events of one commit: per item a block of plain decisions (added as column
    values in the step loop, so the Decision can go at once), and in order the noteworthy
    decisions, transport failures, discarded speculation and item ends."""

    __slots__ = ("_block", "_item", "blocks", "items", "sample_rows", "sampled", "size")

    def __init__(self) -> None:
        self.blocks: dict[int, Block] = {}
        self.items: list[Event] = []
        self.sampled: list[Decision] = []  # plain decisions whose samples are recorded
        self.sample_rows: list[tuple[Any, ...]] = []  # theirs, once sealed (run id 0)
        self.size = 0  # decisions held
        self._item = -1  # the item of the last decision, and its block: runs of one item
        self._block: Block | None = None

    def __bool__(self) -> bool:
        return bool(self.size or self.items)

    def add(self, d: Decision) -> int:
        """Take one decision; return how many the group holds."""
        if d.item == self._item:
            b = self._block
            assert b is not None
        else:
            b = self.blocks.get(d.item)
            if b is None:
                b = self.blocks[d.item] = Block()
            self._item = d.item
            self._block = b
        winner = d.winner_text
        # a plain decision goes into the block, unless its text holds the block's separator
        if winner is not None and d.plain and _SEP not in winner:
            c = b.cols  # (None while few: then `few` holds them)
            if c is None:
                few = b.few
                assert few is not None
                if len(few) < FEW:
                    few.append(d)
                else:
                    b.spill().append(d)
            else:  # Columns.append, spelt out: a chain's every step comes this way
                if not c.winners:
                    c.first = d.step
                c.last_plain = d.step
                c.winners.append(winner)
                c.samples.append(d.samples)
                c.surplus.append(d.surplus)
                c.prompt.append(d.prompt_tokens)
                c.completion.append(d.completion_tokens)
                c.elapsed_us.append(int(d.elapsed_s * 1e6))
                c.correct.append(-1 if d.correct is None else 1)
                c.cost.append(d.cost)
            b.last_step = d.step
            b.last_state = d.state_after
            if d.outcomes:  # `--record samples` keeps a plain step's samples too
                self.sampled.append(d)
        else:
            if d.state_after is not None:
                b.noteworthy.append(d.step)
                b.last_step = d.step
                b.last_state = d.state_after
            # else undecided and stopped: nothing follows it (a resume decides it again)
            self.items.append(d)
        self.size += 1
        return self.size

    def merge(self, later: Group) -> None:
        """Take a later group's events (another worker's, or the same item's next ones)."""
        for item, b in later.blocks.items():
            mine = self.blocks.get(item)
            if mine is None:
                self.blocks[item] = b
            else:
                mine.extend(b)
        self.items += later.items
        self.sampled += later.sampled
        self.sample_rows += later.sample_rows
        self.size += later.size

    def drop_item(self, item: int) -> None:
        """Leave out everything of one item (events from a worker that no longer owns it)."""
        b = self.blocks.pop(item, None)
        if b is not None:
            self.size -= b.plain()
        kept = [x for x in self.items if getattr(x, "item", None) != item]
        self.size -= sum(
            1 for x in self.items if isinstance(x, Decision | Noted) and x.item == item
        )
        self.items = kept
        self.sampled = [d for d in self.sampled if d.item != item]
        self.sample_rows = [r for r in self.sample_rows if r[1] != item]
        if self._item == item:
            self._item, self._block = -1, None

    def seal(self, process_of: Callable[[int], Process[Any, Any]]) -> None:
        """Reduce the group to journal rows and packed runs where it was made (a worker,
        which holds each item's process), so the driver unpickles and writes plain
        values: every many-step block packed, every noteworthy decision as its rows."""
        for b in self.blocks.values():
            b.seal()
        items = self.items
        for i, x in enumerate(items):
            if isinstance(x, Decision):
                items[i] = Noted(x, process_of(x.item))
        for d in self.sampled:
            self.sample_rows += sample_rows(0, d)
        self.sampled = []

    def item_indices(self) -> set[int]:
        """Every item with an event in the group."""
        out = set(self.blocks)
        out.update(x.item for x in self.items if not isinstance(x, NodesAdded))
        return out

    def __getstate__(self) -> tuple[Any, ...]:
        # the cache of the last block is not shipped: it is an index into `blocks`
        return (self.blocks, self.items, self.sampled, self.sample_rows, self.size)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.blocks, self.items, self.sampled, self.sample_rows, self.size = state
        self._item, self._block = -1, None
