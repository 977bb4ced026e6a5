r"""Checks of the command line's overrides before Hydra composes the run.

Hydra refuses an unknown key with advice that leads nowhere good (``Key 'epochs' is not in
struct ... To append to your config use +train.epochs=3``), and takes ``+train.epochs=3`` silently:
the run then trains the default number of epochs, with no word about the misspelling. Here every
override is checked against the options the chosen groups compose (plus the documented options
that have no YAML entry), with or without ``+``, and refused with the closest known option:

.. code-block:: text

    $ python -m pyg_tgl.run +train.epochs=3
    error: unknown option 'train.epochs' (did you mean 'train.epoch'?); ...

``+key=value`` for a key that exists is taken as ``key=value`` (older commands added options that
have since been given defaults, e.g. ``+data.time_shift=true``), and a documented option without
a YAML entry is set with or without ``+``.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

#: The configuration groups of ``conf/`` (``model=tgn`` picks ``conf/model/tgn.yaml``).
GROUPS = ("model", "data", "task", "schedule", "train", "eval", "hardware", "preset")

_MISSING = object()


def check_group_choices(argv: Sequence[str], conf: str) -> Optional[str]:
    """Returns a one-line error for a command-line group choice (``model=foo``, also inside a
    sweep list ``model=tgn,foo``) that has no ``conf/<group>/<choice>.yaml``, else ``None``.
    Sweep functions (``choice(...)``, ``glob(...)``) are left to Hydra."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or key not in GROUPS or "(" in value:
            continue
        allowed = sorted(p.stem for p in (Path(conf) / key).glob("*.yaml"))
        for choice in value.split(","):
            if choice and choice != "null" and choice not in allowed:
                return f"{key}={choice!r} is unknown; allowed values: {allowed}"
    return None


def _parse(argv: Sequence[str]) -> Optional[Tuple[Any, List[Any]]]:
    """Hydra's own reading of the command line: ``(flags, overrides)``, or ``None`` where Hydra
    should report the problem itself (a bad flag, an override it cannot parse)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    try:
        flags = get_args_parser().parse_args(list(argv))
    except SystemExit:
        return None
    try:
        return flags, OverridesParser.create().parse_overrides(flags.overrides)
    except HydraException:
        return None


def _choices(override: Any) -> List[str]:
    """A group override's choices: one, or every element of a simple sweep list."""
    value = override.value()
    if override.is_sweep_override():
        return [str(v) for v in getattr(value, "list", [])]
    return [str(value)]


def _group_combinations(groups: Dict[str, List[str]]) -> Iterator[List[str]]:
    """Group overrides whose compositions together contain every option the command line can
    reach: all groups at their first choice, then each further choice of one group at a time
    (not the whole product of a sweep)."""
    first = {g: c[0] for g, c in groups.items() if c}
    yield [f"{g}={c}" for g, c in first.items()]
    for group, choices in groups.items():
        for choice in choices[1:]:
            yield [f"{g}={choice if g == group else c}" for g, c in first.items()]


def _compose(conf: str, config_name: str, group_overrides: List[str]) -> Any:
    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir=conf, version_base="1.3"):
        return compose(config_name, overrides=group_overrides)


def _dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    from omegaconf import DictConfig
    for key in node.keys() if isinstance(node, DictConfig) else ():
        path = f"{prefix}{key}"
        yield path
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none():
            yield from _dotted_keys(child, path + ".")


def _documented_extras(cfg: Any, key: str) -> Set[str]:
    """Options the code reads that the composed YAML of ``key``'s section does not list: the
    model sections' keys known to :mod:`pyg_tgl.train.tgl_config`, and the data set's
    :func:`~pyg_tgl.data.datasets.dataset_options`. Imported only for a key that is not in
    the YAML, so a correct command line costs no heavy import."""
    from omegaconf import OmegaConf
    section = key.split(".", 1)[0]
    if section == "model":
        from pyg_tgl.train.tgl_config import MODEL_KEYS
        return {f"model.{s}.{k}" for s, keys in MODEL_KEYS.items() for k in keys}
    if section == "data":
        from pyg_tgl.data.datasets import dataset_options
        name = OmegaConf.select(cfg, "data.name", default=None)
        try:
            return {f"data.{k}" for k in dataset_options(str(name))}
        except (KeyError, ValueError):
            return set()
    return set()


def check_overrides(argv: Sequence[str], conf: str) -> Tuple[List[str], Optional[str]]:
    """Checks every option override of the command line against the configuration it composes.

    Args:
        argv (sequence of str): the command line after the program name.
        conf (str): the configuration folder (:func:`pyg_tgl.run.config_dir`).

    Returns:
        tuple: ``(argv, error)``: the command line as Hydra should read it (``+`` dropped
        from options the YAML has, ``++`` for documented options it has not) and ``None``; or a
        one-line error naming the first unknown option and the closest known one.
    """
    from omegaconf import OmegaConf
    argv = list(argv)
    parsed = _parse(argv)
    if parsed is None:
        return argv, None
    flags, overrides = parsed
    if flags.config_dir or flags.config_path or flags.shell_completion or flags.help or \
            flags.hydra_help:
        return argv, None
    options = [o for o in overrides if o.key_or_group not in GROUPS and o.package is None
               and o.key_or_group.split(".")[0].split("/")[0] != "hydra"]
    if not options:
        return argv, None
    groups = {o.key_or_group: _choices(o) for o in overrides if o.key_or_group in GROUPS}
    try:
        composed = [_compose(conf, flags.config_name or "config", g)
                    for g in _group_combinations(groups)]
    except Exception:  # noqa: BLE001 - a composition error is Hydra's to report, in its words
        return argv, None
    for override in options:
        key = override.key_or_group
        found = any(OmegaConf.select(c, key, default=_MISSING) is not _MISSING
                    for c in composed)
        if not found and any(key in _documented_extras(c, key) for c in composed):
            # A documented option with no YAML entry: set it whether or not the user wrote +.
            line = override.input_line
            argv[argv.index(line)] = "++" + line.lstrip("+")
            continue
        if not found:
            known = sorted({k for c in composed for k in _dotted_keys(c) if k != "hydra"
                            and not k.startswith("hydra.")} |
                           _documented_extras(composed[0], key))
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return argv, (f"unknown option {key!r}{hint}; `python -m pyg_tgl.run --cfg job` "
                          f"shows the options of a run (docs/training.md lists them all)")
        if override.input_line.startswith("+") and not override.input_line.startswith("++"):
            argv[argv.index(override.input_line)] = override.input_line[1:]  # known: a plain set
    return argv, None


__all__ = ["GROUPS", "check_group_choices", "check_overrides"]
