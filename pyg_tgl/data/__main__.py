"""Command line for the data sets.

``python -m pyg_tgl.data info data=<name> [data.<option>=<value> ...]`` loads a data set with the
configuration ``conf/data/<name>.yaml`` (Hydra-style overrides) and prints its summary: nodes,
events, time span, feature dimensions, label counts and split sizes.

``python -m pyg_tgl.data list`` prints the registered names.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

USAGE = ("usage: python -m pyg_tgl.data info data=<name> [data.<option>=<value> ...]\n"
         "       python -m pyg_tgl.data list")


def conf_dir() -> Optional[Path]:
    """The ``conf/data`` folder: inside the installed package, or at the repository root."""
    here = Path(__file__).resolve()
    for cand in (here.parents[1] / "conf" / "data", here.parents[2] / "conf" / "data"):
        if cand.is_dir():
            return cand
    return None


def data_config(name: str, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """The ``data`` configuration of ``name`` (its YAML, else ``{name: name}``) with
    ``data.key=value`` overrides applied (values are parsed as YAML: ``null``, numbers, lists),
    read through the schema: every option, checked.

    Raises:
        ConfigError: an unknown option or a bad value (one line).
    """
    from omegaconf import OmegaConf

    from pyg_tgl.config.check import check_section

    folder = conf_dir()
    path = folder / f"{name}.yaml" if folder is not None else None
    cfg = OmegaConf.load(path) if path is not None and path.is_file() else OmegaConf.create({"name": name})
    dotlist = []
    for o in overrides:
        key, sep, value = o.partition("=")
        key = key.lstrip("+")
        if not sep or not key.startswith("data."):
            raise SystemExit(f"bad override {o!r}: expected data.<option>=<value>\n{USAGE}")
        dotlist.append(f"{key[len('data.'):]}={value}")
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
    options = OmegaConf.to_container(cfg, resolve=True)
    options.pop("defaults", None)  # the YAML's pick of its schema class
    return check_section("data", options)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    from .datasets import list_datasets, load_dataset

    if cmd == "list":
        for k, v in list_datasets().items():
            print(f"{k:18s} {v}")
        return 0
    if cmd != "info":
        print(f"unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
        return 2
    names = [a for a in rest if a.startswith("data=")]
    if len(names) != 1:
        print(f"info needs exactly one data=<name>\n{USAGE}", file=sys.stderr)
        return 2
    name = names[0][len("data="):]
    overrides = [a for a in rest if not a.startswith("data=")]
    try:
        ds = load_dataset(**data_config(name, overrides))
    except (FileNotFoundError, ValueError, TypeError, RuntimeError) as e:
        # Bad input or a missing file: the message says what to do; a traceback would not help.
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(ds.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
