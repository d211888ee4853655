"""The block codec: a run of plain decisions packed into one `decision_blocks` row.

A plain decision is unanimous, unflagged, decided and not rejected by the checker; its
numbers go column after column as int32 (then float64 cost, only when some step cost
anything): array packing is C-speed, where JSON of the same numbers was the writer's
largest cost. Winners are zlib-compressed text joined by BLOCK_SEPARATOR. Steps inside a
block's range that have a row of their own in `decisions` are its holes.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

RowLike = sqlite3.Row | Mapping[str, Any]

BLOCK_SEPARATOR = "\x1e"


class DamagedRecord(ValueError):
    """Decisions that cannot be what the writer wrote (a damaged file): sizes that do not
    add up, text that is not JSON, or numbers no decision has (a negative count, more
    votes than samples, no vote for the winner)."""


def check_decision_row(d: Mapping[str, Any]) -> None:
    """A noteworthy decision row (votes, flags and features as JSON text) as the writer
    makes it, or DamagedRecord: every vote and every red flag is a sample of the step."""
    try:
        votes = json.loads(d["votes"])
        flags = json.loads(d["flags"]) if d["flags"] is not None else {}
        if d["features"] is not None:
            json.loads(d["features"])
    except (TypeError, ValueError):
        raise DamagedRecord(f"step {d['step']}: votes, flags or features are not JSON") from None
    samples, surplus = d["samples"], d["surplus"]
    counts = (
        [*votes, *flags.values()] if isinstance(votes, list) and isinstance(flags, dict) else None
    )
    if (
        counts is None
        or not all(isinstance(v, int) and v >= 0 for v in counts)
        or not isinstance(samples, int)
        or not isinstance(surplus, int)
        or not 0 <= surplus < samples
        or sum(counts) > samples
    ):
        raise DamagedRecord(
            f"step {d['step']}: {samples} samples, surplus {surplus}, votes {votes}, flags {flags}"
        )


_INT_COLUMNS = ("samples", "surplus", "prompt_tokens", "completion_tokens", "elapsed_us", "correct")
_INT_WIDTH = array("i").itemsize * len(_INT_COLUMNS)  # bytes per step


def pack_holes(first: int, holes: list[int]) -> bytes | None:
    """The steps inside a block that are not in it, as int32 offsets (None if none)."""
    return array("i", [h - first for h in holes]).tobytes() if holes else None


def pack_block(
    samples: list[int],
    surplus: list[int],
    prompt: list[int],
    completion: list[int],
    elapsed_us: list[int],
    correct: list[int],
    cost: list[float],
) -> bytes:
    """A block's numbers; a plain step is unanimous and unflagged: votes = samples - surplus.

    `correct`: 1 right, 0 wrong, -1 not checked. A step of over 35 minutes saturates.
    """
    ints = array("i", samples)
    for column in (surplus, prompt, completion):
        ints.extend(column)
    if elapsed_us and max(elapsed_us) > _INT32_MAX:
        elapsed_us = [min(e, _INT32_MAX) for e in elapsed_us]
    ints.extend(elapsed_us)
    ints.extend(correct)
    blob = ints.tobytes()
    return blob + array("d", cost).tobytes() if any(cost) else blob


_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class BlockColumns:
    """The plain decisions of one decision_blocks row, column by column (C arrays).

    For aggregates over many steps (reports): no dict per step, no winner texts.
    `holes`: offsets from first_step of the steps in the range that are not in the block.
    """

    item: int
    first_step: int
    last_step: int
    holes: array[int]
    samples: array[int]
    surplus: array[int]
    prompt_tokens: array[int]
    completion_tokens: array[int]
    elapsed_us: array[int]
    correct: array[int]  # 1 right, 0 wrong, -1 not checked
    cost: array[float]  # empty when no step of the block cost anything


def unpack_holes(blob: bytes | None) -> array[int]:
    """A block's holes: offsets from its first step (see pack_holes)."""
    holes = array("i")
    if blob:
        holes.frombytes(blob)
    return holes


def block_columns(row: RowLike) -> BlockColumns:
    """Decode a decision_blocks row's numbers (the winners are not read)."""
    first, last = int(row["first_step"]), int(row["last_step"])
    holes = unpack_holes(row["holes"])
    n = last - first + 1 - len(holes)
    ints = array("i")
    blob = row["data"]
    width = _INT_WIDTH * n
    if n < 1 or len(blob) not in (width, width + 8 * n):
        raise DamagedRecord(
            f"steps {first}-{last} less {len(holes)} holes do not fit {len(blob)} bytes"
        )
    ints.frombytes(blob[:width])
    costs = array("d")
    costs.frombytes(blob[width:])
    # positional, in _INT_COLUMNS' order: a batch of small items decodes many blocks
    return BlockColumns(
        int(row["item"]),
        first,
        last,
        holes,
        ints[:n],
        ints[n : 2 * n],
        ints[2 * n : 3 * n],
        ints[3 * n : 4 * n],
        ints[4 * n : 5 * n],
        ints[5 * n :],
        costs,
    )


def block_steps(first: int, last: int, holes: array[int]) -> list[int]:
    """The steps a block holds: its range less its holes."""
    if not holes:
        return list(range(first, last + 1))
    skip = set(holes)
    return [first + o for o in range(last - first + 1) if o not in skip]


def block_winners(row: RowLike) -> list[str]:
    """A block's winners, in step order."""
    return zlib.decompress(row["winners"]).decode().split(BLOCK_SEPARATOR)


def unpack_block(row: sqlite3.Row) -> Iterator[dict[str, Any]]:
    """The decisions packed in one decision_blocks row, as decision rows."""
    c = block_columns(row)
    steps = block_steps(c.first_step, c.last_step, c.holes)
    winners = block_winners(row)
    if len(winners) != len(steps):
        raise DamagedRecord(f"{len(winners)} winners for {len(steps)} steps")
    for i, winner in enumerate(winners):
        yield decision_at(c, i, steps[i], winner)


def decision_at(c: BlockColumns, i: int, step: int, winner: str) -> dict[str, Any]:
    """The plain decision at position i of packed columns, as a decision row."""
    correct = c.correct[i]
    samples, surplus = c.samples[i], c.surplus[i]
    cost = c.cost[i] if c.cost else 0.0
    ptoks, ctoks, elapsed = c.prompt_tokens[i], c.completion_tokens[i], c.elapsed_us[i]
    # what every decision the writer packs has: a vote for its winner, no negative count
    if (
        samples - surplus < 1
        or surplus < 0
        or min(ptoks, ctoks, elapsed) < 0
        or not -1 <= correct <= 1
        or not cost >= 0.0
    ):
        raise DamagedRecord(
            f"step {step}: samples {samples}, surplus {surplus}, tokens {ptoks}/{ctoks}, "
            f"elapsed {elapsed} us, correct {correct}, cost {cost}"
        )
    return {
        "step": step,
        "winner": winner,
        "votes": f"[{samples - surplus}]",  # unanimous: every counted vote
        "samples": samples,
        "surplus": surplus,
        "flags": None,
        "prompt_tokens": ptoks,
        "completion_tokens": ctoks,
        "cost": cost,
        "elapsed": elapsed / 1e6,
        "undecided": 0,
        "correct": None if correct < 0 else correct,
        "features": None,
    }


def pack_winners(winners: list[str]) -> bytes:
    # consecutive winners share most of their text (Hanoi: all but two pegs), so a fast
    # zlib pass shrinks the journal several times over
    return zlib.compress(BLOCK_SEPARATOR.join(winners).encode(), 1)


# -- graph nodes' ends, many to a row ----------------------------------------------------------
# A graph of small nodes ends thousands of nodes a commit. Each one's end (status, output,
# totals) and its decisions as rows of their own were three row writes a node, most of the
# journal writer's time; a node decided in a few plain steps, start to end in one commit,
# is instead one entry of its commit's `node_ends` row: its item index, how many steps it
# took (steps 0 .. n-1), its output, and its decisions' numbers and winners packed as a
# decision block's, all nodes' one after another.


def pack_node_ends(
    items: list[int], steps: list[int], outputs: list[str]
) -> tuple[bytes, bytes, str]:
    """A node_ends row's items (int64), steps (int32) and outputs (a JSON list of texts)."""
    return (
        array("q", items).tobytes(),
        array("i", steps).tobytes(),
        json.dumps(outputs, ensure_ascii=False, separators=(",", ":")),
    )


@dataclass(frozen=True, slots=True)
class NodeEnd:
    """One packed node's end: its output and its decisions (steps 0 .. steps-1) as
    positions `first` .. `first + steps - 1` of its row's columns."""

    row: NodeEndsRow
    first: int
    steps: int
    output: str

    def totals(self) -> dict[str, Any]:
        """Its totals, as the items row of an unpacked node holds them (counts not zero)."""
        c, i, j = self.row.columns, self.first, self.first + self.steps
        checked = sum(1 for x in c.correct[i:j] if x >= 0)
        cost = 0.0
        for x in c.cost[i:j]:  # (summed in step order, as the writer's totals are; empty
            cost += x  # when no step of the row cost anything)
        out = {
            "steps_decided": self.steps,
            "samples": sum(c.samples[i:j]),
            "prompt_tokens": sum(c.prompt_tokens[i:j]),
            "completion_tokens": sum(c.completion_tokens[i:j]),
            "cost": cost,
            "checked": checked,
        }
        return {k: v for k, v in out.items() if v}

    def block(self, item: int) -> BlockColumns:
        """Its decisions as a block's columns."""
        c, i, j = self.row.columns, self.first, self.first + self.steps
        return BlockColumns(
            item,
            0,
            self.steps - 1,
            array("i"),
            c.samples[i:j],
            c.surplus[i:j],
            c.prompt_tokens[i:j],
            c.completion_tokens[i:j],
            c.elapsed_us[i:j],
            c.correct[i:j],
            c.cost[i:j],  # (empty when no step of the row cost anything, as a block's)
        )

    def winners(self) -> list[str]:
        return self.row.winners()[self.first : self.first + self.steps]

    def decisions(self) -> Iterator[dict[str, Any]]:
        """Its decisions as decision rows (as `unpack_block` makes of a block)."""
        c, first = self.row.columns, self.first
        for step, winner in enumerate(self.winners()):
            yield decision_at(c, first + step, step, winner)


class NodeEndsRow:
    """One decoded node_ends row: its nodes by item index, their decisions as columns."""

    def __init__(self, row: sqlite3.Row) -> None:
        items = array("q")
        items.frombytes(row["items"])
        steps = array("i")
        steps.frombytes(row["steps"])
        outputs = json.loads(row["outputs"])
        total = sum(steps)
        self.columns = block_columns(
            {"item": 0, "first_step": 0, "last_step": total - 1, "holes": None, "data": row["data"]}
        )
        self._winners_blob: bytes = row["winners"]
        self._winners: list[str] | None = None
        self.ends: dict[int, NodeEnd] = {}
        first = 0
        for item, n, output in zip(items, steps, outputs, strict=True):
            self.ends[item] = NodeEnd(self, first, n, output)
            first += n

    def winners(self) -> list[str]:
        if self._winners is None:
            self._winners = block_winners({"winners": self._winners_blob})
        return self._winners
