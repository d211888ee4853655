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
from typing import Any

BLOCK_SEPARATOR = "\x1e"


_INT_COLUMNS = ("samples", "surplus", "prompt_tokens", "completion_tokens", "elapsed_us", "correct")


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


def unpack_block(row: sqlite3.Row) -> Iterator[dict[str, Any]]:
    """The decisions packed in one decision_blocks row, as decision rows."""
    winners = zlib.decompress(row["winners"]).decode().split(BLOCK_SEPARATOR)
    n = len(winners)
    ints = array("i")
    blob = row["data"]
    width = ints.itemsize * n * len(_INT_COLUMNS)
    ints.frombytes(blob[:width])
    costs = array("d")
    costs.frombytes(blob[width:])
    col = {name: ints[i * n : (i + 1) * n] for i, name in enumerate(_INT_COLUMNS)}
    first = row["first_step"]
    holes = array("i")
    # steps in the range that have their own row in `decisions` (a v1-3 store has none;
    # `in row` would look at a Row's values, not its column names)
    if "holes" in row.keys() and row["holes"]:  # noqa: SIM118
        holes.frombytes(row["holes"])
    skip = set(holes)
    steps = [first + o for o in range(row["last_step"] - first + 1) if o not in skip]
    for i, winner in enumerate(winners):
        correct = col["correct"][i]
        yield {
            "step": steps[i],
            "winner": winner,
            "votes": f"[{col['samples'][i] - col['surplus'][i]}]",
            "samples": col["samples"][i],
            "surplus": col["surplus"][i],
            "flags": None,
            "prompt_tokens": col["prompt_tokens"][i],
            "completion_tokens": col["completion_tokens"][i],
            "cost": costs[i] if costs else 0.0,
            "elapsed": col["elapsed_us"][i] / 1e6,
            "undecided": 0,
            "correct": None if correct < 0 else correct,
            "features": None,
        }


def pack_winners(winners: list[str]) -> bytes:
    # consecutive winners share most of their text (Hanoi: all but two pegs), so a fast
    # zlib pass shrinks the journal several times over
    return zlib.compress(BLOCK_SEPARATOR.join(winners).encode(), 1)
