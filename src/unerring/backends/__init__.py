"""Model backends behind one small async interface, and the wrappers that stack on it."""

from unerring.backends.base import Backend, FatalBackendError, TransportError
from unerring.core.samples import Oracle, Sample, SampleRequest, TransportFailure

__all__ = [
    "Backend",
    "FatalBackendError",
    "Oracle",
    "Sample",
    "SampleRequest",
    "TransportError",
    "TransportFailure",
]
