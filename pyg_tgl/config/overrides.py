r"""Checks of the command line's overrides before Hydra composes the run.

Hydra refuses an unknown key with advice that leads nowhere good (``Key 'epochs' is not in
struct ... To append to your config use +train.epochs=3``), takes ``+train.epochs=3`` silently,
and its typed nodes turn ``eval.memory_carry=1`` into ``true`` without a word. Here every
override is checked against the schema of the configuration the chosen groups compose (so
``data.foo`` is refused for a data set that does not take it), with or without ``+``, and its
value against the option's type, choices and range, each with one line:

.. code-block:: text

    $ python -m pyg_tgl.run +train.epochs=3
    error: unknown option 'train.epochs' (did you mean 'train.epoch'?); ...

``+key=value`` for a key that exists is taken as ``key=value`` (older commands added options that
have since been given defaults, e.g. ``+data.time_shift=true``).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from pyg_tgl.config.check import applies, known_options, leaf_type, unknown_option
from pyg_tgl.config.errors import ConfigError
from pyg_tgl.config.fields import value_error

#: The configuration groups of ``conf/`` (``model=tgn`` picks ``conf/model/tgn.yaml``).
GROUPS = ("model", "data", "task", "schedule", "train", "eval", "hardware", "features", "preset")

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


def parse(argv: Sequence[str]) -> Optional[Tuple[Any, List[Any]]]:
    """Hydra's own reading of the command line: ``(flags, overrides)``, or ``None`` where Hydra
    should report the problem itself (a bad flag, an override it cannot parse)."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # Hydra prints its own usage later
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


def composition_error(error: Exception) -> str:
    """Hydra's composition error in one line (its message spans several, with the file and the
    key on separate lines); an unknown key set by a group file is named as such."""
    import re
    text = str(error)
    unknown = re.search(r"In '([^']+)':.*?Key '[^']+' not in '([^']+)'.*?full_key: (\S+)",
                        text, re.S)
    if unknown:
        group, _, choice = unknown.group(1).partition("/")
        source = f"{group}={choice}" if choice else unknown.group(1)
        return (f"{source} sets {unknown.group(3)!r}, an option {_class_owner(unknown.group(2))} "
                f"does not have; choose another {group} or drop {source}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keep = [line for line in lines if not line.startswith(("full_key:", "object_type=",
                                                           "Config search path", "provider="))]
    return " ".join(keep).replace("raised while composing config: ", "")


def _class_owner(class_name: str) -> str:
    """``model=edgebank`` for ``EdgeBankConfig`` (a section class chosen by name)."""
    from pyg_tgl.config.schema import KINDS
    for section, kind in KINDS.items():
        for name, cls in kind.classes.items():
            if cls.__name__ == class_name:
                return f"{section}={name}" if section != "model" or name == "edgebank" \
                    else "this model"
    return class_name


def compose_groups(conf: str, config_name: str, group_overrides: List[str],
                   return_hydra_config: bool = False) -> Any:
    """Hydra's composition of ``conf`` with ``group_overrides``.

    Raises:
        ConfigError: Hydra's composition error, in one line.
    """
    import pyg_tgl.config.schema as schema
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    schema.register()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf, version_base="1.3"):
            return compose(config_name, overrides=group_overrides,
                           return_hydra_config=return_hydra_config)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(composition_error(e)) from None


def _values(override: Any) -> List[Any]:
    """The values an option override sets: one, or each of a simple sweep list (sweep
    functions such as ``range(...)`` are left to Hydra)."""
    value = override.value()
    if override.is_sweep_override():
        return list(getattr(value, "list", []))
    return [value]


def _plain(value: Any) -> Any:
    from omegaconf import OmegaConf
    if type(value).__module__.startswith("omegaconf"):
        return OmegaConf.to_container(value, resolve=False)
    return value


def _value_problem(key: str, override: Any, composed: Dict[str, Any]) -> Optional[str]:
    """A value of the override that its option refuses (type, choices, range), else None."""
    found = leaf_type(key, composed)
    if found is None or override.is_delete():
        return None
    annotation, meta, cls = found
    section = composed
    for part in key.split(".")[:-1]:
        section = section.get(part) if isinstance(section, dict) else None
    constrained = applies(cls, meta, section if isinstance(section, dict) else {})
    for value in _values(override):
        value = _plain(value)
        if isinstance(value, str) and "${" in value:
            continue  # an interpolation: checked once composed
        problem = value_error(key, value, annotation, meta, constrained)
        if problem is not None:
            return problem
    return None


def check_overrides(argv: Sequence[str], conf: str) -> Tuple[List[str], Optional[str]]:
    """Checks every option override of the command line against the schema of the
    configuration it composes.

    Args:
        argv (sequence of str): the command line after the program name.
        conf (str): the configuration folder (:func:`pyg_tgl.run.config_dir`).

    Returns:
        tuple: ``(argv, error)``: the command line as Hydra should read it (``+`` dropped
        from options that exist) and ``None``; or a one-line error naming the first unknown
        option (and the closest known one) or the first bad value.
    """
    from omegaconf import OmegaConf
    argv = list(argv)
    parsed = parse(argv)
    if parsed is None:
        return argv, None
    flags, overrides = parsed
    if flags.config_dir or flags.config_path or flags.shell_completion or flags.help or \
            flags.hydra_help:
        return argv, None
    options = [o for o in overrides if o.key_or_group not in GROUPS and o.package is None
               and o.key_or_group.split(".")[0].split("/")[0] != "hydra"]
    groups = {o.key_or_group: _choices(o) for o in overrides if o.key_or_group in GROUPS}
    if not options and not groups:
        return argv, None
    try:
        composed = [OmegaConf.to_container(
            compose_groups(conf, flags.config_name or "config", g), resolve=False)
            for g in _group_combinations(groups)]
    except ConfigError as e:
        return argv, str(e)
    for override in options:
        key = override.key_or_group
        found = [c for c in composed if OmegaConf.select(OmegaConf.create(c), key,
                                                         default=_MISSING) is not _MISSING]
        if not found:
            known = sorted({k for c in composed for k in known_options(c)})
            owner = _owner_of(key, composed[0])
            return argv, str(unknown_option(key, known, owner))
        for c in found:
            problem = _value_problem(key, override, c)
            if problem is not None:
                return argv, problem
        if override.input_line.startswith("+") and not override.input_line.startswith("++"):
            argv[argv.index(override.input_line)] = override.input_line[1:]  # known: a plain set
    return argv, None


def _owner_of(key: str, composed: Dict[str, Any]) -> str:
    """Who lacks ``key``: ``data=csv``, ``model=edgebank``, ``'train'``, the top level."""
    from pyg_tgl.config.schema import DEFAULT_NAMES, KINDS
    parts = key.split(".")
    if len(parts) == 1:
        return "the top level"
    if parts[0] in KINDS and isinstance(composed.get(parts[0]), dict):
        chosen = f"{parts[0]}={composed[parts[0]].get('name', DEFAULT_NAMES[parts[0]])}"
        return chosen if len(parts) == 2 else f"{'.'.join(parts[:-1])!r} of {chosen}"
    return repr(".".join(parts[:-1]))


__all__ = ["GROUPS", "check_group_choices", "check_overrides", "compose_groups", "parse",
           "composition_error"]
