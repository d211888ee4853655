"""An answer's body decompressed no further than a cap, as its raw bytes arrive.

httpx decompresses each chunk whole before a caller can count it, so a 64 KiB chunk of a
gzip bomb becomes 64 MiB in memory at once. Here zlib's own output limit bounds every
call: no more than the cap (and one byte to see it passed) ever exists, however the body
was made. An encoding that cannot be decoded with a bound is refused, not decoded.
"""

from __future__ import annotations

import zlib

# what a request asks for: exactly the encodings decoded here (httpx would also ask for
# brotli or zstd when their packages happen to be installed)
ACCEPT_ENCODING = "gzip, deflate"


class Overflow(Exception):
    """The decoded body passed its cap."""


class UnknownEncoding(ValueError):
    """A Content-Encoding this module does not decode (named in the message)."""


class BoundedDecoder:
    """Decodes one body (gzip, deflate or none), raising Overflow once the decoded bytes
    pass `limit`; zlib.error for a corrupt stream."""

    def __init__(self, content_encoding: str, limit: int) -> None:
        encoding = content_encoding.strip().lower()
        self._z: zlib._Decompress | None
        if encoding in ("", "identity"):
            self._z = None
        elif encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._z = zlib.decompressobj()
        else:
            # several encodings stacked ("gzip, gzip") decode into an unbounded middle
            # layer; brotli and zstd were never asked for
            raise UnknownEncoding(encoding[:40])
        # HTTP's "deflate" is meant to be zlib-wrapped, but some servers send it raw
        self._may_be_raw = encoding == "deflate"
        self.room = limit  # decoded bytes still allowed

    def decode(self, data: bytes) -> bytes:
        """The decoded bytes that `data` adds."""
        z = self._z
        if z is None:
            self.room -= len(data)
            if self.room < 0:
                raise Overflow
            return data
        parts = []
        while data:
            try:
                out = z.decompress(data, self.room + 1)
            except zlib.error:
                if not self._may_be_raw:
                    raise
                z = self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                self._may_be_raw = False
                continue
            self._may_be_raw = False
            self.room -= len(out)
            if self.room < 0:
                raise Overflow
            parts.append(out)
            # zlib stops at the limit with input left over; below it, it took everything
            data = z.unconsumed_tail
        return b"".join(parts)

    def flush(self) -> bytes:
        """What the decoder still holds at the end of the body."""
        if self._z is None:
            return b""
        out = self._z.flush()
        self.room -= len(out)
        if self.room < 0:
            raise Overflow
        return out
