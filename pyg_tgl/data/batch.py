"""Containers that flow from the sampler to the model.

Data flows one way: ``TemporalData -> TCSR -> TemporalSampler -> TemporalBatch -> model``.
Both containers hold plain tensors only, so they move between devices with :meth:`to` and can be
consumed by any PyG code (``edge_index`` is a regular COO index, neighbour -> root).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

from torch import Tensor


def _apply(obj, fn):
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, list):
        return [_apply(o, fn) for o in obj]
    if isinstance(obj, dict):
        return {k: _apply(v, fn) for k, v in obj.items()}
    if isinstance(obj, tuple):  # named tuples keep their type
        items = [_apply(o, fn) for o in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, _TensorContainer):
        return type(obj)(**{f.name: _apply(getattr(obj, f.name), fn) for f in fields(obj)})
    return obj


class _TensorContainer:
    def to(self, device, non_blocking: bool = False):
        """Returns a copy whose tensors live on ``device``."""
        return _apply(self, lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self):
        """Returns a copy in page-locked memory, for asynchronous host-to-device copies."""
        return _apply(self, lambda t: t.pin_memory())


@dataclass
class SampledHop(_TensorContainer):
    """One hop of temporal neighbourhood sampling (one message-flow graph).

    The hop's node list holds its ``R`` roots first, then the sampled neighbours of root 0, then
    those of root 1, and so on; within a root, ``recent`` lists the most recent edge first and
    ``uniform`` lists the drawn edges by decreasing time, ties by decreasing T-CSR position.

    Attributes:
        nodes: ``[R + E]`` int64 node ids, roots first.
        ts: ``[R + E]`` float64 time of each node: the root's query time for roots; for neighbours
            the edge time (TGL's default) or the root's time (``prop_time=True``).
        num_roots: ``R``.
        edge_index: ``[2, E]`` int64; ``edge_index[0]`` is the neighbour's position in ``nodes``
            (``R + j`` for the ``j``-th sampled edge), ``edge_index[1]`` the root's position.
        eid: ``[E]`` int64 event ids of the sampled edges (index into edge features).
        dt: ``[E]`` float64, root time minus edge time (always > 0: strictly earlier edges only).
        dense_index: ``[R, k]`` int64 position in ``nodes`` of the ``i``-th root's ``j``-th
            neighbour, ``-1`` where the root has fewer than ``k``; fixed fan-out lets attention run
            dense, without scatter.
        count: ``[R]`` int64 number of sampled neighbours per root (``(dense_index >= 0).sum(1)``).
    """

    nodes: Tensor
    ts: Tensor
    num_roots: int
    edge_index: Tensor
    eid: Tensor
    dt: Tensor
    dense_index: Tensor
    count: Tensor

    @property
    def num_edges(self) -> int:
        return int(self.eid.numel())

    @property
    def num_nodes(self) -> int:
        return int(self.nodes.numel())

    @property
    def fanout(self) -> int:
        return int(self.dense_index.size(1))

    @property
    def mask(self) -> Tensor:
        """``[R, k]`` bool, True where ``dense_index`` holds a neighbour."""
        return self.dense_index >= 0


@dataclass
class TemporalBatch(_TensorContainer):
    """A chronological mini-batch of events with its negatives and sampled neighbourhoods.

    Roots are laid out as TGL does: ``root_nodes = cat([src, dst, neg_dst])`` with
    ``root_ts = cat([t, t, t repeated num_neg times])`` (every root at the batch's first event
    time with the loader's ``root_time='batch'``); ``neg_dst`` is ``[num_neg * B]``,
    negative-major (``neg_dst[q * B + i]`` is the ``q``-th negative of event ``i``).

    Attributes:
        src, dst: ``[B]`` int64 node ids of the positive events.
        t: ``[B]`` float64 event times.
        eid: ``[B]`` int64 global event ids (row in ``TemporalData`` / edge features).
        neg_dst: ``[num_neg * B]`` int64 negative destinations (may be empty).
        root_nodes, root_ts: the roots given to the sampler.
        blocks: ``blocks[s][l]`` is hop ``l`` of snapshot ``s`` (one snapshot unless DySAT-style
            ``history > 1``; the last snapshot is the most recent). Empty when no sampling.
        plan: a model's index work on this batch, computed ahead on the host (e.g. by the
            model's ``batch_transform``, :meth:`~pyg_tgl.nn.TemporalGNN.index_plan`, as the
            loader's ``transform``); ``None`` when the model computes it itself.
    """

    src: Tensor
    dst: Tensor
    t: Tensor
    eid: Tensor
    neg_dst: Tensor
    root_nodes: Tensor
    root_ts: Tensor
    blocks: List[List[SampledHop]] = field(default_factory=list)
    plan: Optional[List[Dict[str, Any]]] = None

    @property
    def num_events(self) -> int:
        return int(self.src.numel())

    @property
    def num_neg(self) -> int:
        b = self.num_events
        return int(self.neg_dst.numel()) // b if b else 0

    @property
    def hops(self) -> List[SampledHop]:
        """The hops of the most recent (or only) snapshot."""
        return self.blocks[-1] if self.blocks else []
