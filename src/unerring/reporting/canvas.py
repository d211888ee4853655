"""A plot made of panels, each drawn or left out with a one-line reason, and what each
drawn panel holds, measured from the artists matplotlib drew (not from what we meant to).

The page carries those counts on each figure, so a test (or a reader) can see that no
drawn panel is empty without looking at pixels.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import StepPatch

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 3.4, 90
MIN_WIDTH_IN = 4.5
STYLE: dict[Any, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}

# what a panel drew: (series name, artist); one name may cover several artists
Drawn = list[tuple[str, Artist | BarContainer]]
Draw = Callable[[Axes], Drawn]


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel of a plot: how to draw it, or why it is left out."""

    title: str
    draw: Draw | None = None
    why: str = ""

    @staticmethod
    def out(title: str, why: str) -> Panel:
        return Panel(title, None, why)


@dataclass(frozen=True, slots=True)
class Shown:
    """A drawn panel: its title and the marks each of its series put on the page."""

    title: str
    series: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Plot:
    key: str  # stable name (the page marks each figure with it)
    title: str
    caption: str
    png: bytes | None  # None: every panel was left out
    shown: tuple[Shown, ...] = ()
    left_out: tuple[str, ...] = ()  # "Panel — left out: why", a line per panel


def marks(artist: Artist | BarContainer) -> int:
    """How many marks an artist puts on the axes: points of a line (none for a line of
    one point without a marker: it draws nothing), bars and steps of non-zero height,
    scattered points."""
    if isinstance(artist, Line2D):
        x = np.asarray(artist.get_xdata(), np.float64)
        y = np.asarray(artist.get_ydata(), np.float64)
        n = int(np.count_nonzero(np.isfinite(x) & np.isfinite(y)))
        visible_marker = artist.get_marker() not in (None, "", " ", "None", "none")
        return n if n >= 2 or visible_marker else 0
    if isinstance(artist, BarContainer):
        sizes = [
            p.get_height() if artist.orientation == "vertical" else p.get_width()
            for p in artist.patches
        ]
        return sum(1 for s in sizes if math.isfinite(s) and s != 0)
    if isinstance(artist, StepPatch):
        values_, _edges, baseline = artist.get_data()
        values = np.asarray(values_, np.float64)
        base = np.asarray(baseline if baseline is not None else 0.0, np.float64)
        return int(np.count_nonzero(np.isfinite(values) & (values != base)))
    if isinstance(artist, PathCollection):
        offsets = np.asarray(artist.get_offsets(), np.float64)
        return int(np.count_nonzero(np.isfinite(offsets).all(axis=1))) if offsets.size else 0
    raise TypeError(f"cannot count the marks of {type(artist).__name__}")


def _measure(title: str, drawn: Drawn) -> Shown:
    counts: dict[str, int] = {}
    for name, artist in drawn:
        counts[name] = counts.get(name, 0) + marks(artist)
    return Shown(title, tuple(counts.items()))


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def compose(
    key: str, title: str, caption: str, panels: Sequence[Panel], height: float = HEIGHT_IN
) -> Plot:
    """The panels that have something to draw, side by side in one image; the others are
    named with their reason. With none to draw there is no image at all."""
    drawn = [p for p in panels if p.draw is not None]
    left_out = tuple(f"{p.title} — left out: {p.why}" for p in panels if p.draw is None)
    if not drawn:
        return Plot(key, title, caption, None, (), left_out)
    # panels keep their width when others are left out (a lone histogram is not stretched)
    width = max(MIN_WIDTH_IN, WIDTH_IN * len(drawn) / len(panels))
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(drawn), squeeze=False)[0]
    shown = []
    for ax, panel in zip(axes, drawn, strict=True):
        assert panel.draw is not None
        series = panel.draw(ax)
        ax.set_title(panel.title)
        shown.append(_measure(panel.title, series))
    return Plot(key, title, caption, _png(fig), tuple(shown), left_out)
