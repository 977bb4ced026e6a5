"""Capping a chronological split to the first ``train.max_events`` events.

The split itself and the inductive (new-node) mask are defined once, in
:mod:`pyg_tgl.data.splits`; :func:`inductive_mask` and :func:`seen_nodes` are importable from here
too.
"""
from __future__ import annotations

from typing import Dict, Optional

from pyg_tgl.data.splits import event_bounds as _bounds
from pyg_tgl.data.splits import inductive_mask, seen_nodes

__all__ = ["cap_split", "inductive_mask", "seen_nodes"]


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
