"""Red flags: reasons a sample is discarded instead of voting (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Flag(StrEnum):
    """Why a sample was discarded. Each kind is counted separately."""

    OVERLONG = "overlong"  # response longer than the token limit
    PARSE = "parse"  # not in the exact output format
    INVALID = "invalid"  # parsed, but a validator rejected it
    EMPTY = "empty"  # the backend returned no text at all
    PARSE_ERROR = "parse_error"  # the process's own `parse` raised (a bug, or a text it
    # never expected): the first exception of each item is kept in its stats


# the most of an exception's message a parse error's record keeps
PARSE_ERROR_MESSAGE = 300


def parse_error_record(step: int, error: BaseException) -> dict[str, Any]:
    """What the journal keeps of the first exception `parse` raised in an item: the step,
    the exception's type, and its message on one line, cut to PARSE_ERROR_MESSAGE."""
    message = " ".join(str(error).split())
    if len(message) > PARSE_ERROR_MESSAGE:
        message = message[: PARSE_ERROR_MESSAGE - 3] + "..."
    return {"step": step, "type": type(error).__name__, "message": message}


def raised_text(record: Mapping[str, Any]) -> str:
    """A parse error's exception in a line: `ValueError: boom`."""
    kind = record.get("type") or "Exception"
    message = record.get("message")
    return f"{kind}: {message}" if message else str(kind)


def parse_error_text(record: Mapping[str, Any]) -> str:
    """A parse error's record in a line: `step 4: ValueError: boom`."""
    return f"step {record.get('step')}: {raised_text(record)}"


def estimate_tokens(text: str) -> int:
    """Token count when the backend gives none: about 4 characters a token (BPE English)."""
    return (len(text) + 3) // 4
