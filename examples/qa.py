"""A dataset's questions, each answered in one voted step and checked against its gold
answer: the shape of most benchmark files (one JSON object per line with a question and
its answer).

    unerring run examples/qa.py:Answer --items examples/capitals.jsonl \
        --model sim:error=0.2,seed=1 --run-id capitals
    unerring export capitals --what outputs --format jsonl

Each line's fields are the constructor's keyword arguments (`"id"` names the item). Votes
compare answers as normalised text (`key = keys.text`): "Paris", "paris." and " PARIS "
are one vote. `check` is the gold answer: it counts errors afterwards, it never picks one.
"""

from __future__ import annotations

from unerring import Flag, Process, keys


class Answer(Process[str | None, str]):
    name = "qa"
    key = keys.text

    def __init__(self, question: str, answer: str) -> None:
        self.question = question
        self.gold = answer

    def initial_state(self) -> str | None:
        return None  # no answer yet

    def total_steps(self) -> int:
        return 1

    def done(self, state: str | None, step: int) -> bool:
        return state is not None

    def prompt(self, state: str | None, step: int) -> str:
        return f"Q: {self.question}\nReply with one line: A: <answer>"

    def parse(self, text: str) -> str | Flag:
        _, found, answer = text.partition("A:")
        answer = answer.strip().splitlines()[0] if answer.strip() else ""
        return answer if found and answer else Flag.PARSE

    def advance(self, state: str | None, answer: str) -> str:
        return answer

    def check(self, state: str | None, step: int, answer: str) -> bool:
        return keys.text(answer) == keys.text(self.gold)

    # for the simulated model: the right answer, its text, and plausible wrong ones
    def solve(self, state: str | None, step: int) -> str:
        return self.gold

    def render(self, answer: str) -> str:
        return f"A: {answer}"

    def wrong_answers(self, state: str | None, step: int, answer: str) -> list[str]:
        return [answer[::-1], answer + "ville"]
