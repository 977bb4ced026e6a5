"""Temporal message passing: TGAT/TGN attention, identity, JODIE's projection, DySAT's combiner."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from pyg_tgl.nn.time_encoder import TimeEncoder

SCORES = ("leaky_relu", "scaled_dot")


def stacked_key_value(w_k: torch.nn.Linear, w_v: torch.nn.Linear) -> Tuple[Tensor, Tensor]:
    """The key and value projections' weights and biases stacked, ``[2 d, d_in]`` and ``[2 d]``:
    one product gives keys and values together, reading the (wide, per-edge) input once."""
    return (torch.cat([w_k.weight, w_v.weight], dim=0),
            torch.cat([w_k.bias, w_v.bias], dim=0))


class TemporalAttention(MessagePassing):
    r"""Temporal graph attention layer of TGAT (`"Inductive Representation Learning on Temporal
    Graphs" <https://arxiv.org/abs/2002.07962>`_, Xu et al., ICLR 2020) and TGN, as implemented
    by TGL (Zhou et al., VLDB 2022). A root :math:`i` at time :math:`t` attends over its sampled
    neighbours :math:`j` (edges at :math:`t_j < t`):

    .. math::
        q_i &= W_q [h_i \,\|\, \Phi(0)], \qquad
        k_j = W_k [h_j \,\|\, e_{ij} \,\|\, \Phi(t - t_j)], \qquad
        v_j = W_v [h_j \,\|\, e_{ij} \,\|\, \Phi(t - t_j)] \\
        \alpha_{ij} &= \mathrm{softmax}_j\big(\mathrm{LeakyReLU}_{0.2}(\langle q_i, k_j\rangle)
            \big) \text{ per head}, \qquad
        h'_i = \mathrm{LayerNorm}\Big(\mathrm{ReLU}\big(\mathrm{Dropout}(W_o
            [\textstyle\sum_j \alpha_{ij} v_j \,\|\, h_i])\big)\Big)

    Terms whose dimension is 0 are left out (no node input: :math:`h'_i = \ldots W_o
    \sum_j\alpha_{ij}v_j`; neither node input nor time encoding: :math:`q_i = \mathbf{1}`, as in
    TGL). A root without neighbours aggregates zeros.

    Two equivalent paths:

    * :meth:`forward` is a :class:`~torch_geometric.nn.MessagePassing` over a COO ``edge_index``
      (neighbour -> root), usable with any PyG bipartite layout;
    * :meth:`forward_dense` uses the sampler's fixed fan-out ``dense_index`` ``[R, k]`` and runs
      without scatter (the default inside :class:`~pyg_tgl.nn.TemporalGNN`); it requires the
      :class:`~pyg_tgl.data.batch.SampledHop` layout (edge :math:`j`'s neighbour at node
      position :math:`R + j`).

    Args:
        dim_node: node input dimension (0 for none).
        dim_edge: edge feature dimension (0 for none).
        dim_time: time-encoding dimension (0 for none).
        dim_out: output dimension (divisible by ``num_heads``).
        num_heads: attention heads.
        dropout: dropout before the output activation.
        att_dropout: dropout on the attention weights.
        score: ``'leaky_relu'`` (TGL) or ``'scaled_dot'``
            (:math:`\langle q, k\rangle / \sqrt{d_\text{head}}`).
    """

    def __init__(self, dim_node: int, dim_edge: int, dim_time: int, dim_out: int,
                 num_heads: int = 2, dropout: float = 0.0, att_dropout: float = 0.0,
                 score: str = "leaky_relu") -> None:
        super().__init__(aggr="add", node_dim=0)
        if min(dim_node, dim_edge, dim_time) < 0 or dim_out <= 0:
            raise ValueError(f"TemporalAttention: dimensions must be >= 0 and dim_out > 0, got "
                             f"dim_node={dim_node}, dim_edge={dim_edge}, dim_time={dim_time}, "
                             f"dim_out={dim_out}")
        if dim_node + dim_edge + dim_time == 0:
            raise ValueError("TemporalAttention: the layer has no input (dim_node, dim_edge and "
                             "dim_time are all 0)")
        if num_heads <= 0 or dim_out % num_heads:
            raise ValueError(f"TemporalAttention: dim_out ({dim_out}) must be divisible by "
                             f"num_heads ({num_heads})")
        if score not in SCORES:
            raise ValueError(f"TemporalAttention: score must be one of {SCORES}, got {score!r}")
        self.dim_node = dim_node
        self.dim_edge = dim_edge
        self.dim_time = dim_time
        self.dim_out = dim_out
        self.num_heads = num_heads
        self.dim_head = dim_out // num_heads
        self.score = score
        self.time_enc: Optional[TimeEncoder] = TimeEncoder(dim_time) if dim_time > 0 else None
        dim_q = dim_node + dim_time
        dim_kv = dim_node + dim_edge + dim_time
        self.w_q = torch.nn.Linear(dim_q, dim_out) if dim_q > 0 else None
        self.w_k = torch.nn.Linear(dim_kv, dim_out)
        self.w_v = torch.nn.Linear(dim_kv, dim_out)
        self.w_out = torch.nn.Linear(dim_node + dim_out, dim_out)
        self.norm = torch.nn.LayerNorm(dim_out)
        self.dropout = torch.nn.Dropout(dropout)
        self.att_dropout = torch.nn.Dropout(att_dropout)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.time_enc is not None:
            self.time_enc.reset_parameters()
        for lin in (self.w_q, self.w_k, self.w_v, self.w_out):
            if lin is not None:
                lin.reset_parameters()
        self.norm.reset_parameters()

    # -- shared pieces ---------------------------------------------------------------------------

    def _check(self, x: Optional[Tensor], edge_attr: Optional[Tensor], num_edges: int) -> None:
        if self.dim_node and (x is None or x.dim() != 2 or x.size(1) != self.dim_node):
            got = None if x is None else tuple(x.shape)
            raise ValueError(f"TemporalAttention: x must be [num_nodes, {self.dim_node}], "
                             f"got {got}")
        if self.dim_edge and (edge_attr is None or edge_attr.shape != (num_edges, self.dim_edge)):
            got = None if edge_attr is None else tuple(edge_attr.shape)
            raise ValueError(f"TemporalAttention: edge_attr must be [{num_edges}, "
                             f"{self.dim_edge}], got {got}")

    def _query(self, x_dst: Optional[Tensor], num_roots: int, like: Tensor) -> Tensor:
        parts = []
        if self.dim_node:
            parts.append(x_dst)
        if self.time_enc is not None:
            parts.append(self.time_enc(like.new_zeros(num_roots)))
        if parts:
            q = self.w_q(torch.cat(parts, dim=-1))
        else:
            q = like.new_ones(num_roots, self.dim_out)
        return q.view(num_roots, self.num_heads, self.dim_head)

    def _key_value(self, x_nbr: Optional[Tensor], edge_attr: Optional[Tensor],
                   dt: Tensor, like: Tensor):
        parts = []
        if self.dim_node:
            parts.append(x_nbr)
        if self.dim_edge:
            parts.append(edge_attr.to(like.dtype))
        if self.time_enc is not None:
            parts.append(self.time_enc(dt).to(like.dtype))
        z = torch.cat(parts, dim=-1)
        n = z.size(0)
        # One product with the stacked key/value weights reads the wide per-edge input once and
        # gives its gradient with one product in backward (instead of two plus a sum).
        weight, bias = stacked_key_value(self.w_k, self.w_v)
        return torch.nn.functional.linear(z, weight, bias).view(n, 2, self.num_heads,
                                                                 self.dim_head)

    def _scores(self, q: Tensor, k: Tensor) -> Tensor:
        s = (q * k).sum(-1)
        if self.score == "leaky_relu":
            return torch.nn.functional.leaky_relu(s, 0.2)
        return s / math.sqrt(k.size(-1))

    def _output(self, agg: Tensor, x_dst: Optional[Tensor]) -> Tensor:
        h = agg.reshape(agg.size(0), self.dim_out)
        if self.dim_node:
            h = torch.cat([h, x_dst], dim=-1)
        return self.norm(torch.relu(self.dropout(self.w_out(h))))

    def _like(self) -> Tensor:
        return self.w_k.weight

    # -- sparse (reference) path -------------------------------------------------------------------

    def forward(self, x: Optional[Tensor], edge_index: Tensor, dt: Tensor,
                edge_attr: Optional[Tensor] = None, num_roots: Optional[int] = None) -> Tensor:
        """Message passing over ``edge_index`` ``[2, E]`` (row 0: neighbour position in ``x``,
        row 1: root position ``< num_roots``).

        Args:
            x: ``[num_nodes, dim_node]`` inputs, roots first (``None`` when ``dim_node == 0``).
            edge_index: ``[2, E]`` neighbour -> root.
            dt: ``[E]`` root time minus edge time.
            edge_attr: ``[E, dim_edge]`` edge features.
            num_roots: number of roots ``R`` (default ``x.size(0)``).

        Returns:
            ``[R, dim_out]`` root embeddings.
        """
        num_edges = edge_index.size(1)
        self._check(x, edge_attr, num_edges)
        if num_roots is None:
            if x is None:
                raise ValueError("TemporalAttention: num_roots is required when x is None")
            num_roots = x.size(0)
        like = self._like()
        x_dst = x[:num_roots] if self.dim_node else None
        q = self._query(x_dst, num_roots, like)
        x_nbr = x.index_select(0, edge_index[0]) if self.dim_node else None
        k, v = self._key_value(x_nbr, edge_attr, dt, like).unbind(1)
        agg = self.propagate(edge_index, q=q, k=k, v=v, size=(None, num_roots))
        return self._output(agg, x_dst)

    def message(self, q_i: Tensor, k: Tensor, v: Tensor, index: Tensor,
                ptr: Optional[Tensor], size_i: Optional[int]) -> Tensor:
        alpha = softmax(self._scores(q_i, k), index, ptr, size_i)
        alpha = self.att_dropout(alpha)
        return v * alpha.unsqueeze(-1)

    # -- dense fixed fan-out path ------------------------------------------------------------------

    def forward_dense(self, x: Optional[Tensor], dense_index: Tensor, dt: Tensor,
                      edge_attr: Optional[Tensor] = None) -> Tensor:
        """Attention over the fixed fan-out view of a :class:`SampledHop`.

        Args:
            x: ``[R + E, dim_node]`` inputs of the hop's nodes, roots first then the ``E``
                sampled neighbours in edge order (``None`` when ``dim_node == 0``).
            dense_index: ``[R, k]`` node position of each root's neighbours, ``-1`` padded.
            dt: ``[E]`` root time minus edge time.
            edge_attr: ``[E, dim_edge]`` edge features.

        Returns:
            ``[R, dim_out]`` root embeddings, equal to :meth:`forward` over the same hop.
        """
        num_roots = dense_index.size(0)
        num_edges = dt.numel()
        self._check(x, edge_attr, num_edges)
        if self.dim_node and x.size(0) != num_roots + num_edges:
            raise ValueError(f"TemporalAttention.forward_dense: x must hold the {num_roots} "
                             f"roots then the {num_edges} neighbours, got {x.size(0)} rows")
        like = self._like()
        x_dst = x[:num_roots] if self.dim_node else None
        q = self._query(x_dst, num_roots, like)
        # Edge j's neighbour sits at node position R + j, so x[R:] lists neighbours in edge order.
        kv = self._key_value(x[num_roots:] if self.dim_node else None, edge_attr, dt, like)
        return self._attend(q, kv, dense_index, x_dst, like)

    def _attend(self, q: Tensor, kv: Tensor, dense_index: Tensor, x_dst: Optional[Tensor],
                like: Tensor) -> Tensor:
        """Attention of ``q [R, H, D]`` over the packed keys and values ``kv [E, 2, H, D]`` of
        the edges ``dense_index`` places in each root's slots."""
        num_roots, fanout = dense_index.shape
        num_edges = kv.size(0)
        mask = dense_index >= 0
        if num_edges == 0:
            agg = like.new_zeros(num_roots, self.num_heads, self.dim_head)
            return self._output(agg, x_dst)
        if num_edges != num_roots * fanout:
            slot = (dense_index - num_roots).clamp(min=0).view(-1)
            kv = kv.index_select(0, slot)
        # else every root has all k neighbours, laid out root by root: the edges are the grid.
        # Keys and values stay packed through the gather and are split by unbind, whose
        # backward stacks the two gradients instead of zero-filling the packed shape twice.
        k, v = kv.view(num_roots, fanout, 2, self.num_heads, self.dim_head).unbind(2)
        s = self._scores(q.unsqueeze(1), k)
        # A finite fill keeps rows without any neighbour NaN-free; the mask zeroes them after.
        s = s.masked_fill(~mask.unsqueeze(-1), torch.finfo(s.dtype).min)
        alpha = s.softmax(dim=1) * mask.unsqueeze(-1)
        alpha = self.att_dropout(alpha)
        agg = (alpha.unsqueeze(-1) * v).sum(dim=1)
        return self._output(agg, x_dst)

    def forward_dense_unique(self, x: Optional[Tensor], node_of: Optional[Tensor],
                             dense_index: Tensor, dt: Tensor, edge_attr: Optional[Tensor] = None,
                             edge_of: Optional[Tensor] = None,
                             pairs: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
        """:meth:`forward_dense` with inputs given once per distinct row.

        A sampled neighbourhood lists the same ``(neighbour, edge)`` many times (on Wikipedia
        about 35% of the sampled rows are distinct): the node and edge parts of the key/value
        projections run once per distinct ``(node row, edge row)`` pair and are gathered back;
        only the time encoding, which depends on each root's time, runs per edge.

        Args:
            x: ``[U, dim_node]`` distinct node inputs (``None`` when ``dim_node == 0``).
            node_of: ``[R + E]`` row of ``x`` of each node of the hop (roots first).
            dense_index: ``[R, k]`` node position of each root's neighbours, ``-1`` padded.
            dt: ``[E]`` root time minus edge time.
            edge_attr: ``[U_e, dim_edge]`` distinct edge features.
            edge_of: ``[E]`` row of ``edge_attr`` of each sampled edge.
            pairs: ``torch.unique(key, return_inverse=True)`` of the neighbours' keys
                ``node_of[R:] * U_e + edge_of`` (``node_of[R:]`` without edge features),
                computed ahead of time (e.g. on the host); computed here when ``None``.

        Returns:
            ``[R, dim_out]`` root embeddings, equal to :meth:`forward_dense` on the expanded
            inputs ``x[node_of]`` and ``edge_attr[edge_of]``.
        """
        num_roots = dense_index.size(0)
        num_edges = dt.numel()
        if self.dim_node and (x is None or node_of is None
                              or node_of.numel() != num_roots + num_edges):
            raise ValueError(f"TemporalAttention.forward_dense_unique: node_of must map the "
                             f"{num_roots} roots and {num_edges} neighbours to rows of x")
        if self.dim_edge and (edge_attr is None or edge_of is None
                              or edge_of.numel() != num_edges):
            raise ValueError(f"TemporalAttention.forward_dense_unique: edge_of must map the "
                             f"{num_edges} edges to rows of edge_attr")
        self._check(x, None if edge_attr is None else edge_attr[:0], 0)
        like = self._like()
        x_dst = x.index_select(0, node_of[:num_roots]) if self.dim_node else None
        q = self._query(x_dst, num_roots, like)
        weight, bias = stacked_key_value(self.w_k, self.w_v)
        width = self.dim_node + self.dim_edge
        if width:
            if self.dim_node and self.dim_edge:
                num_e = edge_attr.size(0)
                pair, pair_of = pairs if pairs is not None else torch.unique(
                    node_of[num_roots:] * num_e + edge_of, return_inverse=True)
                # Two products rather than one over the concatenation: the edge features need
                # no gradient, so backward computes the input gradient of the node part only.
                kv = (torch.nn.functional.linear(x.index_select(0, pair // num_e),
                                                 weight[:, :self.dim_node])
                      + torch.nn.functional.linear(
                          edge_attr.index_select(0, pair % num_e).to(like.dtype),
                          weight[:, self.dim_node:width]))
            elif self.dim_node:
                pair, pair_of = pairs if pairs is not None else torch.unique(
                    node_of[num_roots:], return_inverse=True)
                kv = torch.nn.functional.linear(x.index_select(0, pair), weight[:, :width])
            else:
                kv = torch.nn.functional.linear(edge_attr.to(like.dtype), weight[:, :width])
                pair_of = edge_of
            kv = kv.index_select(0, pair_of)
            if self.time_enc is not None:
                kv = kv + torch.nn.functional.linear(self.time_enc(dt).to(like.dtype),
                                                     weight[:, width:], bias)
            else:
                kv = kv + bias
        else:
            kv = torch.nn.functional.linear(self.time_enc(dt).to(like.dtype), weight, bias)
        kv = kv.view(num_edges, 2, self.num_heads, self.dim_head)
        return self._attend(q, kv, dense_index, x_dst, like)

    def forward_hop(self, x: Optional[Tensor], hop, edge_attr: Optional[Tensor] = None,
                    dense: bool = True) -> Tensor:
        """Runs the layer on one :class:`~pyg_tgl.data.batch.SampledHop` (``x`` holds its
        ``hop.num_nodes`` inputs), densely or by message passing."""
        if dense:
            return self.forward_dense(x, hop.dense_index, hop.dt, edge_attr)
        return self.forward(x, hop.edge_index, hop.dt, edge_attr, num_roots=hop.num_roots)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(dim_node={self.dim_node}, dim_edge={self.dim_edge}, "
                f"dim_time={self.dim_time}, dim_out={self.dim_out}, heads={self.num_heads}, "
                f"score={self.score!r})")


class IdentityLayer(torch.nn.Module):
    r"""No message passing: the input embedding, layer-normalised (TGL's ``IdentityNormLayer``,
    used by JODIE and APAN where the memory alone is the embedding; Zhou et al., VLDB 2022).

    Args:
        dim: embedding dimension.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(dim)

    def reset_parameters(self) -> None:
        self.norm.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


class JODIETimeProjection(torch.nn.Module):
    r"""JODIE's embedding projection (`"Predicting Dynamic Embedding Trajectory in Temporal
    Interaction Networks" <https://arxiv.org/abs/1908.01207>`_, Kumar et al., KDD 2019):
    :math:`h(t) = h \odot (1 + w\,\Delta)`, with TGL's normalised time gap
    :math:`\Delta = (t - t^{s}) / (t + 1)` from the memory's timestamp :math:`t^{s}`. Weights
    start from :math:`\mathcal{N}(0, 1)` as in JODIE's code.

    Args:
        dim: embedding dimension.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(1, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = 1.0 / math.sqrt(self.lin.weight.size(1))
        with torch.no_grad():
            self.lin.weight.normal_(0.0, std)
            self.lin.bias.normal_(0.0, std)

    def forward(self, h: Tensor, memory_ts: Tensor, t: Tensor) -> Tensor:
        """Projects ``h [n, dim]`` from ``memory_ts [n]`` to the query times ``t [n]``."""
        gap = ((t - memory_ts) / (t + 1)).to(h.dtype).unsqueeze(-1)
        return h * (1 + self.lin(gap))


class SnapshotRNN(torch.nn.Module):
    r"""DySAT's temporal combination (`"DySAT: Deep Neural Representation Learning on Dynamic
    Graphs via Self-Attention Networks" <https://arxiv.org/abs/1812.09430>`_, Sankar et al., WSDM
    2020) as TGL implements it: an RNN over the per-snapshot embeddings, oldest first, whose last
    output is the embedding.

    Args:
        dim: embedding dimension.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.rnn = torch.nn.RNN(dim, dim)

    def reset_parameters(self) -> None:
        self.rnn.reset_parameters()

    def forward(self, snapshots: Tensor) -> Tensor:
        """``snapshots`` ``[H, n, dim]`` (oldest first) -> ``[n, dim]``."""
        # The recurrence is written out over the few snapshots instead of calling the module:
        # on CUDA ``nn.RNN`` runs in cuDNN, which computes float32 RNNs in TF32 on Ampere and
        # newer GPUs (``torch.backends.cudnn.allow_tf32`` is on by default). That moved DySAT's
        # gradients 3.8% away from the CPU's on an H200; written out, both agree.
        rnn = self.rnn
        inputs = torch.nn.functional.linear(snapshots, rnn.weight_ih_l0, rnn.bias_ih_l0)
        h = torch.tanh(inputs[0] + rnn.bias_hh_l0)
        for x in inputs[1:]:
            h = torch.tanh(x + torch.nn.functional.linear(h, rnn.weight_hh_l0, rnn.bias_hh_l0))
        return h
