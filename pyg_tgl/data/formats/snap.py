"""SNAP edge lists: ``src dst unix_time`` per line (whitespace-separated by default)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import DataFormatError
from ..readers import Column, read_table, source_from_path
from .raw import RawEvents

__all__ = ["read_edge_list"]


def read_edge_list(path: Path, *, delimiter: Optional[str] = None, time_col: int = 2,
                   spill_dir: Optional[Path] = None, progress: bool = False) -> RawEvents:
    """Reads a SNAP-style edge list ``src dst time`` (whitespace-separated by default)."""
    path = Path(path)
    src_col, dst_col = [c for c in range(3) if c != time_col][:2]
    tb = read_table(source_from_path(path), {
        "src": Column(src_col, "id"), "dst": Column(dst_col, "id"), "t": Column(time_col)},
        delimiter=delimiter, spill_dir=spill_dir, progress=progress)
    if tb.num_rows == 0:
        raise DataFormatError(f"{path}: no events; expected lines 'src dst time'")
    return RawEvents(tb.columns["src"], tb.columns["dst"], tb.columns["t"], tb.where,
                     info={"format": "edge list", "time_unit": "s"})
