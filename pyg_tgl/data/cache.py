r"""The processed-data cache: one folder per data set, options and raw-file contents.

A processed data set lives in ``<root>/<name>-<options hash>-<content hash>/`` (``root`` is
``$PYG_TGL_DATA/processed`` unless ``cache_dir`` says otherwise): ``.npy`` arrays and a
``meta.json`` written last. The content hash covers :data:`~pyg_tgl.data.build.FORMAT_VERSION`,
the raw files' path, size and modification time and every option that changes the arrays, so a
changed raw file or option builds anew and the outdated build of the same options is removed.
Builds happen in a temporary folder renamed into place when complete
(:func:`~pyg_tgl.data.storage.build_dir`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from .build import FORMAT_VERSION
from .formats.tgl import load_feature_file
from .storage import (atomic_write_json, build_dir, data_home, fingerprint, load_npy, read_json,
                      remove_stale, save_npy, stable_hash)

__all__ = ["cache_root", "cached_build", "save_build", "load_arrays"]

# Arrays bigger than this are memory-mapped when ``mmap`` is left to ``None``.
_MMAP_BYTES = 256 << 20

#: ``build(folder) -> (arrays, meta)``: reads and processes the raw files into ``folder``.
Builder = Callable[[Path], Tuple[Dict[str, Any], Dict[str, Any]]]


def cache_root(options: Dict[str, Any]) -> Path:
    """The folder of processed data sets: the ``cache_dir`` option, else
    ``$PYG_TGL_DATA/processed``."""
    if options["cache_dir"]:
        return Path(options["cache_dir"]).expanduser()
    return data_home() / "processed"


def cached_build(root: Path, name: str, build_options: Dict[str, Any], files: List[Path],
                 build: Builder) -> Tuple[Path, Dict[str, Any]]:
    r"""The folder and ``meta.json`` of the processed data set, built first when missing.

    Args:
        root: the cache folder (:func:`cache_root`).
        name: the data set.
        build_options: the options that change the arrays (JSON-friendly).
        files: the raw files (their path, size and mtime are part of the key).
        build: called with a fresh build folder when nothing usable is cached.
    """
    identity = stable_hash({"name": name, "opts": build_options}, 8)
    key = stable_hash({"v": FORMAT_VERSION, "files": fingerprint(files), "opts": build_options})
    folder = root / f"{name}-{identity}-{key}"
    meta = read_json(folder / "meta.json")
    if meta is None or meta.get("version") != FORMAT_VERSION:
        with build_dir(folder) as tmp:
            arrays, meta = build(tmp)
            meta.update(sources=fingerprint(files), options=build_options)
            save_build(tmp, arrays, meta)
        remove_stale(root, keep=folder.name, prefix=f"{name}-{identity}-")
        meta = read_json(folder / "meta.json")
    return folder, meta


def save_build(folder: Path, arrays: Dict[str, Any], meta: Dict[str, Any]) -> None:
    """Writes ``arrays`` as ``.npy`` files (skipping those already written in place) and
    ``meta.json`` last, into a build folder; drops the reader's leftover spill files."""
    for k, v in arrays.items():
        target = folder / f"{k}.npy"
        if isinstance(v, np.memmap) and getattr(v, "filename", None) and Path(v.filename) == target:
            continue
        save_npy(target, np.asarray(v) if not isinstance(v, np.memmap) else v)
    # Drop spill files that did not become final arrays.
    for p in folder.glob("read_*.npy"):
        p.unlink()
    meta["arrays"] = sorted(arrays)
    atomic_write_json(folder / "meta.json", meta)


def load_arrays(folder: Path, meta: Dict[str, Any], mmap: Optional[bool]) -> Dict[str, Any]:
    """The arrays of a processed data set as tensors (text ids stay numpy), memory-mapped when
    ``mmap`` or, with ``mmap=None``, when larger than 256 MiB; features kept in the raw ``*.pt``
    files are mapped from there. ``"_mapped"`` lists the memory-mapped names."""
    out: Dict[str, Any] = {}
    mapped = []
    for k in meta["arrays"]:
        p = folder / f"{k}.npy"
        big = p.stat().st_size > _MMAP_BYTES
        use_mmap = bool(mmap) if mmap is not None else big
        a = load_npy(p, mmap=use_mmap)
        if use_mmap:
            mapped.append(k)
        out[k] = a if a.dtype.kind in "US" else torch.from_numpy(a)
    out["_mapped"] = mapped + list(meta.get("external", {}))
    for k, src in meta.get("external", {}).items():
        try:
            out[k] = load_feature_file(Path(src), None, "edge features" if k == "msg" else
                                       "node features")
        except FileNotFoundError:
            raise FileNotFoundError(f"{src} (features of the cached data set in {folder}) was "
                                    f"removed; load the data set again to rebuild") from None
    return out
