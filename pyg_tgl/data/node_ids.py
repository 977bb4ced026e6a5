r"""Guards on raw node ids that are kept as they are (``remap_nodes=false``).

Kept ids index per-node arrays directly (the T-CSR's row pointers, the split's "seen in training"
mask, a model's node memory), so the largest id fixes ``num_nodes``. One id of ``2**40`` in an
otherwise small file would then ask for terabytes; :func:`check_kept_ids` refuses such a data set
before anything is allocated, naming the id, where it occurs and the option that avoids it.
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import numpy as np

from .readers import DataFormatError

__all__ = ["BYTES_PER_NODE", "physical_memory", "check_kept_ids", "format_bytes"]

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
