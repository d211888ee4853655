"""Keeping an API key out of every text a run writes: the masking, and the start-up check.

A key reaches text in more forms than one: an HTTP library quotes the header as bytes
(`b'Bearer sk-...'`), a server echoes it JSON-escaped, percent-encoded (either case, `/`
kept or not), HTML-escaped (`&amp;`, `&#x2F;`, `&#47;`), or cut short (its first 20
characters). Listing forms always misses one, so `Redactor` masks fragments instead: any
run of FRAGMENT or more of the key's characters, in the text as written or in any of its
decodings, is masked where it stands in the text as written.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from itertools import accumulate

from unerring.backends.base import Backend, Wrapping
from unerring.core.samples import Sample, SampleRequest, TransportFailure

MASK = "***"

# The shortest run of a key's characters that is masked (a shorter key: the whole key).
# Ten characters of a random key carry ~60 bits: ordinary text never holds them by
# chance, yet the public prefixes of keys ("sk-", "sk-proj-") stay below it, so text that
# merely names a key's kind is left alone. A server that echoes nine characters or fewer
# leaks too little of a 40+ character key to matter. A key shorter than this is masked
# whole and only whole: a few of its characters are ordinary text.
FRAGMENT = 10

# escapes that may hide a key's characters: percent codes (either case), HTML character
# references (named, decimal, hex; the `;` optional, as browsers read them), and
# backslash escapes of JSON and Python (\uXXXX, \xXX, \/, \", \\ and the like). One group:
# `split` keeps each escape, between the plain runs around it.
_ESCAPE = re.compile(
    r"(%[0-9A-Fa-f]{2}"
    r"|&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?"
    r"|\\(?:u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2}|.))",
    re.DOTALL,
)
_BACKSLASHED = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
# a key percent-encoded inside JSON inside HTML is three layers deep; a fourth is absurd
_ROUNDS = 3


@lru_cache(maxsize=1024)  # a long text repeats a few escapes many times
def _decoded(escape: str) -> str:
    """What one escape stands for (itself when it stands for nothing known)."""
    c = escape[0]
    if c == "%":
        return chr(int(escape[1:], 16))
    if c == "&":
        return html.unescape(escape)
    c = escape[1]
    if c in "ux" and len(escape) > 2:
        return chr(int(escape[2:], 16))
    # a backslash before any other character is that character (\/ of JSON, \- of a
    # regex), except the letters that stand for control characters
    return _BACKSLASHED.get(c, c)


class _Positions:
    """Where the characters of a decoded text came from in the text it was decoded from.

    Worked out only when asked (a key was found in the decoded text): the pieces of the
    text alternate plain runs (even places) and escapes (odd places).
    """

    __slots__ = ("_d_at", "_decoded", "_escapes", "_o_at")

    def __init__(self, decoded: list[str], escapes: list[str]) -> None:
        self._decoded = decoded  # the pieces, each escape decoded
        self._escapes = escapes  # the escapes as written
        self._d_at: list[int] = []  # where each piece starts, decoded and as written
        self._o_at: list[int] = []

    def _piece(self, p: int) -> int:
        if not self._d_at:
            written = list(self._decoded)
            written[1::2] = self._escapes
            self._d_at = [0, *accumulate(map(len, self._decoded))]
            self._o_at = [0, *accumulate(map(len, written))]
        # the piece that holds p: the last to start at or before it (empty ones skipped)
        return bisect_right(self._d_at, p) - 1

    def start(self, p: int) -> int:
        """Where a span that starts at decoded position `p` starts as written."""
        j = self._piece(p)
        if j % 2:  # its first character came from an escape: the whole escape
            return self._o_at[j]
        return self._o_at[j] + (p - self._d_at[j])

    def end(self, p: int) -> int:
        """Where a span that ends (exclusive) at decoded position `p` ends as written."""
        j = self._piece(p - 1)
        if j % 2:  # its last character came from an escape: the whole escape
            return self._o_at[j + 1]
        return self._o_at[j] + (p - self._d_at[j])


def _decode(text: str) -> tuple[str, _Positions] | None:
    """`text` with every escape decoded once, and where its characters came from; None
    when nothing in it decodes."""
    pieces = _ESCAPE.split(text)
    if len(pieces) == 1:
        return None
    escapes = pieces[1::2]
    pieces[1::2] = map(_decoded, escapes)
    decoded = "".join(pieces)
    if decoded == text:  # unknown entities only
        return None
    return decoded, _Positions(pieces, escapes)


def _may_escape(text: str) -> bool:
    return "%" in text or "&" in text or "\\" in text


class Redactor:
    """Masks a secret in text: every run of `FRAGMENT` or more of its characters (all of
    it, when shorter), as written or escaped in any way `_ESCAPE` knows, even nested.

    Linear in the text: a handful of substring searches per view of it (probes of the
    key, spaced so that any long-enough fragment holds one whole), then a check of the
    few places a probe was found (many only where key and text are both made of one
    repeated pattern). Its repr never shows the secret.
    """

    __slots__ = ("_key", "_min", "_probe_len", "_probes")

    def __init__(self, secret: str) -> None:
        # whitespace around a key (a newline from a file) is no part of the secret
        key = secret.strip() or secret
        self._key = key
        self._min = min(FRAGMENT, len(key))
        # probes of length p every m - p + 1 characters: any m characters of the key
        # hold a whole probe. Half of m keeps the searches few and each one selective.
        p = self._probe_len = max(1, (self._min + 1) // 2)
        stride = self._min - p + 1
        probes: dict[str, list[int]] = {}
        for i in range(0, len(key) - p + 1, stride):
            probes.setdefault(key[i : i + p], []).append(i)
        self._probes = tuple((probe, tuple(at)) for probe, at in probes.items())

    def __repr__(self) -> str:
        return f"Redactor({MASK})"

    def scrub(self, text: str) -> str:
        """`text` with every fragment of the secret masked (the same object if none)."""
        if not text:
            return text
        spans = self._spans(text)
        chain: list[_Positions] = []
        view = text
        for _ in range(_ROUNDS):
            if not _may_escape(view):
                break
            step = _decode(view)
            if step is None:
                break
            view, where = step
            chain.insert(0, where)  # decoded -> ... -> as written
            for a, b in self._spans(view):
                for w in chain:
                    a, b = w.start(a), w.end(b)
                spans.append((a, b))
        if not spans:
            return text
        return _masked(text, spans)

    def shown(self, text: str, limit: int) -> str:
        """At most `limit` characters of `text`, the secret masked, reading only a window
        of it: a huge text (a server's whole answer) costs no more than a short one. The
        window's cut leaves at most a fragment too short to mask, as any cut does."""
        return self.scrub(text[: 4 * limit + 16 * len(self._key)])[:limit]

    def _spans(self, view: str) -> list[tuple[int, int]]:
        """The maximal runs of the key's characters in `view` at least `_min` long."""
        key, p, n, size = self._key, self._probe_len, len(self._key), len(view)
        found: list[tuple[int, int]] = []
        # per alignment (view position - key position), the run last found to mask: a
        # probe inside it finds the same run again
        runs: dict[int, tuple[int, int]] = {}
        for probe, offsets in self._probes:
            at = view.find(probe)
            masked_to = -1  # the end of the last run this probe found to mask
            while at >= 0:
                if at + p <= masked_to:
                    # inside a run already masked (a text of one repeated character
                    # would otherwise be scanned again from each of its positions): a
                    # run through here reaching further holds another probe out there
                    at = view.find(probe, masked_to - p + 1)
                    continue
                for i in offsets:
                    align = at - i
                    run = runs.get(align)
                    if run is not None and run[0] <= at and at + p <= run[1]:
                        continue
                    a, ka = at, i
                    while a > 0 and ka > 0 and view[a - 1] == key[ka - 1]:
                        a -= 1
                        ka -= 1
                    b, kb = at + p, i + p
                    while b < size and kb < n and view[b] == key[kb]:
                        b += 1
                        kb += 1
                    if b - a >= self._min:
                        runs[align] = (a, b)
                        found.append((a, b))
                        masked_to = max(masked_to, b)
                at = view.find(probe, at + 1)
        return found


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each span (merged where they touch or overlap) replaced by MASK."""
    spans.sort()
    out: list[str] = []
    at = 0
    start, end = spans[0]
    for a, b in spans[1:]:
        if a <= end:
            end = max(end, b)
            continue
        out += (text[at:start], MASK)
        at = end
        start, end = a, b
    out += (text[at:start], MASK, text[end:])
    return "".join(out)


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


def redact_error(error: BaseException, redactor: Redactor) -> None:
    """Mask the secret in an exception's message and in those it was raised from, in place:
    `raise ... from None` hides the cause from a traceback, but the cause is still there."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        e.args = tuple(redactor.scrub(a) if isinstance(a, str) else a for a in e.args)
        e = e.__cause__ or e.__context__


class Redacting(Wrapping):
    """The last line around a whole backend stack that knows a secret: no error leaves it
    carrying the secret, whichever layer wrote the message."""

    def __init__(self, inner: Backend, redactor: Redactor) -> None:
        self.inner = inner
        self._redactor = redactor

    async def sample(self, request: SampleRequest) -> list[Sample]:
        try:
            return await self.inner.sample(request)
        except Exception as e:
            redact_error(e, self._redactor)
            raise


def redacting(
    on_failure: Callable[[TransportFailure], None], redactor: Redactor
) -> Callable[[TransportFailure], None]:
    """`on_failure` hearing each failure with the secret masked in its message (the
    message is journaled, shown and traced)."""

    def heard(f: TransportFailure) -> None:
        on_failure(replace(f, message=redactor.scrub(f.message)))

    return heard
