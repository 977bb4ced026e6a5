"""What every format reader returns: events in file order with raw node ids
(:class:`RawEvents`), node labels (:class:`RawLabels`), and small checks the readers share."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import torch

from ..errors import DataFormatError

__all__ = ["RawLabels", "RawEvents", "as_integers", "require_file"]


@dataclass
class RawLabels:
    """Node labels in raw node ids: node ``node[i]`` has label ``y[i]`` at time ``t[i]``."""

    node: np.ndarray
    t: np.ndarray
    y: np.ndarray
    roll: Optional[np.ndarray] = None
    classes: Optional[List[str]] = None


@dataclass
class RawEvents:
    """What a format parser returns: events in file order, raw node ids.

    Attributes:
        src, dst: raw ids (integers, or strings that are always remapped).
        t: float64 times.
        where: data row -> ``"<file>, line <n>"`` for messages.
        msg: ``[E, d_e]`` edge features (numpy or a memory-mapped tensor), or ``None``.
        msg_source: file the features came from, for messages.
        y: per-event integer label.
        roll: TGL's ``ext_roll`` per event (0 train, 1 val, 2 test).
        node_feat: ``[N, d_v]`` node features (indexed by raw id).
        labels: node labels.
        remap: ``False`` when ids index other arrays (node features) and must be kept.
        num_nodes: lower bound on the number of nodes (rows of ``node_feat``).
        info: description, time unit, feature names, ...
    """

    src: np.ndarray
    dst: np.ndarray
    t: np.ndarray
    where: Callable[[int], str]
    msg: Optional[Union[np.ndarray, torch.Tensor]] = None
    msg_source: Optional[str] = None
    y: Optional[np.ndarray] = None
    roll: Optional[np.ndarray] = None
    node_feat: Optional[Union[np.ndarray, torch.Tensor]] = None
    node_feat_source: Optional[str] = None
    labels: Optional[RawLabels] = None
    remap: Optional[bool] = None
    num_nodes: Optional[int] = None
    info: Dict[str, Any] = field(default_factory=dict)


def as_integers(v: np.ndarray, where: Callable[[int], str], name: str) -> np.ndarray:
    """``v`` as int64, or :class:`DataFormatError` at the first value that is not an integer."""
    bad = ~np.isfinite(v) | (v != np.floor(v))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"{where(r)}: {name} is {float(v[r]):g}, expected an integer")
    return v.astype(np.int64)


def require_file(path: Path, what: str, hint: str) -> Path:
    """``path`` when it is a file, else :class:`FileNotFoundError` naming ``what`` and ``hint``."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path}; {hint}")
    return path
