"""onednn: TensorFlow's oneDNN kernels on by default in a fresh interpreter, a user's choice kept, the machine line
and precision "auto" following what TensorFlow really runs, and a clear word when TensorFlow came first."""

import ast
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from test_imports import LAYERS

PROBE = """
import json, os, warnings
warnings.simplefilter("always")
{before}
with warnings.catch_warnings(record=True) as caught:
    import devices
import onednn
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
    """The line of each module's first import of onednn, and of tensorflow or keras (anywhere in the file)."""
    lines = {}
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            key = "onednn" if name == "onednn" else "tensorflow" if name.split(".")[0] in ("tensorflow", "keras") \
                else None
            if key:
                lines[key] = min(lines.get(key, node.lineno), node.lineno)
    return lines


def test_every_module_imports_onednn_before_tensorflow():
    late = []
    for name in set(LAYERS) - {"onednn"}:
        lines = first_import_lines(ROOT / f"{name}.py")
        if "onednn" not in lines or lines["onednn"] > lines.get("tensorflow", float("inf")):
            late.append(name)
    assert not late, f"import onednn first in: {', '.join(sorted(late))}"


def test_the_order_check_catches_tensorflow_first(tmp_path):
    (tmp_path / "late.py").write_text("import keras\nimport onednn\n")
    (tmp_path / "inside.py").write_text("import onednn\n\ndef f():\n    import tensorflow as tf\n")
    assert first_import_lines(tmp_path / "late.py") == {"tensorflow": 1, "onednn": 2}
    assert first_import_lines(tmp_path / "inside.py") == {"onednn": 1, "tensorflow": 4}
