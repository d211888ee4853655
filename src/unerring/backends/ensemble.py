"""Several models behind one backend: samples spread over them by weight, votes pooled."""

from __future__ import annotations

import asyncio

from unerring.backends.base import Backend
from unerring.core.samples import Sample, SampleRequest

PERIOD = 1000  # positions of the spreading sequence when the weights are not whole numbers


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
    """Sample i of step s comes from member sequence[(s + i) mod len]; each sample carries
    its member's name (`Sample.model`), so that the journal can say who answered."""

    def __init__(self, members: list[tuple[float, str, Backend]]) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = members
        self.sequence = spread([w for w, _, _ in members])

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
        for i in range(request.first_index, request.first_index + request.n):
            m = self.member_of(request.step, i)
            if runs and runs[-1][0] == m and runs[-1][1] + runs[-1][2] == i:
                runs[-1] = (m, runs[-1][1], runs[-1][2] + 1)
            else:
                runs.append((m, i, 1))
        got = await asyncio.gather(
            *(
                self.members[m][2].sample(
                    SampleRequest(
                        request.prompt,
                        request.step,
                        first,
                        count,
                        request.max_tokens,
                        request.first_temperature,
                        request.temperature,
                        request.system,
                        request.oracle,
                        request.item,
                        request.variant,
                    )
                )
                for m, first, count in runs
            )
        )
        out: list[Sample] = []
        for (m, _, _), samples in zip(runs, got, strict=True):
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

    async def aclose(self) -> None:
        for _, _, backend in self.members:
            await backend.aclose()
