"""Brute-force reference for the T-CSR and the temporal neighbour sampler.

Everything here is written for readability, not speed: plain Python loops over events, nodes and
edges, so that each rule of ``docs/design.md`` can be checked by reading one line. The tests
compare the C++ implementation (:class:`pyg_tgl.data.tcsr.TCSR`,
:class:`pyg_tgl.data.sampler.TemporalSampler`) against these functions on many small random
graphs; other tests may use :func:`random_temporal_graph` to get small, seeded temporal graphs.

The sampling rules follow TGL (Zhou et al., "TGL: A General Framework for Temporal GNN Training on
Billion-Scale Graphs", VLDB 2022) as fixed by ``docs/design.md``:

* T-CSR: each node's list holds its events sorted by ``(ts, eid)``, ties kept in event order; with
  ``add_reverse`` event ``e`` is listed under ``src[e]`` and under ``dst[e]`` with the same eid (a
  self-loop is therefore listed twice under its node, as TGL's ``gen_graph.py`` does).
* A root ``(n, t)`` may only see edges with ``ts < t`` (strictly). With ``history = H > 1``
  snapshots of length ``duration = D``, snapshot ``s`` (``H - 1`` is the most recent) sees
  ``t - (H - s) * D <= ts < t - (H - 1 - s) * D``; with ``H = 1`` there is no lower bound.
* ``recent``: the ``k`` eligible edges with the largest T-CSR positions, largest first.
  ``uniform``: ``k`` distinct eligible edges (all when fewer), listed by decreasing position.
* Hop ``l + 1``'s roots are all nodes of hop ``l`` (roots first, then neighbours), each at its time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Sequence

import numpy as np

__all__ = [
    "TemporalGraph",
    "random_temporal_graph",
    "RefTCSR",
    "reference_tcsr",
    "snapshot_window",
    "eligible_positions",
    "RefHop",
    "build_hop",
    "recent_chooser",
    "uniform_chooser",
    "reference_sample",
    "hop_to_numpy",
    "assert_hop_equal",
    "assert_blocks_equal",
]


# --------------------------------------------------------------------------------------------
# Random graphs
# --------------------------------------------------------------------------------------------

class TemporalGraph(NamedTuple):
    """A small temporal graph as numpy arrays (events in chronological order)."""

    src: np.ndarray  # int64 [E]
    dst: np.ndarray  # int64 [E]
    t: np.ndarray  # float64 [E], non-decreasing
    num_nodes: int

    @property
    def num_events(self) -> int:
        return int(self.src.shape[0])

    def to_data(self):
        """Returns the graph as a :class:`torch_geometric.data.TemporalData`."""
        import torch
        from torch_geometric.data import TemporalData

        return TemporalData(src=torch.from_numpy(self.src.copy()),
                            dst=torch.from_numpy(self.dst.copy()),
                            t=torch.from_numpy(self.t.copy()))


def random_temporal_graph(num_nodes: int, num_events: int, seed: int, *,
                          num_distinct_times: Optional[int] = None,
                          num_active_nodes: Optional[int] = None,
                          self_loops: bool = False,
                          t_offset: float = 0.0,
                          time_step: float = 1.0) -> TemporalGraph:
    r"""A seeded random temporal graph, events sorted by time.

    Times are ``t_offset + time_step * j`` for integers ``j`` drawn from
    ``[0, num_distinct_times)``; with the defaults (integer times, ``t_offset = 0``) every time and
    every difference of times is exact in float64, so window boundaries can be tested exactly.

    Args:
        num_nodes: number of node ids (``>= 1``).
        num_events: number of events.
        seed: seed of the numpy generator; the same arguments always give the same graph.
        num_distinct_times: how many distinct time values are possible. Small values make many
            events share a timestamp (ties); default ``4 * num_events`` (few ties).
        num_active_nodes: endpoints are drawn from the first ``num_active_nodes`` ids only, so the
            remaining nodes have no history (default: all nodes).
        self_loops: allow ``src == dst`` (default: no self-loops, when ``num_active_nodes >= 2``).
        t_offset: added to every time (e.g. ``1.6e9`` for Unix times).
        time_step: spacing of the time grid.
    """
    if num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1, got {num_nodes}")
    rng = np.random.default_rng(seed)
    active = num_nodes if num_active_nodes is None else int(num_active_nodes)
    if not 1 <= active <= num_nodes:
        raise ValueError(f"num_active_nodes must be in [1, {num_nodes}], got {num_active_nodes}")
    distinct = max(1, 4 * num_events) if num_distinct_times is None else int(num_distinct_times)
    src = rng.integers(0, active, size=num_events, dtype=np.int64)
    dst = rng.integers(0, active, size=num_events, dtype=np.int64)
    if not self_loops and active >= 2:
        # Redraw until no self-loop is left; each pass fixes most of the remaining ones.
        loop = src == dst
        while loop.any():
            dst[loop] = rng.integers(0, active, size=int(loop.sum()), dtype=np.int64)
            loop = src == dst
    steps = np.sort(rng.integers(0, distinct, size=num_events))
    t = t_offset + time_step * steps.astype(np.float64)
    return TemporalGraph(src=src, dst=dst, t=t, num_nodes=num_nodes)


# --------------------------------------------------------------------------------------------
# T-CSR
# --------------------------------------------------------------------------------------------

@dataclass
class RefTCSR:
    """Reference T-CSR: ``indptr [N+1]``, then per position ``indices``, ``eid``, ``ts``."""

    indptr: np.ndarray
    indices: np.ndarray
    eid: np.ndarray
    ts: np.ndarray

    @property
    def num_nodes(self) -> int:
        return int(self.indptr.shape[0]) - 1


def reference_tcsr(src: Sequence[int], dst: Sequence[int], t: Sequence[float],
                   num_nodes: Optional[int] = None, add_reverse: bool = True,
                   eid: Optional[Sequence[int]] = None) -> RefTCSR:
    """Builds the T-CSR by appending every event to per-node Python lists and sorting each list.

    Args:
        src, dst, t: event endpoints and times.
        num_nodes: number of nodes (default ``max(src, dst) + 1``).
        add_reverse: also list each event under its destination.
        eid: event ids (default ``0..E-1``).
    """
    src = [int(v) for v in src]
    dst = [int(v) for v in dst]
    t = [float(v) for v in t]
    eids = list(range(len(src))) if eid is None else [int(v) for v in eid]
    if num_nodes is None:
        num_nodes = max(src + dst) + 1 if src else 0
    lists: List[list] = [[] for _ in range(num_nodes)]
    for e in range(len(src)):
        lists[src[e]].append((t[e], eids[e], dst[e]))
        if add_reverse:
            lists[dst[e]].append((t[e], eids[e], src[e]))
    indptr, indices, out_eid, ts = [0], [], [], []
    for entries in lists:
        # list.sort is stable: entries equal in (ts, eid) keep the order they were appended in.
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        for time, event, neighbour in entries:
            indices.append(neighbour)
            out_eid.append(event)
            ts.append(time)
        indptr.append(len(indices))
    return RefTCSR(indptr=np.array(indptr, dtype=np.int64),
                   indices=np.array(indices, dtype=np.int64),
                   eid=np.array(out_eid, dtype=np.int64),
                   ts=np.array(ts, dtype=np.float64))


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------

def snapshot_window(t: float, history: int = 1, duration: float = 0.0,
                    snapshot: int = 0) -> tuple:
    """The half-open interval ``[lo, hi)`` of edge times visible from a root at time ``t``."""
    if history == 1:
        return -math.inf, t
    lo = t - (history - snapshot) * duration
    hi = t - (history - 1 - snapshot) * duration
    return lo, hi


def eligible_positions(tcsr, node: int, t: float, history: int = 1, duration: float = 0.0,
                       snapshot: int = 0) -> List[int]:
    """T-CSR positions (increasing) of the edges of ``node`` that a root at ``t`` may sample."""
    lo, hi = snapshot_window(t, history, duration, snapshot)
    ts = np.asarray(tcsr.ts)
    indptr = np.asarray(tcsr.indptr)
    return [p for p in range(int(indptr[node]), int(indptr[node + 1])) if lo <= ts[p] < hi]


#: ``chooser(eligible_positions, k, snapshot, hop, root_position) -> positions`` picks a root's
#: neighbours; :func:`build_hop` lists them by decreasing position whatever order it returns.
Chooser = Callable[[List[int], int, int, int, int], List[int]]


def recent_chooser(eligible: List[int], k: int, snapshot: int, hop: int, root: int) -> List[int]:
    """The ``k`` largest eligible positions (the most recent edges)."""
    return eligible[len(eligible) - k:] if k < len(eligible) else list(eligible)


def uniform_chooser(seed: int = 0) -> Chooser:
    """A chooser drawing ``k`` distinct eligible positions uniformly (numpy, not the C++ stream)."""
    rng = np.random.default_rng(seed)

    def choose(eligible: List[int], k: int, snapshot: int, hop: int, root: int) -> List[int]:
        if len(eligible) <= k:
            return list(eligible)
        return [int(p) for p in rng.choice(eligible, size=k, replace=False)]

    return choose


@dataclass
class RefHop:
    """Reference hop with the fields of :class:`pyg_tgl.data.batch.SampledHop` as numpy arrays."""

    nodes: np.ndarray
    ts: np.ndarray
    num_roots: int
    edge_index: np.ndarray
    eid: np.ndarray
    dt: np.ndarray
    dense_index: np.ndarray
    count: np.ndarray


def build_hop(tcsr, roots: Sequence[int], root_ts: Sequence[float], k: int,
              chosen: Sequence[Sequence[int]], prop_time: bool = False) -> RefHop:
    """Lays out one hop from the T-CSR positions ``chosen[i]`` picked for root ``i``.

    Neighbours are appended after the roots, root by root, each root's by decreasing position.
    """
    indices, eids, ts = np.asarray(tcsr.indices), np.asarray(tcsr.eid), np.asarray(tcsr.ts)
    num_roots = len(roots)
    nodes = [int(n) for n in roots]
    times = [float(x) for x in root_ts]
    row, col, out_eid, dt = [], [], [], []
    dense = np.full((num_roots, k), -1, dtype=np.int64)
    count = np.zeros(num_roots, dtype=np.int64)
    for i in range(num_roots):
        positions = sorted(chosen[i], reverse=True)
        assert len(positions) <= k and len(set(positions)) == len(positions)
        for j, p in enumerate(positions):
            dense[i, j] = len(nodes)
            row.append(len(nodes))
            col.append(i)
            nodes.append(int(indices[p]))
            times.append(float(root_ts[i]) if prop_time else float(ts[p]))
            out_eid.append(int(eids[p]))
            dt.append(float(root_ts[i]) - float(ts[p]))
        count[i] = len(positions)
    return RefHop(nodes=np.array(nodes, dtype=np.int64),
                  ts=np.array(times, dtype=np.float64),
                  num_roots=num_roots,
                  edge_index=np.array([row, col], dtype=np.int64).reshape(2, -1),
                  eid=np.array(out_eid, dtype=np.int64),
                  dt=np.array(dt, dtype=np.float64),
                  dense_index=dense,
                  count=count)


def reference_sample(tcsr, root_nodes: Sequence[int], root_ts: Sequence[float],
                     num_neighbors: Sequence[int], strategy: str = "recent",
                     prop_time: bool = False, history: int = 1, duration: float = 0.0,
                     chooser: Optional[Chooser] = None, seed: int = 0) -> List[List[RefHop]]:
    """Samples ``blocks[snapshot][hop]`` by brute force.

    Args:
        tcsr: anything with ``indptr``, ``indices``, ``eid``, ``ts`` (a :class:`RefTCSR` or a
            :class:`~pyg_tgl.data.tcsr.TCSR`).
        root_nodes, root_ts: the roots of hop 0.
        num_neighbors: fan-out per hop.
        strategy: ``recent`` or ``uniform`` (ignored when ``chooser`` is given).
        prop_time: neighbours take their root's time instead of the edge time.
        history, duration: DySAT-style snapshots.
        chooser: overrides how each root's neighbours are picked (see :data:`Chooser`).
        seed: seed of the numpy generator for ``uniform``.
    """
    if chooser is None:
        if strategy == "recent":
            chooser = recent_chooser
        elif strategy == "uniform":
            chooser = uniform_chooser(seed)
        else:
            raise ValueError(f"unknown strategy {strategy!r}")
    blocks = []
    for snapshot in range(history):
        roots = [int(n) for n in root_nodes]
        times = [float(x) for x in root_ts]
        hops = []
        for hop, k in enumerate(num_neighbors):
            chosen = []
            for i, (node, time) in enumerate(zip(roots, times)):
                eligible = eligible_positions(tcsr, node, time, history, duration, snapshot)
                chosen.append(chooser(eligible, k, snapshot, hop, i))
            block = build_hop(tcsr, roots, times, k, chosen, prop_time)
            hops.append(block)
            roots, times = block.nodes.tolist(), block.ts.tolist()
        blocks.append(hops)
    return blocks


# --------------------------------------------------------------------------------------------
# Comparison helpers
# --------------------------------------------------------------------------------------------

_HOP_DTYPES = {
    "nodes": np.int64, "ts": np.float64, "edge_index": np.int64, "eid": np.int64,
    "dt": np.float64, "dense_index": np.int64, "count": np.int64,
}


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def hop_to_numpy(hop) -> RefHop:
    """Converts a :class:`~pyg_tgl.data.batch.SampledHop` (tensors) to a :class:`RefHop`."""
    return RefHop(**{name: _to_numpy(getattr(hop, name)) for name in _HOP_DTYPES},
                  num_roots=int(hop.num_roots))


def assert_hop_equal(actual, expected: RefHop, where: str = "", check_dtype: bool = True) -> None:
    """Asserts every field of ``actual`` (a ``SampledHop`` or ``RefHop``) equals ``expected``."""
    got = hop_to_numpy(actual)
    assert got.num_roots == expected.num_roots, (
        f"{where}: num_roots {got.num_roots} != {expected.num_roots}")
    for name, dtype in _HOP_DTYPES.items():
        a, b = getattr(got, name), getattr(expected, name)
        if check_dtype:
            assert a.dtype == dtype, (
                f"{where}: {name} has dtype {a.dtype}, expected {np.dtype(dtype)}")
        assert a.shape == b.shape, f"{where}: {name} has shape {a.shape}, expected {b.shape}"
        assert np.array_equal(a, b), (
            f"{where}: {name} differs\n got      {a.tolist()}\n expected {b.tolist()}")


def assert_blocks_equal(actual, expected: List[List[RefHop]], where: str = "") -> None:
    """Asserts ``actual[s][l]`` equals ``expected[s][l]`` for every snapshot and hop."""
    assert len(actual) == len(expected), (
        f"{where}: {len(actual)} snapshots, expected {len(expected)}")
    for s, (hops, ref_hops) in enumerate(zip(actual, expected)):
        assert len(hops) == len(ref_hops), (
            f"{where}: snapshot {s} has {len(hops)} hops, expected {len(ref_hops)}")
        for l, (hop, ref_hop) in enumerate(zip(hops, ref_hops)):
            assert_hop_equal(hop, ref_hop, f"{where} snapshot {s} hop {l}")
