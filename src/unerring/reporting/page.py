"""HTML building blocks for a self-contained page: escaping, tables, figures, the frame.

Everything that came from a model or a server goes through `shown`: bounded, control and
format characters made visible, then HTML-escaped. The page has no script at all, and its
Content-Security-Policy forbids scripts, so even a slip in escaping could not run code.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Sequence

EXCERPT = 600  # characters of a model's text shown in one example

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222}
header{background:#233;color:#fff;padding:14px 24px}
header h1{margin:0 0 4px;font-size:20px} header p{margin:0;color:#cdd}
main{padding:8px 24px 40px;max-width:1100px}
nav ul{padding-left:18px;margin:6px 0}
h2{border-bottom:2px solid #233;padding-bottom:3px;margin-top:34px}
h3{margin:22px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ccd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4} td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:14px 0} figure img{max-width:100%;height:auto;border:1px solid #e3e6ea}
figcaption{color:#444;font-size:13px}
pre.sample{white-space:pre-wrap;word-break:break-all;background:#f6f7f9;border:1px solid #dde;
padding:4px 6px;margin:3px 0;max-height:12em;overflow:auto;font-size:12px}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:6px 10px}
.muted{color:#666}
p.left-out{color:#555;font-size:13px;margin:3px 0 3px 12px}
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def shown(text: str | None, limit: int = EXCERPT) -> str:
    """Text from outside (model, server) fit for the page: bounded, visible, escaped."""
    if text is None:
        return ""
    cut = text[:limit]
    out = []
    for ch in cut:
        if ch in "\n\t" or ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    more = len(text) - len(cut)
    tail = f" …[{more:,} more characters]" if more > 0 else ""
    return html.escape("".join(out) + tail, quote=True)


def esc(text: object) -> str:
    """Our own text (names, numbers): escaped, not bounded."""
    return html.escape(str(text), quote=True)


def num(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}g}" if abs(value) < 1e6 else f"{value:,.0f}"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()
) -> str:
    """Rows of cells that are already HTML (escape them first)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def pairs(items: Iterable[tuple[str, str]]) -> str:
    """A two-column table of name and value (values already HTML)."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>"


def figure(
    key: str,
    anchor: str,
    title: str,
    caption: str,
    png: bytes | None,
    shown: Sequence[tuple[str, Sequence[tuple[str, int]]]] = (),
    left_out: Sequence[str] = (),
) -> str:
    """A plot: its image, caption, and a line for each panel left out (and why). With no
    image (every panel left out) only its title and those lines.

    `data-series` holds what each drawn panel shows, `[[panel, {series: marks}], ...]`, so
    that a reader (or a test) can tell a drawn plot from an empty one without pixels.
    """
    series = json.dumps([[panel, dict(counts)] for panel, counts in shown])
    lines = "".join(f'<p class="left-out">{esc(line)}.</p>' for line in left_out)
    head = (
        f'<figure class="plot" id="{esc(anchor)}" data-plot="{esc(key)}" '
        f'data-series="{esc(series)}">'
    )
    if png is None:
        return f"{head}<figcaption><b>{esc(title)}.</b></figcaption>{lines}</figure>"
    data = base64.b64encode(png).decode("ascii")
    return (
        f'{head}<img alt="{esc(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{esc(title)}.</b> {esc(caption)}</figcaption>{lines}</figure>"
    )


def frame(title: str, subtitle: str, toc: Sequence[tuple[str, str]], body: str) -> str:
    """The whole page: inline style, no script, a policy that forbids any."""
    links = "".join(f'<li><a href="#{esc(a)}">{esc(t)}</a></li>' for a, t in toc)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>"
        f"<main><nav><ul>{links}</ul></nav>{body}</main></body></html>\n"
    )
