"""First-to-ahead-by-k voting: a step is decided once one answer leads every other by k
(pure: no I/O, no asyncio)."""

from __future__ import annotations

from collections.abc import Hashable

from unerring.voting.standings import Standings


class Tally(Standings):
    """Votes for one step; decided once one key leads every other key by k (and frozen
    then, as `Standings` are)."""

    __slots__ = ()

    def _stops(self) -> bool:
        return True  # a lead of k is the whole rule (`add` asks only from there)

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
                self.decided = True
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
            self.decided = True
            return need
        return self._add_each(key, m)

    def needed(self) -> int:
        """Fewest further votes that could decide the step (all going to the leader)."""
        return self.k - self.lead if self.votes else self.k
