r"""Reading a configuration through the schema: :func:`check_config` turns any configuration (a
Hydra composition, a YAML file read back, a dict) into the typed configuration of a run, with
every option present, and refuses, in one line each, an unknown option (naming the closest
known one), a value of the wrong type, a choice that is not allowed, a value out of range, and
the combinations :mod:`pyg_tgl.config.rules` forbids.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
from typing import Any, Dict, Iterator, List, Mapping, Optional

from pyg_tgl.config.errors import ConfigError
from pyg_tgl.config.fields import base_type, default_of, hints, is_section, value_error
from pyg_tgl.config.schema import DEFAULT_NAMES, KINDS, RunConfig, fields_of

#: Top-level keys that are Hydra's own, not options of a run.
_IGNORED = ("hydra",)


def plain(cfg: Any) -> Dict[str, Any]:
    """``cfg`` as plain dicts and lists, interpolations resolved."""
    from omegaconf import DictConfig, OmegaConf
    if isinstance(cfg, DictConfig):
        try:
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
        except Exception as e:  # noqa: BLE001 - OmegaConf's resolver errors have no common base
            raise ConfigError(f"the configuration has an interpolation that cannot be resolved: "
                              f"{' '.join(str(e).split())}") from None
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"a configuration is a mapping of options, got {type(cfg).__name__}")
    return copy.deepcopy(dict(cfg))


def normalize(options: Dict[str, Any]) -> Dict[str, Any]:
    """Shorthands spelt out: one fan-out ``model.sampling.neighbor=10`` is the list ``[10]``
    that TGL's files write."""
    sampling = (options.get("model") or {}).get("sampling") if isinstance(
        options.get("model"), dict) else None
    if isinstance(sampling, dict):
        neighbor = sampling.get("neighbor")
        if isinstance(neighbor, int) and not isinstance(neighbor, bool):
            sampling["neighbor"] = [neighbor]
    return options


def section_class(section: str, options: Any, path: str) -> type:
    """The schema class of a section chosen by its ``name`` (``KINDS``)."""
    kind = KINDS[section]
    if options is None and section == "model":
        raise ConfigError("model is not set; choose one with model=<name> (conf/model/) or "
                          "tgl_config=<one of TGL's model files>")
    name = (options or {}).get("name", DEFAULT_NAMES[section]) if isinstance(
        options, dict) else DEFAULT_NAMES[section]
    cls = kind.of(name)
    if cls is None:
        raise ConfigError(f"{path}.name={name!r} is not supported; allowed values: "
                          f"{list(kind.names or ())}")
    return cls


def _shape(cls: type, options: Any, prefix: str) -> Iterator[str]:
    """Every dotted option of ``cls`` (with the classes the ``name``\\ s in ``options`` pick)."""
    types = hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        yield path
        sub = options.get(f.name) if isinstance(options, dict) else None
        if cls is RunConfig and f.name in KINDS:
            try:
                yield from _shape(section_class(f.name, sub, path), sub, path + ".")
            except ConfigError:
                continue
        elif is_section(f):
            yield from _shape(types[f.name], sub, path + ".")


def known_options(options: Dict[str, Any], sections: bool = False) -> List[str]:
    """The dotted options a configuration like ``options`` has (its data set's, its model's);
    with ``sections``, the sections' own paths (``train``, ``model.gnn``) too."""
    paths = set(_shape(RunConfig, options, ""))
    if not sections:
        paths -= {p.rsplit(".", 1)[0] for p in paths if "." in p}
    return sorted(paths)


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


def closest_option(path: str, known: List[str]) -> Optional[str]:
    """The known option ``path`` most likely means: a close name in the same section, else the
    same or a very close name in another (``train.memory_carry`` -> ``eval.memory_carry``)."""
    leaf, parent = path.rsplit(".", 1)[-1], _parent(path)
    siblings = {k.rsplit(".", 1)[-1]: k for k in known if _parent(k) == parent}
    close = difflib.get_close_matches(leaf, list(siblings), n=1, cutoff=0.6)
    if close:
        return siblings[close[0]]
    others = {}
    for k in known:
        others.setdefault(k.rsplit(".", 1)[-1], k)
    close = difflib.get_close_matches(leaf, list(others), n=1, cutoff=0.85)
    return others[close[0]] if close else None


def unknown_option(path: str, known: List[str], owner: str) -> ConfigError:
    """The error of an unknown option: the closest known one, and the section's options when
    they are few (else where they are listed)."""
    close = closest_option(path, known)
    hint = f" (did you mean {close!r}?)" if close else ""
    siblings = [k.rsplit(".", 1)[-1] for k in known if _parent(k) == _parent(path)]
    listed = (f"its options: {', '.join(siblings)}" if 0 < len(siblings) <= 12 else
              "docs/options.md lists every option; `python -m pyg_tgl.run --cfg job` shows a "
              "run's")
    return ConfigError(f"unknown option {path!r}{hint}; {owner} has no such option; {listed}")


def _owner(prefix: str, options: Mapping[str, Any]) -> str:
    """Who lacks an unknown option: ``data=csv``, ``model=edgebank``, ``'train'``..."""
    section = prefix.rstrip(".")
    if section in KINDS:
        return f"{section}={options.get('name', DEFAULT_NAMES[section])}"
    return repr(section) if section else "the top level"


def _owner_in(prefix: str, top: Mapping[str, Any], options: Mapping[str, Any]) -> str:
    """:func:`_owner`, naming the chosen model or data set for a nested section too."""
    section = prefix.rstrip(".")
    head = section.split(".", 1)[0]
    if "." in section and head in KINDS and isinstance(top.get(head), dict):
        return f"{section!r} of {head}={top[head].get('name', DEFAULT_NAMES[head])}"
    return _owner(prefix, options)


def applies(cls: type, meta: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    """Whether a field's choices and bounds apply (its ``only_if`` condition holds)."""
    cond = meta.get("only_if")
    if cond is None:
        return True
    sibling, wanted = cond
    return values.get(sibling, default_of(fields_of(cls)[sibling])) == wanted


def build(cls: type, options: Any, prefix: str, known: List[str],
          top: Optional[Mapping[str, Any]] = None) -> Any:
    """A dataclass instance of ``cls`` from ``options`` (missing options take their default),
    every value checked.

    Raises:
        ConfigError: an unknown option, a section that is not a mapping, a bad value.
    """
    where = prefix.rstrip(".") or "the configuration"
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}={options!r}: expected a mapping of options")
    fields = fields_of(cls)
    for key in options:
        if key not in fields and not (cls is RunConfig and key in _IGNORED):
            raise unknown_option(f"{prefix}{key}", known, _owner_in(prefix, top or {}, options))
    types = hints(cls)
    values: Dict[str, Any] = {}
    for name, f in fields.items():
        path = f"{prefix}{name}"
        if cls is RunConfig and name in KINDS:
            sub = options.get(name)
            values[name] = build(section_class(name, sub, path), sub, path + ".", known,
                                 top or options)
        elif is_section(f):
            values[name] = build(types[name], options.get(name), path + ".", known,
                                 top or options)
        else:
            value = options[name] if name in options else default_of(f)
            message = value_error(path, value, types[name], f.metadata,
                                  constrained=applies(cls, f.metadata, options))
            if message is not None:
                raise ConfigError(message)
            values[name] = value
    return cls(**values)


def check_section(section: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """One section chosen by name (``data``, ``model``, ...) read through the schema: every
    option at its value or default, each checked.

    Raises:
        ConfigError: an unknown option (with the closest known one) or a bad value.
    """
    cls = section_class(section, options, section)
    known = [f"{section}.{k}" for k in _shape(cls, options, "")]
    return dataclasses.asdict(build(cls, options, f"{section}.", known))


def typed(options: Dict[str, Any]) -> Any:
    """A :class:`RunConfig` instance from plain ``options`` (see :func:`build`)."""
    options = normalize({k: v for k, v in options.items() if k not in _IGNORED})
    return build(RunConfig, options, "", known_options(options))


def check_config(cfg: Any) -> Any:
    r"""The configuration of a run read through the schema and checked.

    Args:
        cfg: a composed configuration (``DictConfig``) or a mapping; options it lacks take the
            schema's defaults (a configuration of an older pyg_tgl, a TGL file's model).

    Returns:
        DictConfig: typed (OmegaConf structured), every option present, shorthands spelt out.

    Raises:
        ConfigError: one line naming the option and what is allowed.
    """
    from omegaconf import OmegaConf

    from pyg_tgl.config.rules import check_rules
    run = typed(plain(cfg))
    out = OmegaConf.structured(run)
    check_rules(out)
    return out


def with_defaults(options: Dict[str, Any]) -> Dict[str, Any]:
    """Plain ``options`` (or a part of a configuration: some sections only) with the schema's
    defaults filled in where options are missing, nothing checked: how an old checkpoint's
    configuration is read. Unknown options are kept as they are."""
    return _fill(RunConfig, copy.deepcopy(options))


def _fill(cls: type, options: Dict[str, Any]) -> Dict[str, Any]:
    types = hints(cls)
    for name, f in fields_of(cls).items():
        if name not in options:
            continue
        sub = options[name]
        if cls is RunConfig and name in KINDS:
            try:
                sub_cls = section_class(name, sub, name)
            except ConfigError:
                continue
        elif is_section(f):
            sub_cls = types[name]
        else:
            continue
        if isinstance(sub, dict):
            defaults = {k: v for k, v in dataclasses.asdict(sub_cls()).items()}
            filled = _fill(sub_cls, sub)
            options[name] = {**defaults, **filled}
    return options


def leaf_type(path: str, options: Dict[str, Any]) -> Optional[Any]:
    """``(annotation, metadata, section_class)`` of the option at ``path`` in a configuration
    like ``options``; ``None`` when there is no such option."""
    cls: type = RunConfig
    sub: Any = options
    parts = path.split(".")
    for i, key in enumerate(parts):
        fields = fields_of(cls)
        if key not in fields:
            return None
        f = fields[key]
        nested = sub.get(key) if isinstance(sub, dict) else None
        if i == len(parts) - 1:
            if cls is RunConfig and key in KINDS or is_section(f):
                return None
            return hints(cls)[key], f.metadata, cls
        if cls is RunConfig and key in KINDS:
            try:
                cls = section_class(key, nested, key)
            except ConfigError:
                return None
        elif is_section(f):
            cls = hints(cls)[key]
        else:
            return None
        sub = nested
    return None


__all__ = ["check_config", "typed", "plain", "normalize", "known_options", "unknown_option",
           "with_defaults", "leaf_type", "section_class", "base_type"]
