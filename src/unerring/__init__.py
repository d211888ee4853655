"""unerring: long LLM processes that finish with zero errors."""

from unerring.process import Answer, Process, StepContext
from unerring.redflags import Flag
from unerring.voting import Tally

__version__ = "0.1.0"

__all__ = ["Answer", "Flag", "Process", "StepContext", "Tally", "__version__"]
