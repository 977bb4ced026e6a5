"""Fast, validating readers for delimited text files (CSV, whitespace-separated edge lists), plain,
gzip-compressed or inside zip archives.

The file is read in blocks of whole lines; each block is parsed by numpy's C parser
(:func:`numpy.loadtxt`), so there is no Python loop over rows. Only when a block fails to parse is
it walked line by line, to name the exact line (1-based, as an editor shows it) and the field at
fault. Columns are streamed into :class:`~pyg_tgl.data.storage.NpyWriter` files when a spill folder
is given, so files of hundreds of millions of rows are read with bounded memory.
"""
from __future__ import annotations

import bisect
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .delimiters import Separator
from .errors import DataFormatError
from .storage import NpyWriter, PathLike, load_npy
from .table_checks import diagnose_block, is_number, resolve_column, split_fields, to_int
from .text_sources import (TextSource, decode_block, iter_blocks, source_from_path,
                           sources_from_zip)
from .times import check_times, parse_iso_datetimes

__all__ = [
    "DataFormatError",
    "TextSource",
    "Column",
    "Table",
    "LineMap",
    "read_table",
    "source_from_path",
    "sources_from_zip",
    "check_times",
    "parse_iso_datetimes",
]

#: Block size of the chunked reader (bytes of text per numpy parse call).
DEFAULT_CHUNK_BYTES = 1 << 22


@dataclass
class Column:
    """One column (or a block of consecutive columns) to extract from a table.

    Args:
        key: 0-based position or header name.
        kind: ``"float"`` (float64), ``"id"`` (non-negative integer, returned as int64),
            ``"int"`` (any integer, int64) or ``"str"`` (text, returned as a numpy unicode array).
        width: number of consecutive columns starting at ``key`` (a feature block) or ``None`` for
            "up to the last column"; blocks give 2-D ``float32`` arrays.
        optional: when the header lacks the column, it is silently absent from the result instead
            of an error.
        option: the user's option that chose the column (``"data.dst"``); messages then name the
            column as ``data.dst=1``, in the user's own (0-based) numbering.
    """

    key: Union[int, str]
    kind: str = "float"
    width: Optional[int] = 1
    optional: bool = False
    option: Optional[str] = None


class LineMap:
    """Maps a data row (0-based, over the whole table) to its 1-based line in the file."""

    def __init__(self) -> None:
        self._row_start: List[int] = []
        self._chunks: List[Tuple[int, str, int, Optional[np.ndarray]]] = []

    def add(self, row_start: int, source: str, line_start: int, row_lines: Optional[np.ndarray]) -> None:
        self._row_start.append(row_start)
        self._chunks.append((row_start, source, line_start, row_lines))

    def locate(self, row: int) -> Tuple[str, int]:
        """``(file name, line number)`` of data row ``row``."""
        i = bisect.bisect_right(self._row_start, int(row)) - 1
        if i < 0:
            return ("?", -1)
        start, source, line_start, row_lines = self._chunks[i]
        off = int(row) - start
        if row_lines is not None:
            return source, int(row_lines[off]) if off < len(row_lines) else -1
        return source, line_start + off

    def where(self, row: int) -> str:
        """``"<file>, line <n>"`` for data row ``row``."""
        source, line = self.locate(row)
        return f"{source}, line {line}"


@dataclass
class Table:
    """Columns read from one or more text sources.

    Attributes:
        columns: name -> array (memory-mapped when the reader spilled to disk).
        header: the header's field names, or ``None`` when the file has no header.
        num_rows: number of data rows.
        lines: row -> (file, line) map for messages.
        sources: names of the files read.
    """

    columns: Dict[str, np.ndarray]
    header: Optional[List[str]]
    num_rows: int
    lines: LineMap
    sources: List[str] = field(default_factory=list)

    def where(self, row: int) -> str:
        return self.lines.where(row)


def read_table(sources: Union[TextSource, Sequence[TextSource]], columns: Dict[str, Column], *,
               delimiter: Optional[str] = ",", header: Optional[bool] = None,
               preprocess: Optional[Callable[[bytes], bytes]] = None,
               encoding: str = "utf-8-sig", chunk_bytes: int = DEFAULT_CHUNK_BYTES,
               spill_dir: Optional[PathLike] = None, progress: bool = False,
               delimiter_option: Optional[str] = None, delimiter_detected: bool = False) -> Table:
    r"""Reads the requested columns of one or more delimited text files (concatenated in order).

    Every source must have the same layout. Blank lines are skipped (and still counted for line
    numbers). Errors are :class:`DataFormatError` naming the file, line and field.

    Args:
        sources: the files (see :func:`source_from_path`, :func:`sources_from_zip`).
        columns: output name -> :class:`Column`.
        delimiter: field separator, ``None`` for any whitespace.
        header: whether the first line is a header; ``None`` detects it: columns requested by
            name imply a header, otherwise a first line with a non-numeric field among the
            requested numeric columns is one.
        preprocess: applied to each block of raw bytes before parsing (must keep newlines), e.g.
            to turn ``4/15/04 2:56 PM`` into numeric fields.
        encoding: text encoding (the default accepts UTF-8 with or without a byte-order mark).
        chunk_bytes: block size.
        spill_dir: when given, numeric columns are streamed to ``.npy`` files there and returned
            memory-mapped (bounded memory for very large files).
        progress: show a tqdm progress bar over bytes.
        delimiter_option, delimiter_detected: the option that sets the separator and whether it
            was detected; messages about fields then say where the separator came from and
            which value of the option would split the line at fault differently.
    """
    if isinstance(sources, TextSource):
        sources = [sources]
    if not sources:
        raise ValueError("read_table needs at least one source")
    state = _ReadState(columns, Separator(delimiter, delimiter_option, delimiter_detected), header,
                       spill_dir)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        total = sum(s.size or 0 for s in sources) or None
        bar = tqdm(total=total, unit="B", unit_scale=True,
                   desc=f"reading {Path(sources[0].name).name}")
    try:
        for src in sources:
            state.new_source()
            with src.open() as f:
                line_no = 1  # line number of the first line of the next block
                for block in iter_blocks(f, chunk_bytes):
                    if bar is not None:
                        bar.update(len(block))
                    raw_text = None
                    if preprocess is not None:
                        raw_text = decode_block(block, src.name, line_no, encoding)
                        block = preprocess(block)
                    text = decode_block(block, src.name, line_no, encoding)
                    block_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
                    state.feed(src.name, text, raw_text, line_no)
                    line_no += block_lines
        return state.finish(sources)
    except BaseException:
        state.abort()
        raise
    finally:
        if bar is not None:
            bar.close()


def _drop_first_line(text: Optional[str]) -> Optional[str]:
    if text is None:
        return None
    nl = text.find("\n")
    return "" if nl < 0 else text[nl + 1:]


class _ReadState:
    """Carries the layout (header, width, resolved columns) and the outputs across blocks."""

    def __init__(self, columns: Dict[str, Column], sep: Separator,
                 header: Optional[bool], spill_dir: Optional[PathLike]) -> None:
        self.columns = columns
        self.sep = sep
        self.delimiter = sep.char
        self.header = header
        self.spill_dir = spill_dir
        self.header_names: Optional[List[str]] = None
        self.layout: Optional[Tuple[int, Dict[str, Optional[Tuple[int, int]]]]] = None
        self.lines = LineMap()
        self.parts: Dict[str, List[np.ndarray]] = {k: [] for k in columns}
        self.writers: Dict[str, NpyWriter] = {}
        self.rows = 0
        self.seen_first = False

    def new_source(self) -> None:
        self.seen_first = False

    def _start(self, source: str, text: str, raw: Optional[str], line: int):
        """Handles the first non-blank line of a source; returns the remaining text or None."""
        lead = 0
        while True:
            nl = text.find("\n", lead)
            first = text[lead:] if nl < 0 else text[lead:nl]
            if first.strip() or nl < 0:
                break
            lead = nl + 1
            line += 1
        if not first.strip():
            return None
        self.seen_first = True
        text = text[lead:]
        raw = raw[lead:] if raw is not None else None
        first = first.rstrip("\r")
        fields = split_fields(first, self.delimiter)
        if self.layout is not None:
            is_header = self.header_names is not None
        elif self.header is not None:
            is_header = bool(self.header)
        elif any(isinstance(c.key, str) for c in self.columns.values()):
            is_header = True
        else:
            numeric = [int(c.key) for c in self.columns.values() if c.kind != "str"]
            is_header = any(0 <= j < len(fields) and not is_number(fields[j].strip())
                            for j in numeric)
        if is_header:
            if self.layout is None:
                self.header_names = [x.strip().strip('"') for x in fields]
            text, raw = _drop_first_line(text), _drop_first_line(raw)
            line += 1
        if self.layout is None:
            width_line, width_text = line, first
            if is_header:
                # The data width comes from the first data line (JODIE's header names one column
                # for its 172 feature fields).
                nl = text.find("\n")
                data_first = (text if nl < 0 else text[:nl]).rstrip("\r")
                if data_first.strip():
                    width_text = data_first
                    ncols = len(split_fields(data_first, self.delimiter))
                    if ncols < len(self.header_names):
                        raise DataFormatError(
                            f"{source}, line {line}: {ncols} fields but the header names "
                            f"{len(self.header_names)} columns {self.header_names}")
                else:
                    width_line -= 1
                    ncols = len(self.header_names)
            else:
                ncols = len(fields)
            resolved = {k: resolve_column(c, k, self.header_names, ncols, source, width_line,
                                    width_text, self.sep, header_text=first)
                        for k, c in self.columns.items()}
            self.layout = (ncols, resolved)
        return text, raw, line

    def feed(self, source: str, text: str, raw: Optional[str], line: int) -> None:
        if not self.seen_first:
            started = self._start(source, text, raw, line)
            if started is None:
                return
            text, raw, line = started
        ncols, resolved = self.layout
        nrows, row_lines = _parse_block(text, raw, source, line, ncols, self.columns, resolved,
                                        self.header_names, self.sep, self.parts,
                                        self.writers, self.spill_dir)
        if nrows:
            self.lines.add(self.rows, source, line, row_lines)
        self.rows += nrows

    def finish(self, sources: Sequence[TextSource]) -> Table:
        if self.layout is None:
            names = ", ".join(s.name for s in sources)
            raise DataFormatError(f"{names}: the file is empty; expected rows of data")
        ncols, resolved = self.layout
        out: Dict[str, np.ndarray] = {}
        for k, c in self.columns.items():
            if resolved[k] is None:
                continue
            if k in self.writers:
                out[k] = load_npy(self.writers[k].close(), mmap=True)
            elif self.parts[k]:
                p = self.parts[k]
                out[k] = np.concatenate(p) if len(p) > 1 else p[0]
            else:
                shape = (0,) if c.width == 1 else (0, resolved[k][1])
                out[k] = np.empty(shape, dtype=_out_dtype(c))
        return Table(out, self.header_names, self.rows, self.lines, [s.name for s in sources])

    def abort(self) -> None:
        for w in self.writers.values():
            w.abort()


def _out_dtype(c: Column) -> np.dtype:
    if c.kind == "str":
        return np.dtype(str)
    if c.width != 1:
        return np.dtype(np.float32)
    return np.dtype(np.int64 if c.kind in ("id", "int") else np.float64)


def _parse_block(text: str, raw_text: Optional[str], source: str, line_start: int, ncols: int,
                 columns: Dict[str, Column], resolved, header_names, sep: Separator,
                 parts: Dict[str, List[np.ndarray]], writers: Dict[str, NpyWriter],
                 spill_dir: Optional[PathLike]) -> Tuple[int, Optional[np.ndarray]]:
    delimiter = sep.char
    if not text.strip():
        return 0, None
    names: Dict[int, str] = {}
    num_cols: List[int] = []
    str_cols: List[int] = []
    for k, c in columns.items():
        r = resolved[k]
        if r is None:
            continue
        first, width = r
        for j in range(first, first + width):
            label = header_names[j] if header_names is not None and j < len(header_names) else None
            names[j] = f"column {label!r}" if label else f"column {j + 1} ({k})"
            (str_cols if c.kind == "str" else num_cols).append(j)
    num_cols = sorted(set(num_cols))
    str_cols = sorted(set(str_cols))

    # A cheap whole-block check of the field count: numpy tolerates ragged rows when usecols is
    # given, and a short row must not silently shift data. Skipped when quotes may hide separators.
    ragged = False
    if delimiter is not None and '"' not in text:
        blank = text.count("\n\n") + text.count("\n\r\n") + (1 if text.startswith(("\n", "\r\n")) else 0)
        nlines = text.count("\n") + (0 if text.endswith("\n") else 1) - blank
        ragged = text.count(delimiter) != (ncols - 1) * nlines
    row_lines = None
    if "\n\n" in text or "\n\r\n" in text or text.startswith(("\n", "\r\n")):
        # Blank lines inside the block: keep an explicit row -> line table (rare case).
        lines = text.split("\n")
        keep = np.fromiter((i for i, ln in enumerate(lines) if ln.strip()), dtype=np.int64)
        row_lines = keep + line_start

    def fail(e: Exception) -> DataFormatError:
        found = diagnose_block(text, raw_text, source, line_start, ncols, num_cols, names, sep)
        if found is not None:
            return found
        return DataFormatError(f"{source}, lines {line_start}..{line_start + text.count(chr(10))}:"
                               f" could not be parsed ({e})")

    if ragged:
        # The count can also be off for benign reasons (separators inside a text column).
        found = diagnose_block(text, raw_text, source, line_start, ncols, num_cols, names, sep)
        if found is not None:
            raise found
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
        try:
            nums = (np.loadtxt(io.StringIO(text), delimiter=delimiter, usecols=num_cols,
                               dtype=np.float64, ndmin=2, quotechar='"', comments=None)
                    if num_cols else None)
            strs = (np.loadtxt(io.StringIO(text), delimiter=delimiter, usecols=str_cols,
                               dtype=str, ndmin=2, quotechar='"', comments=None)
                    if str_cols else None)
        except ValueError as e:
            raise fail(e) from None
    nrows = nums.shape[0] if nums is not None else strs.shape[0]
    pos_num = {c: i for i, c in enumerate(num_cols)}
    pos_str = {c: i for i, c in enumerate(str_cols)}
    for k, c in columns.items():
        r = resolved[k]
        if r is None:
            continue
        first, width = r
        if c.kind == "str":
            arr = np.char.strip(strs[:, pos_str[first]])
        elif c.width != 1:
            idx = [pos_num[j] for j in range(first, first + width)]
            arr = nums[:, idx].astype(np.float32)
        else:
            arr = nums[:, pos_num[first]]
            if c.kind in ("id", "int"):
                arr = to_int(arr, c.kind == "id", source, line_start, row_lines, names[first])
        if spill_dir is not None and c.kind != "str":
            w = writers.get(k)
            if w is None:
                w = writers[k] = NpyWriter(Path(spill_dir) / f"read_{k}.npy", arr.dtype, arr.shape[1:])
            w.write(arr)
        else:
            parts[k].append(arr)
    return nrows, row_lines


