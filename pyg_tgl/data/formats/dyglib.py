"""DyGLib's processed ``ml_<name>.csv`` (``,u,i,ts,label,idx``) with optional
``ml_<name>.npy`` edge features whose row 0 is padding."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DataFormatError
from ..readers import Column, read_table, source_from_path
from .raw import RawEvents, as_integers

__all__ = ["read_dyglib"]


def read_dyglib(path: Path, *, spill_dir: Optional[Path] = None, progress: bool = False) -> RawEvents:
    """Reads DyGLib's ``ml_<name>.csv`` (``,u,i,ts,label,idx``) with its optional ``.npy``
    features next to it."""
    path = Path(path)
    tb = read_table(source_from_path(path), {
        "src": Column("u", "id"), "dst": Column("i", "id"), "t": Column("ts"),
        "y": Column("label", "float", optional=True)}, header=True, spill_dir=spill_dir,
        progress=progress)
    if tb.num_rows == 0:
        raise DataFormatError(f"{path}: no events; expected rows of ,u,i,ts,label,idx")
    raw = RawEvents(tb.columns["src"], tb.columns["dst"], tb.columns["t"], tb.where,
                    info={"format": "dyglib", "time_unit": "s"})
    if "y" in tb.columns:
        raw.y = as_integers(tb.columns["y"], tb.where, f"{path}: label")
    stem = path.stem
    ef = path.with_name(f"{stem}.npy")
    if ef.is_file():
        feat = np.load(ef, mmap_mode="r")
        # Row 0 is DyGLib's padding for edge index 0.
        if feat.shape[0] == tb.num_rows + 1:
            feat = feat[1:]
        if feat.shape[0] != tb.num_rows:
            raise DataFormatError(f"{ef}: {feat.shape[0]} rows of edge features for {tb.num_rows} "
                                  f"events in {path}; expected {tb.num_rows} (+1 padding row)")
        raw.msg, raw.msg_source = feat, str(ef)
    return raw
