"""The built-in failure taxonomy and its mapping to published ones."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from unerring.analysis.taxonomy import (
    BY_CATEGORY,
    TAXONOMY,
    Category,
    flag_category,
    is_transport,
    transport_category,
)
from unerring.backends import faults
from unerring.backends.base import TransportError
from unerring.core.flags import Flag
from unerring.core.samples import Sample, SampleRequest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "failures.md"


def test_every_category_has_one_documented_entry() -> None:
    assert [e.category for e in TAXONOMY] == list(Category)
    for e in TAXONOMY:
        assert e.meaning and e.aet and e.trail and e.advice


def test_the_issue_s_categories_are_all_there() -> None:
    names = {c.value for c in Category}
    for wanted in (
        "format_violation",
        "overlength",
        "outvoted_wrong",
        "checker_rejected",
        "undecided",
        "budget_exhausted",
        "transport_timeout",
        "transport_rate_limit",
        "transport_server_error",
        "transport_connection_reset",
        "transport_authentication",
        "transport_malformed_response",
    ):
        assert wanted in names


@pytest.mark.parametrize(
    ("kind", "category"),
    [
        ("timeout", Category.TIMEOUT),
        ("read-timeout", Category.TIMEOUT),
        ("rate_limit", Category.RATE_LIMIT),
        ("429", Category.RATE_LIMIT),
        ("503", Category.SERVER),
        ("server_error", Category.SERVER),
        ("connection reset", Category.RESET),
        ("reset", Category.RESET),
        ("401", Category.AUTH),
        ("authentication", Category.AUTH),
        ("malformed_response", Category.MALFORMED),
        ("something odd", Category.TRANSPORT),
    ],
)
def test_transport_kinds_map_to_categories(kind: str, category: Category) -> None:
    assert transport_category(kind) is category
    assert is_transport(category)


def test_red_flags_map_to_format_overlength_or_parse_exception() -> None:
    assert flag_category(Flag.OVERLONG.value) is Category.OVERLENGTH
    for f in (Flag.PARSE, Flag.INVALID, Flag.EMPTY):
        assert flag_category(f.value) is Category.FORMAT
    # an exception out of the process's parse is its own kind and its own category
    assert flag_category(Flag.PARSE_ERROR.value) is Category.PARSE_EXCEPTION
    assert {flag_category(f.value) for f in Flag} <= set(Category)
    assert not is_transport(Category.FORMAT)


def test_docs_table_lists_every_category_with_its_published_names() -> None:
    text = DOCS.read_text()
    for c in Category:
        line = next((ln for ln in text.splitlines() if ln.startswith(f"| `{c.value}` |")), None)
        assert line is not None, c
        assert BY_CATEGORY[c].aet in line
        assert BY_CATEGORY[c].trail in line


BACKENDS = Path(__file__).resolve().parents[1] / "src" / "unerring" / "backends"
ERRORS = {"TransportError", "FatalBackendError", "OutageError", "RetriesExhausted"}
# the kinds the backends raise, and the category each belongs in
EXPECTED = {
    "timeout": Category.TIMEOUT,
    "rate_limit": Category.RATE_LIMIT,
    "server_error": Category.SERVER,
    "outage": Category.SERVER,
    "reset": Category.RESET,
    "unreachable": Category.RESET,
    "auth": Category.AUTH,
    "malformed": Category.MALFORMED,
    "oversize": Category.MALFORMED,
    "no_usage": Category.MALFORMED,
    "not_found": Category.REQUEST,
    "bad_request": Category.REQUEST,
    "redirect": Category.REQUEST,
}
# error constructions whose kind is not a literal: the kind comes from elsewhere (faults'
# own drawn kind, or a failure passed on); each is covered below or by its source
PASSED_ON = {("faults.py", "kind"), ("resilience.py", "err.kind")}


def _raised_kinds() -> set[str]:
    """Every literal kind a backend module constructs an error with."""
    kinds: set[str] = set()
    for path in sorted(BACKENDS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            f = node.func
            name = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            if name not in ERRORS:
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                kinds.add(arg.value)
            else:
                assert (path.name, ast.unparse(arg)) in PASSED_ON, (path.name, ast.unparse(arg))
    return kinds


class _Answers:
    batch_rounds = False  # one request per sample

    model = "m"

    async def sample(self, request: SampleRequest) -> list[Sample]:
        return [Sample("4")] * request.n

    async def aclose(self) -> None:
        return None


async def _no_sleep(_s: float) -> None:
    return None


def _injected_kinds() -> set[str]:
    """The kinds fault injection raises, found by injecting each fault for sure."""
    out: set[str] = set()
    for kind in faults.KINDS:
        b = faults.FaultInjecting(_Answers(), faults.FaultSpec(**{kind: 1.0}), sleep=_no_sleep)
        try:
            asyncio.run(b.sample(SampleRequest("p", 0, 1, 1, 10)))
        except TransportError as e:
            out.add(e.kind)
    return out


def test_every_kind_the_backends_raise_has_its_category() -> None:
    raised = _raised_kinds() | _injected_kinds()
    assert {"reset", "timeout", "malformed", "oversize", "auth"} <= raised  # the scan works
    unknown = raised - set(EXPECTED)
    assert not unknown, f"new transport kinds {unknown}: map them in taxonomy.py and here"
    for kind in raised:
        assert transport_category(kind) is EXPECTED[kind], kind
        assert transport_category(kind) is not Category.TRANSPORT, kind
