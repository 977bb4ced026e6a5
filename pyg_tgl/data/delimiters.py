r"""The field separator of a delimited text file: detecting it from the first lines, and the words
that error messages use to say which separator split a line and which option would change it.

A file's separator is one of ``","``, ``"\t"``, ``";"`` or ``None`` (any run of whitespace, as
SNAP's edge lists use). :func:`sniff_delimiter` picks the one that splits every sampled line into
the same number of fields (two or more); when two explicit characters both do, it refuses to guess
and asks for the option instead.
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .errors import DataFormatError

__all__ = ["AUTO", "CANDIDATES", "Separator", "normalize_delimiter", "sniff_delimiter",
           "describe_delimiter", "delimiter_option_value", "count_fields", "better_split_hint"]

#: The value that asks for detection (the ``csv`` loader's default).
AUTO = "auto"

#: Separators that detection considers, explicit characters first; ``None`` is whitespace.
CANDIDATES: Tuple[Optional[str], ...] = (",", "\t", ";", None)

_EXPLICIT = (",", "\t", ";")

# Names accepted for a separator besides the character itself (a tab is awkward to type in a
# Hydra override).
_ALIASES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "whitespace": None,
            "space": None}

#: How many non-blank lines (at most) and bytes detection reads from the start of the file.
SNIFF_LINES = 50
SNIFF_BYTES = 1 << 16


def _fields(line: str, delimiter: Optional[str]) -> List[str]:
    if delimiter is None:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter, quotechar='"'))


def count_fields(line: str, delimiter: Optional[str]) -> int:
    """Number of fields of ``line`` split at ``delimiter`` (``None``: whitespace); ``-1`` when the
    line's quoting is broken for that separator."""
    try:
        return len(_fields(line, delimiter))
    except csv.Error:
        return -1


def normalize_delimiter(value: Optional[str], option: str = "delimiter") -> Optional[str]:
    r"""Validates a separator option: ``"auto"``, ``None`` (whitespace), one character, or one of
    the names ``tab``/``\t``, ``comma``, ``semicolon``, ``whitespace``/``space``.

    Raises:
        ValueError: naming the option and what it accepts.
    """
    if value is None or value == AUTO:
        return value
    if not isinstance(value, str):
        raise ValueError(f"{option} must be one character, 'auto' or null (whitespace), got "
                         f"{value!r}")
    if value.lower() in _ALIASES:
        return _ALIASES[value.lower()]
    if len(value) != 1 or value in "\r\n\"":
        raise ValueError(f"{option} must be one character (e.g. ',', ';', 'tab'), 'auto' (detect) "
                         f"or null (whitespace), got {value!r}")
    return value


def describe_delimiter(delimiter: Optional[str]) -> str:
    """``"','"``, ``"tab"``, ``"';'"`` or ``"whitespace"``: the separator in words."""
    if delimiter is None:
        return "whitespace"
    if delimiter == "\t":
        return "tab"
    return repr(delimiter)


def delimiter_option_value(delimiter: Optional[str]) -> str:
    """How to write the separator as an override value: ``','``, ``tab``, ``';'`` or ``null``."""
    return "null" if delimiter is None else describe_delimiter(delimiter)


def _sample_lines(source) -> List[str]:
    """Up to :data:`SNIFF_LINES` non-blank lines from the first :data:`SNIFF_BYTES` bytes (a
    line cut by the byte limit is dropped)."""
    with source.open() as f:
        head = f.read(SNIFF_BYTES)
        more = bool(f.read(1))
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.split("\n")
    if more and len(lines) > 1:
        lines = lines[:-1]
    out = [ln.rstrip("\r") for ln in lines if ln.strip()]
    return out[:SNIFF_LINES]


def _all_numbers(line: str) -> bool:
    """Whether every token of ``line`` (split at any candidate) is a number: a data line, not a
    header."""
    tokens = [x.strip('"') for x in re.split(r"[,;\s]+", line.strip()) if x]
    try:
        for x in tokens:
            float(x)
    except ValueError:
        return False
    return bool(tokens)


def _modal(counts: Sequence[int]) -> Tuple[int, float]:
    """The most common field count and the share of lines that have it."""
    (mode, n), = Counter(counts).most_common(1)
    return mode, n / len(counts)


def sniff_delimiter(source, option: str = "data.delimiter") -> Optional[str]:
    r"""Detects the separator of a text file from its first lines.

    Every sampled line is split at each candidate; the first line is left out when it is a
    header (a field that is not a number), whose width may differ, as JODIE's does. A candidate
    *fits* when it gives every such line the same number of fields, two or more. One fitting
    explicit character wins (whitespace instead when it gives more fields, for a comma that only
    appears inside a text column, but never over a tab); whitespace wins when no explicit
    character fits. When no candidate fits every line (a malformed line among the first ones),
    the explicit character that fits the most lines is used, so that the reader then names the
    line at fault.

    Args:
        source: a :class:`~pyg_tgl.data.readers.TextSource`.
        option: the option named in messages.

    Raises:
        DataFormatError: two explicit characters fit equally well, or none splits the lines into
            two or more fields; the message names the file and the option to set.
    """
    lines = _sample_lines(source)
    if not lines:
        return ","  # an empty file: the reader says so
    data = lines[1:] if len(lines) > 1 and not _all_numbers(lines[0]) else lines
    stats = {}
    for d in CANDIDATES:
        mode, share = _modal([count_fields(ln, d) for ln in data])
        stats[d] = (mode, share if mode >= 2 else 0.0)
    sample = f"{source.name}: the field separator could not be detected from the first " \
             f"{len(lines)} lines"
    ask = f"set {option} to one of ',', tab, ';', or null for whitespace"
    fitting = [d for d in _EXPLICIT if stats[d][1] == 1.0]
    if len(fitting) > 1:
        both = " and ".join(f"{describe_delimiter(d)} ({stats[d][0]} fields)" for d in fitting)
        raise DataFormatError(f"{sample}: {both} both split every line evenly; {ask}")
    ws_mode, ws_share = stats[None]
    if fitting:
        d = fitting[0]
        if d != "\t" and ws_share == 1.0 and ws_mode > stats[d][0]:
            return None
        return d
    if ws_share == 1.0:
        return None
    best = max(stats[d][1] for d in _EXPLICIT)
    if best > 0.0:
        top = [d for d in _EXPLICIT if stats[d][1] == best]
        if len(top) > 1:
            both = " and ".join(describe_delimiter(d) for d in top)
            raise DataFormatError(f"{sample}: {both} fit equally well; {ask}")
        return top[0]
    if ws_share > 0.0:
        return None
    raise DataFormatError(f"{sample}: no candidate splits them into two or more fields "
                          f"({lines[0][:80]!r}); {ask}")


def better_split_hint(line: str, delimiter: Optional[str], want: int, option: str) -> str:
    """``"; it has 3 fields when split at whitespace: set data.delimiter=null"`` when another
    separator gives ``line`` at least ``want`` fields (and more than ``delimiter`` does), else
    ``""``."""
    have = count_fields(line, delimiter)
    for d in CANDIDATES:
        if d == delimiter:
            continue
        n = count_fields(line, d)
        if n >= max(want, 2) and n > have:
            return (f"; it has {n} fields when split at {describe_delimiter(d)}: set "
                    f"{option}={delimiter_option_value(d)}")
    return ""


@dataclass(frozen=True)
class Separator:
    """The separator a reader splits lines at, and where it came from, for error messages.

    Args:
        char: the character, ``None`` for whitespace.
        option: the option that sets it (``"data.delimiter"``), or ``None`` when the format fixes
            it (then messages only name the separator).
        detected: it was found by :func:`sniff_delimiter` rather than given.
    """

    char: Optional[str]
    option: Optional[str] = None
    detected: bool = False

    def words(self) -> str:
        return describe_delimiter(self.char)

    def origin(self) -> str:
        """``" (detected from the first lines; data.delimiter sets it)"``,
        ``" (data.delimiter=',')"`` or ``""``."""
        if self.option is None:
            return ""
        if self.detected:
            return f" (detected from the first lines; {self.option} sets it)"
        return f" ({self.option}={delimiter_option_value(self.char)})"

    def hint(self, line: str, want: int) -> str:
        """See :func:`better_split_hint`; ``""`` when the format fixes the separator."""
        if self.option is None:
            return ""
        return better_split_hint(line, self.char, want, self.option)
