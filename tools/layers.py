"""The import graph of `src/unerring`, read with `ast`, and the layers drawing in docs/layers.md.

    python -m tools.layers           # print the drawing
    python -m tools.layers --write   # rewrite the drawing's block in docs/layers.md

Every import counts: at module level, inside functions and under `TYPE_CHECKING`. A unit is
a subpackage (`unerring.voting`) or a top-level module (`unerring.graph`); the layers are
the ones `[tool.importlinter]` in pyproject.toml names, which `make lint` checks.
"""

from __future__ import annotations

import ast
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = "unerring"
DOC = ROOT / "docs" / "layers.md"
BEGIN = "<!-- layers: python -m tools.layers --write -->"
END = "<!-- /layers -->"
WIDTH = 96


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its `__init__`)."""
    out: dict[str, Path] = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: from the module's package, one level up per extra dot
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    # `from unerring import defaults` imports the submodule, not the package's names
    return [target, *(f"{target}.{alias.name}" for alias in node.names)]


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """module -> the package's modules it imports (itself left out)."""
    files = module_files(src)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                found = [t for t in _imported(node, module, is_package) if t in files]
                if isinstance(node, ast.ImportFrom) and len(found) == len(node.names) + 1:
                    found.pop(0)  # every name is a submodule: the package's own names unused
                targets.update(found)
        targets.discard(module)
        graph[module] = targets
    return graph


def unit_of(module: str) -> str:
    """`unerring.voting.step` -> `unerring.voting`; `unerring.graph` -> itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between units; the package's own `__init__` (the facade) is left out."""
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module == PACKAGE:
            continue
        unit = unit_of(module)
        arrows = out.setdefault(unit, set())
        arrows.update(unit_of(t) for t in targets if t != PACKAGE and unit_of(t) != unit)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def contract_layers(pyproject: Path = ROOT / "pyproject.toml") -> list[list[str]]:
    """The layers contract's layers, outermost first, each a list of sibling units."""
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["importlinter"]
    (layers,) = (c["layers"] for c in config["contracts"] if c["type"] == "layers")
    return [[u.strip() for u in layer.split("|")] for layer in layers]


def summary(unit: str, src: Path = SRC) -> str:
    """The first sentence of the unit's docstring."""
    files = module_files(src)
    doc = ast.get_docstring(ast.parse(files[unit].read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".")


def drawing(src: Path = SRC) -> str:
    """The layers, outermost first, each unit with what it holds and the units it imports.

    Every arrow points down the page: a unit imports only units in layers below its own.
    """
    arrows = unit_graph(import_graph(src))
    layers = contract_layers()
    depth = {unit: i for i, layer in enumerate(layers) for unit in layer}
    short = {unit: unit.removeprefix(f"{PACKAGE}.") for unit in arrows}
    width = max(len(s) for s in short.values())
    indent = " " * (width + 4)
    lines = []
    for i, layer in enumerate(layers):
        lines.append(f"── {i + 1} " + "─" * (WIDTH - 4 - len(str(i + 1))))
        for unit in layer:
            head = f"  {short[unit]:<{width}}  {summary(unit, src)}"
            lines += textwrap.wrap(head, WIDTH, subsequent_indent=indent)
            below = sorted(arrows[unit], key=lambda u: (depth.get(u, -1), u))
            if below:
                to = "──▶ " + ", ".join(short[u] for u in below)
                lines += textwrap.wrap(
                    to, WIDTH, initial_indent=indent, subsequent_indent=indent + "    "
                )
    return "\n".join(lines)


def block(src: Path = SRC) -> str:
    return f"{BEGIN}\n```text\n{drawing(src)}\n```\n{END}"


def written_block(doc: Path = DOC) -> str:
    text = doc.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        text = DOC.read_text(encoding="utf-8")
        DOC.write_text(text.replace(written_block(), block()), encoding="utf-8")
    elif argv:
        print(__doc__)
        return 2
    else:
        print(drawing())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
