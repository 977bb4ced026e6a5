"""SocioPatterns' primary-school contacts: ``t,i,j,class_i,class_j`` (20 s resolution)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from ..readers import Column, read_table, source_from_path
from .raw import RawEvents, RawLabels

__all__ = ["read_primaryschool"]


def read_primaryschool(path: Path) -> RawEvents:
    """Reads SocioPatterns' primary-school contacts ``t,i,j,class_i,class_j`` (20 s resolution).
    Node labels are each person's class, given at both ends of every contact."""
    path = Path(path)
    tb = read_table(source_from_path(path), {
        "t": Column(0), "src": Column(1, "id"), "dst": Column(2, "id"),
        "ci": Column(3, "str"), "cj": Column(4, "str")}, header=False)
    if tb.num_rows == 0:
        raise DataFormatError(f"{path}: no contacts; expected rows t,i,j,class_i,class_j")
    c = tb.columns
    classes, inv = np.unique(np.concatenate([c["ci"], c["cj"]]), return_inverse=True)
    E = tb.num_rows
    raw = RawEvents(c["src"], c["dst"], c["t"], tb.where,
                    info={"format": "sociopatterns", "time_unit": "s"})
    # Interleave both ends per event, so labels stay in time order.
    node = np.stack([c["src"], c["dst"]], 1).reshape(-1)
    y = np.stack([inv[:E], inv[E:]], 1).reshape(-1)
    raw.labels = RawLabels(node, np.repeat(c["t"], 2), y, classes=[str(x) for x in classes])
    # A person in two classes is a data error: the label would be ambiguous.
    per_node = np.unique(np.stack([node, y]), axis=1)
    dup = np.flatnonzero(np.diff(per_node[0]) == 0)
    if dup.size:
        n = int(per_node[0, dup[0]])
        raise DataFormatError(f"{path}: person {n} appears with two classes "
                              f"({classes[per_node[1, dup[0]]]}, {classes[per_node[1, dup[0] + 1]]})"
                              f"; expected one class per person")
    return raw
