"""The straightforward voting loop that bench/hanoi.py compares unerring against.

For each sample: pick the simulated response text, parse move and next_state with regular
expressions, tally in a dict, stop at a lead of k. No journal, no progress. The error model
and its randomness are the simulated model's, so both see the same samples.

Like a careful user's loop (and like the simulator, which writes each distinct response of
a step once), it writes the right and the wrong response at most once per step and parses
each distinct text once per step (a dict from text to answer): most samples of a step are
equal, and re-parsing them would flatter any engine that does not.
"""

from __future__ import annotations

import re
import time

from unerring.core.hashing import mix64, unit

MOVE = re.compile(r"move\s*=\s*\[([^\[\]]*)\]")
STATE = re.compile(
    r"next_state\s*=\s*\[\s*\[([^\[\]]*)\]\s*,\s*\[([^\[\]]*)\]\s*,\s*\[([^\[\]]*)\]\s*\]"
)


def _render(move: tuple[int, int, int], pegs: list[list[int]]) -> str:
    return f"move = {list(move)}\nnext_state = {pegs}"


def _parse(text: str) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]] | None:
    m = MOVE.findall(text)
    s = STATE.findall(text)
    if not m or not s:
        return None
    move = tuple(int(x) for x in m[-1].split(","))
    pegs = tuple(tuple(int(x) for x in p.split(",") if x.strip()) for p in s[-1])
    return move, pegs


def _apply(pegs: list[list[int]], move: tuple[int, int, int]) -> list[list[int]]:
    out = [list(p) for p in pegs]
    out[move[2]].append(out[move[1]].pop())
    return out


def _correct(
    pegs: list[list[int]], prev: tuple[int, ...] | None, direction: int
) -> tuple[int, int, int]:
    if prev is None or prev[0] != 1:
        src = next(i for i in range(3) if pegs[i] and pegs[i][-1] == 1)
        return (1, src, (src + direction) % 3)
    a, b = (i for i in range(3) if not pegs[i] or pegs[i][-1] != 1)
    ta = pegs[a][-1] if pegs[a] else 0
    tb = pegs[b][-1] if pegs[b] else 0
    return (ta, a, b) if tb == 0 or (ta and ta < tb) else (tb, b, a)


def run(
    disks: int, k: int, error: float, seed: int = 0, steps: int | None = None
) -> dict[str, float]:
    """Solve `disks` Hanoi by naive voting; returns steps, samples, errors, seconds."""
    direction = 1 if disks % 2 == 0 else 2
    pegs: list[list[int]] = [list(range(disks, 0, -1)), [], []]
    prev: tuple[int, ...] | None = None
    total = steps or 2**disks - 1
    seed_base = mix64(seed * 0x100000001B3 + 0x51ED)
    samples = errors = 0
    t0 = time.perf_counter()
    for step in range(total):
        move = _correct(pegs, prev, direction)
        right = _apply(pegs, move)
        base = mix64(seed_base + step)
        good = _render(move, right)
        wrong = None
        parsed: dict[str, tuple[tuple[int, ...], tuple[tuple[int, ...], ...]] | None] = {}
        tally: dict[object, int] = {}
        i = 0
        while True:
            h = mix64(base ^ (i * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF))
            if unit(h) < error:  # the one wrong answer: disk 1's move the other way
                if wrong is None:
                    bad = (move[0], move[1], 3 - move[1] - move[2])
                    wrong = _render(bad, _apply(pegs, bad))
                text = wrong
            else:
                text = good
            i += 1
            if text in parsed:
                answer = parsed[text]
            else:
                answer = parsed[text] = _parse(text)
            if answer is None:
                continue
            tally[answer] = tally.get(answer, 0) + 1
            ranked = sorted(tally.values(), reverse=True)
            lead = ranked[0] - (ranked[1] if len(ranked) > 1 else 0)
            if lead >= k:
                winner = max(tally, key=tally.__getitem__)
                break
        samples += i
        new_move, new_pegs = winner  # type: ignore[misc]
        if new_move != move:
            errors += 1
        pegs = [list(p) for p in new_pegs]
        prev = new_move
    elapsed = time.perf_counter() - t0
    return {
        "steps": total,
        "samples": samples,
        "errors": errors,
        "seconds": elapsed,
        "us_per_step": elapsed * 1e6 / total,
    }
