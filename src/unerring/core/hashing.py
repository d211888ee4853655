"""The seeded hash every reproducible draw comes from: (seed, item, step, index) -> a
number, never global random state."""

from __future__ import annotations

_M64 = 0xFFFFFFFFFFFFFFFF


_TO_UNIT = 2.0**-53


def mix64(x: int) -> int:
    """splitmix64 finaliser: a fast, well-mixed 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def unit(h: int) -> float:
    """A uniform float in [0, 1) from a 64-bit hash."""
    return (h >> 11) * _TO_UNIT
