"""onednn: TensorFlow's oneDNN kernels on by default in a fresh interpreter, a user's choice kept, the machine line
and precision "auto" following what TensorFlow really runs, and a clear word when TensorFlow came first."""

import ast
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from test_imports import project_files

PROBE = """
import json, os, warnings
warnings.simplefilter("always")
{before}
with warnings.catch_warnings(record=True) as caught:
    from facegan import devices
from facegan import onednn
print(json.dumps(dict(variable=os.environ.get("TF_ENABLE_ONEDNN_OPTS"), enabled=onednn.enabled(),
                      machine=devices.machine(), state=onednn.state(),
                      auto=devices.resolve_precision("auto", flags={{"avx2", "avx512f", "avx512_bf16"}}, gpus=[])[0],
                      warnings=[str(warning.message) for warning in caught])))
"""


def fresh_interpreter(before: str = "", **environ) -> dict:
    """Import the project in a new Python with `environ` (None: unset), after the code `before`; what it saw."""
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    env.update({key: value for key, value in environ.items() if value is not None})
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run([sys.executable, "-c", PROBE.format(before=before)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_the_project_turns_onednn_on_where_the_variable_is_unset():
    seen = fresh_interpreter()
    assert seen["variable"] == "1" and seen["enabled"] is True
    assert seen["machine"].endswith("oneDNN on") and seen["auto"] == "mixed_bfloat16"
    assert not seen["warnings"]


@pytest.mark.slow
def test_a_users_zero_is_kept_and_auto_precision_follows_it():
    seen = fresh_interpreter(TF_ENABLE_ONEDNN_OPTS="0")
    assert seen["variable"] == "0" and seen["enabled"] is False
    assert "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)" in seen["machine"]
    assert seen["auto"] == "float32"  # bfloat16 without oneDNN is emulated: several times slower than float32
    assert not seen["warnings"]


@pytest.mark.slow
def test_tensorflow_imported_first_with_onednn_off_is_told_once_with_the_fix():
    # what happens on an AVX2-only CPU when a notebook imported TensorFlow before the project: TensorFlow chose
    # (here it is made to choose "off" on any CPU), and it is too late to change
    before = ("os.environ['TF_ENABLE_ONEDNN_OPTS'] = '0'\nimport tensorflow\n"
              "del os.environ['TF_ENABLE_ONEDNN_OPTS']")
    seen = fresh_interpreter(before)
    assert seen["enabled"] is False and seen["variable"] is None  # nothing was changed behind the user's back
    assert len(seen["warnings"]) == 1 and "imported before this project" in seen["warnings"][0]
    assert "TF_ENABLE_ONEDNN_OPTS=1" in seen["warnings"][0]
    assert "imported before the project" in seen["machine"] and seen["auto"] == "float32"


def first_import_lines(path) -> dict:
    """The line of a file's first import of the project's package (facegan, or its oneDNN module), and of
    tensorflow or keras (anywhere in the file)."""
    lines = {}
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            top = name.split(".")[0]
            key = "project" if top == "facegan" else "tensorflow" if top in ("tensorflow", "keras") else None
            if key:
                lines[key] = min(lines.get(key, node.lineno), node.lineno)
    return lines


def test_the_package_sets_onednn_before_anything_else():
    """Python runs facegan/__init__.py before any of the package's modules, so its first import covers them all."""
    tree = ast.parse((ROOT / "facegan" / "__init__.py").read_text())
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert imports and isinstance(imports[0], ast.ImportFrom) and imports[0].module == "facegan" \
        and {alias.name for alias in imports[0].names} == {"logs", "onednn"} and len(imports) == 1


def test_tensorflows_logs_are_quieted_unless_the_user_chose_a_level():
    """What a user sees in a cell: TensorFlow's C++ log lines (I0000 …, E0000 "failed call to cuInit" …) while
    training sets up its devices and computes, none by default; with TF_CPP_MIN_LOG_LEVEL=0 chosen, the choice is
    kept and they show. (The two lines TensorFlow prints while it loads, before its logging starts, come before the
    marker and are not the package's to hide: facegan/logs.py.)"""
    script = ("import os, sys, facegan; import tensorflow as tf; from facegan import devices\n"
              "print('MARKER', file=sys.stderr, flush=True); devices.setup_devices()\n"
              "tf.reduce_sum(tf.ones((64, 64)) @ tf.ones((64, 64)))\n"
              "print('level', os.environ['TF_CPP_MIN_LOG_LEVEL'])")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}

    def logged_after_loading(environment):
        result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                                timeout=180)
        assert result.returncode == 0 and "MARKER" in result.stderr, result.stderr[-2000:]
        after = result.stderr.split("MARKER", 1)[1].splitlines()
        return result.stdout, [line for line in after if re.match(r"[IWE]\d{4} ", line)]

    printed, lines = logged_after_loading(env)
    assert not lines, lines
    printed, lines = logged_after_loading(dict(env, TF_CPP_MIN_LOG_LEVEL="0"))
    assert "level 0" in printed and lines  # the user's choice is kept, and the logs show


def test_every_file_outside_the_package_imports_it_before_tensorflow():
    """Command lines, experiments, tools and conftest.py (which pytest imports before any test)."""
    late = []
    for path in project_files() + [ROOT / "tests" / "conftest.py"] + sorted((ROOT / "tools").glob("*.py")):
        if "facegan" in path.relative_to(ROOT).parts:
            continue
        lines = first_import_lines(path)
        if "tensorflow" in lines and lines.get("project", float("inf")) > lines["tensorflow"]:
            late.append(str(path.relative_to(ROOT)))
    assert not late, f"import facegan before tensorflow or keras in: {', '.join(late)}"


def test_the_order_check_catches_tensorflow_first(tmp_path):
    (tmp_path / "late.py").write_text("import keras\nfrom facegan import runs\n")
    (tmp_path / "inside.py").write_text("import facegan\n\ndef f():\n    import tensorflow as tf\n")
    assert first_import_lines(tmp_path / "late.py") == {"tensorflow": 1, "project": 2}
    assert first_import_lines(tmp_path / "inside.py") == {"project": 1, "tensorflow": 4}
