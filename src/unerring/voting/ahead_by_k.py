"""First-to-ahead-by-k voting (pure: no I/O, no asyncio)."""

from __future__ import annotations

from collections.abc import Hashable


class Tally:
    """Votes for one step; decided once one key leads every other key by k.

    After the decision the tally is frozen: later votes are refused, so a sample drawn in
    the same parallel round as the deciding one can never change the outcome.
    """

    __slots__ = ("counts", "k", "lead", "leader", "runner_up", "votes", "winner")

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

    @property
    def decided(self) -> bool:
        return self.votes > 0 and self.lead >= self.k

    def add(self, key: Hashable) -> bool:
        """Count one valid vote; return True if this vote decided the step."""
        if self.winner is not None or (self.votes and self.lead >= self.k):
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
        if lead >= self.k:
            self.winner = self.leader
            return True
        return False

    def add_many(self, key: Hashable, m: int) -> int:
        """Count up to m votes for one key; return how many it took to decide, else 0.

        Equivalent to calling `add` m times and stopping at the decision, in one call.
        """
        if m > 0 and self.leader is None:  # the first votes of a step
            take = min(m, self.k)
            self.counts[key] = take
            self.votes = take
            self.leader = key
            self.lead = take
            if take == self.k:
                self.winner = key
                return take
            return 0
        if key == self.leader and m > 0 and self.winner is None:
            need = self.k - self.lead
            if m < need:
                c = self.counts[key] + m
                self.counts[key] = c
                self.votes += m
                self.lead = c - self.runner_up
                return 0
            self.counts[key] += need
            self.votes += need
            self.lead = self.k
            self.winner = key
            return need
        for i in range(m):
            if self.add(key):
                return i + 1
        return 0

    def needed(self) -> int:
        """Fewest further votes that could decide the step (all going to the leader)."""
        return self.k - self.lead if self.votes else self.k

    def plurality(self) -> Hashable | None:
        """The key with most votes (first to reach that count wins ties)."""
        return self.leader
