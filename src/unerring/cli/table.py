"""Plain-text tables whose columns are as wide as their widest cell."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()
) -> Iterator[str]:
    """The header and the rows, two spaces apart; columns in `right` (numbers) are aligned
    right. The last column is not padded (no trailing blanks)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    last = len(headers) - 1
    for row in (headers, *rows):
        cells = []
        for i, cell in enumerate(row):
            if i in right:
                cells.append(cell.rjust(widths[i]))
            elif i < last:
                cells.append(cell.ljust(widths[i]))
            else:
                cells.append(cell)
        yield "  ".join(cells).rstrip()
