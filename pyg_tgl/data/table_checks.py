"""The checks of :func:`pyg_tgl.data.readers.read_table` that name what is wrong and where: a
requested column that the header or the line lacks, a line with the wrong number of fields or a
field that is not a number (walked line by line on the error path only), and ids that are not
exact integers."""
from __future__ import annotations

import csv
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .delimiters import Separator
from .errors import DataFormatError


__all__ = ["split_fields", "is_number", "resolve_column", "diagnose_block", "to_int"]


def split_fields(line: str, delimiter: Optional[str]) -> List[str]:
    """The fields of one line: split at any whitespace when ``delimiter`` is ``None``, else as
    the ``csv`` module reads it (double quotes may hide the delimiter)."""
    if delimiter is None:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter, quotechar='"'))


def is_number(s: str) -> bool:
    """Whether ``float`` accepts the text."""
    try:
        float(s)
        return True
    except ValueError:
        return False


def resolve_column(spec: Any, name: str, header: Optional[List[str]], ncols: int, source: str,
                   line: int, line_text: str, sep: Separator,
                   header_text: str = "") -> Optional[Tuple[int, int]]:
    """``(first column, width)`` of a :class:`~pyg_tgl.data.readers.Column` spec, or ``None``
    for a missing optional column. ``line``/``line_text``: the line that gave the width
    ``ncols`` (for messages)."""
    asked = f"{spec.option}={spec.key!r}" if spec.option else f"column {spec.key!r} (for {name})"
    if isinstance(spec.key, str):
        if header is None:
            raise DataFormatError(f"{source}: {asked} names a column but the file has no header "
                                  f"line; use 0-based positions or add a header")
        names = [h.strip() for h in header]
        if spec.key not in names:
            if spec.optional:
                return None
            raise DataFormatError(f"{source}: missing column {spec.key!r} (for {name}); the header "
                                  f"has {names} split at {sep.words()}{sep.origin()}"
                                  f"{sep.hint(header_text, 2)}")
        first = names.index(spec.key)
    else:
        first = int(spec.key)
        if first < 0:
            first += ncols
    width = ncols - first if spec.width is None else int(spec.width)
    if first < 0 or first + width > ncols or width < 0:
        if spec.optional:
            return None
        if spec.option:
            what = f"{spec.option}={spec.key} (positions count from 0)"
        else:
            what = f"columns {first + 1}..{first + width}" if width != 1 else f"column {first + 1}"
            what += f" (for {name})"
        fields = "field" if ncols == 1 else "fields"
        raise DataFormatError(f"{source}, line {line}: {what} requested but the line has {ncols} "
                              f"{fields} separated by {sep.words()}: {line_text[:80]!r}"
                              f"{sep.origin()}{sep.hint(line_text, max(first, 0) + max(width, 1))}")
    return first, width


def diagnose_block(text: str, raw: Optional[str], source: str, line_start: int, ncols: int,
                   numeric: Sequence[int], names: Dict[int, str],
                   sep: Separator) -> Optional[DataFormatError]:
    """Walks a suspicious block line by line (error path only) and names the first bad line and
    field; ``None`` when every line is well-formed."""
    lines = text.split("\n")
    raw_lines = raw.split("\n") if raw is not None else lines
    numeric = set(numeric)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        shown = raw_lines[i].rstrip("\r")[:120] if i < len(raw_lines) else line[:120]
        try:
            fields = split_fields(line.rstrip("\r"), sep.char)
        except csv.Error as e:
            return DataFormatError(f"{source}, line {line_start + i}: {e}: {shown!r}")
        if len(fields) != ncols:
            return DataFormatError(f"{source}, line {line_start + i}: expected {ncols} fields "
                                   f"separated by {sep.words()}, found {len(fields)}: {shown!r}"
                                   f"{sep.origin()}{sep.hint(line.rstrip(chr(13)), ncols)}")
        for c in sorted(numeric):
            if not is_number(fields[c].strip()):
                col = names.get(c, f"column {c + 1}")
                return DataFormatError(f"{source}, line {line_start + i}: {col} is {fields[c]!r}, "
                                       f"expected a number: {shown!r}")
    return None


# Ids are parsed as float64; beyond 2**53 neighbouring integers collide.
_MAX_EXACT_INT = float(2 ** 53)


def to_int(values: np.ndarray, non_negative: bool, source: str, line_start: int,
           row_lines: Optional[np.ndarray], name: str) -> np.ndarray:
    """``values`` (parsed as float64) as int64, or :class:`DataFormatError` naming the line of
    the first value that is not an exact (with ``non_negative``: non-negative) integer."""
    bad = ~np.isfinite(values) | (values != np.floor(values)) | (np.abs(values) >= _MAX_EXACT_INT)
    if non_negative:
        bad |= values < 0
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        line = int(row_lines[r]) if row_lines is not None else line_start + r
        what = "a non-negative integer id" if non_negative else "an integer"
        raise DataFormatError(f"{source}, line {line}: {name} is {float(values[r]):g}, expected {what}")
    return values.astype(np.int64)
