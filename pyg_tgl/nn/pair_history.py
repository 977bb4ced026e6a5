"""How often each ordered node pair interacted so far: a streaming pair store for the link
predictor's pair term."""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import Tensor

#: Columns of :meth:`PairHistory.features` (``recency=True`` adds as many again).
PAIR_HISTORY_FEATURES = 2
#: Columns added by ``nodes=True``.
NODE_HISTORY_FEATURES = 4


class PairHistory(torch.nn.Module):
    r"""Counts of every ordered pair's past events, over the whole stream: the unlimited memory of
    EdgeBank (Poursafaei et al., `"Towards Better Evaluation for Dynamic Link Prediction"
    <https://arxiv.org/abs/2207.10128>`_, NeurIPS 2022) turned into predictor features.

    :func:`~pyg_tgl.nn.predictors.pair_features` sees a pair only while it is among the ``k``
    sampled recent neighbours; this store remembers it for good. For a candidate ``(u, v)`` at
    time ``t`` :meth:`features` returns ``[log1p(c_uv), log1p(c_vu)]``, the number of earlier
    ``u -> v`` and ``v -> u`` events, and with ``recency`` also ``[log1p(t - t_uv),
    log1p(t - t_vu)]``, the time since the latest of them (0 where there is none). With ``nodes``
    it also returns each endpoint's activity, ``[log1p(out_u), log1p(in_v), log1p(t - t_u),
    log1p(t - t_v)]``: how many events ``u`` sent and ``v`` received so far (the popularity that
    random negatives lack) and the time since each node's latest event.

    Like node memory it is state, not parameters: :meth:`update` adds a batch's events after the
    batch has been scored (so a batch never sees its own events), :meth:`reset_state` empties it.
    Pairs are kept as sorted ``u * num_nodes + v`` keys, so a lookup is a binary search and an
    update a linear-time merge of the batch's distinct pairs into the store; no Python loop.

    Args:
        num_nodes: number of nodes (ids in ``[0, num_nodes)``).
        recency: also return the time since the pair's latest event.
        nodes: also return the endpoints' degrees and the time since their latest events.
    """

    def __init__(self, num_nodes: int, recency: bool = False, nodes: bool = False) -> None:
        super().__init__()
        if num_nodes <= 0:
            raise ValueError(f"PairHistory: num_nodes must be positive, got {num_nodes}")
        self.num_nodes = int(num_nodes)
        self.recency = bool(recency)
        self.nodes = bool(nodes)
        self.width = (PAIR_HISTORY_FEATURES * (2 if self.recency else 1)
                      + NODE_HISTORY_FEATURES * self.nodes)
        # Non-persistent buffers: they follow .to() but stay out of state_dict (like memory).
        self.register_buffer("keys", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer("counts", torch.empty(0), persistent=False)
        self.register_buffer("last_t", torch.empty(0, dtype=torch.float64), persistent=False)
        # Per node: events sent, events received, time of the latest (only with ``nodes``).
        size = self.num_nodes if self.nodes else 0
        self.register_buffer("node_out", torch.zeros(size), persistent=False)
        self.register_buffer("node_in", torch.zeros(size), persistent=False)
        self.register_buffer("node_last_t", torch.full((size,), float("-inf"),
                                                       dtype=torch.float64), persistent=False)

    def reset_parameters(self) -> None:
        """No parameters: resets the state (as :meth:`~pyg_tgl.nn.NodeMemory.reset_parameters`
        does)."""
        self.reset_state()

    def reset_state(self) -> None:
        """Forgets every pair (and node)."""
        self.keys = self.keys[:0]
        self.counts = self.counts[:0]
        self.last_t = self.last_t[:0]
        self.node_out.zero_()
        self.node_in.zero_()
        self.node_last_t.fill_(float("-inf"))

    def __len__(self) -> int:
        return int(self.keys.numel())

    def _ids(self, *nodes: Tensor) -> Tuple[Tensor, ...]:
        """Node ids as ``long`` on the store's device."""
        return tuple(n.to(self.keys.device).long() for n in nodes)

    def _key(self, u: Tensor, v: Tensor) -> Tensor:
        """Store keys of the pairs ``(u[i], v[i])`` (ids from :meth:`_ids`)."""
        return u * self.num_nodes + v

    def _find(self, key: Tensor) -> Tuple[Tensor, Tensor]:
        """``(pos, hit)``: each key's insertion position in the store and whether it is there."""
        pos = torch.searchsorted(self.keys, key)
        if self.keys.numel() == 0:
            return pos, torch.zeros_like(key, dtype=torch.bool)
        return pos, self.keys.index_select(0, pos.clamp(max=self.keys.numel() - 1)) == key

    def _lookup(self, key: Tensor) -> Tuple[Tensor, Tensor]:
        """``(count, last_t)`` of each key; ``(0, -inf)`` for pairs never seen."""
        if self.keys.numel() == 0:
            return (self.counts.new_zeros(key.shape),
                    self.last_t.new_full(key.shape, float("-inf")))
        pos, hit = self._find(key)
        pos = pos.clamp(max=self.keys.numel() - 1)
        count = torch.where(hit, self.counts.index_select(0, pos), self.counts.new_zeros(()))
        last = torch.where(hit, self.last_t.index_select(0, pos),
                           self.last_t.new_full((), float("-inf")))
        return count, last

    def features(self, src: Tensor, dst: Tensor, t: Tensor) -> Tensor:
        """``[n, width]`` features of the pairs ``(src[i], dst[i])`` queried at ``t[i]``."""
        u, v = self._ids(src, dst)
        (c_uv, t_uv), (c_vu, t_vu) = self._lookup(self._key(u, v)), self._lookup(self._key(v, u))
        out = [torch.log1p(torch.stack([c_uv, c_vu], dim=1))]
        t = t.to(self.last_t.device, torch.float64)
        if self.recency:
            out.append(self._log_gap(t, t_uv, t_vu))
        if self.nodes:
            out.append(torch.log1p(torch.stack([self.node_out[u], self.node_in[v]], dim=1)))
            out.append(self._log_gap(t, self.node_last_t[u], self.node_last_t[v]))
        return torch.cat(out, dim=1)

    def _log_gap(self, t: Tensor, *last: Tensor) -> Tensor:
        """``log1p(t - last)`` per column, 0 where there was no earlier event."""
        gap = torch.stack([t - x for x in last], dim=1)
        return (torch.log1p(gap.masked_fill(torch.isinf(gap), 0.0).clamp(min=0.0))
                .to(self.counts.dtype))

    @torch.no_grad()
    def update(self, src: Tensor, dst: Tensor, t: Tensor) -> None:
        """Adds the events ``src[i] -> dst[i]`` at ``t[i]``."""
        if src.numel() == 0:
            return
        u, v = self._ids(src, dst)
        t = t.to(self.last_t.device, torch.float64)
        if self.nodes:
            self.node_out.index_add_(0, u, self.node_out.new_ones(u.numel()))
            self.node_in.index_add_(0, v, self.node_in.new_ones(v.numel()))
            self.node_last_t.scatter_reduce_(0, torch.cat([u, v]), torch.cat([t, t]),
                                             reduce="amax")
        batch_keys, inverse = torch.unique(self._key(u, v), return_inverse=True)
        batch_counts = self.counts.new_zeros(batch_keys.numel()).index_add_(
            0, inverse, self.counts.new_ones(inverse.numel()))
        batch_last = self.last_t.new_full((batch_keys.numel(),), float("-inf")).scatter_reduce_(
            0, inverse, t, reduce="amax")
        # Merge two sorted key lists in linear time (no sort of the whole store per batch): each
        # old key moves right by the number of new keys below it, each new key sits after the
        # old keys below it and the new keys before it.
        pos, found = self._find(batch_keys)
        old = pos[found]
        # ``old`` holds distinct positions (the batch's keys are distinct).
        self.counts[old] += batch_counts[found]
        self.last_t[old] = torch.maximum(self.last_t[old], batch_last[found])
        new_keys = batch_keys[~found]
        if new_keys.numel() == 0:
            return
        size = self.keys.numel() + new_keys.numel()
        old_to = (torch.arange(self.keys.numel(), device=pos.device)
                  + torch.searchsorted(new_keys, self.keys))
        new_to = pos[~found] + torch.arange(new_keys.numel(), device=pos.device)
        keys = self.keys.new_empty(size)
        counts = self.counts.new_empty(size)
        last = self.last_t.new_empty(size)
        for out, before, added in ((keys, self.keys, new_keys),
                                   (counts, self.counts, batch_counts[~found]),
                                   (last, self.last_t, batch_last[~found])):
            out[old_to] = before
            out[new_to] = added
        self.keys, self.counts, self.last_t = keys, counts, last

    def history_state(self) -> Dict[str, Tensor]:
        """A copy of the store (for checkpoints)."""
        return {"keys": self.keys.clone(), "counts": self.counts.clone(),
                "last_t": self.last_t.clone(), "node_out": self.node_out.clone(),
                "node_in": self.node_in.clone(), "node_last_t": self.node_last_t.clone()}

    def load_history_state(self, state: Dict[str, Tensor]) -> None:
        """Inverse of :meth:`history_state`."""
        self.keys = state["keys"].to(self.keys.device)
        self.counts = state["counts"].to(self.counts.device)
        self.last_t = state["last_t"].to(self.last_t.device)
        for name in ("node_out", "node_in", "node_last_t"):
            if name in state:  # absent in checkpoints written before node features existed
                setattr(self, name, state[name].to(getattr(self, name).device))

    def extra_repr(self) -> str:
        return (f"num_nodes={self.num_nodes}, recency={self.recency}, nodes={self.nodes}, "
                f"pairs={len(self)}")
