"""Parallel temporal neighbour sampling over a T-CSR (TGL's sampler, in C++ with OpenMP).

TGL (Zhou et al., "TGL: A General Framework for Temporal GNN Training on Billion-Scale Graphs",
VLDB 2022) samples the temporal neighbourhood of a batch of ``(node, time)`` roots in parallel
over the roots. This module wraps the C++ core (``pyg_tgl._core``) and turns its output arrays
into :class:`~pyg_tgl.data.batch.SampledHop` tensors without copies.

The sampler reads the :class:`TCSR`'s memory without copying it (a copy would double the graph's
memory, hundreds of GB at MAG's scale). It validates the arrays when it is built, and its C++ core
bounds-checks every offset and node id it reads, so no T-CSR and no later change of it can make
it read out of bounds: a bad state raises :class:`ValueError`. Changes made with torch's in-place
operations (which bump the tensors' version counters) are re-validated at the next
:meth:`TemporalSampler.sample` call; changes written through numpy views are seen only by the
bounds checks (other changes, e.g. to times, then give other but memory-safe samples). The
numpy views the core holds keep the tensors' storage alive and non-resizable, so
``Tensor.set_``/``resize_`` cannot free the memory under it.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from pyg_tgl.data.batch import SampledHop
from pyg_tgl.data.tcsr import TCSR, _core, resolve_num_threads, to_numpy_1d

__all__ = ["TemporalSampler", "DedupSampledHop", "STRATEGIES", "default_max_output_bytes"]

STRATEGIES = ("recent", "uniform")

_UINT64 = (1 << 64) - 1
_INT64_MAX = (1 << 63) - 1


def _memory_limit_bytes() -> Optional[int]:
    """The memory this process may use: physical memory, or a smaller cgroup limit."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                value = f.read().strip()
        except OSError:
            continue
        if value.isdigit() and 0 < int(value) < _INT64_MAX:
            limits.append(int(value))
    return min(limits) if limits else None


def default_max_output_bytes() -> int:
    """Default bound on one :meth:`TemporalSampler.sample` call's output: half the memory of
    the machine (or of the process's cgroup when that is smaller), 64 GiB when unknown."""
    limit = _memory_limit_bytes()
    return limit // 2 if limit else 64 << 30


@dataclass
class DedupSampledHop(SampledHop):
    """A :class:`~pyg_tgl.data.batch.SampledHop` of a sampler built with ``dedup=True``.

    With ``dedup``, hop ``l + 1``'s roots are the **unique** ``(node, ts)`` pairs among hop
    ``l``'s nodes, in order of first appearance, instead of all of them. A model computes the
    embeddings of those unique pairs once and reads them back for every node of hop ``l`` via
    ``inverse``.

    Attributes:
        inverse: ``[num_nodes]`` int64 position of each node of this hop among the next hop's
            roots (``nodes == next_hop.nodes[inverse]``); ``None`` on the last hop.
    """

    inverse: Optional[Tensor] = None


class TemporalSampler:
    r"""Samples temporal neighbourhoods of ``(node, time)`` roots from a :class:`TCSR`.

    The sampler of TGL (Zhou et al., "TGL: A General Framework for Temporal GNN Training on
    Billion-Scale Graphs", VLDB 2022), run in C++ with OpenMP over the roots:

    * A root ``(n, t)`` sees only edges with ``ts < t``. With ``history = H > 1`` (DySAT-style
      snapshots of length ``duration = D``), snapshot ``s`` (``H - 1`` is the most recent) sees
      ``t - (H - s) * D <= ts < t - (H - 1 - s) * D``, and each snapshot is sampled separately
      with all its hops; with ``H = 1`` there is no lower bound.
    * ``recent``: the ``k`` most recent eligible edges, most recent first (ties: larger T-CSR
      position first). ``uniform``: ``k`` distinct eligible edges drawn uniformly without
      replacement (all of them when fewer), listed by decreasing T-CSR position.
    * Hop ``l + 1``'s roots are all nodes of hop ``l`` (its roots, then its neighbours), each at
      its time: the edge time, or its root's time with ``prop_time``.
    * Randomness is counter-based: a hash of ``(seed, call index, snapshot, hop, root position,
      draw)``. Results do not depend on ``num_threads`` and differ between calls;
      :meth:`state_dict` holds ``seed`` and ``call_index`` for exact resume.

    Args:
        tcsr: the graph.
        num_neighbors: fan-out ``k`` of every hop (positive integers).
        strategy: ``"recent"`` or ``"uniform"``.
        prop_time: neighbours take their root's time instead of the edge time.
        history: number of snapshots ``H``.
        duration: snapshot length ``D`` (must be positive when ``history > 1``).
        num_threads: OpenMP threads (default ``OMP_NUM_THREADS`` or all usable cores).
        seed: seed of the random streams.
        use_pointer_cache: keep, per node, the position of the last time cut (TGL's pointer
            trick) and search onwards from it when roots move forward in time, as chronological
            batches do; roots that go back in time fall back to binary search, so the output is
            identical to ``use_pointer_cache=False``. Costs ``8 * N`` bytes per snapshot
            boundary. Used for hop 0, and for deeper hops with ``prop_time``.
        dedup: make hop ``l + 1``'s roots the unique ``(node, ts)`` pairs of hop ``l`` and
            return :class:`DedupSampledHop` objects with an ``inverse`` map (see there).
        max_output_bytes: bound on the output of one :meth:`sample` call (all snapshots and
            hops; each hop holds ``8 * R * (k + 1)`` bytes of ``dense_index`` and ``count`` plus
            ``48`` bytes per sampled edge and ``16`` per root, and with ``dedup`` ``24`` more per
            root and edge of every hop but the last). A call that would exceed it raises
            :class:`ValueError` giving the projected size, before allocating it. Default:
            :func:`default_max_output_bytes`.

    The T-CSR is validated here (O(N + M): about 2 ms for REDDIT's 1.3M entries on one core;
    :class:`ValueError` naming the first problem) and read in place afterwards; see the module
    docstring for what happens when it is modified.
    """

    def __init__(self, tcsr: TCSR, num_neighbors: Union[int, Sequence[int]] = (10,),
                 strategy: str = "recent", prop_time: bool = False, history: int = 1,
                 duration: float = 0.0, num_threads: Optional[int] = None, seed: int = 0,
                 use_pointer_cache: bool = False, dedup: bool = False,
                 max_output_bytes: Optional[int] = None) -> None:
        if not isinstance(tcsr, TCSR):
            raise ValueError(f"tcsr must be a pyg_tgl.data.tcsr.TCSR, got {type(tcsr).__name__}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if isinstance(num_neighbors, (int, np.integer)) and not isinstance(num_neighbors, bool):
            num_neighbors = [num_neighbors]
        fanouts = list(num_neighbors)
        if not fanouts:
            raise ValueError("num_neighbors must hold at least one fan-out")
        for i, k in enumerate(fanouts):
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
                raise ValueError(f"num_neighbors[{i}] = {k!r} must be a positive integer "
                                 f"fan-out")
        if isinstance(history, bool) or not isinstance(history, (int, np.integer)) or history < 1:
            raise ValueError(f"history must be an integer >= 1, got {history!r}")
        duration = float(duration)
        if history > 1 and not (np.isfinite(duration) and duration > 0):
            raise ValueError(f"duration must be a positive finite number when history > 1, "
                             f"got {duration!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if max_output_bytes is None:
            max_output_bytes = default_max_output_bytes()
        if isinstance(max_output_bytes, bool) \
                or not isinstance(max_output_bytes, (int, np.integer)) \
                or not 0 < max_output_bytes <= _INT64_MAX:
            raise ValueError(f"max_output_bytes must be a positive integer below 2**63, got "
                             f"{max_output_bytes!r}")
        for i, k in enumerate(int(k) for k in fanouts):  # int: numpy integers would wrap
            if 8 * k > max_output_bytes:
                raise ValueError(f"num_neighbors[{i}] = {k}: one root's dense_index row alone "
                                 f"needs {8 * k} bytes, above max_output_bytes = "
                                 f"{max_output_bytes}")
        self.tcsr = tcsr
        self.num_neighbors = [int(k) for k in fanouts]
        self.strategy = strategy
        self.prop_time = bool(prop_time)
        self.history = int(history)
        self.duration = duration
        self.use_pointer_cache = bool(use_pointer_cache)
        self.dedup = bool(dedup)
        self.seed = int(seed)
        self.max_output_bytes = int(max_output_bytes)
        self._call_index = 0
        self._lock = threading.Lock()
        # The tensors whose memory the core reads; their version counters reveal in-place writes.
        self._graph = (tcsr.indptr, tcsr.indices, tcsr.eid, tcsr.ts)
        self._core = _core().Sampler(
            *(t.numpy() for t in self._graph), self.num_neighbors, strategy == "uniform",
            self.prop_time, self.history, self.duration, self.use_pointer_cache, self.dedup,
            self.max_output_bytes, resolve_num_threads(num_threads))
        self._versions = self._graph_versions()

    def _graph_versions(self) -> tuple:
        # Spelled out: runs on every call, and a generator costs three times as much.
        indptr, indices, eid, ts = self._graph
        return indptr._version, indices._version, eid._version, ts._version

    def _revalidate_if_modified(self) -> None:
        """Re-validates the T-CSR when a torch in-place operation wrote to it since the last
        check (writes through numpy views bump no counter; the core's bounds checks still keep
        those memory-safe)."""
        versions = self._graph_versions()
        if versions == self._versions:
            return
        with self._lock:
            if versions == self._versions:
                return
            problem = self._core.validate(self.num_threads)
            if problem:
                names = [name for name, old, new in zip(("indptr", "indices", "eid", "ts"),
                                                        self._versions, versions) if old != new]
                raise ValueError(f"the T-CSR's {', '.join(names)} changed in place after the "
                                 f"sampler was built and the graph is no longer valid: {problem}; "
                                 f"build the TCSR again and a new TemporalSampler")
            self._versions = versions

    @property
    def num_threads(self) -> int:
        return int(self._core.num_threads)

    @num_threads.setter
    def num_threads(self, value: Optional[int]) -> None:
        self._core.num_threads = resolve_num_threads(value)

    @property
    def call_index(self) -> int:
        """Number of successful :meth:`sample` calls so far (selects the random stream)."""
        return self._call_index

    def sample(self, root_nodes: Any, root_ts: Any) -> List[List[SampledHop]]:
        r"""Samples the neighbourhoods of the roots ``(root_nodes[i], root_ts[i])``.

        Args:
            root_nodes: ``[R]`` integer node ids (any integer dtype; floats are refused).
            root_ts: ``[R]`` query times (converted to float64; NaN is refused).

        Returns:
            ``blocks[snapshot][hop]`` (see :class:`~pyg_tgl.data.batch.SampledHop`), CPU tensors
            sharing memory with the C++ output.
        """
        nodes = to_numpy_1d(root_nodes, "root_nodes", "int")
        ts = to_numpy_1d(root_ts, "root_ts", "float")
        self._revalidate_if_modified()
        with self._lock:
            call = self._call_index
            self._call_index += 1
        try:
            raw = self._core.sample(nodes, ts, self.seed & _UINT64, call & _UINT64)
        except BaseException:
            with self._lock:
                # Give the index back unless a concurrent call already took the next one.
                if self._call_index == call + 1:
                    self._call_index = call
            raise
        return [[self._hop(h) for h in hops] for hops in raw]

    def _hop(self, raw: tuple) -> SampledHop:
        nodes, ts, num_roots, edge_index, eid, dt, dense_index, count, inverse = raw
        fields = dict(nodes=torch.from_numpy(nodes), ts=torch.from_numpy(ts),
                      num_roots=int(num_roots), edge_index=torch.from_numpy(edge_index),
                      eid=torch.from_numpy(eid), dt=torch.from_numpy(dt),
                      dense_index=torch.from_numpy(dense_index), count=torch.from_numpy(count))
        if self.dedup:
            return DedupSampledHop(**fields, inverse=None if inverse is None
                                   else torch.from_numpy(inverse))
        return SampledHop(**fields)

    def reset_pointer_cache(self) -> None:
        """Rewinds the pointer cache to the start of every list (results never depend on it)."""
        self._core.reset_cache()

    def state_dict(self) -> Dict[str, int]:
        """``{"seed", "call_index"}``: enough to replay the same random streams after resume."""
        return {"seed": self.seed, "call_index": self._call_index}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        """Restores :meth:`state_dict`; the next :meth:`sample` continues the saved stream."""
        missing = [k for k in ("seed", "call_index") if k not in state]
        if missing:
            raise ValueError(f"sampler state is missing {missing}; expected the keys "
                             f"'seed' and 'call_index' of TemporalSampler.state_dict()")
        call = int(state["call_index"])
        if call < 0:
            raise ValueError(f"sampler state has a negative call_index ({call})")
        with self._lock:
            self.seed = int(state["seed"])
            self._call_index = call

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_neighbors={self.num_neighbors}, "
                f"strategy={self.strategy!r}, prop_time={self.prop_time}, "
                f"history={self.history}, duration={self.duration}, "
                f"num_threads={self.num_threads}, seed={self.seed})")
