"""A chain's speculative pipeline: steps opened ahead of the vote before them.

With `speculate` = D > 0 (chains on backends that take time), when step t's first valid
sample arrives, step t+1 opens on the state that answer implies, up to D steps ahead. If
t's winner is that answer, t+1's samples stand (they are the very samples a
non-speculative run draws: randomness comes from seed, item, step and index); otherwise
t+1 and whatever was opened on it are cancelled and reported as `Discarded`: paid for,
never counted as votes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Any, Protocol

from unerring.core.events import Decision
from unerring.scheduler.guards import overrun_reason, step_limit
from unerring.scheduler.sources import Item, Status
from unerring.scheduler.step import BudgetCut, Steps
from unerring.voting.step import StepVote


class Loop(Protocol):
    """What a chain's pipeline needs of the scheduler's loop."""

    speculate: int  # steps opened ahead of the vote, at most
    steps: Steps
    max_steps: int | None  # see guards.step_limit

    def halt(self) -> str | None: ...

    def emit(self, d: Decision) -> None: ...

    def end_item(self, it: Item, status: Status, reason: str = "") -> None: ...

    def cut(self, it: Item, cut: BudgetCut, step: int) -> None: ...

    def discard(self, it: Item, step: int, vote: StepVote) -> None: ...

    def undecided_end(self, d: Decision) -> tuple[Status, str]: ...


class _Open:
    """A step opened in an item's pipeline."""

    __slots__ = ("basis", "first", "pipeline", "state", "step", "task", "vote")

    def __init__(
        self, pipeline: Pipeline, step: int, state: Any, basis: tuple[Hashable, Any] | None
    ) -> None:
        self.pipeline = pipeline
        self.step = step
        self.state = state
        self.basis = basis  # the predecessor's answer this step was opened on; None: decided
        self.first: tuple[Hashable, Any] | None = None  # this step's first valid answer
        self.vote: StepVote | None = None
        self.task: asyncio.Task[Decision] | None = None

    def first_answer(self, judged: tuple[Hashable, Any]) -> None:
        if self.first is not None:
            return  # only the first valid answer to arrive opens the next step
        self.first = judged
        self.pipeline.opened_on(self)


class Pipeline:
    """Drives one chain with up to `loop.speculate` steps open ahead of its vote."""

    def __init__(self, loop: Loop, it: Item) -> None:
        self.loop = loop
        self.it = it
        self.pipe: deque[_Open] = deque()
        self.limit = step_limit(it.process, loop.max_steps)

    def _open(self, state: Any, step: int, basis: tuple[Hashable, Any] | None) -> None:
        it = self.it
        if it.process.done(state, step) or step >= self.limit or self.loop.halt() is not None:
            return
        o = _Open(self, step, state, basis)
        o.task = asyncio.create_task(self.loop.steps.decide(it, state, step, o))
        self.pipe.append(o)

    def _extend(self) -> None:
        """Open the step after the pipeline's last, on that step's first valid answer."""
        pipe = self.pipe
        while pipe and len(pipe) <= self.loop.speculate and pipe[-1].first is not None:
            last = pipe[-1]
            first = last.first
            assert first is not None
            try:
                state = self.it.process.advance(last.state, first[1])
            except Exception:
                return  # an answer the process cannot advance on: wait for the vote
            before = len(pipe)
            self._open(state, last.step + 1, first)
            if len(pipe) == before:
                return

    def opened_on(self, o: _Open) -> None:
        """A step's first valid answer arrived: open the next step on it, if it is last."""
        if self.pipe and self.pipe[-1] is o:
            self._extend()

    async def _discard_all(self) -> None:
        thrown = list(self.pipe)
        self.pipe.clear()
        tasks = [o.task for o in thrown if o.task is not None]
        for t in tasks:
            t.cancel()
        # counted once the tasks have ended: a sample already on its way back when the
        # cancel was asked is still offered to its vote, and paid for
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for o in reversed(thrown):
            if o.vote is not None:
                self.loop.discard(self.it, o.step, o.vote)

    def _overrun(self) -> bool:
        """The item is at its step limit and not done: it fails (True)."""
        it = self.it
        if it.step < self.limit or it.process.done(it.state, it.step):
            return False
        self.loop.end_item(it, "failed", overrun_reason(it.process, self.limit))
        return True

    async def run(self) -> None:
        """Decide the chain's steps to its end (or its stop), in order."""
        it, loop, pipe = self.it, self.loop, self.pipe
        if self._overrun():
            return
        self._open(it.state, it.step, None)
        try:
            while pipe:
                head = pipe[0]
                assert head.task is not None
                try:
                    d = await head.task
                except BudgetCut as cut:
                    pipe.popleft()
                    await self._discard_all()
                    loop.cut(it, cut, head.step)
                    return
                pipe.popleft()
                loop.emit(d)
                if d.state_after is None:
                    await self._discard_all()
                    loop.end_item(it, *loop.undecided_end(d))
                    return
                it.state, it.step = d.state_after, d.step + 1
                if pipe:
                    basis = pipe[0].basis
                    assert basis is not None
                    if not (basis[0] == d.key and basis[1] == d.answer):
                        await self._discard_all()  # opened on an answer that lost
                if pipe:
                    pipe[0].basis = None
                    self._extend()
                else:
                    if it.process.done(it.state, it.step):
                        break
                    if self._overrun():
                        return
                    self._open(it.state, it.step, None)
                    if not pipe:  # halted before the step could open
                        reason = loop.halt() or "stopped"
                        loop.end_item(it, "stopped", reason)
                        return
            loop.end_item(it, "completed")
        finally:
            for o in pipe:
                if o.task is not None:
                    o.task.cancel()
            # collect what the cancelled tasks raised, so nothing is left unretrieved
            left = [o.task for o in pipe if o.task is not None]
            if left:
                await asyncio.gather(*left, return_exceptions=True)
