"""A process whose answer is a JSON object: one record extracted from each line of text.

Each step asks the model for one line's record, `{"name": ..., "email": ..., "year": ...}`.
Votes compare records by canonical JSON (`key = keys.json`): `{"name": "Ada", "year":
1843}`, `{"year": 1843.0, "name": "Ada"}` and the same over three indented lines are one
vote, while `{"year": "1843"}` (a string) is another. The state, a tuple of the records so
far, and the answers are journaled with no dump or load method: they are JSON-able.

    python examples/extract_records.py                      # the simulated model
    python examples/extract_records.py openai:MODEL         # a real one (OPENAI_API_KEY,
                                                            # UNERRING_BASE_URL)
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import unerring
from unerring import Flag, Process, keys

Record = dict[str, Any]

LINES = (
    "Ada Lovelace (ada@analytical.org) published her notes on the engine in 1843.",
    "In 1936 Alan Turing, alan@bletchley.uk, described his machine.",
    "Grace Hopper wrote the first compiler in 1952; reach her at grace@navy.mil.",
    "Edsger Dijkstra <ewd@tue.nl> found his shortest-path algorithm in 1956.",
    "1969: Margaret Hamilton (margaret@mit.edu) led the Apollo flight software.",
)
# what a careful reader extracts: the checker's truth, and the simulated model's answers
TRUTH: tuple[Record, ...] = (
    {"name": "Ada Lovelace", "email": "ada@analytical.org", "year": 1843},
    {"name": "Alan Turing", "email": "alan@bletchley.uk", "year": 1936},
    {"name": "Grace Hopper", "email": "grace@navy.mil", "year": 1952},
    {"name": "Edsger Dijkstra", "email": "ewd@tue.nl", "year": 1956},
    {"name": "Margaret Hamilton", "email": "margaret@mit.edu", "year": 1969},
)
FIELDS = {"name": str, "email": str, "year": int}


class ExtractRecords(Process[tuple[Record, ...], Record]):
    """One voted step per line; the state is the records extracted so far."""

    name = "extract-records"
    key = keys.json  # one vote per record, however it is spelt

    def __init__(
        self, lines: tuple[str, ...] = LINES, truth: tuple[Record, ...] | None = TRUTH
    ) -> None:
        self.lines = lines
        self.truth = truth  # None: no checker, and no simulated model

    def initial_state(self) -> tuple[Record, ...]:
        return ()

    def total_steps(self) -> int:
        return len(self.lines)

    def done(self, state: tuple[Record, ...], step: int) -> bool:
        return len(state) == len(self.lines)

    def system(self) -> str:
        return (
            "Extract the person's name, email address and year from a line of text, as "
            'one JSON object with the keys "name", "email" and "year" (an integer). '
            "Reply with the JSON object only."
        )

    def prompt(self, state: tuple[Record, ...], step: int) -> str:
        return f"Line: {self.lines[len(state)]}\nRecord:"

    def parse(self, text: str) -> Record | Flag:
        found = re.search(r"\{.*\}", text, re.S)
        if found is None:
            return Flag.PARSE
        try:
            record = json.loads(found.group())
        except ValueError:
            return Flag.PARSE
        if not isinstance(record, dict) or record.keys() != FIELDS.keys():
            return Flag.PARSE
        if isinstance(record["year"], float) and record["year"].is_integer():
            record["year"] = int(record["year"])  # 1843.0 is the year 1843
        return record

    def validate(self, state: tuple[Record, ...], answer: Record) -> bool:
        # a record of the wrong types never votes (a bool is an int to isinstance)
        return all(type(answer[k]) is t for k, t in FIELDS.items())

    def advance(self, state: tuple[Record, ...], answer: Record) -> tuple[Record, ...]:
        return (*state, answer)

    def check(self, state: tuple[Record, ...], step: int, answer: Record) -> bool | None:
        return None if self.truth is None else answer == self.truth[len(state)]

    # for the simulated model
    def solve(self, state: tuple[Record, ...], step: int) -> Record:
        if self.truth is None:
            raise ValueError("the simulated model needs the truth")
        return self.truth[len(state)]

    def render(self, answer: Record) -> str:
        return json.dumps(answer)

    def wrong_answers(self, state: tuple[Record, ...], step: int, answer: Record) -> list[Record]:
        return [
            {**answer, "year": answer["year"] + 1},  # a slip of one year
            {**answer, "name": answer["name"].split()[0]},  # the first name alone
            {**answer, "email": answer["email"].split("@")[0]},  # half an address
        ]


def main(model: str = "sim:error=0.2,seed=3", store: str | None = None) -> unerring.RunResult:
    """Run the example and print its records, one JSON object a line."""
    options: dict[str, Any] = {} if store is None else {"store": store}
    result = unerring.run(ExtractRecords(), model=model, target=0.99, **options)
    print(result.summary["status"], "errors:", result.summary["errors"])
    for record in result.outcome.state:
        print(json.dumps(record))
    return result


if __name__ == "__main__":
    main(*sys.argv[1:2])
