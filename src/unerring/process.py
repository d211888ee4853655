"""How a user describes a decomposed process: one model call decides one step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

from unerring.core.flags import Flag
from unerring.core.serial import SerialError, ValueCodec, codecs
from unerring.keys import json_key

S = TypeVar("S")  # state
A = TypeVar("A")  # parsed answer

Answer = Any
Feature = int | str | bool


class Process(ABC, Generic[S, A]):
    """A decomposed process. Subclass it and override the methods a process needs.

    Required (abstract: a class without one cannot be constructed): `initial_state`,
    `done`, `prompt`, `parse`, `advance`. The rest have defaults. States and answers made
    of JSON-able values (numbers, strings, booleans, None, lists, tuples, dicts with str
    keys, dataclasses of those) are serialised by default, restored as the types they
    were, read from `Process[State, Answer]`. The engine never lets an exception out of
    `parse` crash a run: it becomes a red flag.
    """

    name: str = "process"
    # where a completion-API answer ends (e.g. ("\n",) for one-line answers); () = no stop
    stop: tuple[str, ...] = ()
    # dataclasses the default serialisation may build besides those that State and Answer
    # name (e.g. one that sits where the declared type is Any)
    known_types: ClassVar[tuple[type, ...]] = ()

    # -- required -------------------------------------------------------------------------
    @abstractmethod
    def initial_state(self) -> S:
        """The state before the first step."""

    @abstractmethod
    def done(self, state: S, step: int) -> bool:
        """True when no step is left to decide (`step` decisions were made so far)."""

    @abstractmethod
    def prompt(self, state: S, step: int) -> str:
        """The step's part of the prompt, built from the current state only.

        Instructions shared by every step belong in `system`: a chat model gets them as
        the system message, a completion model gets them ahead of this prompt.
        """

    @abstractmethod
    def parse(self, text: str) -> A | Flag:
        """Parse a response into an answer, or return the red flag that discards it."""

    @abstractmethod
    def advance(self, state: S, answer: A) -> S:
        """The state after the decided answer."""

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
        """What votes are compared by. Default: the answer itself; a dict or a list (not
        hashable) by its canonical JSON. Pick another in one line: `key = keys.number`."""
        cls = answer.__class__
        if cls is dict or cls is list:
            return json_key(answer)
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

    def step_limit(self) -> int | None:
        """The most steps a run may take before `done()` must be true: an item still not
        done there fails, naming `done()` (a runaway loop on a real model is unbounded
        spend). Default: `total_steps()`. Override where a wrong decision can lengthen
        the chain (addition: a carry wrongly written adds a step), so that a run with
        errors still ends as one; None: no limit but the run's `max_steps`."""
        return self.total_steps()

    def options(self) -> Mapping[str, Any]:
        """The process's options, recorded with the run (a resume must match them)."""
        return {}

    def features(self, state: S, step: int) -> Mapping[str, Feature]:
        """Cheap named values describing a step, for failure clustering and notes."""
        return {}

    def dump_state(self, state: S) -> str:
        """Serialise a state (JSON text) so a run can resume from it. The default writes
        JSON-able states; a state it cannot write raises SerialError naming the process
        and the type. Raise NotImplementedError to journal no state: a resume then
        replays the committed winners from `initial_state`."""
        try:
            return _codecs(type(self))[0].dump(state)
        except SerialError as e:
            raise SerialError(f"process {self.name!r}: {e}") from None

    def load_state(self, text: str) -> S:
        """The state `dump_state` wrote (the default rebuilds tuples and dataclasses)."""
        try:
            return _codecs(type(self))[0].load(text)  # type: ignore[no-any-return]
        except SerialError as e:
            raise SerialError(f"process {self.name!r}: {e}") from None

    def dump_answer(self, answer: A) -> str:
        """Serialise an answer (JSON text) for the journal and failure analysis."""
        try:
            return _codecs(type(self))[1].dump(answer)
        except SerialError as e:
            raise SerialError(f"process {self.name!r}: {e}") from None

    def load_answer(self, text: str) -> A:
        """The answer `dump_answer` wrote."""
        try:
            return _codecs(type(self))[1].load(text)  # type: ignore[no-any-return]
        except SerialError as e:
            raise SerialError(f"process {self.name!r}: {e}") from None

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


SIMULATION_HOOKS = ("solve", "render", "wrong_answers")
REQUIRED = ("initial_state", "done", "prompt", "parse", "advance")


def missing_required(obj: object) -> list[str]:
    """The required methods (`initial_state`, `done`, `prompt`, `parse`, `advance`) that
    `obj`'s class does not define: still abstract (a class whose abstract methods were
    cleared, or an object made without its constructor), or absent (an object that is no
    Process). A run is refused at its start naming them."""
    cls = type(obj)
    out = []
    for m in REQUIRED:
        got = getattr(cls, m, None)
        if not callable(got) or getattr(got, "__isabstractmethod__", False):
            out.append(m)
    return out


def missing_for_simulation(process: Process[Any, Any]) -> list[str]:
    """The simulation hooks (`solve`, `render`, `wrong_answers`) a `sim:` model needs that
    the process does not define: a run can be refused at its start naming them."""
    cls = type(process)
    return [m for m in SIMULATION_HOOKS if getattr(cls, m) is getattr(Process, m)]


def serialisation_problem(process: Process[Any, Any]) -> str | None:
    """Why the process's states cannot go through the journal, in one line, or None.

    Dumps the initial state, loads it and dumps it again: the two texts must agree. A
    process whose `dump_state` raises NotImplementedError resumes by replay: no problem.
    """
    try:
        state = process.initial_state()
        try:
            text = process.dump_state(state)
        except NotImplementedError:
            return None
        again = process.dump_state(process.load_state(text))
    except SerialError as e:  # the default's own line names the process already
        return _one_line(e)
    except Exception as e:  # the process's own methods: say where it came from
        return (
            f"process {process.name!r}: its initial state does not go through the journal: "
            f"{type(e).__name__}: {_one_line(e)}"
        )
    if again != text:
        return (
            f"process {process.name!r}: load_state does not give back the state dump_state "
            f"wrote ({_clip(text)} came back as {_clip(again)})"
        )
    return None


def declared_types(cls: type) -> tuple[Any, Any]:
    """The State and Answer a process class declares as `Process[State, Answer]`, through
    any generic subclasses between; Any where it declares none."""
    return _declared(cls, {}) or (Any, Any)


def _declared(cls: type, bound: dict[Any, Any]) -> tuple[Any, Any] | None:
    for base in cls.__dict__.get("__orig_bases__", cls.__bases__):
        origin = get_origin(base) or base
        args = tuple(_bind(a, bound) for a in get_args(base))
        if origin is Process:
            return (args[0], args[1]) if len(args) == 2 else (Any, Any)
        if isinstance(origin, type) and issubclass(origin, Process):
            params = getattr(origin, "__parameters__", ())
            got = _declared(origin, dict(zip(params, args, strict=False)))
            if got is not None:
                return got
    return None


def _bind(tp: Any, bound: dict[Any, Any]) -> Any:
    """`tp` with the type variables a subclass bound replaced (`list[T]` -> `list[int]`)."""
    if isinstance(tp, TypeVar):
        return bound.get(tp, Any)
    params = getattr(tp, "__parameters__", ())
    if params:
        try:
            return tp[tuple(bound.get(p, Any) for p in params)]
        except TypeError:
            return Any
    return tp


def _codecs(cls: type[Process[Any, Any]]) -> tuple[ValueCodec, ValueCodec]:
    """The class's state and answer codecs, built on first use and kept on the class
    (a batch makes one process per item: building them per object would cost)."""
    got: tuple[ValueCodec, ValueCodec] | None = cls.__dict__.get("_unerring_codecs")
    if got is None:
        state, answer = declared_types(cls)
        made = codecs([("state", state), ("answer", answer)], cls.known_types)
        got = (made[0], made[1])
        type.__setattr__(cls, "_unerring_codecs", got)
    return got


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


NoteSelector = Callable[[Any, int], tuple[str, ...]]


def with_notes(notes: tuple[str, ...], prompt: str) -> str:
    """Put the notes that apply to a step in front of its prompt."""
    lines = "\n".join(f"- {n}" for n in notes)
    return (
        "Notes from earlier mistakes on steps like this one (apply a note only if it "
        f"fits this step):\n{lines}\n\n{prompt}"
    )
