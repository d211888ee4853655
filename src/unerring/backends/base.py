"""The one interface every model backend implements, and the errors it may raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class Oracle(Protocol):
    """What the simulated model may know about a step. Real backends never look at it."""

    def correct(self) -> str:
        """The correct response text for this step."""
        ...

    def wrong(self, variant: int) -> str:
        """Wrong response number `variant` (0-based; wraps around the process's supply)."""
        ...

    def features(self) -> Mapping[str, int | str | bool]:
        """The step's features (planted failure modes select steps by them)."""
        ...

    def notes(self) -> tuple[str, ...]:
        """The mistake notes put in this step's prompt (a planted mode may heed one)."""
        ...


@dataclass(slots=True)  # not frozen: one is made per voting round, and frozen init is slow
class SampleRequest:
    """Ask for `n` samples of one step; sample indices first_index .. first_index + n - 1.

    Sample index 0 of a step is drawn at `first_temperature`, every other at `temperature`
    (decorrelation: the paper's first vote at 0, later votes at 0.1). `variant`: which
    form of the step's prompt `prompt` is (0 unless the run uses prompt variants; the
    simulated model gives each variant hard steps of its own). Treat as immutable.
    """

    prompt: str
    step: int
    first_index: int
    n: int
    max_tokens: int
    first_temperature: float = 0.0
    temperature: float = 0.1
    system: str | None = None
    oracle: Oracle | None = None
    item: int = 0  # the item of a batch the step belongs to (0 for a single chain)
    variant: int = 0


class Sample:
    """One model response. `label` is ground truth the simulator knows; None elsewhere.

    A sample's index within its step is its position in the list a backend returns (they
    come in index order), not a field: so a backend may hand back one object for several
    identical responses (the simulator does), and the engine counts such a run at once.
    Never changed after it is made.
    """

    __slots__ = ("completion_tokens", "label", "latency_s", "model", "prompt_tokens", "text")

    def __init__(
        self,
        text: str,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        latency_s: float = 0.0,
        label: str | None = None,
        model: str | None = None,
    ) -> None:
        self.text = text
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.latency_s = latency_s
        self.label = label
        self.model = model  # which model of an ensemble answered (None: the run's one model)

    def __repr__(self) -> str:
        return f"Sample(text={self.text[:40]!r}..., label={self.label!r})"


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


class TransportError(Exception):
    """A sample could not be fetched. `kind` names the failure for failure analysis."""

    retryable = True

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


class FatalBackendError(TransportError):
    """A failure that retrying cannot fix (bad key, unknown model, malformed request)."""

    retryable = False


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """One failed attempt to fetch samples. `retried`: whether another attempt followed.

    (item, step, first_index) name the request it failed: with many requests in flight
    (one per sample, steps of many items at once) that is the only way to tell them apart.
    """

    kind: str
    step: int
    attempt: int
    time: float
    retried: bool
    message: str = ""
    item: int = 0
    first_index: int = 0  # the index of the request's first sample within its step
