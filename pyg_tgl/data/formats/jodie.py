"""JODIE's CSV (Kumar et al., KDD 2019): ``user_id,item_id,timestamp,state_label,features...``
(item ids restart at 0 and are shifted after the users), and the ``u,i,ts,label`` variant whose
item ids are already shifted."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import DataFormatError
from ..readers import Column, read_table, source_from_path
from .raw import RawEvents, RawLabels

__all__ = ["read_jodie"]


def read_jodie(path: Path, *, bipartite: Optional[bool] = None,
               spill_dir: Optional[Path] = None, progress: bool = False) -> RawEvents:
    r"""Reads a JODIE CSV: ``user_id,item_id,timestamp,state_label,f1,...,fd`` (SNAP) or the
    ``u,i,ts,label`` variant.

    Args:
        bipartite: shift item ids after the largest user id. ``None`` decides from the header:
            SNAP's ``user_id,...`` files restart item ids at 0 (shift), ``u,i,...`` files are
            already shifted (no shift).
    """
    path = Path(path)
    tb = read_table(source_from_path(path), {
        "src": Column(0, "id"), "dst": Column(1, "id"), "t": Column(2), "y": Column(3, "int"),
        "msg": Column(4, width=None, optional=True)}, spill_dir=spill_dir, progress=progress)
    if tb.num_rows == 0:
        raise DataFormatError(f"{path}: no events; expected rows of "
                              f"user_id,item_id,timestamp,state_label[,features]")
    head = [h.lower() for h in (tb.header or [])]
    if bipartite is None:
        bipartite = bool(head) and head[0] == "user_id"
    src, dst = tb.columns["src"], tb.columns["dst"]
    if bipartite:
        dst = dst + (int(src.max()) + 1)
    msg = tb.columns.get("msg")
    if msg is not None and msg.shape[1] == 0:
        msg = None
    y = tb.columns["y"]
    raw = RawEvents(src, dst, tb.columns["t"], tb.where, msg=msg, msg_source=str(path), y=y,
                    info={"format": "jodie", "time_unit": "s", "bipartite": bool(bipartite),
                          "num_users": int(src.max()) + 1})
    raw.labels = RawLabels(src, tb.columns["t"], y)
    return raw
