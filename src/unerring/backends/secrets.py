"""Keeping an API key out of every text a run writes: its forms, and the start-up check.

A key reaches text in more forms than one: an HTTP library may quote the header as bytes
(`b'Bearer sk-...\\n'`), a server may echo it JSON-escaped or percent-encoded. Scrubbing only
the exact string misses those, so every form is scrubbed.
"""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

MASK = "***"


def secret_forms(secret: str) -> tuple[str, ...]:
    """Every form in which `secret` may appear in a message, longest first."""
    cores = {secret, secret.strip()}
    forms: set[str] = set()
    for s in cores:
        if not s:
            continue
        escaped = {
            s,
            repr(s)[1:-1],  # Python's escapes, without the quotes
            json.dumps(s)[1:-1],  # JSON's escapes (\u0009 and the like)
            repr(s.encode("utf-8", "backslashreplace"))[2:-1],  # a bytes repr: b'...'
            quote(s, safe=""),
            quote_plus(s),
        }
        forms |= escaped
        forms |= {f"Bearer {e}" for e in escaped}
    # longest first: a form that contains another is masked whole, leaving no residue
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def scrub(text: str, forms: tuple[str, ...]) -> str:
    """`text` with every form of the secret masked."""
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def key_problem(key: str) -> str | None:
    """Why `key` cannot be sent as it is (never quoting it), or None.

    A key read from a file often ends in a newline: HTTP refuses such a header, and the
    refusal would quote the key. Better to stop before the first request, saying why.
    """
    if not key.strip():
        return "is blank"
    if key != key.strip():
        return "has leading or trailing whitespace (a key read from a file often ends in a newline)"
    if any(not (" " < c <= "~") for c in key):
        return "contains a space, a control character or a character outside printable ASCII"
    return None
