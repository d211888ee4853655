"""The built-in failure taxonomy and its mapping to published ones."""

from __future__ import annotations

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
from unerring.redflags import Flag

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
        ("401", Category.AUTH),
        ("authentication", Category.AUTH),
        ("malformed_response", Category.MALFORMED),
        ("something odd", Category.TRANSPORT),
    ],
)
def test_transport_kinds_map_to_categories(kind: str, category: Category) -> None:
    assert transport_category(kind) is category
    assert is_transport(category)


def test_red_flags_map_to_format_or_overlength() -> None:
    assert flag_category(Flag.OVERLONG.value) is Category.OVERLENGTH
    for f in (Flag.PARSE, Flag.INVALID, Flag.EMPTY):
        assert flag_category(f.value) is Category.FORMAT
    assert not is_transport(Category.FORMAT)


def test_docs_table_lists_every_category_with_its_published_names() -> None:
    text = DOCS.read_text()
    for c in Category:
        line = next((ln for ln in text.splitlines() if ln.startswith(f"| `{c.value}` |")), None)
        assert line is not None, c
        assert BY_CATEGORY[c].aet in line
        assert BY_CATEGORY[c].trail in line
