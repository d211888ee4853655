"""Red flags: reasons a sample is discarded instead of voting (pure)."""

from __future__ import annotations

from enum import StrEnum


class Flag(StrEnum):
    """Why a sample was discarded. Each kind is counted separately."""

    OVERLONG = "overlong"  # response longer than the token limit
    PARSE = "parse"  # not in the exact output format
    INVALID = "invalid"  # parsed, but a validator rejected it
    EMPTY = "empty"  # the backend returned no text at all


def estimate_tokens(text: str) -> int:
    """Token count when the backend gives none: about 4 characters a token (BPE English)."""
    return (len(text) + 3) // 4
