r"""One option = one dataclass field: :func:`option` declares its default, one-line doc, allowed
values and bounds; :func:`check_value` checks a value against it and says, in one line, what the
option expects.

.. code-block:: python

    @dataclass
    class Train:
        epoch: int = option(100, "Epochs (TGL: epoch).", ge=1)

The type is the field's annotation: ``bool``, ``int``, ``float``, ``str``, ``Optional[...]`` of
those (null allowed), or ``Any`` for options with several forms, whose ``check`` function says
what is wrong (``None`` when the value is fine). Values are checked strictly: ``1`` is not
``true`` and ``1.5`` is not an integer (OmegaConf's typed nodes would convert the first
silently).
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from pyg_tgl.config.errors import ConfigError

#: A check of an ``Any`` option: ``check(value)`` returns ``None`` when the value is fine, else
#: what the option expects (``"a list of node ids (e.g. [0, 5]) or null for all nodes"``).
Check = Callable[[Any], Optional[str]]


def option(default: Any, doc: str, *, choices: Optional[Sequence[Any]] = None,
           ge: Optional[float] = None, gt: Optional[float] = None,
           le: Optional[float] = None, lt: Optional[float] = None,
           check: Optional[Check] = None, expects: Optional[str] = None,
           only_if: Optional[Tuple[str, Any]] = None) -> Any:
    r"""A dataclass field that is one option of the schema.

    Args:
        default: the default value (lists and mappings are copied for each instance).
        doc (str): one line for the options table (``docs/options.md``).
        choices (sequence, optional): the allowed values.
        ge, gt, le, lt (number, optional): bounds of a number (``>=``, ``>``, ``<=``, ``<``).
        check (callable, optional): the check of an ``Any`` option (see :data:`Check`).
        expects (str, optional): what ``check`` accepts, for the options table.
        only_if (tuple, optional): ``(sibling, value)``: the bounds and choices apply only when
            the sibling option of the same section has that value (``("type", "node")``: memory
            sizes matter only with a memory); the type is checked always.
    """
    meta = {"doc": doc, "choices": None if choices is None else tuple(choices), "ge": ge,
            "gt": gt, "le": le, "lt": lt, "check": check, "expects": expects,
            "only_if": only_if}
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: _copy(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, doc: str) -> Any:
    """A dataclass field holding a nested section (``train``, ``model.memory``...)."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc, "section": True})


def _copy(value: Any) -> Any:
    import copy
    return copy.deepcopy(value)


# ------------------------------------------------------------------------------------------------
# Reading the field declarations
# ------------------------------------------------------------------------------------------------

def hints(cls: type) -> Dict[str, Any]:
    """The resolved annotations of a schema dataclass (``from __future__ import annotations``
    leaves strings)."""
    return typing.get_type_hints(cls)


def base_type(annotation: Any) -> Tuple[Any, bool]:
    """``(type, nullable)``: ``Optional[int]`` -> ``(int, True)``, ``Any`` -> ``(Any, True)``."""
    if annotation is Any:
        return Any, True
    if typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else Any), True
    return annotation, False


def is_section(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("section"))


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------
# Checking one value
# ------------------------------------------------------------------------------------------------

def _fmt(x: Any) -> str:
    return repr(x)


def bounds_text(meta: Dict[str, Any]) -> str:
    """``">= 0.0 and < 1.0"`` from the field's bounds (empty without bounds)."""
    parts = []
    if meta.get("ge") is not None:
        parts.append(f">= {_fmt(meta['ge'])}")
    if meta.get("gt") is not None:
        parts.append(f"> {_fmt(meta['gt'])}")
    if meta.get("le") is not None:
        parts.append(f"<= {_fmt(meta['le'])}")
    if meta.get("lt") is not None:
        parts.append(f"< {_fmt(meta['lt'])}")
    return " and ".join(parts)


def expected_text(annotation: Any, meta: Dict[str, Any]) -> str:
    """What an option accepts, as the error messages and the options table say it."""
    kind, nullable = base_type(annotation)
    null = " or null" if nullable and kind is not Any else ""
    bounds = bounds_text(meta)
    bounds = f" {bounds}" if bounds else ""
    if meta.get("choices") is not None:
        return f"one of {_choices_text(meta['choices'])}{null}"
    if kind is bool:
        return "true, false or null" if null else "true or false"
    if kind is int:
        return f"an integer{bounds}{null}"
    if kind is float:
        return f"a finite number{bounds}{null}"
    if kind is str:
        return f"a string{null}"
    return meta.get("expects") or "any value"


def _choices_text(choices: Sequence[Any]) -> str:
    return "[" + ", ".join(_yaml(c) for c in choices) + "]"


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _same(a: Any, b: Any) -> bool:
    """Equality that tells ``true`` from ``1``."""
    return type(a) is type(b) and a == b


def _number_ok(value: Any, meta: Dict[str, Any], integer: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int,) if integer else (int, float)):
        return False
    if not integer and not math.isfinite(value):
        return False
    return ((meta.get("ge") is None or value >= meta["ge"]) and
            (meta.get("gt") is None or value > meta["gt"]) and
            (meta.get("le") is None or value <= meta["le"]) and
            (meta.get("lt") is None or value < meta["lt"]))


def value_error(path: str, value: Any, annotation: Any, meta: Dict[str, Any],
                constrained: bool = True) -> Optional[str]:
    """The one-line error for ``path=value``, or ``None`` when the value fits the option.

    Args:
        path (str): the dotted option (``train.lr``).
        value: a plain value (no OmegaConf node).
        annotation: the field's annotation.
        meta (dict): the field's metadata (:func:`option`).
        constrained (bool): check choices and bounds too (``False``: the type only, for an
            option that does not apply, see ``only_if``).
    """
    kind, nullable = base_type(annotation)
    if value is None and nullable:
        return None
    choices = meta.get("choices")
    if choices is not None and constrained:
        if any(_same(value, c) for c in choices):
            return None
        null = " or null" if nullable and kind is not Any else ""
        return (f"{path}={value!r} is not supported; allowed values: "
                f"{list(choices)}{null}")
    if kind is Any:
        check = meta.get("check")
        problem = check(value) if check is not None else None
        return None if problem is None else f"{path}={value!r}: expected {problem}"
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int or kind is float:
        ok = _number_ok(value, meta if constrained else {}, kind is int)
    elif kind is str:
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    else:
        raise TypeError(f"{path}: unsupported option type {annotation!r}")
    if ok:
        return None
    shown = expected_text(annotation, meta if constrained else {})
    return f"{path}={value!r}: expected {shown}"


def raise_value_error(path: str, value: Any, annotation: Any, meta: Dict[str, Any],
                      constrained: bool = True) -> None:
    """:func:`value_error` as a :class:`ConfigError`."""
    message = value_error(path, value, annotation, meta, constrained)
    if message is not None:
        raise ConfigError(message)


__all__ = ["Check", "option", "section", "hints", "base_type", "is_section", "default_of",
           "expected_text", "value_error", "raise_value_error"]
