"""How a user describes a decomposed process: one model call decides one step."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from unerring.core.flags import Flag

S = TypeVar("S")  # state
A = TypeVar("A")  # parsed answer

Answer = Any
Feature = int | str | bool


class Process(Generic[S, A]):
    """A decomposed process. Subclass it and override the methods a process needs.

    Required: `initial_state`, `done`, `prompt`, `parse`, `advance`. The rest have defaults.
    The engine never lets an exception out of `parse` crash a run: it becomes a red flag.
    """

    name: str = "process"
    # where a completion-API answer ends (e.g. ("\n",) for one-line answers); () = no stop
    stop: tuple[str, ...] = ()

    # -- required -------------------------------------------------------------------------
    def initial_state(self) -> S:
        raise NotImplementedError

    def done(self, state: S, step: int) -> bool:
        """True when no step is left to decide (`step` decisions were made so far)."""
        raise NotImplementedError

    def prompt(self, state: S, step: int) -> str:
        """The step's part of the prompt, built from the current state only.

        Instructions shared by every step belong in `system`: a chat model gets them as
        the system message, a completion model gets them ahead of this prompt.
        """
        raise NotImplementedError

    def parse(self, text: str) -> A | Flag:
        """Parse a response into an answer, or return the red flag that discards it."""
        raise NotImplementedError

    def advance(self, state: S, answer: A) -> S:
        """The state after the decided answer."""
        raise NotImplementedError

    # -- optional -------------------------------------------------------------------------
    def system(self) -> str | None:
        """Instructions shared by every step, sent once ahead of each step's prompt (the
        system message for chat models); servers with prefix caching reuse them."""
        return None

    def prompt_variants(self) -> int:
        """How many forms of each step's prompt the process offers (decorrelation)."""
        return 1

    def variant_prompt(self, state: S, step: int, variant: int) -> str:
        """Form `variant` (0 .. prompt_variants() - 1) of the step's prompt; 0 is `prompt`.

        Forms differ in what does not change the answer (few-shot examples, their order,
        phrasing), so that samples drawn with different forms err less alike.
        """
        if variant == 0:
            return self.prompt(state, step)
        raise ValueError(f"process {self.name!r} offers no prompt variant {variant}")

    def key(self, answer: A) -> Hashable:
        """What votes are compared by. Default: the answer itself (it must be hashable)."""
        return answer

    def validate(self, state: S, answer: A) -> bool:
        """A user-supplied red flag: False discards the sample (counted as `invalid`)."""
        return True

    def check(self, state: S, step: int, answer: A) -> bool | None:
        """Was a decided answer right? Counts errors afterwards; never picks answers."""
        return None

    def total_steps(self) -> int | None:
        """Number of steps, when known in advance (planning and progress)."""
        return None

    def options(self) -> Mapping[str, Any]:
        """The process's options, recorded with the run (a resume must match them)."""
        return {}

    def features(self, state: S, step: int) -> Mapping[str, Feature]:
        """Cheap named values describing a step, for failure clustering and notes."""
        return {}

    def dump_state(self, state: S) -> str:
        """Serialise a state (JSON text) so a run can resume from it."""
        raise NotImplementedError(f"process {self.name!r} cannot serialise its state")

    def load_state(self, text: str) -> S:
        raise NotImplementedError(f"process {self.name!r} cannot load a state")

    def dump_answer(self, answer: A) -> str:
        """Serialise an answer (JSON text) for the journal."""
        raise NotImplementedError(f"process {self.name!r} cannot serialise its answers")

    def load_answer(self, text: str) -> A:
        raise NotImplementedError(f"process {self.name!r} cannot load an answer")

    # -- simulation hooks (the `sim:` model and calibration use these) -------------------
    def solve(self, state: S, step: int) -> A:
        """The correct answer for a state: lets the simulated model answer this process."""
        raise NotImplementedError(f"process {self.name!r} cannot be simulated")

    def render(self, answer: A) -> str:
        """A response text in the output format that `parse` reads back as `answer`."""
        raise NotImplementedError(f"process {self.name!r} cannot be simulated")

    def wrong_answers(self, state: S, step: int, answer: A) -> list[A]:
        """Plausible wrong answers for a step, deterministic, all different from `answer`."""
        raise NotImplementedError(f"process {self.name!r} cannot be simulated")


NoteSelector = Callable[[Any, int], tuple[str, ...]]


def with_notes(notes: tuple[str, ...], prompt: str) -> str:
    """Put the notes that apply to a step in front of its prompt."""
    lines = "\n".join(f"- {n}" for n in notes)
    return (
        "Notes from earlier mistakes on steps like this one (apply a note only if it "
        f"fits this step):\n{lines}\n\n{prompt}"
    )
