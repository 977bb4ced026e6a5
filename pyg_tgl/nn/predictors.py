"""Prediction heads on top of temporal node embeddings."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


#: Width of :func:`pair_features` (``recency=True`` adds :data:`PAIR_RECENCY_FEATURES`).
PAIR_FEATURES = 4
PAIR_RECENCY_FEATURES = 2


def pair_features(batch, recency: bool = False) -> Tensor:
    r"""Neighbour co-occurrence of each candidate pair, from the sampled neighbourhoods the model
    already has (DyGFormer's neighbour co-occurrence encoding, Yu et al., `"Towards Better Dynamic
    Graph Learning: New Architecture and Unified Library" <https://arxiv.org/abs/2303.13047>`_,
    NeurIPS 2023, reduced to the pair itself).

    For event ``i`` with source ``u`` and candidate destination ``v`` (the true one, then the
    negatives), ``c_uv`` counts ``v`` among ``u``'s sampled neighbours (hop 0 of the most recent
    snapshot) and ``c_vu`` counts ``u`` among ``v``'s. Sampled edges are strictly earlier than
    the query time, so this reads only the past. Returns ``[(1 + num_neg) * B, 4]``:
    ``[log1p(c_uv), log1p(c_vu), c_uv > 0, c_vu > 0]``, zeros without sampled neighbourhoods.
    With ``recency``, two more columns ``[log1p(dt_uv), log1p(dt_vu)]``: the time since the most
    recent of those sampled ``u``-``v`` edges (0 where there is none).
    """
    b = batch.num_events
    cand = batch.root_nodes[b:]
    width = PAIR_FEATURES + (PAIR_RECENCY_FEATURES if recency else 0)
    out = torch.zeros(cand.numel(), width, dtype=torch.float32, device=cand.device)
    if not batch.blocks or not batch.blocks[-1]:
        return out
    hop = batch.blocks[-1][0]
    if hop.num_roots != batch.root_nodes.numel():
        raise ValueError(f"pair_features: hop 0 has {hop.num_roots} roots, the batch "
                         f"{batch.root_nodes.numel()} (deduplicated roots are not supported)")
    idx = hop.dense_index
    nbr = torch.where(idx >= 0, hop.nodes.index_select(0, idx.clamp(min=0).view(-1)).view_as(idx),
                      torch.full_like(idx, -1))
    reps = cand.numel() // b
    hit_uv = nbr[:b].repeat(reps, 1) == cand.unsqueeze(1)
    hit_vu = nbr[b:] == batch.src.repeat(reps).unsqueeze(1)
    c = torch.stack([hit_uv.sum(1), hit_vu.sum(1)], dim=1).to(out.dtype)
    parts = [torch.log1p(c), (c > 0).to(out.dtype)]
    if recency:
        # Edge j of the hop is node position R + j, so dt of a dense slot is dt[idx - R]; empty
        # slots (and hops without any edge) read an appended infinity.
        num_edges = hop.dt.numel()
        dt = torch.cat([hop.dt, hop.dt.new_full((1,), float("inf"))])
        dt = dt.index_select(0, torch.where(idx >= 0, idx - hop.num_roots, num_edges)
                             .view(-1)).view_as(idx)
        inf = dt.new_full((), float("inf"))
        last_uv = torch.where(hit_uv, dt[:b].repeat(reps, 1), inf).amin(1)
        last_vu = torch.where(hit_vu, dt[b:], inf).amin(1)
        last = torch.stack([last_uv, last_vu], dim=1)
        parts.append(torch.log1p(last.masked_fill(torch.isinf(last), 0)).to(out.dtype))
    return torch.cat(parts, dim=1)


class SampledPairFeatures(torch.nn.Module):
    r""":func:`pair_features` as a part of a model: the neighbour co-occurrence of each candidate
    pair in the batch's sampled neighbourhoods (no parameters, no state).

    Args:
        recency: also the time since the pair's most recent sampled edge.
    """

    def __init__(self, recency: bool = False) -> None:
        super().__init__()
        self.recency = bool(recency)
        self.width = PAIR_FEATURES + PAIR_RECENCY_FEATURES * self.recency

    def reset_parameters(self) -> None:
        """Nothing to reset (no parameters, no state); here so that every part of a model has
        the same interface."""

    def forward(self, batch) -> Tensor:
        """``[(1 + num_neg) * B, width]`` features of the batch's candidate pairs."""
        return pair_features(batch, self.recency)

    def extra_repr(self) -> str:
        return f"recency={self.recency}"


class EdgePredictor(torch.nn.Module):
    r"""TGL's link predictor (Zhou et al., `"TGL: A General Framework for Temporal GNN Training on
    Billion-Scale Graphs" <https://arxiv.org/abs/2203.14883>`_, VLDB 2022), also used by PyG's TGN
    example: :math:`\mathrm{logit}(u, v) = w_o^\top \mathrm{ReLU}(W_s h_u + W_d h_v + W_p p_{uv})
    + b`, where the pair term :math:`W_p p_{uv}` (:func:`pair_features`) is optional
    (``dim_pair > 0``; TGL has none).

    Args:
        dim_in: embedding dimension.
        dim_pair: width of the pair features (0: TGL's predictor).
    """

    def __init__(self, dim_in: int, dim_pair: int = 0) -> None:
        super().__init__()
        if dim_in <= 0 or dim_pair < 0:
            raise ValueError(f"EdgePredictor: dim_in must be positive and dim_pair >= 0, got "
                             f"{dim_in} and {dim_pair}")
        self.dim_in = dim_in
        self.dim_pair = dim_pair
        self.src_fc = torch.nn.Linear(dim_in, dim_in)
        self.dst_fc = torch.nn.Linear(dim_in, dim_in)
        self.pair_fc = torch.nn.Linear(dim_pair, dim_in) if dim_pair else None
        self.out_fc = torch.nn.Linear(dim_in, 1)

    def reset_parameters(self) -> None:
        for lin in (self.src_fc, self.dst_fc, self.pair_fc, self.out_fc):
            if lin is not None:
                lin.reset_parameters()

    def forward(self, h_src: Tensor, h_dst: Tensor, pair: Optional[Tensor] = None) -> Tensor:
        """Logits ``[n_dst]`` of the pairs ``(h_src, h_dst)``.

        ``h_dst`` may hold ``q`` destinations per source, negative-major
        (``h_dst[p * B + i]`` pairs with ``h_src[i]``), as TGL lays out negatives; ``pair``
        (``[n_dst, dim_pair]``, same order) is required when ``dim_pair > 0``.
        """
        b, n = h_src.size(0), h_dst.size(0)
        if b == 0 or n % b:
            raise ValueError(f"EdgePredictor: h_dst has {n} rows, not a multiple of the {b} "
                             f"sources")
        src = self.src_fc(h_src)
        if n != b:
            src = src.repeat(n // b, 1)
        hidden = src + self.dst_fc(h_dst)
        if self.pair_fc is not None:
            if pair is None or pair.shape != (n, self.dim_pair):
                got = None if pair is None else tuple(pair.shape)
                raise ValueError(f"EdgePredictor: pair must be [{n}, {self.dim_pair}], got {got}")
            hidden = hidden + self.pair_fc(pair.to(hidden.dtype))
        return self.out_fc(torch.relu(hidden)).squeeze(-1)


class NodeClassifier(torch.nn.Module):
    r"""Two-layer MLP on (frozen) temporal node embeddings for dynamic node classification, as in
    TGL's ``train_node.py``: :math:`W_2\,\mathrm{Dropout}(\mathrm{ReLU}(W_1 h))`.

    Args:
        dim_in: embedding dimension.
        dim_hidden: hidden dimension.
        num_classes: number of classes (logits returned; 1 for a binary label).
        dropout: dropout on the hidden layer.
    """

    def __init__(self, dim_in: int, dim_hidden: int, num_classes: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(dim_in, dim_hidden)
        self.fc2 = torch.nn.Linear(dim_hidden, num_classes)
        self.dropout = torch.nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()

    def forward(self, h: Tensor) -> Tensor:
        return self.fc2(self.dropout(torch.relu(self.fc1(h))))
