"""The project's modules import one way: data ← devices ← networks ← saved runs ← drawing ← metrics and editing ←
the training loop ← the experiments' records and recipes ← command lines and experiments (no experiment imports
another). Every import is read from the source (ast), those inside
functions included."""

import ast

from conftest import ROOT

# Each module, and the layer it belongs to: a module may import only modules of lower layers.
LAYERS = {
    # the package's __init__ sets what TensorFlow reads when it loads, before TensorFlow loads
    "facegan": -1, "facegan.onednn": -2, "facegan.logs": -2,
    "facegan.alignment": 0, "facegan.images": 0,
    "celeba_utils": 1, "facegan.devices": 1,
    "facegan.config": 2, "facegan.noise": 2, "facegan.convolutions": 2,
    "facegan.networks": 3, "facegan.augment": 3, "facegan.settings_text": 3,
    "facegan.gan": 4,
    "facegan.runs": 5,
    "facegan.attributes": 3,
    "facegan.drawing": 6,
    "facegan.latent": 7,
    "facegan.metrics": -1, "experiments": -1,  # packages: their __init__ holds a docstring only
    "facegan.metrics.maths": 2, "facegan.metrics.inception": 3, "facegan.metrics.registry": 4,
    "facegan.metrics.coverage": 4, "facegan.metrics.discriminator": 4,
    "facegan.metrics.sampler": 8, "facegan.editing": 8, "facegan.projection": 8, "facegan.stopping": 8,
    "facegan.explorer": 9, "facegan.callbacks": 9,
    "facegan.training": 10,
    "experiments.records": 11,
    "experiments.recipes": 12, "experiments.speed": 12, "experiments.faces": 12,
    "score": 13, "directions": 13, "experiments.ablation": 13, "experiments.bench": 13,
    "experiments.editing": 13, "experiments.data_size": 13, "experiments.time_to_fid": 13,
    "experiments.long_run": 13, "experiments.profile": 13, "experiments.determinism": 13,
    "experiments.brightness": 13,
    "experiments.long_recipe": 14,
}
PACKAGES = ("facegan", "facegan.metrics", "experiments")  # importing a module imports its package's __init__ first
SOURCES = ("*.py", "facegan/**/*.py", "experiments/*.py")


def module_name(path) -> str:
    """The dotted name a file is imported by: facegan/metrics/maths.py → facegan.metrics.maths."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path, names=None) -> set:
    """The modules among `names` (default: the project's) that a file imports, anywhere in it: `from facegan
    import runs` imports facegan.runs (and the package facegan itself)."""
    names = set(LAYERS if names is None else names)
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    packages = {module.rsplit(".", 1)[0] for module in modules if "." in module}
    return (modules | packages) & names


def project_files() -> list:
    return sorted({path for pattern in SOURCES for path in ROOT.glob(pattern) if ".venv" not in path.parts})


def import_graph() -> dict:
    graph = {}
    for path in project_files():
        name = module_name(path)
        graph[name] = project_imports(path) - {name}
    return graph


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
    assert set(import_graph()) == set(LAYERS), "add a new module to LAYERS (and to docs/code.md)"


def test_the_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None, f"import cycle: {' → '.join(find_cycle(import_graph()))}"


def test_each_module_imports_only_lower_layers():
    upward = [f"{module} (layer {LAYERS[module]}) imports {imported} (layer {LAYERS[imported]})"
              for module, imported_modules in import_graph().items() for imported in imported_modules
              if LAYERS[imported] >= LAYERS[module] and imported not in PACKAGES]
    assert not upward, "; ".join(upward)


def test_a_from_import_of_a_module_counts_as_importing_it(tmp_path):
    (tmp_path / "user.py").write_text("from facegan import runs\nfrom facegan.metrics import maths\n")
    found = project_imports(tmp_path / "user.py", ("facegan", "facegan.runs", "facegan.metrics",
                                                   "facegan.metrics.maths", "facegan.training"))
    assert found == {"facegan", "facegan.runs", "facegan.metrics", "facegan.metrics.maths"}


def test_the_cycle_finder_finds_a_cycle_hidden_inside_a_function(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def late():\n    import c\n")
    (tmp_path / "c.py").write_text("from a import thing\n")
    graph = {path.stem: project_imports(path, ("a", "b", "c")) for path in tmp_path.glob("*.py")}
    assert sorted(find_cycle(graph)[:-1]) == ["a", "b", "c"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_nothing_edits_sys_path():
    files = project_files() + sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
    edits = [str(path.relative_to(ROOT)) for path in files
             if "sys.path" in path.read_text() and path.name != "test_imports.py"]
    assert not edits, f"these edit sys.path; import the installed package instead (pip install -e .): {edits}"


def test_project_modules_are_imported_by_their_package_names():
    """`import metrics` inside a function would fail only when that function runs: every import names the package."""
    short = {name.rsplit(".", 1)[-1] for name in LAYERS if "." in name}
    bare = []
    for path in project_files() + sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "tools").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            bare += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names if name.split(".")[0] in short]
    assert not bare, f"import these from their package (facegan. or experiments.): {bare}"


def test_the_metrics_maths_features_registry_settings_and_records_import_no_tensorflow():
    """What reads settings or records, or computes metrics from arrays, starts without TensorFlow's seconds of
    loading (a command line's --help, the peer's process in time_to_fid)."""
    import subprocess
    import sys

    script = ("import sys; import facegan.metrics.maths, facegan.metrics.inception, facegan.metrics.registry; "
              "import facegan.config, facegan.settings_text, experiments.records; "
              "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_no_function_is_longer_than_60_lines():
    """Each function readable at a glance: a longer one is split into named steps."""
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in project_files() + sorted((ROOT / "tools").glob("*.py"))
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60]
    assert not long, "split these: " + "; ".join(long)
