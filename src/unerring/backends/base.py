"""The one interface every model backend implements (its errors are in errors.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from unerring.core.samples import Oracle, Sample, SampleRequest
from unerring.errors import FatalBackendError, TransportError
from unerring.process import Process

__all__ = [
    "Backend",
    "FatalBackendError",
    "TransportError",
    "Wrapping",
]


@runtime_checkable
class Backend(Protocol):
    """A source of samples. Returns exactly `request.n` samples, in index order (the
    sample at position i has index `request.first_index + i`)."""

    @property
    def model(self) -> str:
        """The model's name, for prices and the journal (never a secret)."""
        ...

    @property
    def batch_rounds(self) -> bool:
        """Should a voting round go out as one request of n samples? True for a backend
        that answers a round at once (the simulator without latency) or n samples in one
        call; False: each sample is its own request, counted as it arrives."""
        ...

    async def sample(self, request: SampleRequest) -> list[Sample]: ...

    async def aclose(self) -> None: ...


# Makes what a model may know of one step, from (process, state, step, notes): the
# simulated model's oracle. The backend factory offers one for a model that needs it (see
# factory.oracle_for); the scheduler calls it without knowing which model it serves.
StepOracle = Callable[[Process[Any, Any], Any, int, tuple[str, ...]], Oracle]


class Wrapping:
    """A backend around another (faults, limits, retries): the model, the rounds and the
    closing are the inner one's. Subclasses set `inner` and implement `sample`."""

    inner: Backend

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def batch_rounds(self) -> bool:
        return self.inner.batch_rounds

    async def aclose(self) -> None:
        await self.inner.aclose()
