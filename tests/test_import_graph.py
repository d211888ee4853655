"""The import graph of src/unerring, read with `ast` (tools/layers.py): every import counts,
at module level, in a function or under `TYPE_CHECKING`. `make lint` checks the layers with
import-linter ([tool.importlinter] in pyproject.toml); these check the graph itself."""

from __future__ import annotations

from tools import layers


def test_no_module_imports_another_in_a_cycle() -> None:
    graph = layers.import_graph()
    assert "unerring.voting.step" in graph and "unerring.cli.main" in graph
    assert layers.cycles(graph) == []


def test_no_package_imports_another_in_a_cycle() -> None:
    assert layers.cycles(layers.unit_graph(layers.import_graph())) == []


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert layers.cycles(graph) == [["a", "b", "c"]]


def test_every_package_and_module_has_a_layer_and_arrows_point_down() -> None:
    units = layers.unit_graph(layers.import_graph())
    stack = layers.contract_layers()
    depth = {unit: i for i, layer in enumerate(stack) for unit in layer}
    assert sorted(units) == sorted(depth), "give every package a layer in [tool.importlinter]"
    upward = [(a, b) for a, arrows in units.items() for b in arrows if depth[b] <= depth[a]]
    assert upward == []


def test_only_the_cli_imports_the_tasks_and_they_use_the_process_api_alone() -> None:
    units = layers.unit_graph(layers.import_graph())
    importers = sorted(u for u, arrows in units.items() if "unerring.tasks" in arrows)
    assert importers == ["unerring.cli"]
    allowed = {"process", "graph", "core", "keys", "errors", "defaults"}
    assert units["unerring.tasks"] <= {f"unerring.{name}" for name in allowed}


def test_nothing_inside_imports_the_package_facade() -> None:
    """`unerring/__init__` resolves public names on first use; inside, import the module."""
    graph = layers.import_graph()
    assert [m for m, targets in graph.items() if "unerring" in targets] == []


def test_the_drawing_in_docs_is_the_one_the_code_draws() -> None:
    assert layers.written_block() == layers.block(), "run: python -m tools.layers --write"


def test_the_readme_names_the_layers_of_the_contract() -> None:
    text = (layers.ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Layers\n", 1)[1].split("\n\n")[1]
    named = [
        [u.strip() for u in layer.split("|")] for layer in " ".join(section.split()).split(">")
    ]
    contract = [[u.removeprefix("unerring.") for u in layer] for layer in layers.contract_layers()]
    assert named == [layer for layer in contract if layer != ["__main__"]]
