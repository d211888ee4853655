"""Several models behind one backend: samples spread over them by weight, votes pooled.

A member whose server stops answering (its own retries gave up, or its outage outlasted
--max-outage) is dropped for the rest of the attempt: its samples go to the next member
that still answers, named as that member's, and the drop is reported as a transport
failure of kind `member_down`. The run carries on with the others.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from unerring.backends.base import Backend
from unerring.backends.resilience import OnFailure
from unerring.core.samples import Sample, SampleRequest, TransportFailure
from unerring.errors import OutageError, RetriesExhausted, TransportError

PERIOD = 1000  # positions of the spreading sequence when the weights are not whole numbers


def members_down(backend: object) -> list[str]:
    """The members an ensemble (however wrapped) dropped in this attempt, by name."""
    seen = 0
    while backend is not None and seen < 16:  # wrappers keep what they wrap as `inner`
        if isinstance(backend, Ensemble):
            return list(backend.down)
        backend = getattr(backend, "inner", None)
        seen += 1
    return []


def spread(weights: list[float]) -> list[int]:
    """A fixed sequence of member numbers in which each member's share follows its weight,
    evenly interleaved (smooth weighted round robin). Whole weights repeat every sum."""
    if not weights or any(not w > 0 for w in weights):
        raise ValueError("ensemble weights must be positive")
    whole = all(float(w).is_integer() for w in weights)
    length = int(sum(weights)) if whole else PERIOD
    total = sum(weights)
    credit = [0.0] * len(weights)
    out = []
    for _ in range(length):
        for i, w in enumerate(weights):
            credit[i] += w
        best = max(range(len(weights)), key=lambda i: credit[i])
        credit[best] -= total
        out.append(best)
    return out


class Ensemble:
    """Sample i of step s comes from member sequence[(s + i) mod len], or from the member
    the request names (`SampleRequest.member`); each sample carries its member's name
    (`Sample.model`), so that the journal can say who answered."""

    def __init__(
        self, members: list[tuple[float, str, Backend]], on_failure: OnFailure | None = None
    ) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = members
        self.sequence = spread([w for w, _, _ in members])
        self.on_failure = on_failure
        self.down: dict[str, str] = {}  # member name -> why it was dropped

    @property
    def model(self) -> str:
        return " + ".join(name for _, name, _ in self.members)

    @property
    def batch_rounds(self) -> bool:
        # a round goes out whole only if every member answers one at once
        return all(b.batch_rounds for _, _, b in self.members)

    def member_of(self, step: int, index: int) -> int:
        seq = self.sequence
        return seq[(step + index) % len(seq)]

    async def sample(self, request: SampleRequest) -> list[Sample]:
        # runs of consecutive indices that go to one member become one request each
        runs: list[tuple[int, int, int]] = []  # (member, first index, count)
        if request.member >= 0:
            runs.append((request.member, request.first_index, request.n))
        else:
            for i in range(request.first_index, request.first_index + request.n):
                m = self.member_of(request.step, i)
                if runs and runs[-1][0] == m and runs[-1][1] + runs[-1][2] == i:
                    runs[-1] = (m, runs[-1][1], runs[-1][2] + 1)
                else:
                    runs.append((m, i, 1))
        got = await asyncio.gather(
            *(self._ask(m, first, count, request) for m, first, count in runs)
        )
        out: list[Sample] = []
        for m, samples in got:
            name = self.members[m][1]
            named: dict[int, Sample] = {}  # one object for one shared response, as it came
            for s in samples:
                t = named.get(id(s))
                if t is None:
                    t = named[id(s)] = Sample(
                        s.text, s.prompt_tokens, s.completion_tokens, s.latency_s, s.label, name
                    )
                out.append(t)
        return out

    async def _ask(
        self, m: int, first: int, count: int, request: SampleRequest
    ) -> tuple[int, list[Sample]]:
        """Samples first .. first+count-1 from member m, or from the next member that still
        answers once m is down; (the member that answered, its samples)."""
        sub = replace(request, first_index=first, n=count, member=-1)
        while True:
            m = self._standin(m)
            try:
                return m, await self.members[m][2].sample(sub)
            except (RetriesExhausted, OutageError) as e:
                self._drop(m, e, request)

    def _standin(self, m: int) -> int:
        """m, or the next member after it that is not down; raises when none is left."""
        n = len(self.members)
        for j in range(n):
            c = (m + j) % n
            if self.members[c][1] not in self.down:
                return c
        why = "; ".join(f"{name}: {reason}" for name, reason in self.down.items())
        raise OutageError("outage", f"every ensemble member is down ({why})")

    def _drop(self, m: int, e: TransportError, request: SampleRequest) -> None:
        name = self.members[m][1]
        if name in self.down:
            return  # another request of the same member found it down first
        self.down[name] = f"{e.kind} at step {request.step}: {e}"
        left = [n for _, n, _ in self.members if n not in self.down]
        if self.on_failure is not None:
            rest = ", ".join(left) if left else "none"
            self.on_failure(
                TransportFailure(
                    "member_down",
                    request.step,
                    0,
                    time.time(),
                    bool(left),
                    f"ensemble member {name} stopped answering ({e.kind}: {e}); its samples "
                    f"go to the members still answering: {rest}",
                    request.item,
                    request.first_index,
                )
            )

    async def aclose(self) -> None:
        for _, _, backend in self.members:
            await backend.aclose()
