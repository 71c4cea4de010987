"""The settings written out for people: docs/settings.md's tables, the lines of gan_new.ipynb's parameters cell, and
the command lines' flags, all made from the groups of facegan/config.py, where each setting's help is written once.
"""

import dataclasses
import textwrap
from typing import List, Mapping, Optional, Sequence

from facegan.config import GROUP_OF, GROUPS, Config, fields


def settings_table() -> str:
    """docs/settings.md: every setting, its default and its help, as one Markdown table per group."""
    lines = []
    for group, kind in GROUPS.items():
        lines += [f"## {group}", "", " ".join(kind.__doc__.split()), "", "| setting | default | meaning |",
                  "| --- | --- | --- |"]
        for field in dataclasses.fields(kind):
            default, help_text = (text.replace("|", "\\|") for text in (_literal(field.default),
                                                                        field.metadata["help"]))
            lines.append(f"| `{field.name}` | `{default}` | {help_text} |")
        lines.append("")
    return "\n".join(lines)


def _literal(value) -> str:
    """A default as Python source: lists for sequences, as a notebook or papermill writes them."""
    return repr(list(value)) if isinstance(value, (tuple, list)) else repr(value)


# The settings gan_new.ipynb's parameters cell shows: those a person changes first. Every other setting can be
# added to the cell by name, or passed to papermill with -p (the notebook reads every setting by name).
FIRST_SETTINGS = ("image_path", "steps", "precision", "sample_every", "checkpoint_every", "metrics_every", "metrics",
                  "fresh")


def parameters_cell(width: int = 116, names: Sequence[str] = FIRST_SETTINGS) -> List[str]:
    """The lines of gan_new.ipynb's parameters cell that set the settings named: `name = default  # help`, the help
    wrapped onto comment lines below at `width` characters."""
    lines = []
    for _, field in sorted(((group, field) for group, field in fields() if field.name in names),
                           key=lambda pair: names.index(pair[1].name)):
        first = f"{field.name} = {_literal(field.default)}  # "
        wrapped = textwrap.wrap(field.metadata["help"], width - len(first))
        rest = textwrap.wrap(" ".join(wrapped[1:]), width - 4) if len(wrapped) > 1 else []
        lines += [first + wrapped[0]] + [f"#   {line}" for line in rest]
    return lines


def _argument_type(field):
    """How a command line spells a setting: None, true/false, a comma-separated list, or the field's type."""
    def parse(text: str):
        if field.type in (Sequence[str],):
            return [part for part in text.split(",") if part]
        if field.type in (Sequence[int],):
            return [int(part) for part in text.split(",") if part]
        if text.lower() in ("none", "auto") and field.default is None:
            return None
        if field.type in (bool, Optional[bool]):
            if text.lower() not in ("true", "false", "on", "off", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "on", "1")
        base = {Optional[str]: str}.get(field.type, field.type)
        return base(text)
    parse.__name__ = field.name
    return parse


def add_arguments(parser, names: Optional[Sequence[str]] = None, flags: Optional[Mapping[str, str]] = None):
    """A --flag for each setting named (default: every setting), with its default and help from the groups; `flags`
    spells some differently (e.g. {"metric_samples": "samples"}: --samples), the value still landing under the
    setting's name."""
    unknown = sorted(set(names or ()) - set(GROUP_OF))
    if unknown:
        raise ValueError(f"add_arguments: no settings named {unknown}")
    for _, field in fields():
        if names is None or field.name in names:
            flag = (flags or {}).get(field.name, field.name).replace("_", "-")
            help_text = f"{field.metadata['help']} (default: {_literal(field.default)})".replace("%", "%%")
            parser.add_argument(f"--{flag}", dest=field.name, type=_argument_type(field), default=field.default,
                                help=help_text)


def config_from_arguments(arguments, **overrides) -> Config:
    """The Config of the parsed flags that add_arguments made, with overrides."""
    values = {name: getattr(arguments, name) for name in GROUP_OF if hasattr(arguments, name)}
    return Config(**{**values, **overrides})
