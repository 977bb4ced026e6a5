r"""Checks of the options that take several forms (annotated ``Any`` in the schema): each returns
``None`` for a good value, else what the option expects, which
:func:`~pyg_tgl.config.fields.value_error` puts after ``expected``."""
from __future__ import annotations

import importlib.util
import re
from typing import Any, Dict, Optional, Tuple

_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}

#: The experiment trackers of the ``logger`` option and the pip package each needs.
LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")
LOGGER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}

CHECKPOINT_EVERY = ("null (epoch ends only), a number of batches >= 1, or a duration such as "
                    "'90s', '30min' or '2h'")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_checkpoint_every(value: Any) -> Optional[Tuple[str, float]]:
    """``train.checkpoint_every``: ``None`` (epoch ends only), an integer N (every N training
    batches), or a duration ``"90s"``, ``"30min"``, ``"2h"`` (at the first batch end after
    that much training time since the last save).

    Returns:
        ``None``, ``("batches", N)`` or ``("seconds", S)``.

    Raises:
        ConfigError: naming the option and the accepted forms.
    """
    from pyg_tgl.config.errors import ConfigError
    if value is None:
        return None
    if _is_int(value) and value >= 1:
        return "batches", float(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|min|m|h)\s*", str(value))
    if isinstance(value, str) and match and float(match.group(1)) > 0:
        return "seconds", float(match.group(1)) * _UNITS[match.group(2)]
    raise ConfigError(f"train.checkpoint_every={value!r}: expected {CHECKPOINT_EVERY}")


def checkpoint_every(value: Any) -> Optional[str]:
    from pyg_tgl.config.errors import ConfigError
    try:
        parse_checkpoint_every(value)
    except ConfigError:
        return CHECKPOINT_EVERY
    return None


def fan_outs(value: Any) -> Optional[str]:
    """``model.sampling.neighbor``: a list of fan-outs, one per layer; one integer means a
    list of one."""
    if value is None or (_is_int(value) and value >= 1):
        return None
    if isinstance(value, (list, tuple)) and all(_is_int(k) for k in value):
        return None if all(k >= 1 for k in value) else "fan-outs >= 1"
    return "a list of integer fan-outs, one per layer (e.g. [10] or [10, 10])"


def device(value: Any) -> Optional[str]:
    """``hardware.device``: ``auto`` or anything ``torch.device`` accepts."""
    if value == "auto":
        return None
    if not isinstance(value, str):
        return "auto, cpu, cuda, cuda:N (or another torch device)"
    import torch
    try:
        torch.device(value)
    except RuntimeError:
        return "auto, cpu, cuda, cuda:N (or another torch device)"
    return None


def auto_or_count(value: Any) -> Optional[str]:
    """``hardware.distributed.nproc_per_node``."""
    if value == "auto" or (_is_int(value) and value >= 1):
        return None
    return "'auto' or an integer >= 1"


def resume(value: Any) -> Optional[str]:
    """``resume``: true / false, or the interrupted run's directory."""
    if isinstance(value, bool) or (isinstance(value, str) and value):
        return None
    return "true, false or the interrupted run's directory"


def node_ids(value: Any) -> Optional[str]:
    """``export.nodes``."""
    if isinstance(value, (list, tuple)) and all(_is_int(n) and n >= 0 for n in value):
        return None
    return "a list of node ids (e.g. [0, 5]) or null for all nodes"


def column(value: Any) -> Optional[str]:
    """A CSV column: its header name or its 0-based position."""
    if isinstance(value, str) or (_is_int(value) and value >= 0):
        return None
    return "a column name or a 0-based position"


def columns(value: Any) -> Optional[str]:
    if isinstance(value, (list, tuple)) and all(column(c) is None for c in value):
        return None
    return "a list of column names or 0-based positions (e.g. [f0, f1]), or null"


def checksums(value: Any) -> Optional[str]:
    """``data.checksums``: ``{file: {size, sha256}}``."""
    if isinstance(value, dict) and all(
            isinstance(v, dict) and set(v) <= {"size", "sha256"} for v in value.values()):
        return None
    return "a mapping {file: {size: ..., sha256: ...}} or null"


def strings(value: Any) -> Optional[str]:
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return None
    return "a list of strings or null"


def header(value: Any) -> Optional[str]:
    return None if isinstance(value, bool) else "true, false or null (detect)"


def logger_names(value: Any) -> Optional[str]:
    """``logger``: a list of tracker names (one name alone is accepted)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        return f"a list of logger names from {list(LOGGERS)}"
    return None


def logger_problem(value: Any) -> Optional[str]:
    """A listed logger that is unknown, listed twice or whose package is missing: the whole
    one-line message (these name the logger, not the list)."""
    names = [] if value is None else [value] if isinstance(value, str) else list(value)
    for name in names:
        if names.count(name) > 1:
            return f"logger={names}: {name!r} is listed twice; list each logger once"
        if name not in LOGGERS:
            return f"logger={name!r} is not supported; allowed values: {list(LOGGERS)}"
        package = LOGGER_PACKAGES.get(name)
        if package is not None and importlib.util.find_spec(package) is None:
            return (f"logger={name!r} needs the {package!r} package, which is not installed; "
                    f"pip install {package} (or remove {name} from logger)")
    return None


def callback_entries(value: Any) -> Dict[str, Any]:
    """``callbacks`` as ``{where: entry}`` (a list, or a mapping of names to entries)."""
    if isinstance(value, dict):
        return {f"callbacks.{k}": v for k, v in value.items()}
    return {f"callbacks[{i}]": v for i, v in enumerate(value)}


def callbacks(value: Any) -> Optional[str]:
    if isinstance(value, (list, tuple, dict)):
        return None
    return "a list of entries with a _target_ (or a mapping of names to such entries)"


def callback_problem(value: Any) -> Optional[str]:
    """An entry without a ``_target_``: the whole one-line message."""
    for where, entry in callback_entries(value or []).items():
        target = entry.get("_target_") if isinstance(entry, dict) else None
        if not isinstance(target, str) or not target:
            return (f"{where}={entry!r}: expected a mapping with a _target_ naming a Callback "
                    f"class, e.g. {{_target_: my_package.MyCallback}}")
    return None


__all__ = ["LOGGERS", "LOGGER_PACKAGES", "parse_checkpoint_every", "checkpoint_every",
           "fan_outs", "device", "auto_or_count", "resume", "node_ids", "column", "columns",
           "checksums", "strings", "header", "logger_names", "logger_problem", "callbacks",
           "callback_entries", "callback_problem"]
