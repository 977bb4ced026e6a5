"""Temporal CSR (T-CSR): the graph layout the temporal sampler reads.

TGL (Zhou et al., "TGL: A General Framework for Temporal GNN Training on Billion-Scale Graphs",
VLDB 2022) stores a dynamic graph as a CSR over nodes whose per-node neighbour lists are sorted
by time, so that the edges a node had before a time ``t`` form a prefix found by one binary
search. The build runs in C++ (``pyg_tgl._core``): a counting sort by node (each thread owns a
range of nodes, so placement is deterministic and lock-free) followed by a stable per-node sort
by ``(ts, eid)`` that is skipped for slices already in order (chronological input).

Peak memory of :meth:`TCSR.from_edges` is the inputs (``src``, ``dst`` int64 and ``t`` float64:
24 bytes per event, borrowed without copy when they already have these dtypes) plus the outputs
(``indices`` int32 + ``eid`` int64 + ``ts`` float64: 20 bytes per entry, two entries per event
with ``add_reverse``) plus 16 bytes per node (``indptr`` and a fill cursor); nodes whose events
are not given in time order additionally need a temporary copy of their own slice while it is
sorted. A 200-million-event graph with reverse edges (400M entries, 2M nodes) peaked at 12.2 GiB
resident, 4.7 GiB of which were the inputs (``experiments/bench_sampler.py --big``).
"""
from __future__ import annotations

import os
import uuid
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["TCSR", "default_num_threads"]

PathLike = Union[str, os.PathLike]

_NPZ_KEYS = ("indptr", "indices", "eid", "ts")


def _core():
    try:
        from pyg_tgl import _core
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "pyg_tgl._core (the C++ sampler) is not built; run `pip install -e .` in the "
            "repository root (needs g++ with OpenMP)") from exc
    return _core


def default_num_threads() -> int:
    """Threads used when ``num_threads=None``: ``OMP_NUM_THREADS`` if set, else usable cores."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_num_threads(num_threads: Optional[int]) -> int:
    if num_threads is None:
        return default_num_threads()
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) \
            or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    return int(num_threads)


def to_numpy_1d(x: Any, name: str, kind: str) -> np.ndarray:
    """Returns ``x`` as a C-contiguous 1-D int64 (``kind='int'``) or float64 (``'float'``) array.

    CPU tensors and arrays that already have the right dtype are shared, not copied. Integer
    inputs are widened and integer times converted to float64; floating-point node ids are
    refused rather than silently truncated.
    """
    if isinstance(x, Tensor):
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        if x.dtype == torch.bool or x.is_complex() or (kind == "int" and x.is_floating_point()):
            raise ValueError(f"{name} must be an integer tensor of node ids, got dtype {x.dtype}"
                             if kind == "int" else
                             f"{name} must be a real-valued tensor of times, got dtype {x.dtype}")
        x = x.to(torch.int64 if kind == "int" else torch.float64)
        if x.dim() != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {tuple(x.shape)}")
        return x.contiguous().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    ok = "iu" if kind == "int" else "iuf"
    if arr.size and arr.dtype.kind not in ok:
        what = "integer node ids" if kind == "int" else "real-valued times"
        raise ValueError(f"{name} must hold {what}, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64 if kind == "int" else np.float64)


def _npz_memmap(path: Path, zf: zipfile.ZipFile, key: str) -> Optional[np.ndarray]:
    """Maps member ``key.npy`` of an uncompressed ``.npz`` straight from the file (copy-on-write:
    pages are shared with every other process mapping the same file), or ``None`` when the
    member is compressed (``np.savez_compressed``) and must be read instead."""
    import struct
    info = zf.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # zip local file header; name and extra lengths at bytes 26-29
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise ValueError(f"bad local header of member {key}.npy")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject or fortran or len(shape) != 1:
        return None
    if shape[0] == 0:
        return np.empty(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="c", shape=shape, offset=offset)


class TCSR:
    r"""A temporal graph in T-CSR layout (TGL, Zhou et al., VLDB 2022).

    Node ``n``'s neighbour list is ``indices[indptr[n]:indptr[n + 1]]`` with the event ids
    ``eid`` and times ``ts`` of the same positions, sorted by ``(ts, eid)``; ties keep event
    order. With ``add_reverse`` every event ``e = (u, v, t)`` is listed under ``u`` (neighbour
    ``v``) and under ``v`` (neighbour ``u``) with the same ``eid``.

    Build one with :meth:`from_data` or :meth:`from_edges`, store it with :meth:`save` and read it
    back with :meth:`load`. All tensors live on the CPU (the sampler runs there).

    Args:
        indptr: ``[N + 1]`` int64 offsets.
        indices: ``[M]`` int32 or int64 neighbour ids.
        eid: ``[M]`` int64 event ids.
        ts: ``[M]`` float64 event times.
        validate: check the arrays (monotone ``indptr``, lengths, ids in range, per-node
            non-decreasing times) and raise :class:`ValueError` naming the first bad node.
        add_reverse: how the graph was built, if known (kept as metadata).
        num_threads: threads for the validation (default: see :func:`default_num_threads`).
    """

    def __init__(self, indptr: Any, indices: Any, eid: Any, ts: Any, validate: bool = True,
                 add_reverse: Optional[bool] = None, num_threads: Optional[int] = None) -> None:
        self.indptr = torch.from_numpy(to_numpy_1d(indptr, "indptr", "int"))
        idx = indices.cpu().numpy() if isinstance(indices, Tensor) else np.asarray(indices)
        if idx.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {idx.shape}")
        if idx.dtype not in (np.int32, np.int64):
            if idx.size and idx.dtype.kind not in "iu":
                raise ValueError(f"indices must hold integer node ids, got dtype {idx.dtype}")
            wide = idx.dtype.itemsize > 4 or idx.dtype == np.uint32
            idx = idx.astype(np.int64 if wide else np.int32)
        self.indices = torch.from_numpy(np.ascontiguousarray(idx))
        self.eid = torch.from_numpy(to_numpy_1d(eid, "eid", "int"))
        self.ts = torch.from_numpy(to_numpy_1d(ts, "ts", "float"))
        self.add_reverse = add_reverse
        if validate:
            self.validate(num_threads=num_threads)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_edges(cls, src: Any, dst: Any, t: Any, num_nodes: Optional[int] = None,
                   add_reverse: bool = True, eid: Any = None, num_threads: Optional[int] = None,
                   index_dtype: Optional[torch.dtype] = None) -> "TCSR":
        r"""Builds the T-CSR of the events ``(src[e], dst[e], t[e])``.

        Args:
            src, dst: ``[E]`` integer node ids (tensors or arrays; int64 inputs are not copied).
            t: ``[E]`` event times (converted to float64; any order, chronological is fastest).
            num_nodes: number of nodes (default ``max(src, dst) + 1``); ids must be smaller.
            add_reverse: also list every event under its destination (TGL's undirected view).
            eid: ``[E]`` event ids stored per entry (default ``0..E-1``, the event's row).
            num_threads: OpenMP threads (default: see :func:`default_num_threads`).
            index_dtype: ``torch.int32`` or ``torch.int64`` for ``indices``; by default int32
                when ``num_nodes < 2**31``, which saves 4 bytes per entry.
        """
        s = to_numpy_1d(src, "src", "int")
        d = to_numpy_1d(dst, "dst", "int")
        tt = to_numpy_1d(t, "t", "float")
        e = None if eid is None else to_numpy_1d(eid, "eid", "int")
        if num_nodes is not None:
            if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)) \
                    or num_nodes < 0:
                raise ValueError(f"num_nodes must be a non-negative integer, got {num_nodes!r}")
        kinds = {None: -1, torch.int32: 0, torch.int64: 1}
        if index_dtype not in kinds:
            raise ValueError(f"index_dtype must be torch.int32, torch.int64 or None, got "
                             f"{index_dtype!r}")
        indptr, indices, out_eid, ts = _core().build_tcsr(
            s, d, tt, e, -1 if num_nodes is None else int(num_nodes), bool(add_reverse),
            kinds[index_dtype], resolve_num_threads(num_threads))
        return cls(indptr, indices, out_eid, ts, validate=False, add_reverse=bool(add_reverse))

    @classmethod
    def from_data(cls, data: Any, num_nodes: Optional[int] = None, add_reverse: bool = True,
                  num_threads: Optional[int] = None,
                  index_dtype: Optional[torch.dtype] = None) -> "TCSR":
        r"""Builds the T-CSR of a :class:`torch_geometric.data.TemporalData` (``src``, ``dst``,
        ``t``); event ``e`` gets ``eid = e``, its row in ``data`` (and in ``data.msg``).

        Args:
            data: the events.
            num_nodes, add_reverse, num_threads, index_dtype: see :meth:`from_edges`.
        """
        for key in ("src", "dst", "t"):
            if getattr(data, key, None) is None:
                raise ValueError(f"TCSR.from_data: data has no '{key}' attribute "
                                 f"(expected a TemporalData with src, dst and t)")
        return cls.from_edges(data.src, data.dst, data.t, num_nodes=num_nodes,
                              add_reverse=add_reverse, num_threads=num_threads,
                              index_dtype=index_dtype)

    # ------------------------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return int(self.indptr.numel()) - 1

    @property
    def num_edges(self) -> int:
        """Number of stored entries ``M`` (twice the events with ``add_reverse``)."""
        return int(self.indices.numel())

    def degree(self) -> Tensor:
        """``[N]`` int64 length of every node's list (all times)."""
        return self.indptr[1:] - self.indptr[:-1]

    def validate(self, num_threads: Optional[int] = None) -> None:
        """Raises :class:`ValueError` naming the first offending node if the arrays are invalid."""
        try:
            msg = _core().validate_tcsr(self.indptr.numpy(), self.indices.numpy(),
                                        self.eid.numpy(), self.ts.numpy(),
                                        resolve_num_threads(num_threads))
        except ValueError as exc:  # shape problems found before the per-node scan
            msg = str(exc)
        if msg:
            raise ValueError(f"invalid T-CSR: {msg}")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
                f"index_dtype={self.indices.dtype}, add_reverse={self.add_reverse})")

    # ------------------------------------------------------------------------------------------
    def save(self, path: PathLike) -> None:
        """Writes the T-CSR to one uncompressed ``.npz`` file, atomically.

        The arrays go to a temporary file in the same folder, which is flushed to disk and then
        renamed over ``path``, so a crash never leaves a truncated file under the final name.
        """
        path = Path(path)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        arrays = {"indptr": self.indptr.numpy(), "indices": self.indices.numpy(),
                  "eid": self.eid.numpy(), "ts": self.ts.numpy()}
        if self.add_reverse is not None:
            arrays["add_reverse"] = np.array(self.add_reverse)
        try:
            with open(tmp, "xb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: PathLike, validate: bool = True,
             num_threads: Optional[int] = None, mmap: bool = False) -> "TCSR":
        """Reads a T-CSR written by :meth:`save` (or TGL's ``gen_graph.py``) and validates it.

        Args:
            path: the ``.npz`` file.
            validate: check the arrays; a bad file raises :class:`ValueError` naming the file
                and the first offending node.
            num_threads: threads for the validation.
            mmap: memory-map the arrays instead of reading them (uncompressed files, as
                :meth:`save` writes): processes that map the same file share one copy in the
                page cache, which is how data-parallel ranks on one machine hold one graph.
        """
        path = Path(path)
        # A damaged file surfaces as many exception types (zip directory, CRC, npy header,
        # truncation); all of them mean "this file is not a readable T-CSR".
        damaged = (zipfile.BadZipFile, ValueError, OSError, EOFError)
        try:
            npz = np.load(path, allow_pickle=False)
        except damaged as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: expected an .npz archive holding {', '.join(_NPZ_KEYS)}")
        with npz:
            missing = [k for k in _NPZ_KEYS if k not in npz.files]
            if missing:
                raise ValueError(f"{path}: missing array(s) {missing}; a T-CSR file holds "
                                 f"{', '.join(_NPZ_KEYS)}")
            try:
                arrays = {}
                for k in _NPZ_KEYS:
                    mapped = _npz_memmap(path, npz.zip, k) if mmap else None
                    arrays[k] = npz[k] if mapped is None else mapped
                add_reverse = bool(npz["add_reverse"]) if "add_reverse" in npz.files else None
            except damaged as exc:
                raise ValueError(f"{path}: damaged .npz file ({type(exc).__name__}: {exc})") \
                    from exc
        try:
            tcsr = cls(**arrays, validate=False, add_reverse=add_reverse)
            if validate:
                tcsr.validate(num_threads=num_threads)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        return tcsr
