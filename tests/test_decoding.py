"""Bounded content decoding: gzip and deflate decoded no further than a cap."""

from __future__ import annotations

import gzip
import zlib

import pytest

from unerring.backends.decoding import BoundedDecoder, Overflow, UnknownEncoding

BODY = b'{"choices": [{"index": 0, "text": " 4"}]}' * 50


def _decode(encoding: str, data: bytes, limit: int, chunk: int = 7) -> bytes:
    d = BoundedDecoder(encoding, limit)
    out = [d.decode(data[at : at + chunk]) for at in range(0, len(data), chunk)]
    return b"".join(out) + d.flush()


def _raw_deflate(data: bytes) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return z.compress(data) + z.flush()


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("", BODY),
        ("identity", BODY),
        ("gzip", gzip.compress(BODY)),
        ("GZip ", gzip.compress(BODY)),
        ("x-gzip", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),  # as HTTP means it: zlib-wrapped
        ("deflate", _raw_deflate(BODY)),  # as some servers send it
    ],
)
def test_a_body_within_the_cap_decodes_whole(encoding: str, data: bytes) -> None:
    assert _decode(encoding, data, len(BODY)) == BODY


@pytest.mark.parametrize("encoding", ["", "gzip", "deflate"])
def test_a_body_one_byte_over_the_cap_overflows(encoding: str) -> None:
    data = {"": BODY, "gzip": gzip.compress(BODY), "deflate": zlib.compress(BODY)}[encoding]
    with pytest.raises(Overflow):
        _decode(encoding, data, len(BODY) - 1)


def test_a_bomb_is_never_decoded_past_the_cap() -> None:
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(z.compress(bytes(1 << 20)) for _ in range(64)) + z.flush()  # 64 MiB
    assert len(bomb) < 100_000
    d = BoundedDecoder("gzip", 1 << 16)
    decoded = 0
    with pytest.raises(Overflow):
        # one chunk holds the whole bomb: unbounded, it would inflate to 64 MiB at once
        decoded += len(d.decode(bomb))
    assert decoded == 0 and d.room == -1  # one byte past the cap, and no further


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, gzip", "gzip, br"])
def test_encodings_that_cannot_be_bounded_are_refused(encoding: str) -> None:
    with pytest.raises(UnknownEncoding):
        BoundedDecoder(encoding, 1000)


def test_a_corrupt_stream_is_a_zlib_error() -> None:
    with pytest.raises(zlib.error):
        _decode("gzip", b"\x1f\x8b\x08\x00garbage-not-deflate", 1000)
