"""TGL's five models (JODIE, DySAT, TGAT, TGN, APAN) composed from one configuration."""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import Tensor

from pyg_tgl.nn.attention import (SCORES, IdentityLayer, JODIETimeProjection, SnapshotRNN,
                                  TemporalAttention)
from pyg_tgl.nn.memory import MemoryQuery, MemoryState, MemoryWrites, NodeMemory, unique_pairs
from pyg_tgl.nn.pair_history import PairHistory
from pyg_tgl.nn.predictors import (PAIR_FEATURES, PAIR_RECENCY_FEATURES, EdgePredictor,
                                   pair_features)

ARCHS = ("transformer_attention", "identity")
DELIVER_TO = ("self", "neighbors")


def _section(cfg: Mapping, name: str) -> Dict[str, Any]:
    """One section of a model configuration as a plain dict; TGL's own YAML wraps each section
    in a one-element list, which is accepted too."""
    sec = cfg.get(name) if hasattr(cfg, "get") else None
    if sec is None:
        return {}
    if not hasattr(sec, "keys") and hasattr(sec, "__len__"):
        if len(sec) != 1:
            raise ValueError(f"model config: section {name!r} must be a mapping (or TGL's list "
                             f"of one mapping), got a list of {len(sec)}")
        sec = sec[0]
    if not hasattr(sec, "keys"):
        raise ValueError(f"model config: section {name!r} must be a mapping, got "
                         f"{type(sec).__name__}")
    return {str(k): sec[k] for k in sec.keys()}


def _require(sec: Dict[str, Any], key: str, where: str):
    if key not in sec or sec[key] is None:
        raise ValueError(f"model config: missing {where}.{key}")
    return sec[key]


STORAGE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                  "float16": torch.float16}


def _storage_dtype(name: Optional[str]) -> Optional[torch.dtype]:
    if name is None:  # torch's default dtype (float64 under hardware.precision=float64)
        return None
    if str(name) not in STORAGE_DTYPES:
        raise ValueError(f"model config: memory.storage_dtype must be one of "
                         f"{list(STORAGE_DTYPES)}, got {name!r}")
    return STORAGE_DTYPES[str(name)]


def _distinct_roots(hop) -> Optional[Tuple[Tensor, Tensor, Tensor, Tensor]]:
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


class TemporalGNN(torch.nn.Module):
    r"""A temporal GNN composed from a TGL configuration: node memory -> message passing ->
    link predictor (Zhou et al., `"TGL: A General Framework for Temporal GNN Training on
    Billion-Scale Graphs" <https://arxiv.org/abs/2203.14883>`_, VLDB 2022). The same class runs
    JODIE, DySAT, TGAT, TGN and APAN; ``conf/model/*.yaml`` hold their configurations.

    ``model_cfg`` has TGL's sections and key names:

    * ``sampling``: ``layer``, ``neighbor``, ``history`` (snapshots), ``no_sample``, ...
      (read by the loader; here only checked against the GNN).
    * ``memory``: ``type`` (``node`` | ``none``), ``dim_out``, ``dim_time``, ``memory_update``
      (``gru`` | ``rnn`` | ``transformer``), ``mailbox_size``, ``mail_combine``
      (``last`` | ``mean``), ``deliver_to`` (``self`` | ``neighbors``), ``attention_head``,
      ``combine_node_feature``.
    * ``gnn``: ``arch`` (``transformer_attention`` | ``identity``), ``layer``, ``att_head``,
      ``dim_time``, ``dim_out``, ``combine`` (``rnn`` over snapshots), ``time_proj`` (JODIE's
      projection; TGL's ``time_transform: JODIE`` is accepted), and optionally ``dense``
      (default ``true``: fixed fan-out attention), ``att_score`` (``leaky_relu`` |
      ``scaled_dot``) and ``pair_features`` (default ``false``, not in TGL: the link predictor
      also sees whether each endpoint is among the other's sampled recent neighbours, see
      :func:`~pyg_tgl.nn.predictors.pair_features` and ``docs/accuracy.md``) with
      ``pair_recency`` (default ``false``: also the time since the pair's last sampled edge),
      and ``pair_history`` (default ``false``: the counts of the pair's earlier events over the
      whole stream, :class:`~pyg_tgl.nn.pair_history.PairHistory`, state reset with the
      memory; ``pair_history_recency`` adds the time since the latest, ``pair_history_nodes``
      each endpoint's event count and the time since its latest event).

    Semantics (TGL): a batch first updates the memory of every node it touches from the mails
    already in the mailboxes (previous batches), embeds and scores, and only after the optimizer
    step (:meth:`update_memory`) writes the memory of its positive endpoints and delivers their
    mails :math:`[s_u \| s_v \| e]`, built from the updated memories. Negatives and sampled
    neighbours never write memory, so an event never informs its own prediction.

    Hops of a deduplicating sampler (``TemporalSampler(dedup=True)``, whose hops carry an
    ``inverse`` map) give the same embeddings with fewer rows in the lower layers.

    Where TGL's code has no defined behaviour this class chooses:

    * ``combine_node_feature: false`` means the memory alone is the node input (TGL then uses
      node features only for GRU/RNN updaters and crashes without them).
    * If the first attention layer would have no input at all (no memory, node or edge
      features and ``gnn.dim_time: 0``, e.g. DySAT on a featureless data set), the layers encode
      time with ``gnn.dim_out`` channels instead (a warning says so).
    * A root without sampled neighbours aggregates zeros also when the whole batch has none
      (TGL then returns zeros for the whole layer).

    Args:
        model_cfg: the ``model`` node of the configuration (dict or OmegaConf ``DictConfig``).
        num_nodes: number of nodes (size of the memory).
        dim_node_feat: node feature dimension (0 for none; inferred from ``node_feat``).
        dim_edge_feat: edge feature dimension (0 for none; inferred from ``edge_feat``).
        dropout: dropout of attention layers and the APAN updater.
        att_dropout: dropout on attention weights.
        node_feat: ``[num_nodes, dim_node_feat]`` node features (a non-persistent buffer).
        edge_feat: ``[num_events, dim_edge_feat]`` edge features, indexed by event id (a
            non-persistent buffer; float16 is fine).
    """

    def __init__(self, model_cfg: Mapping, num_nodes: int, dim_node_feat: int = 0,
                 dim_edge_feat: int = 0, dropout: float = 0.2, att_dropout: float = 0.2,
                 node_feat: Optional[Tensor] = None, edge_feat: Optional[Tensor] = None) -> None:
        super().__init__()
        if num_nodes <= 0:
            raise ValueError(f"TemporalGNN: num_nodes must be positive, got {num_nodes}")
        self.num_nodes = int(num_nodes)
        dim_node_feat = self._check_feat("node_feat", node_feat, dim_node_feat, num_nodes)
        dim_edge_feat = self._check_feat("edge_feat", edge_feat, dim_edge_feat, None)
        self.dim_node_feat, self.dim_edge_feat = dim_node_feat, dim_edge_feat
        self.register_buffer("node_feat", node_feat, persistent=False)
        self.register_buffer("edge_feat", edge_feat, persistent=False)

        sampling = _section(model_cfg, "sampling")
        mem_cfg = _section(model_cfg, "memory")
        gnn = _section(model_cfg, "gnn")
        if not gnn:
            raise ValueError("model config: missing section 'gnn'")
        self.history = int(sampling.get("history", 1) or 1)

        # -- memory -------------------------------------------------------------------------------
        self.memory: Optional[NodeMemory] = None
        mem_type = str(mem_cfg.get("type", "none"))
        if mem_type not in ("node", "none"):
            raise ValueError(f"model config: memory.type must be 'node' or 'none', got "
                             f"{mem_type!r}")
        self.deliver_to = "self"
        self.combine_node_feature = True
        self.node_feat_map: Optional[torch.nn.Linear] = None
        dim_input = dim_node_feat
        if mem_type == "node":
            mem_dim = int(_require(mem_cfg, "dim_out", "memory"))
            self.deliver_to = str(mem_cfg.get("deliver_to", "self"))
            if self.deliver_to not in DELIVER_TO:
                raise ValueError(f"model config: memory.deliver_to must be one of {DELIVER_TO}, "
                                 f"got {self.deliver_to!r}")
            self.combine_node_feature = bool(mem_cfg.get("combine_node_feature", True))
            self.memory = NodeMemory(
                num_nodes, dim_edge_feat, mem_dim, int(mem_cfg.get("dim_time", 100)),
                updater=str(_require(mem_cfg, "memory_update", "memory")),
                mailbox_size=int(mem_cfg.get("mailbox_size", 1)),
                mail_combine=str(mem_cfg.get("mail_combine", "last")),
                num_heads=int(mem_cfg.get("attention_head", 2)),
                dropout=dropout, att_dropout=att_dropout,
                dtype=_storage_dtype(mem_cfg.get("storage_dtype", None)))
            if self.combine_node_feature and dim_node_feat and dim_node_feat != mem_dim:
                self.node_feat_map = torch.nn.Linear(dim_node_feat, mem_dim)
            dim_input = mem_dim
        elif str(mem_cfg.get("deliver_to", "self")) == "neighbors":
            raise ValueError("model config: memory.deliver_to 'neighbors' needs memory.type node")

        # -- message passing ----------------------------------------------------------------------
        self.arch = str(_require(gnn, "arch", "gnn"))
        if self.arch not in ARCHS:
            raise ValueError(f"model config: gnn.arch must be one of {ARCHS}, got {self.arch!r}")
        self.dense = bool(gnn.get("dense", True))
        # Bottom-layer inputs computed once per distinct (node, time) and projections once per
        # distinct (neighbour, edge): same embeddings, fewer rows (docs/performance.md).
        self.unique_inputs = self.dense and bool(gnn.get("unique_inputs", True))
        # Roots with the same (node, time) have the same most recent neighbours, so the top
        # layer embeds each distinct root once (exact; a uniform sampler draws each root's
        # neighbours independently, so there every root keeps its own draw).
        self.unique_roots = (self.unique_inputs
                             and str(sampling.get("strategy", "recent")) == "recent")
        self.time_proj: Optional[torch.nn.ModuleList] = None
        if self.arch == "identity":
            if dim_input == 0:
                raise ValueError("model config: gnn.arch 'identity' needs a memory or node "
                                 "features to embed")
            self.num_layers = 1
            self.dim_out = dim_input
            if gnn.get("dim_out") is not None and int(gnn["dim_out"]) != dim_input:
                raise ValueError(f"model config: gnn.dim_out ({gnn['dim_out']}) must equal the "
                                 f"input dimension ({dim_input}) for gnn.arch 'identity'")
            self.layers = torch.nn.ModuleList([torch.nn.ModuleList(
                [IdentityLayer(dim_input) for _ in range(self.history)])])
            if gnn.get("time_proj") or str(gnn.get("time_transform", "")).upper() == "JODIE":
                if self.memory is None:
                    raise ValueError("model config: gnn.time_proj (JODIE) needs memory.type node")
                self.time_proj = torch.nn.ModuleList(
                    [JODIETimeProjection(dim_input) for _ in range(self.history)])
        else:
            self.num_layers = int(_require(gnn, "layer", "gnn"))
            if self.num_layers <= 0:
                raise ValueError(f"model config: gnn.layer must be positive, got "
                                 f"{self.num_layers}")
            if sampling.get("no_sample"):
                raise ValueError("model config: gnn.arch 'transformer_attention' needs sampled "
                                 "neighbours, but sampling.no_sample is set")
            hops = sampling.get("layer")
            neighbor = list(sampling.get("neighbor") or [])
            if hops is not None and int(hops) != self.num_layers:
                raise ValueError(f"model config: sampling.layer ({hops}) must equal gnn.layer "
                                 f"({self.num_layers})")
            if neighbor and len(neighbor) != self.num_layers:
                raise ValueError(f"model config: sampling.neighbor {neighbor} must list one "
                                 f"fan-out per GNN layer ({self.num_layers})")
            self.dim_out = int(gnn.get("dim_out") or (self.memory.memory_dim
                                                      if self.memory is not None else 0))
            if self.dim_out <= 0:
                raise ValueError("model config: missing gnn.dim_out")
            dim_time = int(gnn.get("dim_time", 0) or 0)
            if dim_input == 0 and dim_edge_feat == 0 and dim_time == 0:
                warnings.warn(
                    "TemporalGNN: no memory, node or edge features and gnn.dim_time 0 leave the "
                    f"first attention layer without input; encoding time with {self.dim_out} "
                    "channels instead", stacklevel=2)
                dim_time = self.dim_out
            score = str(gnn.get("att_score", "leaky_relu"))
            if score not in SCORES:
                raise ValueError(f"model config: gnn.att_score must be one of {SCORES}, got "
                                 f"{score!r}")
            heads = int(gnn.get("att_head", 2))
            self.layers = torch.nn.ModuleList([
                torch.nn.ModuleList([
                    TemporalAttention(dim_input if layer == 0 else self.dim_out, dim_edge_feat,
                                      dim_time, self.dim_out, heads, dropout, att_dropout, score)
                    for _ in range(self.history)])
                for layer in range(self.num_layers)])

        self.combiner: Optional[SnapshotRNN] = None
        if self.history > 1:
            if str(gnn.get("combine", "")) != "rnn":
                raise ValueError(f"model config: sampling.history is {self.history}, so "
                                 f"gnn.combine must be 'rnn' (got {gnn.get('combine')!r})")
            self.combiner = SnapshotRNN(self.dim_out)
        # Optional pair term of the predictor (pyg_tgl's addition, docs/accuracy.md): whether
        # each endpoint is among the other's sampled recent neighbours.
        self.pair_features = bool(gnn.get("pair_features", False))
        self.pair_recency = self.pair_features and bool(gnn.get("pair_recency", False))
        # ... and how often the pair interacted over the whole stream so far (state, like memory).
        self.pair_history: Optional[PairHistory] = (
            PairHistory(num_nodes, recency=bool(gnn.get("pair_history_recency", False)),
                        nodes=bool(gnn.get("pair_history_nodes", False)))
            if gnn.get("pair_history", False) else None)
        dim_pair = ((PAIR_FEATURES + PAIR_RECENCY_FEATURES * self.pair_recency)
                    if self.pair_features else 0)
        dim_pair += self.pair_history.width if self.pair_history is not None else 0
        self.edge_predictor = EdgePredictor(self.dim_out, dim_pair)
        self._cache: Optional[Tuple[Tensor, Tensor, Tensor]] = None
        #: ``(src, dst, t)`` of the batch passed to :meth:`memory_writes`, added to the pair
        #: history by :meth:`apply_memory_writes`; data-parallel training replaces it with all
        #: ranks' events (``LinkTrainer``), as it does the memory writes.
        self.pending_events: Optional[Tuple[Tensor, Tensor, Tensor]] = None

    @staticmethod
    def _check_feat(name: str, feat: Optional[Tensor], dim: int, rows: Optional[int]) -> int:
        if feat is None:
            if dim:
                raise ValueError(f"TemporalGNN: dim_{name} is {dim} but no {name} was given")
            return 0
        if feat.dim() != 2 or (rows is not None and feat.size(0) != rows):
            want = f"[{rows}, d]" if rows is not None else "[num_events, d]"
            raise ValueError(f"TemporalGNN: {name} must be {want}, got {tuple(feat.shape)}")
        if dim and dim != feat.size(1):
            raise ValueError(f"TemporalGNN: dim_{name} is {dim} but {name} has {feat.size(1)} "
                             f"columns")
        return int(feat.size(1))

    # -- state -----------------------------------------------------------------------------------

    def reset_parameters(self) -> None:
        """Re-initialises every learnable parameter and resets the memory state."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.reset_state()

    def reset_state(self) -> None:
        """Empties memory, mailboxes and the pair history (start of an epoch)."""
        if self.memory is not None:
            self.memory.reset_state()
        if self.pair_history is not None:
            self.pair_history.reset_state()
        self._cache = None
        self.pending_events = None

    def detach(self) -> None:
        """Cuts the memory state from autograd (kept for PyG's loop structure)."""
        if self.memory is not None:
            self.memory.detach()

    # -- forward ---------------------------------------------------------------------------------

    def _gather_feat(self, feat: Tensor, index: Tensor) -> Tensor:
        out = feat.index_select(0, index.to(feat.device))
        weight = self.edge_predictor.out_fc.weight
        return out.to(device=weight.device, dtype=weight.dtype)

    def _inputs(self, nodes: Tensor, ts: Tensor, query: Optional[MemoryQuery] = None
                ) -> Tuple[Optional[Tensor], Optional[MemoryState]]:
        """Node inputs ``[n, dim_input]``: updated memory (plus node features) or features."""
        state = None
        h = None
        if self.memory is not None:
            state = self.memory.compute(nodes, ts, plan=query)
            h = state.memory
            if self.combine_node_feature and self.node_feat is not None:
                nf = self._gather_feat(self.node_feat, nodes)
                h = h + (self.node_feat_map(nf) if self.node_feat_map is not None else nf)
        elif self.node_feat is not None:
            h = self._gather_feat(self.node_feat, nodes)
        return h, state

    def _edge_attr(self, eid: Tensor) -> Optional[Tensor]:
        return self._gather_feat(self.edge_feat, eid) if self.edge_feat is not None else None

    def _layer(self, s: int, layer: int, h: Optional[Tensor], hop, node_of: Optional[Tensor],
               roots: Optional[Tuple[Tensor, Tensor, Tensor, Tensor]],
               edges: Optional[Tuple[Tensor, Tensor]] = None,
               pairs: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
        """Attention layer ``layer`` of snapshot ``s`` over ``hop``; ``node_of`` maps the hop's
        nodes to the distinct rows of ``h`` (bottom layer with ``unique_inputs``), ``roots`` (from
        :func:`_distinct_roots`) restricts it to one root per distinct ``(node, time)``, and
        ``edges`` (with ``node_of``) are the distinct event ids of its (kept) edges and each
        edge's row among them, ``pairs`` its distinct neighbour keys (see
        :meth:`TemporalAttention.forward_dense_unique`)."""
        module = self.layers[layer][s]
        if roots is None and node_of is None:
            return module.forward_hop(h, hop, self._edge_attr(hop.eid), dense=self.dense)
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
        dev = h.device if h is not None else self.edge_predictor.out_fc.weight.device
        if node_of is None:
            return module.forward_dense(h, dense_index.to(dev), dt.to(dev), self._edge_attr(eid))
        edge_attr = edge_of = None
        if edges is not None:
            eid, edge_of = edges
            edge_attr = self._edge_attr(eid)
            edge_of = edge_of.to(edge_attr.device)
        if pairs is not None:
            pairs = (pairs[0].to(dev), pairs[1].to(dev))
        return module.forward_dense_unique(h, node_of.to(dev), dense_index.to(dev), dt.to(dev),
                                           edge_attr, edge_of, pairs)

    def index_plan(self, batch) -> List[Dict[str, Any]]:
        """The index work of :meth:`forward` on ``batch``: which distinct ``(node, time)`` pairs
        to embed and to query the memory at, which roots to keep, which edges' features to
        project (one dict per snapshot).

        It depends on the batch's ids and times alone. Computed on the host while the batch is
        still there (a loader's ``transform``, see :class:`~pyg_tgl.train.loop.LinkTrainer`), it
        spares an accelerator the host synchronisations that ``torch.unique`` and boolean
        selections cost there; :meth:`forward` then reads it from ``batch.plan``, and computes
        it itself when the batch has none (the results are the same).
        """
        self._check_blocks(batch)
        if self.arch == "identity":
            query = (self.memory.query_plan(batch.root_nodes, batch.root_ts)
                     if self.memory is not None else None)
            return [{"memory": query}]
        plans = []
        for s, hops in enumerate(batch.blocks):
            bottom = hops[self.num_layers - 1]
            nodes, ts = bottom.nodes, bottom.ts
            plan: Dict[str, Any] = {"pairs": None, "memory": None, "roots": None, "edges": None,
                                    "neighbor_pairs": None}
            if self.unique_inputs:
                nodes, ts, node_of = unique_pairs(nodes, ts)
                plan["pairs"] = (nodes, ts, node_of)
            if self.memory is not None:
                plan["memory"] = self.memory.query_plan(nodes, ts)
            if self.unique_roots:
                plan["roots"] = _distinct_roots(hops[0])
            if self.unique_inputs and self.edge_feat is not None:
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

    def _check_blocks(self, batch) -> None:
        if self.arch == "identity":
            return
        if len(batch.blocks) != self.history:
            raise ValueError(f"TemporalGNN: the batch has {len(batch.blocks)} snapshots, the "
                             f"model expects sampling.history = {self.history}")
        for s, hops in enumerate(batch.blocks):
            if len(hops) < self.num_layers:
                raise ValueError(f"TemporalGNN: snapshot {s} has {len(hops)} hops, the model "
                                 f"has {self.num_layers} layers")
            if hops[0].num_roots != batch.root_nodes.numel():
                raise ValueError(f"TemporalGNN: hop 0 has {hops[0].num_roots} roots but the "
                                 f"batch has {batch.root_nodes.numel()} root nodes")

    def forward(self, batch) -> Tensor:
        """Embeddings ``[num_roots, dim_out]`` of ``batch.root_nodes`` at ``batch.root_ts``."""
        plans = getattr(batch, "plan", None)
        if plans is None:
            plans = self.index_plan(batch)  # checks the batch's blocks first
        else:
            self._check_blocks(batch)
            if len(plans) != max(len(batch.blocks), 1):
                raise ValueError(f"TemporalGNN: batch.plan has {len(plans)} snapshots, the "
                                 f"batch {len(batch.blocks)}; compute it with this model's "
                                 f"index_plan")
        num_pos = 2 * batch.num_events
        state: Optional[MemoryState] = None
        nodes = batch.root_nodes
        pos_index: Optional[Tensor] = None
        outs: List[Tensor] = []
        if self.arch == "identity":
            x, state = self._inputs(batch.root_nodes, batch.root_ts, plans[0]["memory"])
            for s in range(self.history):
                h = self.layers[0][s](x)
                if self.time_proj is not None:
                    h = self.time_proj[s](h, state.memory_ts, state.ts)
                outs.append(h)
        else:
            for s, hops in enumerate(batch.blocks):
                bottom, plan = hops[self.num_layers - 1], plans[s]
                node_of: Optional[Tensor] = None
                if plan["pairs"] is not None:
                    nodes, ts, node_of = plan["pairs"]
                else:
                    nodes, ts = bottom.nodes, bottom.ts
                h, state = self._inputs(nodes, ts, plan["memory"])
                # Position of the positive endpoints among the bottom hop's nodes: the first 2B
                # (every hop lists its roots first) unless a deduplicating sampler renumbered them.
                pos_index = None
                for hop in hops[:self.num_layers - 1]:
                    inverse = getattr(hop, "inverse", None)
                    if inverse is not None:
                        base = (torch.arange(num_pos, device=inverse.device) if pos_index is None
                                else pos_index)
                        pos_index = inverse.index_select(0, base)
                if node_of is not None:
                    base = (torch.arange(num_pos, device=node_of.device) if pos_index is None
                            else pos_index.to(node_of.device))
                    pos_index = node_of.index_select(0, base)
                for layer in range(self.num_layers):
                    hop = hops[self.num_layers - 1 - layer]
                    inverse = getattr(hop, "inverse", None)
                    if layer > 0 and inverse is not None:
                        # The layer below embedded unique (node, time) pairs; expand to the hop.
                        h = h.index_select(0, inverse.to(h.device))
                    roots = plan["roots"] if layer == self.num_layers - 1 else None
                    bottom_layer = layer == 0
                    h = self._layer(s, layer, h, hop, node_of if bottom_layer else None, roots,
                                    plan["edges"] if bottom_layer else None,
                                    plan["neighbor_pairs"] if bottom_layer else None)
                    if roots is not None:
                        h = h.index_select(0, roots[1].to(h.device))
                outs.append(h)
        out = outs[0] if self.combiner is None else self.combiner(torch.stack(outs, dim=0))
        if state is not None:
            if pos_index is None:
                pos_index = torch.arange(num_pos, device=state.memory.device)
            pos_index = pos_index.to(state.memory.device)
            self._cache = (nodes.index_select(0, pos_index.to(nodes.device)),
                           state.memory.index_select(0, pos_index).detach(),
                           state.ts.index_select(0, pos_index).detach())
        return out

    def score(self, batch) -> Tuple[Tensor, Tensor]:
        """Link logits ``(pos [B], neg [num_neg * B])`` of the batch's events and negatives."""
        h = self.forward(batch)
        b = batch.num_events
        pair = self._pair_input(batch, h.device)
        pos = self.edge_predictor(h[:b], h[b:2 * b], None if pair is None else pair[:b])
        neg = (self.edge_predictor(h[:b], h[2 * b:], None if pair is None else pair[b:])
               if h.size(0) > 2 * b else h.new_empty(0))
        return pos, neg

    def _pair_input(self, batch, device: torch.device) -> Optional[Tensor]:
        """The predictor's pair term input, ``[(1 + num_neg) * B, dim_pair]`` (``None``
        without one)."""
        parts = []
        if self.pair_features:
            parts.append(pair_features(batch, self.pair_recency).to(device))
        if self.pair_history is not None:
            b = batch.num_events
            cand = batch.root_nodes[b:]
            reps = cand.numel() // b if b else 0
            parts.append(self.pair_history.features(
                batch.src.repeat(reps), cand, batch.t.repeat(reps)).to(device))
        return torch.cat(parts, dim=1) if parts else None

    @torch.no_grad()
    def memory_writes(self, batch) -> Optional[MemoryWrites]:
        """The memory writes and mails of the batch's events, from the values of the last
        :meth:`forward` on this batch, without applying them (``None`` for memory-less models).

        Entries are in event order (an event's source, its destination, then the neighbours
        that receive its mails), so the writes of consecutive batches, concatenated, equal the
        writes of their union: what data-parallel training relies on.
        """
        if self.pair_history is not None:
            # Applied with the memory writes, after the batch was scored.
            self.pending_events = (batch.src, batch.dst, batch.t)
        if self.memory is None:
            return None
        b = batch.num_events
        if b == 0:
            self._cache = None
            empty = torch.empty(0, dtype=torch.long)
            return self._canonical(MemoryWrites(
                empty, torch.empty(0, self.memory.memory_dim), torch.empty(0), empty,
                torch.empty(0, self.memory.dim_mail), torch.empty(0)))
        if self._cache is None:
            raise RuntimeError("TemporalGNN.update_memory: run forward()/score() on this batch "
                               "first (no cached memory)")
        nodes, memory, ts = self._cache
        if nodes.numel() != 2 * b:
            raise RuntimeError(f"TemporalGNN.update_memory: the cached forward had "
                               f"{nodes.numel() // 2} events, this batch has {b}")
        self._cache = None
        edge_attr = self._edge_attr(batch.eid)
        mem_src, mem_dst = memory[:b], memory[b:]
        t = batch.t.to(ts.device)
        if self.deliver_to == "self":
            mail_nodes, mails, mail_ts = self.memory.pair_mails(batch.src, batch.dst, t,
                                                                mem_src, mem_dst, edge_attr)
            return self._canonical(MemoryWrites(nodes, memory, ts, mail_nodes, mails, mail_ts))
        if not batch.blocks:
            raise ValueError("TemporalGNN.update_memory: memory.deliver_to 'neighbors' needs "
                             "sampled neighbours in the batch (sampling.neighbor)")
        hop = batch.blocks[-1][0]
        src_mail, dst_mail = self.memory.make_mails(mem_src, mem_dst, edge_attr)
        root_mail = torch.cat([src_mail, dst_mail])
        root_ts = torch.cat([t, t])
        nbr, root = hop.edge_index
        if hop.num_roots > 2 * b:  # neighbours of negative roots receive nothing
            keep = root < 2 * b
            nbr, root = nbr[keep], root[keep]
        targets = torch.cat([batch.src, batch.dst, hop.nodes.index_select(0, nbr)])
        mails = torch.cat([root_mail, root_mail.index_select(0, root.to(root_mail.device))])
        mail_ts = torch.cat([root_ts, root_ts.index_select(0, root.to(root_ts.device))])
        # Event-major order (source, destination, then the neighbours of both): on equal times
        # the later event's mail wins, however the batch is split.
        events = torch.arange(b, device=root.device)
        order = torch.sort(torch.cat([events, events, root % b]), stable=True).indices
        return self._canonical(MemoryWrites(
            nodes, memory, ts, targets.index_select(0, order),
            mails.index_select(0, order.to(mails.device)),
            mail_ts.index_select(0, order.to(mail_ts.device))))

    def _canonical(self, w: MemoryWrites) -> MemoryWrites:
        """Writes in the storage dtypes (int64 ids), the same on every rank and every batch
        whatever autocast produced, so ranks can exchange them as raw bytes."""
        value, ts = self.memory.memory.dtype, self.memory.memory_ts.dtype
        return MemoryWrites(w.nodes.long(), w.memory.to(value), w.ts.to(ts),
                            w.mail_nodes.long(), w.mails.to(value), w.mail_ts.to(ts))

    @torch.no_grad()
    def apply_memory_writes(self, writes: Optional[MemoryWrites]) -> None:
        """Applies :meth:`memory_writes` (a no-op for ``None``), and adds the batch's events to
        the pair history."""
        if writes is not None and self.memory is not None:
            self.memory.apply_writes(writes)
        if self.pending_events is not None:
            self.pair_history.update(*self.pending_events)
            self.pending_events = None

    @torch.no_grad()
    def update_memory(self, batch) -> None:
        """Writes the memory of the batch's positive endpoints and delivers their mails, from
        the values of the last :meth:`forward` on this batch (call it after the optimizer
        step). A no-op for memory-less models."""
        self.apply_memory_writes(self.memory_writes(batch))

    def extra_repr(self) -> str:
        return (f"arch={self.arch!r}, layers={self.num_layers}, history={self.history}, "
                f"dim_out={self.dim_out}, dense={self.dense}, deliver_to={self.deliver_to!r}")
