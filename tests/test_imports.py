"""The project's modules import one way: data ← devices ← networks ← saved runs ← generation ← metrics ← the
training loop ← command lines. Every import is read from the source (ast), those inside functions included."""

import ast

from conftest import ROOT

# Each module, and the layer it belongs to: a module may import only modules of lower layers.
LAYERS = {
    "onednn": -1,  # sets TensorFlow's kernels before TensorFlow loads: imported first by every other module
    "celeba_utils": 0, "devices": 0,
    "dcgan": 1,
    "runs": 2,
    "attributes": 1,
    "latent": 3,
    "metrics": 4, "editing": 4,
    "training": 5,
    "score": 6, "ablation": 6, "bench": 6,
    "time_to_fid": 7,
}


def project_imports(path, names=tuple(LAYERS)) -> set:
    """The modules among `names` (default: the project's) that a file imports, anywhere in it."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules & set(names)


def import_graph() -> dict:
    return {path.stem: project_imports(path) - {path.stem} for path in sorted(ROOT.glob("*.py"))}


def find_cycle(graph: dict):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(module, trail):
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                return trail[trail.index(imported):] + [imported] if imported in trail else [module, imported]
            if imported not in state:
                cycle = visit(imported, trail + [imported])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in graph:
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_every_project_module_has_a_layer():
    assert set(import_graph()) == set(LAYERS), "add a new module to LAYERS (and to the README's file map)"


def test_the_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None, f"import cycle: {' → '.join(find_cycle(import_graph()))}"


def test_each_module_imports_only_lower_layers():
    upward = [f"{module} (layer {LAYERS[module]}) imports {imported} (layer {LAYERS[imported]})"
              for module, imported_modules in import_graph().items() for imported in imported_modules
              if LAYERS[imported] >= LAYERS[module]]
    assert not upward, "; ".join(upward)


def test_the_cycle_finder_finds_a_cycle_hidden_inside_a_function(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def late():\n    import c\n")
    (tmp_path / "c.py").write_text("from a import thing\n")
    graph = {path.stem: project_imports(path, ("a", "b", "c")) for path in tmp_path.glob("*.py")}
    assert sorted(find_cycle(graph)[:-1]) == ["a", "b", "c"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
