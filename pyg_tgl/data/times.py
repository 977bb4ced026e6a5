"""Checks and conversions of time columns shared by the readers: finite, non-negative times, and
ISO-8601 dates turned into Unix seconds (vectorised; the slow path runs only to name a bad row)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import DataFormatError

__all__ = ["check_times", "parse_iso_datetimes"]


def check_times(t: np.ndarray, where: Callable[[int], str], name: str = "time",
                chunk: int = 1 << 24) -> None:
    """Raises :class:`DataFormatError` at the first NaN, infinite or negative time."""
    for s in range(0, t.shape[0], chunk):
        part = np.asarray(t[s:s + chunk], dtype=np.float64)
        bad = ~np.isfinite(part) | (part < 0)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            v = part[r]
            why = "missing (NaN)" if np.isnan(v) else ("infinite" if np.isinf(v) else "negative")
            raise DataFormatError(f"{where(s + r)}: {name} is {float(v):g} ({why}); expected a finite, "
                                  f"non-negative timestamp")


def parse_iso_datetimes(values: np.ndarray, where: Callable[[int], str], name: str = "time",
                        unit: str = "s") -> np.ndarray:
    """Converts ISO-8601 strings (``2019-01-01``, ``2019-01-01 10:30:00``,
    ``2019-01-01T10:30:00``) to seconds since the Unix epoch (float64), vectorised."""
    values = np.char.replace(np.asarray(values, dtype=str), " ", "T")
    try:
        dt = values.astype(f"datetime64[{unit}]")
    except ValueError:
        # Find the offending row for the message (error path only).
        for r, v in enumerate(values):
            try:
                np.datetime64(v, unit)
            except ValueError:
                raise DataFormatError(f"{where(r)}: {name} is {v!r}, expected an ISO-8601 date "
                                      f"or date-time") from None
        raise
    if np.isnat(dt).any():
        r = int(np.flatnonzero(np.isnat(dt))[0])
        raise DataFormatError(f"{where(r)}: {name} is missing (NaT), expected a date")
    return dt.astype("datetime64[s]").astype(np.int64).astype(np.float64)
