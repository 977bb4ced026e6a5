"""Any CSV or Parquet file of events, with the columns the user names (``data=csv``): header
names or 0-based positions, text or integer node ids, numeric or ISO-8601 times, and the field
separator detected when not given (:mod:`pyg_tgl.data.delimiters`)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..delimiters import AUTO, normalize_delimiter, sniff_delimiter
from ..errors import DataFormatError
from ..readers import Column, parse_iso_datetimes, read_table, source_from_path
from ..table_checks import is_number, split_fields
from .raw import RawEvents, as_integers

__all__ = ["read_csv"]


def _col_key(c: Union[str, int]) -> Union[str, int]:
    if isinstance(c, int):
        return c
    s = str(c).strip()
    return int(s) if s.lstrip("-").isdigit() else s


def read_csv(path: Path, *, src: Union[str, int], dst: Union[str, int], time: Union[str, int],
             edge_features: Optional[Sequence[Union[str, int]]] = None,
             label: Optional[Union[str, int]] = None, delimiter: Optional[str] = AUTO,
             header: Optional[bool] = None, node_id_type: str = "auto", time_format: str = "number",
             spill_dir: Optional[Path] = None, progress: bool = False) -> RawEvents:
    r"""Reads a user's CSV (or ``.parquet``) file with the named (or 0-based numbered) columns.

    Args:
        delimiter: the field separator: one character (``","``, ``";"``, ``"tab"`` or ``"\t"``),
            ``None`` for any whitespace, or ``"auto"`` (default) to detect it from the first
            lines (see :func:`pyg_tgl.data.delimiters.sniff_delimiter`).
        node_id_type: ``"int"`` (non-negative integers), ``"str"`` (any text, mapped to
            integers) or ``"auto"`` (``"str"`` when the first row's ids are not numbers).
        time_format: ``"number"`` (a numeric timestamp) or ``"iso"`` (ISO-8601 dates, turned
            into Unix seconds).
    """
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return _read_parquet(path, src=src, dst=dst, time=time, edge_features=edge_features,
                             label=label, node_id_type=node_id_type, time_format=time_format)
    if node_id_type not in ("auto", "int", "str"):
        raise ValueError(f"csv: node_id_type must be 'auto', 'int' or 'str', got {node_id_type!r}")
    if time_format not in ("number", "iso"):
        raise ValueError(f"csv: time_format must be 'number' or 'iso', got {time_format!r}")
    delimiter = normalize_delimiter(delimiter, "csv: delimiter")
    source = source_from_path(path)
    detected = delimiter == AUTO
    if detected:
        delimiter = sniff_delimiter(source, "data.delimiter")
    keys = {"src": _col_key(src), "dst": _col_key(dst), "t": _col_key(time)}
    if node_id_type == "auto":
        node_id_type = _sniff_id_type(source, keys, delimiter, header)
    id_kind = "str" if node_id_type == "str" else "id"
    cols = {"src": Column(keys["src"], id_kind, option="data.src"),
            "dst": Column(keys["dst"], id_kind, option="data.dst"),
            "t": Column(keys["t"], "str" if time_format == "iso" else "float", option="data.time")}
    feats = list(edge_features or [])
    for j, f in enumerate(feats):
        cols[f"f{j}"] = Column(_col_key(f), "float", option=f"data.edge_features[{j}]")
    if label is not None:
        cols["y"] = Column(_col_key(label), "float", option="data.label")
    tb = read_table(source, cols, delimiter=delimiter, header=header,
                    spill_dir=spill_dir if id_kind == "id" else None, progress=progress,
                    delimiter_option="data.delimiter", delimiter_detected=detected)
    if tb.num_rows == 0:
        raise DataFormatError(f"{path}: header only, no events")
    t = tb.columns["t"]
    if time_format == "iso":
        t = parse_iso_datetimes(t, tb.where, str(time))
    msg = (np.stack([tb.columns[f"f{j}"] for j in range(len(feats))], 1).astype(np.float32)
           if feats else None)
    raw = RawEvents(tb.columns["src"], tb.columns["dst"], t, tb.where, msg=msg,
                    msg_source=str(path), info={"format": "csv", "delimiter": delimiter,
                                                "edge_features": [str(f) for f in feats]})
    if label is not None:
        raw.y = as_integers(tb.columns["y"], tb.where, f"label column {label!r}")
    return raw


def _sniff_id_type(source, keys, delimiter, header) -> str:
    """``"str"`` when the first data row's src or dst is not a number."""
    with source.open() as f:
        lines = []
        for raw in f:
            line = raw.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
            if line.strip():
                lines.append(line)
            if len(lines) == 2:
                break
    if not lines:
        return "int"
    first = split_fields(lines[0], delimiter)
    names = None
    by_name = any(isinstance(k, str) for k in keys.values())
    has_header = header if header is not None else (
        by_name or not all(is_number(x) for x in first))
    if has_header:
        names = [x.strip().strip('"') for x in first]
        if len(lines) < 2:
            return "int"
        first = split_fields(lines[1], delimiter)
    for k in ("src", "dst"):
        key = keys[k]
        j = names.index(key) if isinstance(key, str) and names and key in names else key
        if isinstance(j, int) and j < len(first) and not is_number(first[j].strip()):
            return "str"
    return "int"


def _read_parquet(path: Path, *, src, dst, time, edge_features, label, node_id_type,
                  time_format) -> RawEvents:
    try:
        import pyarrow.parquet as pq  # type: ignore
    except ImportError:
        raise ImportError(f"reading {path} needs pyarrow: pip install pyarrow") from None
    table = pq.read_table(path)
    names = table.column_names

    def col(key):
        key = _col_key(key)
        if isinstance(key, int):
            if not 0 <= key < len(names):
                raise DataFormatError(f"{path}: column {key} requested, the file has {len(names)}")
            key = names[key]
        if key not in names:
            raise DataFormatError(f"{path}: missing column {key!r}; the file has {names}")
        return table.column(key).to_numpy(zero_copy_only=False)

    where = lambda r: f"{path}, row {r + 1}"  # noqa: E731
    s, d, t = col(src), col(dst), col(time)
    if node_id_type == "str" or s.dtype.kind in "OUS" or d.dtype.kind in "OUS":
        s, d = s.astype(str), d.astype(str)
    if time_format == "iso" or t.dtype.kind in "OUSM":
        t = (t.astype("datetime64[s]").astype(np.int64).astype(np.float64) if t.dtype.kind == "M"
             else parse_iso_datetimes(t.astype(str), where, str(time)))
    else:
        t = t.astype(np.float64)
    feats = list(edge_features or [])
    msg = np.stack([col(f).astype(np.float32) for f in feats], 1) if feats else None
    raw = RawEvents(s, d, t, where, msg=msg, msg_source=str(path),
                    info={"format": "parquet", "edge_features": [str(f) for f in feats]})
    if label is not None:
        raw.y = as_integers(col(label).astype(np.float64), where, f"label column {label!r}")
    return raw
