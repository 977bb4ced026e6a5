"""A temporal GNN for link prediction composed from parts: memory, node input, embedding,
snapshot combiner, pair features and link predictor."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from pyg_tgl.data.transform import BatchTransform
from pyg_tgl.nn.embedding import gather_rows
from pyg_tgl.nn.memory import MemoryQuery, MemoryState, NodeMemory
from pyg_tgl.nn.node_input import NodeInput
from pyg_tgl.nn.pair_history import PairHistory
from pyg_tgl.nn.predictors import EdgePredictor, SampledPairFeatures
from pyg_tgl.nn.state import (DELIVER_TO, PairEvents, StateUpdate, empty_writes,
                              memory_writes)

#: State-dict prefixes of checkpoints written before the model was composed from parts.
_OLD_PREFIXES = (("layers.", "embedding.layers."), ("time_proj.", "embedding.time_proj."),
                 ("node_feat_map.", "node_input.feat_map."))


class IndexPlan(BatchTransform):
    """A :class:`TemporalGNN`'s batch preparation: :meth:`TemporalGNN.index_plan` stored as
    ``batch.plan`` (host-computable deduplications, see ``LinkTrainer(host_plans=True)``).

    Args:
        model: the model whose batches it prepares (it owns this transform,
            :attr:`TemporalGNN.batch_transform`).
    """

    requires = frozenset({"root_nodes", "root_ts", "blocks"})
    produces = frozenset({"plan"})

    def __init__(self, model: "TemporalGNN") -> None:
        self.model = model

    def __call__(self, batch: Any) -> Any:
        batch.plan = self.model.index_plan(batch)
        return batch


class TemporalGNN(torch.nn.Module):
    r"""A temporal GNN composed from parts, TGL's design (Zhou et al., `"TGL: A General Framework
    for Temporal GNN Training on Billion-Scale Graphs" <https://arxiv.org/abs/2203.14883>`_, VLDB
    2022): node memory (optional) -> node input -> embedding (per snapshot) -> snapshot
    combiner (optional) -> link predictor, with optional pair features. TGL's five models
    (JODIE, DySAT, TGAT, TGN, APAN) are five compositions;
    :func:`pyg_tgl.models.build_model` makes them from ``conf/model/*.yaml``.

    Semantics (TGL): a batch first updates the memory of every node it touches from the mails
    already in the mailboxes (previous batches), embeds and scores. :meth:`step` also returns
    the batch's :class:`~pyg_tgl.nn.state.StateUpdate` (the memory writes and mails of its
    positive endpoints, built from their updated memories, and its events for the pair
    history) without applying it; the trainer applies it after the optimizer step
    (:meth:`apply_update`). Negatives and sampled neighbours never write memory, so an event
    never informs its own prediction.

    Args:
        embedding: an :class:`~pyg_tgl.nn.AttentionEmbedding`, an
            :class:`~pyg_tgl.nn.IdentityEmbedding`, or a module with their contract
            (``docs/design.md``).
        edge_predictor: the link predictor (``dim_in = embedding.dim_out``, ``dim_pair`` the
            width of the pair features).
        memory: node memory and mailbox (``None``: a memory-less model).
        node_input: how memory and node features form the embedding's input (default: the
            memory, or the node features without memory).
        combiner: combines the per-snapshot embeddings ``[H, n, d] -> [n, d]`` (required with
            several snapshots, e.g. :class:`~pyg_tgl.nn.SnapshotRNN`).
        pair_features: the candidates' co-occurrence in the sampled neighbourhoods
            (:class:`~pyg_tgl.nn.SampledPairFeatures`).
        pair_history: the pairs' counts over the whole stream so far
            (:class:`~pyg_tgl.nn.PairHistory`; state, reset with the memory).
        deliver_to: who receives an event's mails: ``'self'`` (its endpoints) or
            ``'neighbors'`` (also their sampled neighbours, APAN).
        node_feat: ``[num_nodes, dim_node_feat]`` node features (a non-persistent buffer).
        edge_feat: ``[num_events, dim_edge_feat]`` edge features, indexed by event id (a
            non-persistent buffer; float16 is fine).
    """

    def __init__(self, embedding: torch.nn.Module, edge_predictor: EdgePredictor,
                 memory: Optional[NodeMemory] = None, node_input: Optional[NodeInput] = None,
                 combiner: Optional[torch.nn.Module] = None,
                 pair_features: Optional[SampledPairFeatures] = None,
                 pair_history: Optional[PairHistory] = None, deliver_to: str = "self",
                 node_feat: Optional[Tensor] = None, edge_feat: Optional[Tensor] = None) -> None:
        super().__init__()
        if not isinstance(embedding, torch.nn.Module):
            raise TypeError("TemporalGNN is composed from modules (embedding, edge_predictor, "
                            "memory, ...); build one from a configuration with "
                            "pyg_tgl.models.build_model(model_cfg, num_nodes, ...)")
        if deliver_to not in DELIVER_TO:
            raise ValueError(f"TemporalGNN: deliver_to must be one of {DELIVER_TO}, got "
                             f"{deliver_to!r}")
        if deliver_to == "neighbors" and memory is None:
            raise ValueError("TemporalGNN: deliver_to 'neighbors' needs a memory")
        if embedding.num_snapshots > 1 and combiner is None:
            raise ValueError(f"TemporalGNN: the embedding has {embedding.num_snapshots} "
                             f"snapshots, so a combiner is needed (e.g. SnapshotRNN)")
        self.memory = memory
        dim_feat = 0 if node_feat is None else int(node_feat.size(1))
        self.node_input = node_input if node_input is not None else NodeInput(
            dim_feat, memory.memory_dim if memory is not None else 0)
        self.embedding = embedding
        self.combiner = combiner
        self.pair_features = pair_features
        self.pair_history = pair_history
        self.edge_predictor = edge_predictor
        self.deliver_to = deliver_to
        self._check_parts(node_feat, edge_feat)
        self.register_buffer("node_feat", node_feat, persistent=False)
        self.register_buffer("edge_feat", edge_feat, persistent=False)
        #: The batch preparation this model needs (a :class:`~pyg_tgl.data.BatchTransform`).
        self.batch_transform = IndexPlan(self)
        self.register_load_state_dict_pre_hook(_rename_old_keys)

    def _check_parts(self, node_feat: Optional[Tensor], edge_feat: Optional[Tensor]) -> None:
        dim_edge = 0 if edge_feat is None else int(edge_feat.size(1))
        dim_feat = 0 if node_feat is None else int(node_feat.size(1))
        width = sum(p.width for p in (self.pair_features, self.pair_history) if p is not None)
        checks = [
            ("node_input.dim_node_feat", self.node_input.dim_node_feat, "node_feat", dim_feat),
            ("embedding.dim_in", getattr(self.embedding, "dim_in", None),
             "node_input.dim_out", self.node_input.dim_out),
            ("edge_predictor.dim_in", self.edge_predictor.dim_in, "embedding.dim_out",
             self.embedding.dim_out),
            ("edge_predictor.dim_pair", self.edge_predictor.dim_pair,
             "the pair features' width", width),
            ("embedding.dim_edge", getattr(self.embedding, "dim_edge", None), "edge_feat",
             dim_edge)]
        if self.memory is not None:
            checks.append(("memory.raw_msg_dim", self.memory.raw_msg_dim, "edge_feat",
                           dim_edge))
            checks.append(("node_input.dim_memory", self.node_input.dim_memory,
                           "memory.memory_dim", self.memory.memory_dim))
        for name, have, other, want in checks:
            if have is not None and have != want:
                raise ValueError(f"TemporalGNN: {name} is {have} but {other} is {want}")

    @property
    def history(self) -> int:
        """Snapshots per batch (``sampling.history``)."""
        return int(self.embedding.num_snapshots)

    @property
    def dim_out(self) -> int:
        """Embedding dimension."""
        return int(self.embedding.dim_out)

    # -- state -----------------------------------------------------------------------------------

    def reset_parameters(self) -> None:
        """Re-initialises every learnable parameter and resets the state."""
        for part in (self.memory, self.node_input, self.embedding, self.combiner,
                     self.pair_features, self.pair_history, self.edge_predictor):
            if part is not None and hasattr(part, "reset_parameters"):
                part.reset_parameters()
        self.reset_state()

    def reset_state(self) -> None:
        """Empties memory, mailboxes and the pair history (start of an epoch)."""
        if self.memory is not None:
            self.memory.reset_state()
        if self.pair_history is not None:
            self.pair_history.reset_state()

    def detach(self) -> None:
        """Cuts the memory state from autograd (kept for PyG's loop structure)."""
        if self.memory is not None:
            self.memory.detach()

    @torch.no_grad()
    def apply_update(self, update: StateUpdate) -> None:
        """Applies a :class:`~pyg_tgl.nn.state.StateUpdate` of :meth:`step` (this rank's, or
        all ranks' concatenated): memory writes, then mails, then the pair history."""
        if update.memory is not None and self.memory is not None:
            self.memory.apply_writes(update.memory)
        if update.events is not None and self.pair_history is not None:
            self.pair_history.update(*update.events)

    # -- forward ---------------------------------------------------------------------------------

    def index_plan(self, batch: Any) -> List[Dict[str, Any]]:
        """The index work of :meth:`forward` on ``batch`` (one dict per snapshot): the
        embedding's (:meth:`AttentionEmbedding.plan`) and, under ``"memory"``, the memory's
        query plan at the embedding's input points.

        It depends on the batch's ids and times alone. Computed on the host while the batch is
        still there (:attr:`batch_transform`, applied by the loader), it spares an accelerator
        the host synchronisations that ``torch.unique`` and boolean selections cost there;
        :meth:`forward` reads it from ``batch.plan``, and computes it itself when the batch has
        none (the results are the same).
        """
        self.embedding.check_blocks(batch.blocks, batch.root_nodes.numel())
        plans = self.embedding.plan(batch.root_nodes, batch.root_ts, batch.blocks)
        points = self.embedding.input_points(batch.root_nodes, batch.root_ts, batch.blocks,
                                             plans)
        for plan, (nodes, ts) in zip(plans, points):
            plan["memory"] = (self.memory.query_plan(nodes, ts) if self.memory is not None
                              else None)
        return plans

    def _like(self) -> Tensor:
        return self.edge_predictor.out_fc.weight

    def _inputs(self, nodes: Tensor, ts: Tensor, query: Optional[MemoryQuery]
                ) -> Tuple[Optional[Tensor], Optional[MemoryState]]:
        state = None
        if self.memory is not None:
            state = self.memory.compute(nodes, ts, plan=query)
        feat = None
        if self.node_feat is not None and self.node_input.reads_node_feat:
            feat = gather_rows(self.node_feat, nodes, self._like())
        return self.node_input(None if state is None else state.memory, feat), state

    def _embed(self, batch: Any):
        """Root embeddings with what :meth:`step` needs for the writes: ``(h, points, states,
        plans)``, the embedding's input points and memory states per snapshot."""
        plans = getattr(batch, "plan", None)
        if plans is None:
            plans = self.index_plan(batch)  # checks the batch's blocks first
        else:
            self.embedding.check_blocks(batch.blocks, batch.root_nodes.numel())
            if len(plans) != max(len(batch.blocks), 1):
                raise ValueError(f"TemporalGNN: batch.plan has {len(plans)} snapshots, the "
                                 f"batch {len(batch.blocks)}; compute it with this model's "
                                 f"index_plan")
        points = self.embedding.input_points(batch.root_nodes, batch.root_ts, batch.blocks,
                                             plans)
        inputs, states = [], []
        for (nodes, ts), plan in zip(points, plans):
            x, state = self._inputs(nodes, ts, plan["memory"])
            inputs.append(x)
            states.append(state)
        outs = self.embedding(inputs, states, batch.blocks, plans, self.edge_feat)
        h = outs[0] if self.combiner is None else self.combiner(torch.stack(outs, dim=0))
        return h, points, states, plans

    def forward(self, batch: Any) -> Tensor:
        """Embeddings ``[num_roots, dim_out]`` of ``batch.root_nodes`` at ``batch.root_ts``."""
        return self._embed(batch)[0]

    def pair_input(self, batch: Any, device: torch.device) -> Optional[Tensor]:
        """The predictor's pair term input, ``[(1 + num_neg) * B, dim_pair]`` (``None``
        without one)."""
        parts = []
        if self.pair_features is not None:
            parts.append(self.pair_features(batch).to(device))
        if self.pair_history is not None:
            b = batch.num_events
            cand = batch.root_nodes[b:]
            reps = cand.numel() // b if b else 0
            parts.append(self.pair_history.features(
                batch.src.repeat(reps), cand, batch.t.repeat(reps)).to(device))
        return torch.cat(parts, dim=1) if parts else None

    def _logits(self, batch: Any, h: Tensor) -> Tuple[Tensor, Tensor]:
        b = batch.num_events
        pair = self.pair_input(batch, h.device)
        pos = self.edge_predictor(h[:b], h[b:2 * b], None if pair is None else pair[:b])
        neg = (self.edge_predictor(h[:b], h[2 * b:], None if pair is None else pair[b:])
               if h.size(0) > 2 * b else h.new_empty(0))
        return pos, neg

    def score(self, batch: Any) -> Tuple[Tensor, Tensor]:
        """Link logits ``(pos [B], neg [num_neg * B])`` of the batch's events and negatives;
        changes no state."""
        return self._logits(batch, self.forward(batch))

    def step(self, batch: Any) -> Tuple[Tensor, Tensor, StateUpdate]:
        """:meth:`score` and the batch's :class:`~pyg_tgl.nn.state.StateUpdate` (not applied;
        its tensors are detached). A batch without events gives empty logits and an empty
        update (a data-parallel rank's empty slice)."""
        b = batch.num_events
        if b == 0:
            empty = self._like().new_empty(0)
            return empty, empty, self._update(batch, None)
        h, points, states, plans = self._embed(batch)
        pos, neg = self._logits(batch, h)
        endpoints = None
        if self.memory is not None:
            with torch.no_grad():
                state = states[-1]
                rows = self.embedding.positive_rows(batch.blocks, plans, 2 * b)
                if rows is None:
                    rows = torch.arange(2 * b, device=state.memory.device)
                rows = rows.to(state.memory.device)
                nodes = points[-1][0]
                endpoints = (nodes.index_select(0, rows.to(nodes.device)),
                             state.memory.index_select(0, rows).detach(),
                             state.ts.index_select(0, rows).detach())
        return pos, neg, self._update(batch, endpoints)

    def _update(self, batch: Any, endpoints: Optional[Tuple[Tensor, Tensor, Tensor]]
                ) -> StateUpdate:
        events = (PairEvents(batch.src, batch.dst, batch.t) if self.pair_history is not None
                  else None)
        if self.memory is None:
            return StateUpdate(None, events)
        if endpoints is None:
            return StateUpdate(empty_writes(self.memory), events)
        nodes, values, ts = endpoints
        # The writes as the trainer computed them after the optimizer step, outside autocast:
        # same values, same dtypes (only copies, concatenations and casts; no parameter).
        with torch.autocast(values.device.type, enabled=False):
            edge_attr = (gather_rows(self.edge_feat, batch.eid, self._like())
                         if self.edge_feat is not None else None)
            hop = batch.blocks[-1][0] if batch.blocks else None
            writes = memory_writes(self.memory, batch.src, batch.dst, batch.t, nodes, values,
                                   ts, edge_attr, self.deliver_to, hop)
        return StateUpdate(writes, events)

    def extra_repr(self) -> str:
        return f"history={self.history}, dim_out={self.dim_out}, deliver_to={self.deliver_to!r}"


def _rename_old_keys(module: torch.nn.Module, state_dict: Dict[str, Any], prefix: str,
                     *args: Any) -> None:
    """Parameters of checkpoints written before the model was composed from parts
    (``layers.*``, ``time_proj.*``, ``node_feat_map.*``) load under their new names."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        for old, new in _OLD_PREFIXES:
            if rest.startswith(old):
                state_dict[prefix + new + rest[len(old):]] = state_dict.pop(key)
                break
