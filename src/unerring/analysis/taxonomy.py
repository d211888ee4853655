"""The built-in failure taxonomy, and where each category sits in published taxonomies.

Names borrowed from AgentErrorTaxonomy (AET), TRAIL, MAST and the MAS-FIRE fault types, so
that a report can be read against the literature; see docs/failures.md for the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    FORMAT = "format_violation"  # red flag: parse, invalid, empty
    OVERLENGTH = "overlength"  # red flag: over the token limit
    PARSE_EXCEPTION = "parse_exception"  # red flag: the process's parse raised (parse_error)
    OUTVOTED = "outvoted_wrong"  # a valid sample that voted against the winner
    REJECTED = (
        "checker_rejected"  # a decision (and the samples that voted for it) the checker rejected
    )
    UNDECIDED = "undecided"  # a step that hit the sample cap without a k-lead
    BUDGET = "budget_exhausted"  # the run stopped at a sample, cost or token cap
    TIMEOUT = "transport_timeout"
    RATE_LIMIT = "transport_rate_limit"
    SERVER = "transport_server_error"
    RESET = "transport_connection_reset"
    AUTH = "transport_authentication"
    MALFORMED = "transport_malformed_response"
    REQUEST = "transport_bad_request"
    TRANSPORT = "transport_other"


@dataclass(frozen=True, slots=True)
class Entry:
    category: Category
    meaning: str
    aet: str  # AgentErrorTaxonomy module: type
    trail: str
    mast: str
    mas_fire: str
    advice: str


TAXONOMY: tuple[Entry, ...] = (
    Entry(
        Category.FORMAT,
        "response not in the exact output format, or rejected by a validator",
        "action: format_error",
        "system execution: formatting errors",
        "specification: disobey task specification",
        "action: bad format",
        "add or tighten a red flag; restate the output format in the prompt",
    ),
    Entry(
        Category.OVERLENGTH,
        "response over the token limit (red-flagged: long answers are unreliable)",
        "system: llm_limit",
        "system execution: resource exhaustion",
        "specification: disobey task specification",
        "memory: context overflow",
        "keep the red flag; shorten the prompt or ask for the answer only",
    ),
    Entry(
        Category.PARSE_EXCEPTION,
        "the process's parse() raised on a response (red flag parse_error)",
        "system: tool_execution_error",
        "system execution: configuration issues",
        "-",
        "-",
        "fix parse(): return Flag.PARSE for a response it cannot read; `unerring show` "
        "names the first exception",
    ),
    Entry(
        Category.OUTVOTED,
        "a parsed, valid answer that lost the vote",
        "reasoning/action: parameter_error, invalid_action",
        "reasoning: incorrect problem identification, tool output misinterpretation",
        "task verification: incorrect verification",
        "reasoning: hallucination; action: wrong parameter",
        "intermittent: raise k; systematic: a note, a prompt fix, or decorrelation",
    ),
    Entry(
        Category.REJECTED,
        "a decided answer that the task's checker found wrong",
        "planning/action: invalid_action",
        "reasoning: incorrect problem identification",
        "task verification: no or incorrect verification",
        "reasoning: hallucination",
        "fix the prompt or add a note; decorrelate (another model or temperature); raise k",
    ),
    Entry(
        Category.UNDECIDED,
        "no answer reached a lead of k before the per-step sample cap",
        "system: step_limit",
        "planning and coordination: resource abuse",
        "task verification: premature termination",
        "planning: inexecutable plan",
        "raise the per-step cap; look for a prompt ambiguity (two answers both plausible)",
    ),
    Entry(
        Category.BUDGET,
        "the run stopped at its sample, cost or token budget",
        "system: step_limit",
        "system execution: resource exhaustion",
        "task verification: premature termination",
        "-",
        "raise the budget, or lower the cost per step (fewer red flags, smaller k)",
    ),
    Entry(
        Category.TIMEOUT,
        "the model call timed out",
        "system: environment_error",
        "system execution: timeouts",
        "-",
        "-",
        "retry with backoff; raise the timeout; check the server's load",
    ),
    Entry(
        Category.RATE_LIMIT,
        "the provider refused for rate (HTTP 429)",
        "system: environment_error",
        "system execution: rate limiting",
        "-",
        "-",
        "honour Retry-After; lower concurrency",
    ),
    Entry(
        Category.SERVER,
        "the provider failed (HTTP 5xx), or failed every request for too long (an outage)",
        "system: environment_error",
        "system execution: service errors",
        "-",
        "-",
        "retry with backoff; an incident if many steps fail together",
    ),
    Entry(
        Category.RESET,
        "the connection was reset or refused, or the server never answered at all",
        "system: environment_error",
        "system execution: service errors",
        "-",
        "-",
        "retry; check the network",
    ),
    Entry(
        Category.AUTH,
        "authentication or authorisation failed (401/403)",
        "system: tool_execution_error",
        "system execution: authentication errors",
        "-",
        "-",
        "never retry: fix the credentials",
    ),
    Entry(
        Category.MALFORMED,
        "the provider's reply could not be read (not JSON or UTF-8, over the size cap, no usage)",
        "system: tool_execution_error",
        "system execution: service errors",
        "-",
        "action: bad format",
        "retry once; report the server bug",
    ),
    Entry(
        Category.REQUEST,
        "the provider refused the request itself: unknown model, wrong URL, bad option "
        "(400/404, a 3xx redirect)",
        "system: tool_execution_error",
        "system execution: resource not found, configuration issues",
        "-",
        "-",
        "never retry: fix the model name, the base URL or the option the server names",
    ),
    Entry(
        Category.TRANSPORT,
        "another transport failure",
        "system: environment_error",
        "system execution: service errors",
        "-",
        "-",
        "retry with backoff",
    ),
)

BY_CATEGORY: dict[Category, Entry] = {e.category: e for e in TAXONOMY}

CONTENT = frozenset({Category.FORMAT, Category.OVERLENGTH, Category.OUTVOTED, Category.REJECTED})

# transport `kind` strings the backends raise (tests/test_taxonomy.py finds every one in
# the code), and common spellings from other sources
_TRANSPORT_KINDS: dict[str, Category] = {
    "timeout": Category.TIMEOUT,
    "read_timeout": Category.TIMEOUT,
    "connect_timeout": Category.TIMEOUT,
    "rate_limit": Category.RATE_LIMIT,
    "rate_limited": Category.RATE_LIMIT,
    "429": Category.RATE_LIMIT,
    "server_error": Category.SERVER,
    "server": Category.SERVER,
    "5xx": Category.SERVER,
    "outage": Category.SERVER,
    "reset": Category.RESET,
    "unreachable": Category.RESET,
    "connection_reset": Category.RESET,
    "connection": Category.RESET,
    "connection_error": Category.RESET,
    "refused": Category.RESET,
    "authentication": Category.AUTH,
    "auth": Category.AUTH,
    "forbidden": Category.AUTH,
    "401": Category.AUTH,
    "403": Category.AUTH,
    "malformed_response": Category.MALFORMED,
    "malformed": Category.MALFORMED,
    "bad_response": Category.MALFORMED,
    "oversize": Category.MALFORMED,
    "no_usage": Category.MALFORMED,
    "not_found": Category.REQUEST,
    "bad_request": Category.REQUEST,
    "redirect": Category.REQUEST,
    "400": Category.REQUEST,
    "404": Category.REQUEST,
}


def transport_category(kind: str) -> Category:
    """Map a TransportError kind (free text from a backend) to a category."""
    k = kind.strip().lower().replace("-", "_").replace(" ", "_")
    if k in _TRANSPORT_KINDS:
        return _TRANSPORT_KINDS[k]
    if k.startswith("5") and k[:3].isdigit():
        return Category.SERVER
    if "timeout" in k:
        return Category.TIMEOUT
    return Category.TRANSPORT


def flag_category(flag: str) -> Category:
    """Map a red flag's value (core.flags.Flag) to a category."""
    if flag == "overlong":
        return Category.OVERLENGTH
    if flag == "parse_error":
        return Category.PARSE_EXCEPTION
    return Category.FORMAT


def is_transport(category: Category) -> bool:
    return category.value.startswith("transport_")
