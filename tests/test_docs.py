"""The docs name what exists: every backticked project name (`runs.load_gan`, `facegan.metrics.maths`,
`ablation.walk_ladder`), every backticked project file (`facegan/augment.py`, `docs/speed/bench/…json`) and every
relative link in README.md and docs/ resolves; the checker itself is shown to fail on a name broken on purpose."""

import importlib
import os
import re

from conftest import ROOT

DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
# the project's modules by the short names the docs use for them (`runs.load_gan`, `bench.main`)
PACKAGED = ("facegan", "facegan.metrics", "experiments")
FILE_ENDINGS = (".py", ".md", ".json", ".ipynb", ".png", ".gif", ".txt", ".toml", ".ini", ".jsonl", ".csv")
PROJECT_FOLDERS = ("facegan/", "experiments/", "tests/", "tools/", "docs/", ".ci/")
NAME = re.compile(r"`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\([^`]*\))?`")
FILE = re.compile(r"`([\w./-]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def project_modules() -> dict:
    """short name or dotted name → module name, for every module of the project."""
    modules = {}
    for path in [*ROOT.glob("*.py"), *ROOT.glob("facegan/**/*.py"), *ROOT.glob("experiments/*.py")]:
        if ".venv" in path.parts or path.name == "__init__.py":
            continue
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[dotted] = dotted
        modules.setdefault(dotted.rsplit(".", 1)[-1], dotted)
    for package in PACKAGED:
        modules[package] = package
    return modules


def file_names(root) -> set:
    """The names of the project's files, its virtual environment and git's folder left out."""
    names = set()
    for _, folders, files in os.walk(root):
        folders[:] = [folder for folder in folders if folder not in (".venv", ".git")]
        names.update(files)
    return names


def resolve(name: str, modules: dict) -> bool:
    """Whether a dotted name is a project module, or an attribute (a class's too) of one; names that do not start
    with a project module (np.random, tf.data) are not the project's and pass."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        if head in modules:
            target = importlib.import_module(modules[head])
            for part in parts[cut:]:
                if hasattr(target, part):
                    target = getattr(target, part)
                elif isinstance(target, type) and part in getattr(target, "__dataclass_fields__", {}):
                    return True  # a dataclass field (Config.networks …)
                else:
                    return False
            return True
    return True


def problems_in(path, root=ROOT) -> list:
    """What a document names that does not exist, one line each."""
    text, modules, found = path.read_text(), project_modules(), []
    label = path.relative_to(root) if path.is_relative_to(root) else path.name
    for name in sorted(set(NAME.findall(text))):
        if name.endswith(FILE_ENDINGS):  # a file's name, checked below
            continue
        if not resolve(name, modules):
            found.append(f"{label}: `{name}` does not exist")
    project_files = file_names(root)
    for token in sorted(set(FILE.findall(text))):
        if not token.endswith(FILE_ENDINGS) or "*" in token:
            continue
        if token.startswith(PROJECT_FOLDERS):  # a path in the project: it must be there
            if not ((root / token).exists() or (path.parent / token).exists()):
                found.append(f"{label}: file `{token}` does not exist")
        elif "/" not in token and token.endswith((".py", ".ipynb")) and token not in project_files:
            found.append(f"{label}: file `{token}` does not exist")  # a module or notebook named alone
    for target in sorted(set(LINK.findall(text))):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#")[0]).exists():
            found.append(f"{label}: link ({target}) does not resolve")
    return found


def test_every_name_file_and_link_in_the_docs_exists():
    problems = [problem for path in DOCUMENTS for problem in problems_in(path)]
    assert not problems, "\n".join(problems)


def test_the_checker_fails_on_names_files_and_links_broken_on_purpose(tmp_path):
    document = tmp_path / "broken.md"
    document.write_text("Load with `runs.load_gan`, draw with `drawing.draw_faces(generator, z)`, and not with\n"
                        "`runs.load_gun`, `facegan.metrics.mathz` or `ablation.seed_spread`;\n"
                        "see `facegan/nothing.py`, [the speed page](speed.md) and [a missing page](nowhere.md#top);\n"
                        "`np.random.default_rng`.\n")
    (tmp_path / "speed.md").write_text("here\n")
    problems = problems_in(document, root=ROOT)
    assert problems == ["broken.md: `ablation.seed_spread` does not exist",
                        "broken.md: `facegan.metrics.mathz` does not exist",
                        "broken.md: `runs.load_gun` does not exist",
                        "broken.md: file `facegan/nothing.py` does not exist",
                        "broken.md: link (nowhere.md#top) does not resolve"], problems
