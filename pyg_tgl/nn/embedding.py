r"""Temporal embedding modules: what turns node inputs (memory, features) at sampled
neighbourhoods into root embeddings.

An embedding module is one part of a :class:`~pyg_tgl.nn.TemporalGNN` and follows one contract
(``docs/design.md``), for every snapshot of a batch's ``blocks`` (``[snapshot][hop]``):

* :meth:`plan` the index work of a batch, from its ids and times alone (host-computable);
* :meth:`input_points` the ``(nodes, times)`` at which it needs node inputs;
* :meth:`forward` the per-snapshot root embeddings from those inputs;
* :meth:`positive_rows` where the batch's ``2 B`` positive endpoints sit among the inputs of the
  last snapshot (their memory is what the batch writes).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from pyg_tgl.nn.attention import IdentityLayer, JODIETimeProjection, TemporalAttention
from pyg_tgl.nn.memory import MemoryState
from pyg_tgl.nn.storage import unique_pairs

Plan = Dict[str, Any]
Points = List[Tuple[Tensor, Tensor]]


def gather_rows(feat: Tensor, index: Tensor, like: Tensor) -> Tensor:
    """``feat[index]`` on the device and in the dtype of ``like`` (features may be stored in
    another dtype, e.g. float16, or on the host)."""
    out = feat.index_select(0, index.to(feat.device))
    return out.to(device=like.device, dtype=like.dtype)


def distinct_roots(hop) -> Optional[Tuple[Tensor, Tensor, Tensor, Tensor]]:
    """One root per distinct ``(node, time)`` of ``hop``, with its neighbourhood; ``None`` when
    the roots are distinct already.

    Returns ``(keep [K], root_of [R], edge_sel [E'], dense_index [K, k])``: the kept roots'
    positions, each root's row among them, the hop edges of the kept roots (in slot order) and
    their fixed fan-out grid renumbered ``K + j`` for the ``j``-th kept edge."""
    num_roots = hop.num_roots
    nodes_u, _, root_of = unique_pairs(hop.nodes[:num_roots], hop.ts[:num_roots])
    k = nodes_u.numel()
    if k == num_roots:
        return None
    positions = torch.arange(num_roots, device=root_of.device)
    # Duplicates are identical roots, so whichever occurrence the scatter keeps is as good.
    keep = torch.empty(k, dtype=torch.long, device=root_of.device).scatter_(0, root_of, positions)
    rows = hop.dense_index.index_select(0, keep)
    mask = rows >= 0
    edge_sel = rows[mask] - num_roots
    slots = k - 1 + mask.view(-1).cumsum(0).view_as(rows)
    return keep, root_of, edge_sel, torch.where(mask, slots, torch.full_like(rows, -1))


class AttentionEmbedding(torch.nn.Module):
    r"""TGL's stack of temporal attention layers (:class:`~pyg_tgl.nn.TemporalAttention`, TGAT:
    Xu et al., `"Inductive Representation Learning on Temporal Graphs"
    <https://arxiv.org/abs/2002.07962>`_, ICLR 2020; TGN: Rossi et al., 2020) over the sampled
    hops of each snapshot, as TGL composes it (Zhou et al., `"TGL: A General Framework for
    Temporal GNN Training on Billion-Scale Graphs" <https://arxiv.org/abs/2203.14883>`_, VLDB
    2022): layer ``l`` (bottom first) embeds the nodes of hop ``L - 1 - l`` from the layer
    below, and the top layer the batch's roots. Each snapshot has its own layers
    (``layers[layer][snapshot]``); DySAT combines the snapshots afterwards
    (:class:`~pyg_tgl.nn.SnapshotRNN`).

    Fast paths, each giving the same embeddings with fewer rows (``docs/performance.md``):

    * ``unique_inputs``: node inputs once per distinct ``(node, time)`` of the bottom hop, the
      node and edge parts of the bottom layer's projections once per distinct ``(neighbour,
      edge)`` (:meth:`~pyg_tgl.nn.TemporalAttention.forward_dense_unique`);
    * ``unique_roots``: the top layer embeds each distinct ``(node, time)`` root once (exact when
      every root's neighbours are its most recent edges, i.e. a ``recent`` sampler);
    * hops of a deduplicating sampler (``TemporalSampler(dedup=True)``: hops with an ``inverse``
      map) are expanded between layers.

    Args:
        dim_in: node input dimension (memory or node features; 0 for none).
        dim_edge: edge feature dimension (0 for none).
        dim_time: time-encoding dimension (0 for none).
        dim_out: embedding dimension (divisible by ``num_heads``).
        num_layers: attention layers (= sampled hops).
        num_snapshots: snapshots of the batch (``sampling.history``).
        num_heads: attention heads.
        dropout: dropout of each layer's output.
        att_dropout: dropout on the attention weights.
        score: ``'leaky_relu'`` (TGL) or ``'scaled_dot'``.
        dense: fixed fan-out attention over ``dense_index`` (``False``: message passing over
            ``edge_index``, same numbers).
        unique_inputs: the distinct-input fast path (a dense path: off when ``dense`` is off).
        unique_roots: the distinct-root fast path (needs ``unique_inputs``).
    """

    def __init__(self, dim_in: int, dim_edge: int, dim_time: int, dim_out: int,
                 num_layers: int, num_snapshots: int = 1, num_heads: int = 2,
                 dropout: float = 0.0, att_dropout: float = 0.0, score: str = "leaky_relu",
                 dense: bool = True, unique_inputs: bool = True,
                 unique_roots: bool = False) -> None:
        super().__init__()
        if num_layers <= 0 or num_snapshots <= 0:
            raise ValueError(f"AttentionEmbedding: num_layers and num_snapshots must be "
                             f"positive, got {num_layers} and {num_snapshots}")
        self.dim_in, self.dim_edge, self.dim_out = int(dim_in), int(dim_edge), int(dim_out)
        self.num_layers, self.num_snapshots = int(num_layers), int(num_snapshots)
        self.dense = bool(dense)
        self.unique_inputs = self.dense and bool(unique_inputs)
        self.unique_roots = self.unique_inputs and bool(unique_roots)
        self.layers = torch.nn.ModuleList([
            torch.nn.ModuleList([
                TemporalAttention(dim_in if layer == 0 else dim_out, dim_edge, dim_time, dim_out,
                                  num_heads, dropout, att_dropout, score)
                for _ in range(num_snapshots)])
            for layer in range(num_layers)])

    def reset_parameters(self) -> None:
        for snapshots in self.layers:
            for layer in snapshots:
                layer.reset_parameters()

    def _like(self) -> Tensor:
        return self.layers[0][0].w_k.weight

    # -- index work ------------------------------------------------------------------------------

    def check_blocks(self, blocks: Sequence[Sequence[Any]], num_roots: int) -> None:
        """Raises ``ValueError`` when ``blocks`` do not fit the layers."""
        if len(blocks) != self.num_snapshots:
            raise ValueError(f"AttentionEmbedding: the batch has {len(blocks)} snapshots, the "
                             f"model expects sampling.history = {self.num_snapshots}")
        for s, hops in enumerate(blocks):
            if len(hops) < self.num_layers:
                raise ValueError(f"AttentionEmbedding: snapshot {s} has {len(hops)} hops, the "
                                 f"model has {self.num_layers} layers")
            if hops[0].num_roots != num_roots:
                raise ValueError(f"AttentionEmbedding: hop 0 has {hops[0].num_roots} roots but "
                                 f"the batch has {num_roots} root nodes")

    def plan(self, root_nodes: Tensor, root_ts: Tensor,
             blocks: Sequence[Sequence[Any]]) -> List[Plan]:
        """Per snapshot: the distinct ``(node, time)`` inputs (``pairs``), the kept roots
        (``roots``), the distinct edges (``edges``) and ``(neighbour, edge)`` keys
        (``neighbor_pairs``) of the bottom layer; ``None`` where a fast path is off."""
        plans = []
        for s, hops in enumerate(blocks):
            bottom = hops[self.num_layers - 1]
            plan: Plan = {"pairs": None, "roots": None, "edges": None, "neighbor_pairs": None}
            node_of = None
            if self.unique_inputs:
                nodes, ts, node_of = unique_pairs(bottom.nodes, bottom.ts)
                plan["pairs"] = (nodes, ts, node_of)
            if self.unique_roots:
                plan["roots"] = distinct_roots(hops[0])
            if self.unique_inputs and self.dim_edge:
                # The bottom layer projects each distinct edge once (of the kept roots' edges
                # when it is also the top layer).
                eid = bottom.eid
                if self.num_layers == 1 and plan["roots"] is not None:
                    eid = eid.index_select(0, plan["roots"][2])
                plan["edges"] = torch.unique(eid, return_inverse=True)
            if self.unique_inputs and self.layers[0][s].dim_node:
                # The bottom layer's distinct (neighbour, edge) keys, as forward_dense_unique
                # forms them.
                key = node_of[bottom.num_roots:]
                if self.num_layers == 1 and plan["roots"] is not None:
                    key = key.index_select(0, plan["roots"][2])
                if plan["edges"] is not None and self.layers[0][s].dim_edge:
                    distinct_edges, edge_of = plan["edges"]
                    key = key * distinct_edges.numel() + edge_of
                plan["neighbor_pairs"] = torch.unique(key, return_inverse=True)
            plans.append(plan)
        return plans

    def input_points(self, root_nodes: Tensor, root_ts: Tensor, blocks: Sequence[Sequence[Any]],
                     plans: Sequence[Plan]) -> Points:
        """Per snapshot, the bottom hop's nodes and times (distinct ones with
        ``unique_inputs``)."""
        points = []
        for hops, plan in zip(blocks, plans):
            if plan["pairs"] is not None:
                points.append(plan["pairs"][:2])
            else:
                bottom = hops[self.num_layers - 1]
                points.append((bottom.nodes, bottom.ts))
        return points

    def positive_rows(self, blocks: Sequence[Sequence[Any]], plans: Sequence[Plan],
                      num_pos: int) -> Optional[Tensor]:
        """Rows of the last snapshot's inputs holding the first ``num_pos`` roots; ``None``:
        the first ``num_pos`` rows (every hop lists its roots first)."""
        hops, plan = blocks[-1], plans[-1]
        rows: Optional[Tensor] = None
        for hop in hops[:self.num_layers - 1]:
            inverse = getattr(hop, "inverse", None)
            if inverse is not None:  # a deduplicating sampler renumbered the hop's nodes
                base = torch.arange(num_pos, device=inverse.device) if rows is None else rows
                rows = inverse.index_select(0, base)
        if plan["pairs"] is not None:
            node_of = plan["pairs"][2]
            base = (torch.arange(num_pos, device=node_of.device) if rows is None
                    else rows.to(node_of.device))
            rows = node_of.index_select(0, base)
        return rows

    # -- forward ---------------------------------------------------------------------------------

    def forward(self, inputs: Sequence[Optional[Tensor]],
                states: Sequence[Optional[MemoryState]], blocks: Sequence[Sequence[Any]],
                plans: Sequence[Plan], edge_feat: Optional[Tensor] = None) -> List[Tensor]:
        """Root embeddings ``[num_roots, dim_out]`` of each snapshot.

        Args:
            inputs: per snapshot, the node inputs at :meth:`input_points` (``None`` without
                any).
            states: the memory states behind them (unused here).
            blocks: the batch's ``[snapshot][hop]`` sampled hops.
            plans: :meth:`plan` of the batch.
            edge_feat: ``[num_events, dim_edge]`` edge features indexed by event id.
        """
        outs = []
        for s, (hops, plan, h) in enumerate(zip(blocks, plans, inputs)):
            node_of = plan["pairs"][2] if plan["pairs"] is not None else None
            for layer in range(self.num_layers):
                hop = hops[self.num_layers - 1 - layer]
                inverse = getattr(hop, "inverse", None)
                if layer > 0 and inverse is not None:
                    # The layer below embedded unique (node, time) pairs; expand to the hop.
                    h = h.index_select(0, inverse.to(h.device))
                roots = plan["roots"] if layer == self.num_layers - 1 else None
                bottom = layer == 0
                h = self._layer(self.layers[layer][s], h, hop, edge_feat,
                                node_of if bottom else None, roots,
                                plan["edges"] if bottom else None,
                                plan["neighbor_pairs"] if bottom else None)
                if roots is not None:
                    h = h.index_select(0, roots[1].to(h.device))
            outs.append(h)
        return outs

    def _edge_attr(self, edge_feat: Optional[Tensor], eid: Tensor) -> Optional[Tensor]:
        return gather_rows(edge_feat, eid, self._like()) if edge_feat is not None else None

    def _layer(self, module: TemporalAttention, h: Optional[Tensor], hop,
               edge_feat: Optional[Tensor], node_of: Optional[Tensor],
               roots: Optional[Tuple[Tensor, Tensor, Tensor, Tensor]],
               edges: Optional[Tuple[Tensor, Tensor]] = None,
               pairs: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
        """One attention layer over ``hop``; ``node_of`` maps the hop's nodes to the distinct
        rows of ``h`` (bottom layer with ``unique_inputs``), ``roots`` (from
        :func:`distinct_roots`) restricts it to one root per distinct ``(node, time)``, and
        ``edges`` (with ``node_of``) are the distinct event ids of its (kept) edges and each
        edge's row among them, ``pairs`` its distinct neighbour keys (see
        :meth:`TemporalAttention.forward_dense_unique`)."""
        if roots is None and node_of is None:
            return module.forward_hop(h, hop, self._edge_attr(edge_feat, hop.eid),
                                      dense=self.dense)
        dense_index, dt, eid = hop.dense_index, hop.dt, hop.eid
        if roots is not None:
            keep, _, edge_sel, dense_index = roots
            num_roots = hop.num_roots
            dt, eid = dt.index_select(0, edge_sel), eid.index_select(0, edge_sel)
            if node_of is not None:
                node_of = torch.cat([node_of[:num_roots].index_select(0, keep),
                                     node_of[num_roots:].index_select(0, edge_sel)])
            elif h is not None:
                h = torch.cat([h.index_select(0, keep.to(h.device)),
                               h[num_roots:].index_select(0, edge_sel.to(h.device))])
        dev = h.device if h is not None else self._like().device
        if node_of is None:
            return module.forward_dense(h, dense_index.to(dev), dt.to(dev),
                                        self._edge_attr(edge_feat, eid))
        edge_attr = edge_of = None
        if edges is not None:
            eid, edge_of = edges
            edge_attr = self._edge_attr(edge_feat, eid)
            edge_of = edge_of.to(edge_attr.device)
        if pairs is not None:
            pairs = (pairs[0].to(dev), pairs[1].to(dev))
        return module.forward_dense_unique(h, node_of.to(dev), dense_index.to(dev), dt.to(dev),
                                           edge_attr, edge_of, pairs)

    def extra_repr(self) -> str:
        return (f"layers={self.num_layers}, snapshots={self.num_snapshots}, "
                f"dim_out={self.dim_out}, dense={self.dense}, "
                f"unique_inputs={self.unique_inputs}, unique_roots={self.unique_roots}")


class IdentityEmbedding(torch.nn.Module):
    r"""No message passing: each root's node input, layer-normalised, is its embedding (TGL's
    ``IdentityNormLayer``, Zhou et al., VLDB 2022; JODIE and APAN), optionally projected to the
    query time as JODIE does (:class:`~pyg_tgl.nn.JODIETimeProjection`, Kumar et al.,
    `"Predicting Dynamic Embedding Trajectory in Temporal Interaction Networks"
    <https://arxiv.org/abs/1908.01207>`_, KDD 2019). Sampled hops are ignored.

    Args:
        dim: input = embedding dimension.
        num_snapshots: snapshots of the batch (one normalisation each).
        time_projection: JODIE's projection (needs a model with memory: it reads the memory's
            timestamps).
    """

    def __init__(self, dim: int, num_snapshots: int = 1, time_projection: bool = False) -> None:
        super().__init__()
        if dim <= 0 or num_snapshots <= 0:
            raise ValueError(f"IdentityEmbedding: dim and num_snapshots must be positive, got "
                             f"{dim} and {num_snapshots}")
        self.dim_in = self.dim_out = int(dim)
        self.num_snapshots = int(num_snapshots)
        # [layer][snapshot], as AttentionEmbedding's layers.
        self.layers = torch.nn.ModuleList([torch.nn.ModuleList(
            [IdentityLayer(dim) for _ in range(num_snapshots)])])
        self.time_proj: Optional[torch.nn.ModuleList] = (
            torch.nn.ModuleList([JODIETimeProjection(dim) for _ in range(num_snapshots)])
            if time_projection else None)

    def reset_parameters(self) -> None:
        for layer in self.layers[0]:
            layer.reset_parameters()
        for proj in self.time_proj or ():
            proj.reset_parameters()

    def check_blocks(self, blocks: Sequence[Sequence[Any]], num_roots: int) -> None:
        """Any blocks fit (they are not read)."""

    def plan(self, root_nodes: Tensor, root_ts: Tensor,
             blocks: Sequence[Sequence[Any]]) -> List[Plan]:
        """No index work of its own (one entry, shared by the snapshots)."""
        return [{}]

    def input_points(self, root_nodes: Tensor, root_ts: Tensor, blocks: Sequence[Sequence[Any]],
                     plans: Sequence[Plan]) -> Points:
        """The roots at their times."""
        return [(root_nodes, root_ts)]

    def positive_rows(self, blocks: Sequence[Sequence[Any]], plans: Sequence[Plan],
                      num_pos: int) -> Optional[Tensor]:
        """``None``: the positive endpoints are the first roots."""
        return None

    def forward(self, inputs: Sequence[Optional[Tensor]],
                states: Sequence[Optional[MemoryState]], blocks: Sequence[Sequence[Any]] = (),
                plans: Sequence[Plan] = (), edge_feat: Optional[Tensor] = None) -> List[Tensor]:
        """Per snapshot, ``[num_roots, dim]`` embeddings of the roots' inputs ``inputs[0]``
        (``states[0]``: their memory state, for the time projection)."""
        x, state = inputs[0], states[0]
        if x is None:
            raise ValueError("IdentityEmbedding: the model gives no node input (no memory and "
                             "no node features)")
        if self.time_proj is not None and state is None:
            raise ValueError("IdentityEmbedding: time_projection needs a model with memory")
        outs = []
        for s in range(self.num_snapshots):
            h = self.layers[0][s](x)
            if self.time_proj is not None:
                h = self.time_proj[s](h, state.memory_ts, state.ts)
            outs.append(h)
        return outs

    def extra_repr(self) -> str:
        return (f"dim={self.dim_out}, snapshots={self.num_snapshots}, "
                f"time_projection={self.time_proj is not None}")
