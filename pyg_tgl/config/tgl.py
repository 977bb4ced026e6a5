r"""TGL's own model files (``config/TGN.yml`` of amazon-research/tgl) as pyg_tgl configurations.

A TGL file has four sections, ``sampling``, ``memory``, ``gnn`` and ``train``, each a list holding
one mapping (TGL's ``utils.parse_config`` reads element 0). pyg_tgl's ``model`` configuration
uses the same section and key names, so the conversion takes the mappings out of their lists
and moves TGL's ``train`` options to where pyg_tgl keeps them:

* ``epoch``, ``batch_size``, ``lr``, ``dropout``, ``att_dropout`` -> ``train.*``;
* ``reorder: N`` -> ``schedule: {name: random_chunk, reorder: N, variant: tgl}`` (TGL's
  ``train.py`` random chunk scheduling, ``docs/training.md``);
* ``all_on_gpu`` -> ``hardware.all_on_gpu`` (features kept on the compute device).

.. code-block:: bash

    python -m pyg_tgl.run tgl_config=path/to/TGN.yml data=wikipedia   # train from TGL's file
    python -m pyg_tgl.train.tgl_config path/to/TGN.yml                # print the conversion

The file's keys are checked against the schema's classes (:class:`~pyg_tgl.config.model.
SamplingConfig`, ``MemoryConfig``, ``GnnConfig``: TGL's key names), and what the file leaves out
takes the schema's defaults when the run reads its configuration
(:func:`~pyg_tgl.config.check.check_config`).

On the command line, ``tgl_config`` takes the place of the ``model`` group: the file's values
replace the model group's and the training defaults, while the preset (``preset=quick``: 5
epochs) and every option given on the command line still win over the file.

A key that neither TGL nor pyg_tgl knows is an error naming the file, the section and the
closest known key, since a misspelt option would otherwise be ignored silently.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

import yaml
from omegaconf import DictConfig, OmegaConf

from pyg_tgl.config.errors import ConfigError
from pyg_tgl.config.model import GnnConfig, MemoryConfig, SamplingConfig

#: The model sections of a TGL file and their schema classes (the same key names).
MODEL_SECTIONS = {"sampling": SamplingConfig, "memory": MemoryConfig, "gnn": GnnConfig}
#: TGL's ``train`` keys that are pyg_tgl's ``train.*`` options of the same name.
TRAIN_KEYS = ("epoch", "batch_size", "lr", "dropout", "att_dropout")


def section_keys(name: str) -> List[str]:
    """The keys of model section ``name``: its schema class's fields."""
    return [f.name for f in dataclasses.fields(MODEL_SECTIONS[name])]


def _section(raw: Dict[str, Any], name: str, source: str) -> Dict[str, Any]:
    value = raw.get(name)
    if value is None:
        return {}
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], dict):
            raise ConfigError(f"{source}: section {name!r} must be a list of one mapping "
                              f"(TGL's format), got {len(value)} entries")
        value = value[0]
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: section {name!r} must be a mapping of options, got "
                          f"{type(value).__name__}")
    return dict(value)


def _check_keys(options: Dict[str, Any], known: Iterable[str], where: str) -> None:
    known = list(known)
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown option {key!r}{hint}; known: {known}")


def read_tgl_config(path: Union[str, Path]) -> Dict[str, Any]:
    r"""Reads one of TGL's model files.

    Args:
        path (str or Path): the ``.yml`` file (TGL's format; pyg_tgl's one-mapping-per-section
            form is accepted too).

    Returns:
        dict: ``model`` (``name`` = the file's stem in lower case, ``sampling``, ``memory``,
        ``gnn``), ``train`` (the TGL options of :data:`TRAIN_KEYS` present in the file),
        ``schedule`` (``None`` unless the file sets ``reorder``) and ``hardware``
        (``all_on_gpu`` when the file sets it, else empty).

    Raises:
        ConfigError: a missing or unreadable file, a section that is not one mapping, an
            unknown section or key (each message names the file).
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError(f"tgl_config={source!r}: no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected the sections sampling, memory, gnn and train")
    sections = (*MODEL_SECTIONS, "train")
    _check_keys(raw, sections, f"{source}: top level")

    model: Dict[str, Any] = {"name": path.stem.lower()}
    for name in MODEL_SECTIONS:
        options = _section(raw, name, source)
        _check_keys(options, section_keys(name), f"{source}: {name}")
        model[name] = options
    train = _section(raw, "train", source)
    _check_keys(train, (*TRAIN_KEYS, "reorder", "all_on_gpu"), f"{source}: train")
    reorder = train.pop("reorder", None)
    hardware = {"all_on_gpu": train.pop("all_on_gpu")} if "all_on_gpu" in train else {}
    schedule = None
    if reorder is not None:
        schedule = {"name": "random_chunk", "reorder": reorder, "variant": "tgl"}
    return {"model": model, "train": train, "schedule": schedule, "hardware": hardware}


def _leaf_keys(node: Any, prefix: str = "") -> List[str]:
    """Dotted paths of the leaves of a nested mapping (``{"train": {"epoch": 5}}`` ->
    ``["train.epoch"]``)."""
    if not isinstance(node, dict):
        return [prefix]
    return [leaf for key, value in node.items()
            for leaf in _leaf_keys(value, f"{prefix}.{key}" if prefix else str(key))]


def apply_tgl_config(cfg: DictConfig, path: Union[str, Path],
                     keep: Iterable[str] = ()) -> DictConfig:
    r"""``cfg`` with its model, training options, ``hardware.all_on_gpu`` and (when the file
    sets ``reorder``) schedule taken from a TGL file.

    Args:
        cfg (DictConfig): a composed pyg_tgl configuration (not modified).
        path (str or Path): TGL's model file (:func:`read_tgl_config`).
        keep (iterable of str): dotted options (``train.epoch``) or whole sections
            (``schedule``) that keep ``cfg``'s value over the file's: what the command line
            and the preset set.

    Returns:
        DictConfig: a new configuration.
    """
    tgl = read_tgl_config(path)
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    out.model = tgl["model"]
    out.train = OmegaConf.merge(out.train, tgl["train"])
    out.hardware = OmegaConf.merge(out.get("hardware", {}), tgl["hardware"])
    if tgl["schedule"] is not None:
        out.schedule = tgl["schedule"]
    missing = object()
    for key in keep:
        value = OmegaConf.select(cfg, key, default=missing)
        if value is not missing:
            OmegaConf.update(out, key, copy.deepcopy(value), merge=False, force_add=True)
    OmegaConf.set_struct(out, OmegaConf.is_struct(cfg))
    return out


def command_line_keep(overrides: Iterable[str], preset: Optional[Dict[str, Any]]) -> List[str]:
    r"""The options that win over a TGL file: those of the command line's ``overrides``
    (Hydra's ``key=value`` strings; a group choice such as ``schedule=random_chunk`` keeps the
    whole section) and every option the ``preset`` file sets.

    Raises:
        ConfigError: ``model=...`` given with ``tgl_config`` (both choose the model).
    """
    keep: List[str] = []
    for override in overrides:
        key, sep, _ = override.partition("=")
        key = key.lstrip("+~")
        if not sep:
            continue
        if key == "model":
            raise ConfigError("tgl_config and model= both choose the model; give one of them")
        keep.append(key)
    if preset:
        keep += _leaf_keys(preset)
    return keep


class _Dumper(yaml.SafeDumper):
    """Block mappings, one-line lists (``neighbor: [10, 10]``), as pyg_tgl's own files."""


_Dumper.add_representer(list, lambda dumper, value: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", value, flow_style=True))


def to_yaml(path: Union[str, Path]) -> str:
    """A TGL file as a pyg_tgl model-group file (save it as ``conf/model/<name>.yaml``)."""
    tgl = read_tgl_config(path)
    body = {"model": tgl["model"], "train": tgl["train"]}
    for section in ("schedule", "hardware"):
        if tgl[section]:
            body[section] = tgl[section]
    return (f"# @package _global_\n# Converted from TGL's {Path(path).name} "
            f"(python -m pyg_tgl.train.tgl_config).\n"
            + yaml.dump(body, Dumper=_Dumper, sort_keys=False, default_flow_style=False))


__all__ = ["MODEL_SECTIONS", "TRAIN_KEYS", "section_keys", "read_tgl_config",
           "apply_tgl_config", "command_line_keep", "to_yaml"]
