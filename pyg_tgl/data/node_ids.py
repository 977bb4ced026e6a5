r"""Raw node ids: mapped to ``0 .. N-1`` (:func:`remap_node_ids`) or kept as they are, with a guard
on kept ids (``remap_nodes=false``).

Kept ids index per-node arrays directly (the T-CSR's row pointers, the split's "seen in training"
mask, a model's node memory), so the largest id fixes ``num_nodes``. One id of ``2**40`` in an
otherwise small file would then ask for terabytes; :func:`check_kept_ids` refuses such a data set
before anything is allocated, naming the id, where it occurs and the option that avoids it.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional, Tuple

import numpy as np

from .errors import DataFormatError

__all__ = ["BYTES_PER_NODE", "physical_memory", "check_kept_ids", "format_bytes",
           "remap_node_ids"]

#: Bytes per node that loading and training need at the least, whatever the model: the T-CSR's
#: int64 row pointer (8) and the split's bool mask of nodes seen in training (1).
BYTES_PER_NODE = 9

_CHUNK = 1 << 22


def physical_memory() -> Optional[int]:
    """This machine's physical memory in bytes, or ``None`` where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: float) -> str:
    """``"9.0 TiB"``: a byte count with a binary unit."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def _first_row_of(a: np.ndarray, value: int) -> Optional[int]:
    for s in range(0, a.shape[0], _CHUNK):
        hit = np.flatnonzero(np.asarray(a[s:s + _CHUNK]) == value)
        if hit.size:
            return s + int(hit[0])
    return None


def check_kept_ids(src: np.ndarray, dst: np.ndarray, max_id: int, floor_nodes: int,
                   where: Callable[[int], str], requested: bool = True,
                   memory_bytes: Optional[int] = None) -> None:
    r"""Raises when kept node ids imply more nodes than this machine can hold.

    With ids kept, ``num_nodes = max_id + 1`` (or ``floor_nodes``, the rows of the node
    features, when larger: those are already in memory and are not checked). The data set is
    refused when :data:`BYTES_PER_NODE` bytes per node exceed the physical memory.

    Args:
        src, dst: raw ids (possibly memory-mapped).
        max_id: the largest of them.
        floor_nodes: nodes the data set has anyway (node feature rows).
        where: data row -> ``"<file>, line <n>"``.
        requested: the ids are kept because of ``remap_nodes=false`` (else: the format's
            default, as for TGL data), for the message.
        memory_bytes: the memory to compare with (default :func:`physical_memory`).

    Raises:
        DataFormatError: naming the id, its file and line, the ``num_nodes`` it implies with the
            memory that takes, and ``data.remap_nodes=true``.
    """
    num_nodes = int(max_id) + 1
    if num_nodes <= floor_nodes:
        return
    limit = physical_memory() if memory_bytes is None else int(memory_bytes)
    need = num_nodes * BYTES_PER_NODE
    if limit is None or need <= limit:
        return
    column, row = "src", _first_row_of(src, max_id)
    if row is None:
        column, row = "dst", _first_row_of(dst, max_id)
    at = where(row) if row is not None else "node ids"
    why = "remap_nodes=false" if requested else "ids kept as the format's default"
    raise DataFormatError(
        f"{at}: {column} is {int(max_id)}; with {why} ids index per-node arrays, so "
        f"it implies num_nodes = {num_nodes:,}, which needs at least {format_bytes(need)} "
        f"({BYTES_PER_NODE} bytes per node, before any model memory) of this machine's "
        f"{format_bytes(limit)}; set data.remap_nodes=true (or null) to map the ids to 0..N-1")


def _chunked_minmax(a: np.ndarray) -> Tuple[int, int]:
    lo, hi = None, None
    for s in range(0, a.shape[0], _CHUNK):
        part = np.asarray(a[s:s + _CHUNK])
        lo = part.min() if lo is None else min(lo, part.min())
        hi = part.max() if hi is None else max(hi, part.max())
    return int(lo), int(hi)


def remap_node_ids(raw: Any, option: Optional[bool]) -> Tuple[Any, Any, Optional[np.ndarray], int,
                                                              Callable[[Any], np.ndarray]]:
    r"""Maps a reader's raw node ids to ``0 .. N-1`` where needed.

    Text ids are always mapped (in sorted order); integer ids are kept when ``option`` is
    ``False``, or when it is ``None`` and the reader says so (``raw.remap is False``: TGL's ids
    index its node features) or the ids already are exactly ``0 .. N-1``.

    Args:
        raw: the :class:`~pyg_tgl.data.formats.raw.RawEvents` read.
        option: the data set's ``remap_nodes`` option (``None``: decide as above).

    Returns:
        ``(src, dst, node_ids, num_nodes, map_ids)``: the new ids; the raw id of each node
        (``None`` when ids were kept); the number of nodes; a function mapping other raw ids
        (node labels) to new ones, ``-1`` for ids without events.
    """
    src, dst = raw.src, raw.dst
    E = src.shape[0]
    if src.dtype.kind in "USO" or dst.dtype.kind in "USO":
        if option is False:
            raise ValueError("remap_nodes=false is impossible with text node ids")
        uniq, inv = np.unique(np.concatenate([np.asarray(src, dtype=str), np.asarray(dst, dtype=str)]),
                              return_inverse=True)
        inv = inv.astype(np.int64)

        def map_text(ids):
            ids = np.asarray(ids, dtype=str)
            pos = np.searchsorted(uniq, ids)
            pos = np.minimum(pos, len(uniq) - 1)
            return np.where(uniq[pos] == ids, pos, -1)
        return inv[:E], inv[E:], uniq, len(uniq), map_text
    lo_s, hi_s = _chunked_minmax(src)
    lo_d, hi_d = _chunked_minmax(dst)
    max_id = max(hi_s, hi_d)
    floor_n = int(raw.num_nodes or 0)
    keep = option is False or (option is None and raw.remap is False)
    identity = lambda ids: np.where((ids >= 0) & (ids < max(max_id + 1, floor_n)), ids, -1)  # noqa: E731
    if keep:
        check_kept_ids(src, dst, max_id, floor_n, raw.where, requested=option is False)
        return src, dst, None, max(max_id + 1, floor_n), identity
    if max_id + 1 <= 4 * E + (1 << 20):
        seen = np.zeros(max_id + 1, dtype=bool)
        for s in range(0, E, _CHUNK):
            seen[np.asarray(src[s:s + _CHUNK])] = True
            seen[np.asarray(dst[s:s + _CHUNK])] = True
        if option is None and seen.all() and floor_n <= max_id + 1:
            return src, dst, None, max_id + 1, identity
        node_ids = np.flatnonzero(seen).astype(np.int64)
        table = np.full(max_id + 1, -1, dtype=np.int64)
        table[node_ids] = np.arange(len(node_ids), dtype=np.int64)

        def map_ids(ids):
            ids = np.asarray(ids, dtype=np.int64)
            ok = (ids >= 0) & (ids <= max_id)
            return np.where(ok, table[np.where(ok, ids, 0)], -1)

        def relabel(a: np.ndarray) -> np.ndarray:
            # Chunks keep a memory-mapped input from being loaded whole.
            return np.concatenate([table[np.asarray(a[s:s + _CHUNK])] for s in range(0, E, _CHUNK)])
        return relabel(src), relabel(dst), node_ids, len(node_ids), map_ids
    # Very sparse ids (e.g. hashes): sort-based.
    node_ids, inv = np.unique(np.concatenate([np.asarray(src), np.asarray(dst)]),
                              return_inverse=True)
    if option is None and node_ids[0] == 0 and node_ids[-1] == len(node_ids) - 1:
        return src, dst, None, len(node_ids), identity

    def map_sparse(ids):
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.minimum(np.searchsorted(node_ids, ids), len(node_ids) - 1)
        return np.where(node_ids[pos] == ids, pos, -1)
    inv = inv.astype(np.int64)
    return inv[:E], inv[E:], node_ids, len(node_ids), map_sparse
