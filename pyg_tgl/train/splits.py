"""Chronological splits: capping the number of events and the inductive (new-node) masks.

Inductive setting (as in the TGAT/DyGLib evaluation, without TGAT's node masking): an evaluation
event is *inductive* when its source or its destination never occurs in a training event. The
transductive setting scores every event of the split.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor


def _bounds(s: slice) -> tuple:
    if not isinstance(s, slice) or s.stop is None or (s.step not in (None, 1)):
        raise ValueError(f"split entries must be contiguous slices with a stop, got {s!r}")
    return int(s.start or 0), int(s.stop)


def cap_split(split: Dict[str, slice], max_events: Optional[int]) -> Dict[str, slice]:
    """Restricts a chronological ``train``/``val``/``test`` split to the first ``max_events``
    events of the data set, keeping the three parts' proportions.

    Args:
        split (dict): ``{"train", "val", "test"}`` contiguous slices, in this order.
        max_events (int, optional): the cap; ``None`` or ``0`` keeps the split unchanged.

    Returns:
        dict: the new slices (other keys of ``split`` are dropped).
    """
    parts = {k: _bounds(split[k]) for k in ("train", "val", "test")}
    if not max_events:
        return {k: slice(*parts[k]) for k in parts}
    if max_events < 3:
        raise ValueError(f"train.max_events must be >= 3 (one event per split), got {max_events}")
    start = parts["train"][0]
    total = parts["test"][1] - start
    if max_events >= total:
        return {k: slice(*parts[k]) for k in parts}
    sizes = {k: b - a for k, (a, b) in parts.items()}
    n_train = max(1, round(max_events * sizes["train"] / total))
    n_val = max(1, round(max_events * sizes["val"] / total))
    n_train = min(n_train, max_events - 2)
    n_val = min(n_val, max_events - n_train - 1)
    a = start
    return {
        "train": slice(a, a + n_train),
        "val": slice(a + n_train, a + n_train + n_val),
        "test": slice(a + n_train + n_val, a + max_events),
    }


def seen_nodes(src: Tensor, dst: Tensor, num_nodes: int, events: slice) -> Tensor:
    """``[num_nodes]`` bool: the node occurs (as source or destination) in ``events``."""
    a, b = _bounds(events)
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
    a, b = _bounds(events)
    return ~(seen[src[a:b]] & seen[dst[a:b]])
