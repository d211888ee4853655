"""The one interface every model backend implements, and the errors it may raise."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from unerring.core.samples import Sample, SampleRequest
from unerring.errors import FatalBackendError, TransportError

__all__ = [
    "Backend",
    "FatalBackendError",
    "TransportError",
    "Wrapping",
    "whole_rounds",
]


@runtime_checkable
class Backend(Protocol):
    """A source of samples. Returns exactly `request.n` samples, in index order (the
    sample at position i has index `request.first_index + i`)."""

    @property
    def model(self) -> str:
        """The model's name, for prices and the journal (never a secret)."""
        ...

    async def sample(self, request: SampleRequest) -> list[Sample]: ...

    async def aclose(self) -> None: ...


def whole_rounds(backend: Backend) -> bool:
    """Should a voting round go out as one request of n samples?

    A backend says so (`batch_rounds = True`) when it answers a round at once (the
    simulator without latency) or answers n samples in one call (a server honouring `n`);
    otherwise each sample is its own request and is counted as it arrives.
    """
    return bool(getattr(backend, "batch_rounds", False))


class Wrapping:
    """A backend around another (faults, limits, retries): the model and the closing are
    the inner one's. Subclasses set `inner` and implement `sample`."""

    inner: Backend

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def batch_rounds(self) -> bool:
        return whole_rounds(self.inner)

    async def aclose(self) -> None:
        await self.inner.aclose()
