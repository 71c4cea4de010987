"""Write every setting of facegan/config.py where it is shown: docs/settings.md, and the lines of gan_new.ipynb's
parameters cell that set them (the rest of the notebook, edited in Jupyter, is left as it is).

    python tools/settings.py          # after adding or changing a setting in facegan/config.py
    python tools/settings.py --check  # exit 1 if either is out of date (the tests check the same)
"""

import argparse
import pathlib
import sys

import nbformat

from facegan import config, settings_text

ROOT = pathlib.Path(__file__).resolve().parents[1]

SETTINGS_DOC = ROOT / "docs" / "settings.md"
NOTEBOOK = ROOT / "gan_new.ipynb"
HEADER = ("# Settings\n\nEvery setting of a training run, by group: a field of its group in `facegan/config.py` "
          "(`Config(name=value)` takes any of them by name), a line of `gan_new.ipynb`'s parameters cell (`papermill "
          "-p name value`), a flag of `experiments/bench.py`, and a key of its group in a run's `config.json`. "
          "Written by `python tools/settings.py` from `facegan/config.py`; the tests fail when they drift.\n\n")


def settings_document() -> str:
    return HEADER + settings_text.settings_table()


def parameters_cell(notebook) -> dict:
    return next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))


def with_settings(source: str) -> str:
    """The cell's source with its setting lines replaced by settings_text.parameters_cell(): lines before the first
    setting and after the last (their comment lines included) are kept."""
    names = set(config.GROUP_OF)
    lines = source.splitlines()
    setting_lines = [index for index, line in enumerate(lines) if line.split(" = ")[0] in names]
    if not setting_lines:
        return "\n".join(lines + settings_text.parameters_cell())
    end = setting_lines[-1] + 1
    while end < len(lines) and lines[end].startswith("#   "):  # the last setting's wrapped help
        end += 1
    return "\n".join(lines[:setting_lines[0]] + settings_text.parameters_cell() + lines[end:])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if anything is out of date")
    arguments = parser.parse_args()
    notebook = nbformat.read(str(NOTEBOOK), as_version=4)
    cell = parameters_cell(notebook)
    stale = [path for path, fresh in ((SETTINGS_DOC, SETTINGS_DOC.is_file() and
                                       SETTINGS_DOC.read_text() == settings_document()),
                                      (NOTEBOOK, cell.source == with_settings(cell.source))) if not fresh]
    if arguments.check:
        print("\n".join(f"out of date: {path}" for path in stale) or "up to date")
        sys.exit(1 if stale else 0)
    SETTINGS_DOC.write_text(settings_document())
    cell.source = with_settings(cell.source)
    nbformat.write(notebook, str(NOTEBOOK))


if __name__ == "__main__":
    main()
