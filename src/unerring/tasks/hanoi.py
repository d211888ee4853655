"""Towers of Hanoi, the MAKER paper's benchmark: one move per step, minimal context."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from unerring.core.flags import Flag
from unerring.process import Feature, Process

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


_CANON_HEAD = "move = ["
_CANON_MID = "]\nnext_state = [["
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


class _PegCodec:
    """A peg's disks <-> its text ("3, 2, 1", inside the brackets), memoised both ways.

    A step changes two pegs. The text the simulator renders for a new peg is the text the
    parser reads back and the next prompt shows, so formatting fills the parser's table:
    each new peg is formatted once and parsed almost never. A model's own spelling
    ("3,2,1") is parsed once and remembered. Both tables are bounded.
    """

    __slots__ = ("text", "value")
    LIMIT = 4096

    def __init__(self) -> None:
        self.text: dict[tuple[int, ...], str] = {}
        self.value: dict[str, tuple[int, ...]] = {}

    def _room(self) -> None:
        if len(self.text) >= self.LIMIT or len(self.value) >= self.LIMIT:
            self.text.clear()
            self.value.clear()

    def fmt(self, peg: tuple[int, ...]) -> str:
        t = self.text.get(peg)
        if t is None:
            self._room()
            t = self.text[peg] = ", ".join(map(str, peg))
            self.value[t] = peg
        return t

    def read(self, text: str) -> tuple[int, ...] | None:
        """The integers of a peg's (or a move's) text; None if it is not such a list."""
        peg = self.value.get(text)
        if peg is None:
            peg = _ints(text)
            if peg is not None:
                self._room()
                self.value[text] = peg
        return peg


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
        self._pegs = _PegCodec()
        self._all_list = list(range(1, disks + 1))
        self._total: int = (1 << disks) - 1

    def _fmt_pegs(self, pegs: Pegs) -> str:
        known = self._pegs.text.get  # a prompt's pegs were all formatted a step ago
        a, b, c = known(pegs[0]), known(pegs[1]), known(pegs[2])
        if a is None or b is None or c is None:  # a new next state: two pegs changed
            fmt = self._pegs.fmt
            a, b, c = fmt(pegs[0]), fmt(pegs[1]), fmt(pegs[2])
        return f"[[{a}], [{b}], [{c}]]"

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
        prev_text = (
            "none (this is the first move)"
            if prev is None
            else f"[{prev[0]}, {prev[1]}, {prev[2]}]"
        )
        # the rules and the strategy are the shared system part
        return f"Previous move: {prev_text}\nCurrent state: {self._fmt_pegs(pegs)}\nYour answer:"

    def parse(self, text: str) -> HAnswer | Flag:
        """The last `move = [...]` and the last `next_state = [[..],[..],[..]]`, strictly."""
        read = self._pegs.read
        # the answer exactly as `render` spells it (the usual case): split, no regex. When
        # all four lists read as integers, the regexes below would find the same groups.
        head, sep, rest = text.partition(_CANON_MID)
        if sep and head.startswith(_CANON_HEAD) and rest.endswith("]]"):
            parts = rest[:-2].split("], [")
            if len(parts) == 3:
                move = read(head[len(_CANON_HEAD) :])
                p0, p1, p2 = read(parts[0]), read(parts[1]), read(parts[2])
                if move is not None and p0 is not None and p1 is not None and p2 is not None:
                    return self._answer(move, p0, p1, p2)
        return self._parse_general(text)

    def _parse_general(self, text: str) -> HAnswer | Flag:
        """Any spelling: the regexes, the answer at the end read with one fullmatch."""
        read = self._pegs.read
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
        move = read(m)
        p0, p1, p2 = read(a), read(b), read(c)
        if move is None or p0 is None or p1 is None or p2 is None:
            return Flag.PARSE
        return self._answer(move, p0, p1, p2)

    def _answer(
        self, move: tuple[int, ...], p0: tuple[int, ...], p1: tuple[int, ...], p2: tuple[int, ...]
    ) -> HAnswer | Flag:
        """A move of three integers and pegs holding each disk exactly once, or a flag."""
        if len(move) != 3:
            return Flag.PARSE
        if sorted(p0 + p1 + p2) != self._all_list:
            return Flag.PARSE
        return ((move[0], move[1], move[2]), (p0, p1, p2))

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
        p0, p1, p2 = pegs
        tops = (p0[-1] if p0 else 0, p1[-1] if p1 else 0, p2[-1] if p2 else 0)
        one = tops.index(1) if 1 in tops else -1
        if one >= 0 and prev is not None and prev[0] == 1:
            # the only legal move between the two other pegs (in peg order)
            a, b = (1, 2) if one == 0 else (0, 2) if one == 1 else (0, 1)
            ta, tb = tops[a], tops[b]
            if ta or tb:
                move = (ta, a, b) if tb == 0 or (ta and ta < tb) else (tb, b, a)
                return (move, apply_move(pegs, move))
        src = one
        if src < 0:  # disk 1 is not on top anywhere: move the smallest top disk
            src = min((i for i in range(3) if tops[i]), key=tops.__getitem__)
        move = (tops[src], src, (src + self.direction) % 3)
        return (move, apply_move(pegs, move))

    def render(self, answer: HAnswer) -> str:
        (d, s, t), pegs = answer
        return f"move = [{d}, {s}, {t}]\nnext_state = {self._fmt_pegs(pegs)}"

    def wrong_answers(self, state: State, step: int, answer: HAnswer) -> list[HAnswer]:
        pegs = state[0]
        legal_now = _legal(pegs)
        out: list[tuple[bool, HAnswer]] = []  # (breaks the rules, the wrong answer)

        def slip(move: Move, lands: int) -> None:
            after = apply_move(pegs, (move[0], move[1], lands))
            if (move, after) != answer:
                # from a legal state, only the peg the disk lands on can break the rules
                peg = after[lands]
                bad = len(peg) > 1 and peg[-2] < peg[-1] if legal_now else not _legal(after)
                out.append((bad, (move, after)))

        # a wrong move, with the state it would give
        for src in range(3):
            if not pegs[src]:
                continue
            for dst in range(3):
                mv = (pegs[src][-1], src, dst)
                if dst != src and mv != answer[0]:
                    slip(mv, dst)
        # the right move with the disk written onto the wrong peg
        d, src, dst = answer[0]
        slip((d, src, dst), 3 - src - dst)
        # legal states first: a plausible slip keeps the rules, and a wrong answer that wins
        # a vote then leaves a state the process can go on from (the checker still counts it)
        out.sort(key=lambda t: t[0])
        return [a for _, a in out]
