r"""Train/validation/test splits over event order, and the inductive (new-node) mask.

A split is three contiguous ``slice`` objects over the time-sorted events: ``chronological`` (by
time quantiles, as :meth:`torch_geometric.data.TemporalData.train_val_test_split`) or TGL's
``ext_roll`` column (0 train, 1 validation, 2 test).

Inductive setting (as in the TGAT/DyGLib evaluation, without TGAT's node masking): an evaluated
event is *inductive* when its source or its destination never occurs in a training event.
:func:`inductive_mask` is the one definition; the data set's ``inductive_test_mask`` and the
trainer's per-event flags (:mod:`pyg_tgl.train.experiment`) both come from it.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import TemporalData

from . import storage
from .errors import DataFormatError

__all__ = ["event_bounds", "chronological_bounds", "ext_roll_bounds", "seen_nodes",
           "inductive_mask", "dataset_split"]


def event_bounds(s: slice) -> Tuple[int, int]:
    """``(start, stop)`` of a contiguous slice of events; :class:`ValueError` for anything else."""
    if not isinstance(s, slice) or s.stop is None or (s.step not in (None, 1)):
        raise ValueError(f"split entries must be contiguous slices with a stop, got {s!r}")
    return int(s.start or 0), int(s.stop)


def _sorted_quantile(t: Tensor, q: float) -> float:
    """Linear-interpolated quantile of an already sorted tensor (``numpy.quantile``'s default)."""
    n = t.numel()
    h = (n - 1) * q
    lo = int(math.floor(h))
    hi = min(lo + 1, n - 1)
    a, b = float(t[lo]), float(t[hi])
    return a + (h - lo) * (b - a)


def chronological_bounds(t: Tensor, val_ratio: float, test_ratio: float) -> Tuple[int, int]:
    r"""``(train_end, val_end)`` event indices of a chronological split: like
    :meth:`torch_geometric.data.TemporalData.train_val_test_split`, the time quantiles at
    ``1 - val_ratio - test_ratio`` and ``1 - test_ratio`` bound the sets and events sharing a
    timestamp stay in the same set.

    Args:
        t: ``[E]`` sorted event times.
        val_ratio, test_ratio: fractions of the time quantiles.
    """
    val_time = _sorted_quantile(t, 1.0 - val_ratio - test_ratio)
    test_time = _sorted_quantile(t, 1.0 - test_ratio)
    train_end = int(torch.searchsorted(t, torch.tensor([val_time], dtype=t.dtype), right=True))
    val_end = int(torch.searchsorted(t, torch.tensor([test_time], dtype=t.dtype), right=True))
    return train_end, max(val_end, train_end)


def ext_roll_bounds(roll: Tensor, name: str) -> Tuple[int, int]:
    r"""``(train_end, val_end)`` of TGL's ``ext_roll`` column, which must be 0s, then 1s, then 2s.

    Args:
        roll: ``[E]`` per-event ``ext_roll`` in event order.
        name: the data set, for the message.

    Raises:
        DataFormatError: at the first event where ``ext_roll`` goes back.
    """
    if roll.numel() > 1 and bool((roll[1:] < roll[:-1]).any()):
        i = int(torch.nonzero(roll[1:] < roll[:-1])[0]) + 1
        raise DataFormatError(f"{name}: ext_roll goes back from {int(roll[i - 1])} to "
                              f"{int(roll[i])} at event {i}; TGL's ext_roll must be 0s, then "
                              f"1s, then 2s in event order")
    train_end = int((roll == 0).sum())
    return train_end, train_end + int((roll == 1).sum())


def seen_nodes(src: Tensor, dst: Tensor, num_nodes: int, events: slice) -> Tensor:
    """``[num_nodes]`` bool: the node occurs (as source or destination) in ``events``."""
    a, b = event_bounds(events)
    seen = torch.zeros(num_nodes, dtype=torch.bool, device=src.device)
    seen[src[a:b]] = True
    seen[dst[a:b]] = True
    return seen


def inductive_mask(src: Tensor, dst: Tensor, num_nodes: int, train: slice,
                   events: slice) -> Tensor:
    """``[len(events)]`` bool: the event's source or destination never occurs in ``train``.

    Args:
        src, dst (torch.Tensor): ``[E]`` node ids of all events.
        num_nodes (int): number of nodes.
        train (slice): the training events.
        events (slice): the evaluated events.
    """
    seen = seen_nodes(src, dst, num_nodes, train)
    a, b = event_bounds(events)
    return ~(seen[src[a:b]] & seen[dst[a:b]])


def dataset_split(data: TemporalData, roll: Optional[Tensor], num_nodes: int,
                  options: Dict[str, Any], folder: Optional[Path],
                  name: str) -> Tuple[Dict[str, Any], str]:
    r"""The split a data set's options ask for, with its test events' inductive mask.

    The bounds and the mask are kept in ``folder/split-<hash>.npz`` (keyed by the split options)
    when ``folder`` is given, and read back from there on later loads.

    Args:
        data: the time-sorted events.
        roll: TGL's per-event ``ext_roll`` or ``None``.
        num_nodes: number of nodes.
        options: the data set's checked options (``split``, ``val_ratio``, ``test_ratio``).
        folder: the processed data set's cache folder, or ``None``.
        name: the data set, for messages.

    Returns:
        ``({"train", "val", "test": slice, "inductive_test_mask": bool tensor}, description)``.
    """
    E = int(data.src.numel())
    mode = options["split"]
    if mode == "ext_roll":
        if roll is None:
            raise ValueError(f"{name}: split='ext_roll' needs TGL's ext_roll column, which this "
                             f"data set does not have; use split='chronological'")
        desc = "TGL ext_roll"
        key: Dict[str, Any] = {"mode": mode}
    else:
        val, test = options["val_ratio"], options["test_ratio"]
        desc = f"chronological {1 - val - test:.0%}/{val:.0%}/{test:.0%}"
        key = {"mode": mode, "val": float(val), "test": float(test)}
    path = folder / f"split-{storage.stable_hash(key, 10)}.npz" if folder is not None else None
    if path is not None and path.exists():
        with np.load(path) as z:
            train_end, val_end = int(z["train_end"]), int(z["val_end"])
            mask = torch.from_numpy(z["inductive"].copy())
    else:
        if mode == "ext_roll":
            train_end, val_end = ext_roll_bounds(roll, name)
        else:
            train_end, val_end = chronological_bounds(data.t, float(options["val_ratio"]),
                                                      float(options["test_ratio"]))
        mask = inductive_mask(data.src, data.dst, num_nodes, slice(0, train_end),
                              slice(val_end, E))
        if path is not None:
            buf = io.BytesIO()
            np.savez(buf, train_end=train_end, val_end=val_end, inductive=mask.numpy())
            # Looked up on the module at call time: the disk-full tests replace it there.
            storage.atomic_write_bytes(path, buf.getvalue())
    split = {"train": slice(0, train_end), "val": slice(train_end, val_end),
             "test": slice(val_end, E), "inductive_test_mask": mask}
    return split, desc
