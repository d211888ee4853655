"""A commit group: the events of one journal commit, plain decisions held as columns.

The journal writer fills one from the step loop and commits it whole. A remote executor's
worker fills its own from its scheduler's events and ships it to the driver, whose writer
merges it into the group it is filling: a plain decision is reduced to a few column
values where it is made, so what crosses the wire is columns, not Decision objects, and
the driver does nothing per plain decision. A group pickles (every value in it does).
"""

from __future__ import annotations

from typing import Any

from unerring.events import Decision, Discarded, ItemEnd, NodesAdded, Totals, TransportFailure
from unerring.journal.codec import BLOCK_SEPARATOR, pack_block, pack_holes, pack_winners

_SEP = BLOCK_SEPARATOR  # ASCII record separator: joins the winner texts of a block
FEW = 8  # an item's plain decisions in a group up to this many get rows of their own

Event = Decision | TransportFailure | Discarded | ItemEnd | NodesAdded


class Block:
    """One item's plain decisions in a group, as columns (the writer packs them whole at
    C speed into one `decision_blocks` row); inside its range, noteworthy steps are holes."""

    __slots__ = (
        "completion",
        "correct",
        "cost",
        "elapsed_us",
        "few",
        "first",
        "last_plain",
        "last_state",
        "last_step",
        "noteworthy",
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
        self.noteworthy: list[int] = []  # steps that moved the state with a row of their own
        # the last step that moved the item's state, and that state (the resume point)
        self.last_step = -1
        self.last_state: Any = None
        # the plain decisions themselves while there are few (a graph's one-step nodes):
        # they get rows of their own, a block being worth it only for many (None: many)
        self.few: list[Decision] | None = []

    def extend(self, later: Block) -> None:
        """Append a later block of the same item (its steps follow this one's)."""
        if self.few is not None and later.few is not None and len(self.few) + len(later.few) <= FEW:
            self.few += later.few
        else:
            self.few = None
        if later.winners:
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
        self.noteworthy += later.noteworthy
        if later.last_step >= 0:
            self.last_step = later.last_step
            self.last_state = later.last_state

    def block(
        self, run_id: int, item: int, run_totals: Totals, item_totals: Totals
    ) -> tuple[Any, ...] | None:
        """The block row of the plain decisions (None if none), counted into the totals."""
        n = len(self.winners)
        if not n:
            return None
        first, last = self.first, self.last_plain
        # noteworthy steps inside the block's range are its holes
        holes = [h for h in self.noteworthy if first < h < last]
        data = pack_block(
            self.samples,
            self.surplus,
            self.prompt,
            self.completion,
            self.elapsed_us,
            self.correct,
            self.cost,
        )
        samples, prompt, completion = sum(self.samples), sum(self.prompt), sum(self.completion)
        cost = sum(self.cost)
        checked = n - self.correct.count(-1)
        for t in (run_totals, item_totals):
            t.steps_decided += n
            t.samples += samples
            t.prompt_tokens += prompt
            t.completion_tokens += completion
            t.cost += cost
            t.checked += checked
        return (
            run_id,
            first,
            last,
            pack_winners(self.winners),
            data,
            pack_holes(first, holes),
            item,
        )


class Group:
    """The events of one commit: per item a block of plain decisions (added as column
    values in the step loop, so the Decision can go at once), and in order the noteworthy
    decisions, transport failures, discarded speculation and item ends."""

    __slots__ = ("_block", "_item", "blocks", "items", "sampled", "size")

    def __init__(self) -> None:
        self.blocks: dict[int, Block] = {}
        self.items: list[Event] = []
        self.sampled: list[Decision] = []  # plain decisions whose samples are recorded
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
            if not b.winners:
                b.first = d.step
            b.last_plain = d.step
            b.winners.append(winner)
            b.samples.append(d.samples)
            b.surplus.append(d.surplus)  # unanimous, unflagged: votes = samples - surplus
            b.prompt.append(d.prompt_tokens)
            b.completion.append(d.completion_tokens)
            # integer microseconds: exact enough, and packs as an integer column
            b.elapsed_us.append(int(d.elapsed_s * 1e6))
            b.correct.append(-1 if d.correct is None else 1)
            b.cost.append(d.cost)
            b.last_step = d.step
            b.last_state = d.state_after
            few = b.few
            if few is not None:
                if len(few) < FEW:
                    few.append(d)
                else:
                    b.few = None
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
        self.size += later.size

    def drop_item(self, item: int) -> None:
        """Leave out everything of one item (events from a worker that no longer owns it)."""
        b = self.blocks.pop(item, None)
        if b is not None:
            self.size -= len(b.winners)
        kept = [x for x in self.items if getattr(x, "item", None) != item]
        self.size -= sum(1 for x in self.items if isinstance(x, Decision) and x.item == item)
        self.items = kept
        self.sampled = [d for d in self.sampled if d.item != item]
        if self._item == item:
            self._item, self._block = -1, None

    def item_indices(self) -> set[int]:
        """Every item with an event in the group."""
        out = set(self.blocks)
        out.update(x.item for x in self.items if not isinstance(x, NodesAdded))
        return out

    def __getstate__(self) -> tuple[Any, ...]:
        # the cache of the last block is not shipped: it is an index into `blocks`
        return (self.blocks, self.items, self.sampled, self.size)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.blocks, self.items, self.sampled, self.size = state
        self._item, self._block = -1, None
