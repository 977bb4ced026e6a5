r"""What a named data set is made of (:class:`DatasetSpec`): its options with their defaults,
where its raw files are, which reader parses them, and the options every data set shares
(:data:`COMMON_OPTIONS`), with their checks."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from .formats.raw import RawEvents
from .storage import jsonable

__all__ = ["DatasetSpec", "COMMON_OPTIONS", "SPLITS", "FEATURE_DTYPES"]

#: ``read(options, files, spill_dir, progress)``: parses the raw files (spilling large columns
#: into ``spill_dir`` when given).
Reader = Callable[[Dict[str, Any], List[Path], Optional[Path], bool], RawEvents]

#: Options every data set accepts, with their defaults (documented at
#: :func:`~pyg_tgl.data.datasets.load_dataset`).
COMMON_OPTIONS: Dict[str, Any] = {
    "split": None,
    "val_ratio": 0.15,
    "test_ratio": 0.15,
    "feature_dtype": "float32",
    "rand_edge_features": 0,
    "rand_node_features": 0,
    "feature_seed": 0,
    "require_sorted": False,
    "remap_nodes": None,
    "cache": True,
    "cache_dir": None,
    "mmap": None,
    "progress": None,
    "time_shift": True,
}
# The common options that change the processed arrays (part of the cache key).
_BUILD_COMMON = ("feature_dtype", "rand_edge_features", "rand_node_features", "feature_seed",
                 "remap_nodes")

SPLITS = ("chronological", "ext_roll")
FEATURE_DTYPES = ("float32", "float16")


@dataclass
class DatasetSpec:
    r"""One named data set of the registry (:mod:`pyg_tgl.data.registry`).

    Args:
        name: the registry name (``data=<name>``).
        description: one line for ``python -m pyg_tgl.data list``.
        options: its own options with their defaults (beside :data:`COMMON_OPTIONS`).
        files: options -> the raw files (:mod:`pyg_tgl.data.raw_files`).
        read: the format reader (:mod:`pyg_tgl.data.formats`), see :data:`Reader`.
        volatile: own options that do not change the processed result (left out of the cache
            key: download sources, expected sizes, chunk sizes).
        default_split: the split when ``split`` is not given.
        check: a last check of the loaded data set (e.g. a known defective upload).
    """

    name: str
    description: str
    options: Dict[str, Any]
    files: Callable[[Dict[str, Any]], List[Path]]
    read: Reader
    volatile: Tuple[str, ...] = ()
    default_split: str = "chronological"
    check: Optional[Callable[[Any], None]] = None

    def accepted_options(self) -> Dict[str, Any]:
        """Every option of ``load_dataset(name, ...)`` with its default."""
        return {**COMMON_OPTIONS, **self.options}

    def check_options(self, options: Dict[str, Any]) -> Dict[str, Any]:
        """The given options over the defaults, checked; ``TypeError`` for an unknown option,
        ``ValueError`` naming the option and what is allowed for a bad value."""
        accepted = self.accepted_options()
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(f"load_dataset({self.name!r}): unknown option(s) {unknown}; "
                            f"accepted: {sorted(accepted)}")
        o = {**accepted, **options}
        for k in ("val_ratio", "test_ratio"):
            if isinstance(o[k], bool) or not isinstance(o[k], (int, float)):
                raise ValueError(f"{self.name}: {k} must be a number in [0, 1), got {o[k]!r}")
            if not 0.0 <= float(o[k]) < 1.0:
                raise ValueError(f"{self.name}: {k} must be in [0, 1), got {o[k]}")
        if float(o["val_ratio"]) + float(o["test_ratio"]) >= 1.0:
            raise ValueError(f"{self.name}: val_ratio + test_ratio must be < 1, got "
                             f"{o['val_ratio']} + {o['test_ratio']}")
        if o["split"] is None:
            o["split"] = self.default_split
        if o["split"] not in SPLITS:
            raise ValueError(f"{self.name}: split must be 'chronological' or 'ext_roll', got "
                             f"{o['split']!r}")
        if o["feature_dtype"] not in FEATURE_DTYPES:
            raise ValueError(f"{self.name}: feature_dtype must be 'float32' or 'float16', got "
                             f"{o['feature_dtype']!r}")
        for k in ("rand_edge_features", "rand_node_features"):
            if int(o[k]) < 0:
                raise ValueError(f"{self.name}: {k} must be >= 0, got {o[k]}")
        if o["progress"] is None:
            o["progress"] = bool(getattr(sys.stderr, "isatty", lambda: False)())
        o["_progress"] = o["progress"]
        return o

    def build_options(self, o: Dict[str, Any]) -> Dict[str, Any]:
        """The checked options that change the processed arrays (the cache key), JSON-friendly."""
        build = {k: o[k] for k in self.options if k not in self.volatile}
        build.update({k: o[k] for k in _BUILD_COMMON})
        if o["time_shift"]:
            # Only when set: unshifted builds keep the keys they had before the option existed.
            build["time_shift"] = True
        return jsonable(build)
