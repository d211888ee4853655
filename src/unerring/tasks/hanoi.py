"""Towers of Hanoi, the MAKER paper's benchmark: one move per step, minimal context."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from unerring.process import Feature, Process
from unerring.redflags import Flag

Pegs = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
Move = tuple[int, int, int]
State = tuple[Pegs, Move | None]  # (pegs bottom to top, previous move)
HAnswer = tuple[Move, Pegs]

_MOVE_RE = re.compile(r"move\s*=\s*\[([^\[\]]*)\]")
_STATE_RE = re.compile(
    r"next_state\s*=\s*\[\s*\[([^\[\]]*)\]\s*,\s*\[([^\[\]]*)\]\s*,\s*\[([^\[\]]*)\]\s*\]"
)

_RULES = """You are solving Towers of Hanoi with {n} disks, numbered 1 (smallest) to {n} \
(largest), on three pegs numbered 0, 1 and 2. A state lists the disks on each peg from \
bottom to top. Rules: move one disk at a time; only the top disk of a peg can move; never \
put a disk on a smaller one.

Strategy (follow it exactly, it solves the puzzle in the fewest moves):
- If the previous move did not move disk 1, move disk 1 one peg {direction}.
- Otherwise make the only legal move that does not move disk 1.

Answer with exactly two lines and nothing after them:
move = [disk, from_peg, to_peg]
next_state = [[...], [...], [...]]"""


def _fmt_peg(peg: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, peg)) + "]"


_INT_CHARS = re.compile(r"[0-9\s,]*", re.ASCII)
# the answer as the response's last two lines: the usual case, read with one fullmatch
_TAIL_RE = re.compile(
    r"move\s*=\s*\[([^\[\]]*)\]\s*next_state\s*=\s*"
    r"\[\s*\[([^\[\]]*)\]\s*,\s*\[([^\[\]]*)\]\s*,\s*\[([^\[\]]*)\]\s*\]\s*"
)


def _ints(text: str) -> tuple[int, ...] | None:
    """Comma-separated non-negative integers (possibly none); None if anything else."""
    # a character-class check and int() beat a nested-repetition regex by 10x here
    if _INT_CHARS.fullmatch(text) is None:
        return None
    if not text or text.isspace():
        return ()
    try:
        return tuple(map(int, text.split(",")))
    except ValueError:  # an empty item: "1,,2" or "1 2"
        return None


def apply_move(pegs: Pegs, move: Move) -> Pegs:
    """Put the top disk of `from` onto `to` (no legality check)."""
    _, src, dst = move
    lists = [pegs[0], pegs[1], pegs[2]]
    disk = lists[src][-1]
    lists[src] = lists[src][:-1]
    lists[dst] = (*lists[dst], disk)
    return (lists[0], lists[1], lists[2])


def _legal(pegs: Pegs) -> bool:
    return all(list(p) == sorted(p, reverse=True) for p in pegs)


class Hanoi(Process[State, HAnswer]):
    """Move a tower of `disks` disks from peg 0 to peg 2, one voted move per step."""

    name = "hanoi"

    def __init__(self, disks: int) -> None:
        if disks < 1:
            raise ValueError(f"--disks must be a positive number, got {disks}")
        if disks > 40:
            raise ValueError(f"--disks {disks} is too large (2^{disks} - 1 steps); use <= 40")
        self.disks = disks
        # with an even count disk 1 cycles 0 -> 1 -> 2; with an odd count 0 -> 2 -> 1
        self.direction = 1 if disks % 2 == 0 else 2
        dir_text = (
            "clockwise (0 -> 1 -> 2 -> 0)"
            if self.direction == 1
            else ("counter-clockwise (0 -> 2 -> 1 -> 0)")
        )
        self._system = _RULES.format(n=disks, direction=dir_text)
        # a move changes two pegs, so most pegs were formatted a step ago; bounded cache
        self._peg_text: dict[tuple[int, ...], str] = {}
        self._peg_value: dict[str, tuple[int, ...]] = {}
        self._all_list = list(range(1, disks + 1))
        self._total: int = (1 << disks) - 1

    def _fmt_pegs(self, pegs: Pegs) -> str:
        cache = self._peg_text
        out = []
        for peg in pegs:
            t = cache.get(peg)
            if t is None:
                if len(cache) >= 64:
                    cache.clear()
                t = cache[peg] = _fmt_peg(peg)
            out.append(t)
        return f"[{out[0]}, {out[1]}, {out[2]}]"

    # -- the process ----------------------------------------------------------------------
    def initial_state(self) -> State:
        return ((tuple(range(self.disks, 0, -1)), (), ()), None)

    def total_steps(self) -> int:
        return self._total

    def done(self, state: State, step: int) -> bool:
        return step >= self._total

    def system(self) -> str:
        return self._system

    def prompt(self, state: State, step: int) -> str:
        pegs, prev = state
        prev_text = "none (this is the first move)" if prev is None else f"{list(prev)}"
        # the rules and the strategy are the shared system part
        return f"Previous move: {prev_text}\nCurrent state: {self._fmt_pegs(pegs)}\nYour answer:"

    def parse(self, text: str) -> HAnswer | Flag:
        """The last `move = [...]` and the last `next_state = [[..],[..],[..]]`, strictly."""
        tail = _TAIL_RE.fullmatch(text, max(text.rfind("move"), 0))
        if tail is not None:  # nothing follows the answer: these are the last ones
            m, a, b, c = tail.groups()
        else:
            moves = _MOVE_RE.findall(text)
            states = _STATE_RE.findall(text)
            if not moves or not states:
                return Flag.PARSE
            m = moves[-1]
            a, b, c = states[-1]
        move = _ints(m)
        if move is None or len(move) != 3:
            return Flag.PARSE
        p0, p1, p2 = self._peg(a), self._peg(b), self._peg(c)
        if p0 is None or p1 is None or p2 is None:
            return Flag.PARSE
        if sorted(p0 + p1 + p2) != self._all_list:
            return Flag.PARSE
        return ((move[0], move[1], move[2]), (p0, p1, p2))

    def _peg(self, text: str) -> tuple[int, ...] | None:
        """A peg's disks from its text; two of three pegs repeat from the last step."""
        cache = self._peg_value
        peg = cache.get(text)
        if peg is None:
            peg = _ints(text)
            if peg is None:
                return None
            if len(cache) >= 64:
                cache.clear()
            cache[text] = peg
        return peg

    def advance(self, state: State, answer: HAnswer) -> State:
        return (answer[1], answer[0])

    def check(self, state: State, step: int, answer: HAnswer) -> bool:
        """Independent of `solve`: legality, the state update, and the strategy's rule."""
        pegs, prev = state
        (disk, src, dst), next_pegs = answer
        if not (0 <= src <= 2 and 0 <= dst <= 2) or src == dst:
            return False
        if not pegs[src] or pegs[src][-1] != disk:
            return False
        if pegs[dst] and pegs[dst][-1] < disk:
            return False
        if apply_move(pegs, (disk, src, dst)) != next_pegs:
            return False
        if prev is None or prev[0] != 1:
            return disk == 1 and dst == (src + self.direction) % 3
        return disk != 1

    def options(self) -> Mapping[str, Any]:
        return {"disks": self.disks}

    def features(self, state: State, step: int) -> Mapping[str, Feature]:
        pegs, prev = state
        answer = self.solve(state, step)
        return {
            "disk": answer[0][0],
            "prev_disk1": prev is not None and prev[0] == 1,
            "empty_pegs": sum(1 for p in pegs if not p),
        }

    def dump_state(self, state: State) -> str:
        pegs, prev = state
        return json.dumps([[list(p) for p in pegs], None if prev is None else list(prev)])

    def load_state(self, text: str) -> State:
        pegs, prev = json.loads(text)
        p: Pegs = (tuple(pegs[0]), tuple(pegs[1]), tuple(pegs[2]))
        return (p, None if prev is None else (prev[0], prev[1], prev[2]))

    def dump_answer(self, answer: HAnswer) -> str:
        return json.dumps([list(answer[0]), [list(p) for p in answer[1]]])

    def load_answer(self, text: str) -> HAnswer:
        move, pegs = json.loads(text)
        return ((move[0], move[1], move[2]), (tuple(pegs[0]), tuple(pegs[1]), tuple(pegs[2])))

    # -- simulation -----------------------------------------------------------------------
    def solve(self, state: State, step: int) -> HAnswer:
        """The strategy's move. Total: after a wrong decision the state may break the rules
        (disk 1 buried, a disk on a smaller one) and the simulator still needs an answer."""
        pegs, prev = state
        if prev is not None and prev[0] == 1:
            a, b = (i for i in range(3) if not pegs[i] or pegs[i][-1] != 1)
            ta = pegs[a][-1] if pegs[a] else 0
            tb = pegs[b][-1] if pegs[b] else 0
            if ta or tb:
                move = (ta, a, b) if tb == 0 or (ta and ta < tb) else (tb, b, a)
                return (move, apply_move(pegs, move))
        src = next((i for i in range(3) if pegs[i] and pegs[i][-1] == 1), None)
        if src is None:  # disk 1 is not on top anywhere: move the smallest top disk
            src = min((i for i in range(3) if pegs[i]), key=lambda i: pegs[i][-1])
        move = (pegs[src][-1], src, (src + self.direction) % 3)
        return (move, apply_move(pegs, move))

    def render(self, answer: HAnswer) -> str:
        (d, s, t), pegs = answer
        return f"move = [{d}, {s}, {t}]\nnext_state = {self._fmt_pegs(pegs)}"

    def wrong_answers(self, state: State, step: int, answer: HAnswer) -> list[HAnswer]:
        pegs = state[0]
        out: list[HAnswer] = []
        # a wrong move, with the state it would give
        for src in range(3):
            if not pegs[src]:
                continue
            for dst in range(3):
                mv = (pegs[src][-1], src, dst)
                if dst != src and mv != answer[0]:
                    out.append((mv, apply_move(pegs, mv)))
        # the right move with the disk written onto the wrong peg
        (d, src, dst), _ = answer
        other = 3 - src - dst
        out.append(((d, src, dst), apply_move(pegs, (d, src, other))))
        # legal states first: a plausible slip keeps the rules, and a wrong answer that wins
        # a vote then leaves a state the process can go on from (the checker still counts it)
        wrong = [a for a in out if a != answer]
        return sorted(wrong, key=lambda a: not _legal(a[1]))
