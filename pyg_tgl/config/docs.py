r"""The options table of ``docs/options.md``, generated from the schema.

.. code-block:: bash

    python -m pyg_tgl.config.docs > docs/options.md

``tests/test_config_schema.py`` fails when the file in the repository is not what this prints.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any, Iterator, List, Optional

from pyg_tgl.config.data import DATASETS, DataCommon
from pyg_tgl.config.fields import default_of, expected_text, hints, is_section
from pyg_tgl.config.schema import KINDS, RunConfig

HEADER = """# Options

Every option of `python -m pyg_tgl.run` (and of `pyg_tgl.config.compose`), generated from the
schema in `pyg_tgl/config/` by `python -m pyg_tgl.config.docs > docs/options.md`; a test fails
when this file is stale. Set any of them on the command line as `section.option=value`
(`train.lr=0.001`); the groups of `conf/` (`model=`, `data=`, `features=`, `preset=`, ...) only
set values of these options. A value of the wrong type, a choice that is not listed or a value
out of range is refused with one line naming the option, and an unknown option with the closest
known one.
"""


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        import json
        return json.dumps(value).replace('"', "")
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def rows(cls: type, prefix: str, skip: Optional[type] = None,
         nested: bool = True) -> Iterator[str]:
    """One table row per option of ``cls`` (with ``nested``, its sections' too), those of
    ``skip`` (a base class documented elsewhere) left out."""
    types = hints(cls)
    skipped = {f.name for f in dataclasses.fields(skip)} if skip is not None else set()
    for f in dataclasses.fields(cls):
        if f.name in skipped and f.name != "name":
            continue
        path = f"{prefix}{f.name}"
        if is_section(f):
            if nested:
                yield from rows(types[f.name], path + ".")
            continue
        if cls is RunConfig and f.name in KINDS:
            continue
        accepts = expected_text(types[f.name], f.metadata)
        only_if = f.metadata.get("only_if")
        doc = f.metadata.get("doc", "")
        if only_if is not None:
            doc += f" (Checked when {only_if[0]} is {only_if[1]}.)"
        yield (f"| `{path}` | `{_cell(_yaml(default_of(f)))}` | {_cell(accepts)} | "
               f"{_cell(doc)} |")


def _table(cls: type, prefix: str, skip: Optional[type] = None,
           nested: bool = True) -> List[str]:
    return ["| option | default | accepts | meaning |", "|---|---|---|---|",
            *rows(cls, prefix, skip, nested), ""]


def document() -> str:
    """The whole of ``docs/options.md``."""
    out = [HEADER, "## Top level", ""]
    out += _table(RunConfig, "", nested=False)
    types = hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        if is_section(f):
            out += [f"## `{f.name}`", "", f.metadata.get("doc", ""), ""]
            out += _table(types[f.name], f"{f.name}.")
    for section, title in (("task", "Task (`task=link`, `task=node`)"),
                           ("schedule", "Batch schedule (`schedule=...`)"),
                           ("model", "Model (`model=...`, `tgl_config=...`)")):
        out += [f"## {title}", ""]
        for name, cls in KINDS[section].classes.items():
            out += [f"### {section}: {name}", "", " ".join((cls.__doc__ or "").split()), ""]
            out += _table(cls, f"{section}.")
    out += ["## Data (`data=...`)", "", "### Options every data set accepts", ""]
    out += _table(DataCommon, "data.")
    out += ["### Each data set's own options", ""]
    for name, cls in DATASETS.items():
        out += [f"#### data={name}", "", " ".join((cls.__doc__ or "").split()), ""]
        out += _table(cls, "data.", skip=DataCommon)
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    sys.stdout.write(document())


if __name__ == "__main__":
    main()
