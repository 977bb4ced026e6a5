r"""From parsed events to the arrays of a processed data set: checks (row counts, times), node ids
mapped to ``0 .. N-1``, a stable sort by time, the time shift to ``t = 0``, features cast to the
storage type (or random ones), and node labels in the new ids.

Large arrays are streamed chunk by chunk into the cache's build folder (:mod:`pyg_tgl.data.cache`)
with plain file writes, so building never needs the whole data set in memory twice.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .errors import DataFormatError
from .formats.raw import RawEvents
from .node_ids import remap_node_ids
from .storage import NpyWriter, jsonable, load_npy
from .times import check_times

__all__ = ["FORMAT_VERSION", "finalize"]

#: Version of the processed layout; bumping it invalidates every cache.
FORMAT_VERSION = 1

_CHUNK = 1 << 22


def _sort_order(t: np.ndarray, where: Callable[[int], str], require_sorted: bool, name: str,
                silent: bool) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """Stable time order, or ``None`` when already sorted; plus the message naming the first
    event out of order."""
    E = t.shape[0]
    first_bad = None
    for s in range(0, E, _CHUNK):
        lo = max(s - 1, 0)
        d = np.diff(np.asarray(t[lo:s + _CHUNK]))
        bad = np.flatnonzero(d < 0)
        if bad.size:
            first_bad = lo + int(bad[0]) + 1
            break
    if first_bad is None:
        return None, None
    # 15 significant digits: Unix times a few seconds apart must not both read "1.6e+09".
    msg = (f"{where(first_bad)}: time {t[first_bad]:.15g} is earlier than the previous event's "
           f"{t[first_bad - 1]:.15g}; events are expected in time order")
    if require_sorted and not silent:
        raise DataFormatError(msg + " (require_sorted=true)")
    if not silent:
        warnings.warn(f"{name}: {msg}; sorting them by time (stable, ties keep file order)",
                      stacklevel=3)
    return np.argsort(np.asarray(t), kind="stable"), (None if silent else msg)


def _shift_time(t: np.ndarray, folder: Optional[Path]) -> Tuple[np.ndarray, float]:
    """Sorted times minus the first one, so the data set starts at ``t = 0`` as TGL's files do
    (JODIE's projection divides the elapsed time by ``t + 1``, and a node without events has
    ``memory_ts = 0``: with Unix times both see ~1e9). Returns the times and the offset."""
    t0 = float(t[0])
    if t0 == 0.0:
        return t, 0.0
    if folder is None or not isinstance(t, np.memmap):
        return np.asarray(t, dtype=np.float64) - t0, t0
    # Written with plain writes, not a memory map: on a full disk a write fails with ENOSPC
    # where a store into a mapped page would kill the process with SIGBUS.
    with NpyWriter(folder / "t_shifted.npy", np.float64) as w:
        for s in range(0, t.shape[0], _CHUNK):
            w.write(np.asarray(t[s:s + _CHUNK]) - t0)
    os.replace(w.path, folder / "t.npy")
    return load_npy(folder / "t.npy", mmap=True), t0


def _gather(a: Any, order: Optional[np.ndarray], dtype: Optional[np.dtype],
            folder: Optional[Path], fname: str):
    """``a[order]`` cast to ``dtype``, chunk by chunk, into ``folder/fname.npy`` (or memory)."""
    if isinstance(a, Tensor):
        a = a.numpy() if a.dtype not in (torch.bfloat16, torch.bool) else a.float().numpy()
    dtype = np.dtype(dtype or a.dtype)
    if folder is None:
        out = np.asarray(a[order] if order is not None else a)
        return out.astype(dtype, copy=False)
    target = folder / f"{fname}.npy"
    src_file = getattr(a, "filename", None)
    if src_file and Path(src_file) == target and order is None and a.dtype == dtype:
        return a
    # Write beside the target first: the source may be the target file itself.
    w = NpyWriter(folder / f".{fname}.new.npy", dtype, a.shape[1:])
    try:
        for s in range(0, a.shape[0], _CHUNK):
            idx = order[s:s + _CHUNK] if order is not None else slice(s, s + _CHUNK)
            w.write(np.asarray(a[idx]).astype(dtype, copy=False))
    except BaseException:
        w.abort()
        raise
    os.replace(w.close(), target)
    return load_npy(target, mmap=True)


def _random_features(rows: int, dim: int, seed: int, dtype: np.dtype, folder: Optional[Path],
                     fname: str) -> np.ndarray:
    gen = torch.Generator().manual_seed(int(seed))
    if folder is None:
        return torch.randn(rows, dim, generator=gen).numpy().astype(dtype)
    w = NpyWriter(folder / f"{fname}.npy", dtype, (dim,))
    step = max(1, _CHUNK // max(dim, 1))
    for s in range(0, rows, step):
        w.write(torch.randn(min(step, rows - s), dim, generator=gen).numpy().astype(dtype))
    return load_npy(w.close(), mmap=True)


def finalize(raw: RawEvents, o: Dict[str, Any], name: str,
              folder: Optional[Path]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    r"""Validates, remaps, sorts and converts the events a reader parsed.

    Large results are written to ``folder`` chunk by chunk (kept in memory without a folder).

    Args:
        raw: what the format reader returned.
        o: the data set's checked options (``remap_nodes``, ``require_sorted``,
            ``feature_dtype``, ``time_shift``, ``rand_*_features``, ``feature_seed``).
        name: the data set, for messages.
        folder: the build folder of the cache, or ``None``.

    Returns:
        ``(arrays, meta)``: name -> array (``src``, ``dst``, ``t``, ``msg``, ``node_feat``,
        ``label_*``, ...) and the content of ``meta.json``.
    """
    E = int(raw.t.shape[0])
    for k in ("src", "dst"):
        if getattr(raw, k).shape[0] != E:
            raise DataFormatError(f"{name}: {k} has {getattr(raw, k).shape[0]} rows but time has "
                                  f"{E}")
    if E == 0:
        raise DataFormatError(f"{name}: no events")
    check_times(raw.t, raw.where)
    if raw.msg is not None and raw.msg.shape[0] != E:
        raise DataFormatError(f"{raw.msg_source or name}: {raw.msg.shape[0]} rows of edge features "
                              f"for {E} events; expected one row per event")
    for k in ("y", "roll"):
        v = getattr(raw, k)
        if v is not None and v.shape[0] != E:
            raise DataFormatError(f"{name}: {v.shape[0]} {k} values for {E} events")

    src, dst, node_ids, N, map_ids = remap_node_ids(raw, o["remap_nodes"])
    order, unsorted_msg = _sort_order(raw.t, raw.where, bool(o["require_sorted"]), name,
                                      silent=bool(raw.info.get("unsorted_by_design")))
    fdtype = np.dtype(o["feature_dtype"])
    arrays: Dict[str, Any] = {}
    meta: Dict[str, Any] = {"version": FORMAT_VERSION, "name": name, "num_events": E,
                            "external": {}, "info": jsonable(raw.info)}

    def events(a, dtype, fname):
        fn = getattr(a, "filename", None)
        if order is None and folder is not None and isinstance(a, np.memmap) and fn and \
                Path(fn).parent == folder and a.dtype == dtype and a.ndim == 1:
            # Already a spilled column in the build folder: keep the file, no copy.
            target = folder / f"{fname}.npy"
            if Path(fn) != target:
                os.replace(fn, target)
            return load_npy(target, mmap=True)
        return _gather(np.asarray(a) if not isinstance(a, np.memmap) else a, order, dtype, folder, fname)

    arrays["src"] = events(src, np.int64, "src")
    arrays["dst"] = events(dst, np.int64, "dst")
    arrays["t"] = events(raw.t, np.float64, "t")
    if o["time_shift"]:
        arrays["t"], meta["time_shift"] = _shift_time(arrays["t"], folder)
    if raw.y is not None:
        arrays["y"] = events(raw.y, np.int64, "y")
    if raw.roll is not None:
        arrays["roll"] = events(raw.roll, np.int8, "roll")

    msg = raw.msg
    if msg is not None:
        src_dtype = np.dtype(str(msg.dtype).replace("torch.", "")) if isinstance(msg, Tensor) \
            and msg.dtype != torch.bool and msg.dtype != torch.bfloat16 else None
        if (folder is not None and isinstance(msg, Tensor) and order is None
                and src_dtype == fdtype and raw.msg_source and Path(raw.msg_source).is_file()):
            meta["external"]["msg"] = raw.msg_source  # memory-map the raw .pt file, no copy
        else:
            arrays["msg"] = _gather(msg, order, fdtype, folder, "msg")
    elif int(o["rand_edge_features"]) > 0:
        arrays["msg"] = _random_features(E, int(o["rand_edge_features"]), o["feature_seed"],
                                         fdtype, folder, "msg")
        meta["info"]["random_edge_features"] = int(o["rand_edge_features"])
    if raw.msg is not None and int(o["rand_edge_features"]) > 0:
        warnings.warn(f"{name}: the data set has edge features; rand_edge_features ignored")

    nf = raw.node_feat
    if nf is not None:
        top = int(node_ids.max()) if node_ids is not None else N - 1
        if nf.shape[0] <= top:
            raise DataFormatError(f"{raw.node_feat_source}: {nf.shape[0]} rows of node features "
                                  f"but node ids go up to {top}; expected one row per node")
        nf_dtype = np.dtype(str(nf.dtype).replace("torch.", "")) if isinstance(nf, Tensor) \
            and nf.dtype not in (torch.bool, torch.bfloat16) else None
        nf_order = None if node_ids is None else node_ids
        if (folder is not None and isinstance(nf, Tensor) and nf_order is None
                and nf_dtype == fdtype and raw.node_feat_source):
            meta["external"]["node_feat"] = raw.node_feat_source
        else:
            arrays["node_feat"] = _gather(nf, nf_order, fdtype, folder, "node_feat")
        meta["info"]["node_feat_source"] = raw.node_feat_source
        N = max(N, int(nf.shape[0])) if node_ids is None else N
    elif int(o["rand_node_features"]) > 0:
        arrays["node_feat"] = _random_features(N, int(o["rand_node_features"]),
                                               int(o["feature_seed"]) + 1, fdtype, folder,
                                               "node_feat")
        meta["info"]["random_node_features"] = int(o["rand_node_features"])

    if node_ids is not None:
        arrays["node_ids"] = node_ids
    if raw.labels is not None:
        lab = raw.labels
        node = map_ids(lab.node)
        ok = node >= 0
        dropped = int((~ok).sum())
        if dropped:
            meta["labels_dropped"] = dropped
            warnings.warn(f"{name}: {dropped} node labels name nodes without any event; dropped")
        lorder = np.argsort(np.asarray(lab.t)[ok], kind="stable")
        arrays["label_node"] = node[ok][lorder].astype(np.int64)
        arrays["label_t"] = np.asarray(lab.t, dtype=np.float64)[ok][lorder]
        if meta.get("time_shift"):
            arrays["label_t"] = arrays["label_t"] - meta["time_shift"]
        arrays["label_y"] = np.asarray(lab.y, dtype=np.int64)[ok][lorder]
        if lab.roll is not None:
            arrays["label_roll"] = np.asarray(lab.roll, dtype=np.int8)[ok][lorder]
        if lab.classes is not None:
            meta["label_classes"] = list(lab.classes)
    meta["num_nodes"] = int(N)
    meta["unsorted_input"] = unsorted_msg
    return arrays, meta
