r"""Named temporal interaction data sets as :class:`TemporalDataset` objects: :func:`load_dataset`.

``load_dataset(name, **options)`` finds (and when needed downloads) the raw files
(:mod:`~pyg_tgl.data.raw_files`), parses them with the format's reader
(:mod:`~pyg_tgl.data.formats`), validates, remaps node ids to ``0 .. N-1`` where they are not
already, sorts events by time (stably) (:mod:`~pyg_tgl.data.build`) and caches the result as
``.npy`` files in ``$PYG_TGL_DATA/processed`` (default ``~/.cache/pyg_tgl``,
:mod:`~pyg_tgl.data.cache`), keyed by a format version, the raw files' size and modification time
and the options that change the result; a changed raw file triggers a rebuild. Large arrays come
back memory-mapped. The split and its inductive mask come from :mod:`~pyg_tgl.data.splits`.

The names, their options and descriptions are in :mod:`~pyg_tgl.data.registry` (see
``docs/datasets.md``); this module also re-exports the names that used to live here.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch
from torch_geometric.data import TemporalData

from .build import FORMAT_VERSION, finalize
from .cache import cache_root, cached_build, load_arrays
from .errors import DataFormatError
from .raw_files import SHARED_ENV, TGL_DATASETS, shared_data_dir
from .registry import dataset_options, get_spec, list_datasets
from .spec import COMMON_OPTIONS
from .splits import chronological_bounds, dataset_split
from .storage import disk_full_guard
from .temporal_dataset import NodeLabels, TemporalDataset

__all__ = ["TemporalDataset", "NodeLabels", "load_dataset", "list_datasets", "dataset_options",
           "shared_data_dir", "DataFormatError", "TGL_DATASETS", "FORMAT_VERSION", "SHARED_ENV",
           "COMMON_OPTIONS", "chronological_bounds"]


def _plain(v: Any) -> Any:
    """OmegaConf containers (from ``load_dataset(**cfg.data)``) -> plain dicts and lists."""
    if type(v).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf
        return OmegaConf.to_container(v, resolve=True)
    return v


def _check_count(label: str, expected: Optional[int], got: int, hint: str, fatal: bool) -> None:
    if expected is None or int(expected) == got:
        return
    msg = f"{label}: {got:,} found, {int(expected):,} expected; {hint}"
    if fatal:
        raise DataFormatError(msg)
    warnings.warn(msg)


def load_dataset(name: str, **options: Any) -> TemporalDataset:
    r"""Loads a named temporal data set (see :func:`list_datasets` and ``docs/datasets.md``).

    Every ``conf/data/<name>.yaml`` holds ``name`` plus options of this function, so
    ``load_dataset(**cfg.data)`` works for each of them.

    Args:
        name: registry name, e.g. ``"collegemsg"``, ``"wiki"``, ``"csv"``, ``"synthetic"``.
        split: ``"chronological"`` (by time quantiles ``1 - val_ratio - test_ratio`` and
            ``1 - test_ratio``, as :meth:`TemporalData.train_val_test_split`; events sharing a
            timestamp stay together) or ``"ext_roll"`` (TGL's column; the default for TGL data).
        val_ratio, test_ratio: chronological split fractions (default 0.15 each).
        feature_dtype: ``"float32"`` or ``"float16"`` storage of edge/node features.
        rand_edge_features, rand_node_features: when > 0 and the data set has no such features,
            standard-normal features of that dimension (TGL's option for MOOC/LASTFM), seeded
            by ``feature_seed``.
        require_sorted: raise on events out of time order instead of sorting them (stably) with a
            warning.
        remap_nodes: map node ids to ``0 .. N-1``; ``None`` does it when ids are not exactly that
            range (never for TGL data, whose ids index the node features).
        cache: store/reuse the processed arrays under ``cache_dir``
            (default ``$PYG_TGL_DATA/processed``); ``False`` builds everything in memory.
        mmap: memory-map the processed arrays (``None``: those larger than 256 MiB).
        progress: progress bars (default: when stderr is a terminal).
        time_shift: subtract the first event time from all times (events and node labels), so
            the data set starts at ``t = 0`` as TGL's files do (default ``True``): JODIE's time
            projection and the first memory update of a node assume it. The offset is kept in
            ``meta.json`` and as :attr:`TemporalDataset.time_origin`.
        **options: options of the loader (``path``, ``root``, ``download``, columns for
            ``csv``, sizes for ``synthetic``, ...; see ``docs/datasets.md``).

    Raises:
        TypeError: unknown option. ValueError / :class:`DataFormatError`: bad input, naming the
        file, line and what was expected. FileNotFoundError: missing file, with how to get it.
    """
    spec = get_spec(name)
    o = spec.check_options({k: _plain(v) for k, v in options.items()})
    progress = o["progress"]
    files = spec.files(o)

    def build(folder: Optional[Path]):
        return finalize(spec.read(o, files, folder, progress), o, name, folder)

    if o["cache"]:
        root = cache_root(o)
        with disk_full_guard(root):
            folder, meta = cached_build(root, name, spec.build_options(o), files, build)
            if o["require_sorted"] and meta.get("unsorted_input"):
                # The cache holds the sorted events; the raw file is still out of order.
                raise DataFormatError(meta["unsorted_input"] + " (require_sorted=true)")
            ds = _assemble(name, load_arrays(folder, meta, o["mmap"]), meta, o, folder)
    else:
        arrays, meta = build(None)
        arrays = {k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray)
                      and v.dtype.kind not in "US" else v) for k, v in arrays.items()}
        ds = _assemble(name, arrays, meta, o, None)

    _check_count(f"{name}: events", o.get("expected_events"), ds.num_events,
                 "the download is truncated or a different version of the data set", fatal=True)
    _check_count(f"{name}: nodes", o.get("expected_nodes"), ds.num_nodes,
                 "node count differs from the published one", fatal=False)
    if spec.check is not None:
        spec.check(ds)
    return ds


def _assemble(name: str, arrays: Dict[str, Any], meta: Dict[str, Any], o: Dict[str, Any],
              folder: Optional[Path]) -> TemporalDataset:
    """The :class:`TemporalDataset` of processed arrays, with its split (cached in ``folder``)."""
    kw = {k: arrays[k] for k in ("src", "dst", "t")}
    if "msg" in arrays:
        kw["msg"] = arrays["msg"]
    if "y" in arrays:
        kw["y"] = arrays["y"]
    data = TemporalData(**kw)
    node_labels = None
    if "label_node" in arrays:
        node_labels = NodeLabels(arrays["label_node"], arrays["label_t"], arrays["label_y"],
                                 arrays.get("label_roll"), meta.get("label_classes"))
    split, desc = dataset_split(data, arrays.get("roll"), meta["num_nodes"], o, folder, name)
    info = dict(meta.get("info", {}))
    info.pop("unsorted_by_design", None)
    info["memory_mapped"] = arrays.get("_mapped", [])
    return TemporalDataset(name, data, meta["num_nodes"], node_feat=arrays.get("node_feat"),
                           split=split, node_labels=node_labels, node_ids=arrays.get("node_ids"),
                           info=info, cache_dir=folder, split_desc=desc,
                           time_origin=meta.get("time_shift", 0.0))
