"""One step's vote counts with its leader and runner-up, kept vote by vote: the bookkeeping
both stopping rules share (pure: no I/O, no asyncio)."""

from __future__ import annotations

from collections.abc import Hashable


class Standings:
    """Votes for one step, their leader and the best count among the others.

    `add` counts a vote and asks the stopping rule (`_stops`) only once the leader is k
    ahead: ahead-by-k's own k, or 1 for the adaptive rule (a tie never stops).
    After the decision the standings are frozen: later votes are refused, so a sample
    drawn in the same parallel round as the deciding one can never change the outcome.
    """

    __slots__ = ("counts", "decided", "k", "lead", "leader", "runner_up", "votes", "winner")

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        self.counts: dict[Hashable, int] = {}
        self.votes = 0
        self.leader: Hashable | None = None
        self.lead = 0  # leader's count minus the best other count
        self.runner_up = 0
        self.winner: Hashable | None = None
        self.decided = False  # (the winner alone cannot say: a vote's key may be None)

    def _stops(self) -> bool:
        """Whether the step stops now that its leader is at least k ahead."""
        raise NotImplementedError

    def add(self, key: Hashable) -> bool:
        """Count one valid vote; return True if this vote decided the step."""
        if self.decided:
            raise RuntimeError("step already decided: no vote is counted after the decision")
        counts = self.counts
        c = counts.get(key, 0) + 1
        counts[key] = c
        self.votes += 1
        leader = self.leader
        if key == leader:  # the common case: another vote for the leader
            lead = self.lead = c - self.runner_up
        elif leader is None or c > counts[leader]:
            # a new leader: the old leader is now the best of the others
            old = 0 if leader is None else counts[leader]
            self.leader = key
            self.runner_up = old
            lead = self.lead = c - old
        else:
            if c > self.runner_up:
                self.runner_up = c
            lead = self.lead = counts[leader] - self.runner_up
        if lead >= self.k and self._stops():
            self.winner = self.leader
            self.decided = True
            return True
        return False

    def _add_each(self, key: Hashable, m: int) -> int:
        """`add` m votes for one key, stopping at the decision: how many it took, else 0."""
        for i in range(m):
            if self.add(key):
                return i + 1
        return 0

    def plurality(self) -> Hashable | None:
        """The key with most votes (first to reach that count wins ties)."""
        return self.leader
