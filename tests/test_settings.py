"""One source for every setting: Config's fields and help make the notebook's parameters cell, docs/settings.md
and the command lines' flags; these tests fail when any of them drifts. And the notebooks are committed clean."""

import importlib.util
import json

import pytest

from experiments import bench
from facegan.config import GROUP_OF, Config, fields
from facegan.settings_text import FIRST_SETTINGS, config_from_arguments
from conftest import ROOT

spec = importlib.util.spec_from_file_location("settings_tool", ROOT / "tools" / "settings.py")
settings_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(settings_tool)


def notebook_cell(name: str, tag: str = "parameters") -> str:
    notebook = json.loads((ROOT / name).read_text())
    return "".join(next(cell for cell in notebook["cells"] if tag in cell["metadata"].get("tags", []))["source"])


def test_each_setting_belongs_to_one_group_and_the_groups_round_trip():
    assert len(GROUP_OF) == len(list(fields()))  # no name in two groups
    config = Config(z_dim=8, steps=5, diff_augment=["cutout"], checkpoint_dir="elsewhere")
    assert (config.networks.z_dim, config.training.steps, config.outputs.checkpoint_dir) == (8, 5, "elsewhere")
    assert Config.from_dict(config.to_dict()) == config == Config(**config.settings())
    assert Config.from_dict(config.settings()) == config  # a flat config.json of an older version
    with pytest.raises(ValueError, match="unknown settings"):
        Config(z_dims=8)


def test_the_notebook_parameters_cell_is_made_from_the_settings_and_sets_each_to_its_default():
    source = notebook_cell("gan_new.ipynb")
    assert source == settings_tool.with_settings(source), "run python tools/settings.py"
    values = {}
    exec(source, {}, values)
    assert Config.from_dict(values) == Config()
    assert set(values) - set(GROUP_OF) == {"evaluation_samples"} and set(values) & set(GROUP_OF) == set(FIRST_SETTINGS)
    assert len(source.splitlines()) <= 25  # the first screen, not a wall of 40 settings
    values["kernel_size"] = 5  # any other setting, added by name (or by papermill -p), reaches the Config
    assert Config.from_dict(values).networks.kernel_size == 5


def test_the_settings_table_in_docs_is_made_from_the_settings():
    document = (ROOT / "docs" / "settings.md").read_text()
    assert document == settings_tool.settings_document(), "run python tools/settings.py"
    for group, field in fields():
        assert f"| `{field.name}` |" in document and f"## {group}" in document


def test_the_settings_tool_rewrites_only_the_settings_lines_of_the_cell():
    drifted = "# parameters\nsteps = 7  # an old help\n#   wrapped\nfresh = True  # old\nevaluation_samples = 5  # mine"
    fresh = settings_tool.with_settings(drifted)
    assert fresh.startswith("# parameters\n") and fresh.endswith("\nevaluation_samples = 5  # mine")
    assert "steps = 7" not in fresh and "steps = 20000  # train until this step" in fresh
    assert fresh.count("\nfresh = False  # ") == 1 and settings_tool.with_settings(fresh) == fresh


def test_every_setting_is_a_flag_of_bench_with_the_same_default_and_help():
    parser = bench.make_parser()
    flags = {action.dest: action for action in parser._actions}
    for _, field in fields():
        default = parser.get_default(field.name)
        assert default == field.default or field.name == "image_path", field.name  # bench reads the sample
        assert field.metadata["help"] in flags[field.name].help.replace("%%", "%")
    arguments = parser.parse_args(["--diff-augment", "color,cutout", "--jit-compile", "true", "--resident-data",
                                   "none", "--precision", "auto", "--kernel-size", "5", "--reuse-fakes", "off",
                                   "--partition", "train", "--ema-decay", "0", "--extra-averages", "20000,200000"])
    config = config_from_arguments(arguments)
    settings = config.settings()
    assert [settings[name] for name in ("diff_augment", "jit_compile", "resident_data", "precision", "kernel_size",
                                        "reuse_fakes", "partition", "ema_decay", "extra_averages")] == [
        ["color", "cutout"], True, None, "auto", 5, False, "train", 0.0, [20000, 200000]]
    with pytest.raises(SystemExit):
        parser.parse_args(["--flip-faces", "maybe"])


@pytest.mark.parametrize("name", ["gan_new.ipynb", "interpolate.ipynb"])
def test_notebooks_are_committed_without_outputs(name):
    notebook = json.loads((ROOT / name).read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{name}: clear the outputs"
