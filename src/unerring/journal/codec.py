"""The block codec: a run of plain decisions packed into one `decision_blocks` row.

A plain decision is unanimous, unflagged, decided and not rejected by the checker; its
numbers go column after column as int32 (then float64 cost, only when some step cost
anything): array packing is C-speed, where JSON of the same numbers was the writer's
largest cost. Winners are zlib-compressed text joined by BLOCK_SEPARATOR. Steps inside a
block's range that have a row of their own in `decisions` are its holes.
"""

from __future__ import annotations

import sqlite3
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

BLOCK_SEPARATOR = "\x1e"


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


def block_columns(row: sqlite3.Row) -> BlockColumns:
    """Decode a decision_blocks row's numbers (the winners are not read)."""
    first, last = int(row["first_step"]), int(row["last_step"])
    holes = unpack_holes(row["holes"])
    n = last - first + 1 - len(holes)
    ints = array("i")
    blob = row["data"]
    width = _INT_WIDTH * n
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


def block_winners(row: sqlite3.Row) -> list[str]:
    """A block's winners, in step order."""
    return zlib.decompress(row["winners"]).decode().split(BLOCK_SEPARATOR)


def unpack_block(row: sqlite3.Row) -> Iterator[dict[str, Any]]:
    """The decisions packed in one decision_blocks row, as decision rows."""
    c = block_columns(row)
    steps = block_steps(c.first_step, c.last_step, c.holes)
    for i, winner in enumerate(block_winners(row)):
        correct = c.correct[i]
        yield {
            "step": steps[i],
            "winner": winner,
            "votes": f"[{c.samples[i] - c.surplus[i]}]",
            "samples": c.samples[i],
            "surplus": c.surplus[i],
            "flags": None,
            "prompt_tokens": c.prompt_tokens[i],
            "completion_tokens": c.completion_tokens[i],
            "cost": c.cost[i] if c.cost else 0.0,
            "elapsed": c.elapsed_us[i] / 1e6,
            "undecided": 0,
            "correct": None if correct < 0 else correct,
            "features": None,
        }


def pack_winners(winners: list[str]) -> bytes:
    # consecutive winners share most of their text (Hanoi: all but two pegs), so a fast
    # zlib pass shrinks the journal several times over
    return zlib.compress(BLOCK_SEPARATOR.join(winners).encode(), 1)
