r"""Builds a :class:`~pyg_tgl.nn.TemporalGNN` from a model configuration (TGL's sections and key
names, ``conf/model/*.yaml``): TGL's five models are five compositions of the same parts.

``model_cfg`` may be a dict, an OmegaConf ``DictConfig`` (structured or not), a dataclass, or
TGL's own YAML (each section a one-element list):

* ``sampling``: ``layer``, ``neighbor``, ``history`` (snapshots), ``no_sample``, ``strategy``
  (read by the loader; here only checked against the GNN).
* ``memory``: ``type`` (``node`` | ``none``), ``dim_out``, ``dim_time``, ``memory_update``
  (``gru`` | ``rnn`` | ``transformer``), ``mailbox_size``, ``mail_combine``
  (``last`` | ``mean``), ``deliver_to`` (``self`` | ``neighbors``), ``attention_head``,
  ``combine_node_feature``, ``storage_dtype``.
* ``gnn``: ``arch`` (``transformer_attention`` | ``identity``), ``layer``, ``att_head``,
  ``dim_time``, ``dim_out``, ``combine`` (``rnn`` over snapshots), ``time_proj`` (JODIE's
  projection; TGL's ``time_transform: JODIE`` is accepted), ``dense``, ``unique_inputs``,
  ``att_score`` and pyg_tgl's pair options ``pair_features``, ``pair_recency``,
  ``pair_history``, ``pair_history_recency``, ``pair_history_nodes`` (``docs/accuracy.md``).

Where TGL's code has no defined behaviour the builder chooses:

* ``combine_node_feature: false`` means the memory alone is the node input.
* If the first attention layer would have no input at all (no memory, node or edge features and
  ``gnn.dim_time: 0``, e.g. DySAT on a featureless data set), the layers encode time with
  ``gnn.dim_out`` channels instead (a warning says so).

A model of one's own is a function with :func:`build_model`'s signature that composes parts
(``docs/models.md``), passed to :func:`~pyg_tgl.train.experiment.run_experiment` as
``model_factory``.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Dict, Optional

import torch
from torch import Tensor

from pyg_tgl.config.model import (ARCHS, MEMORY_TYPES, STORAGE_DTYPES, GnnConfig, MemoryConfig,
                                  SamplingConfig)
from pyg_tgl.nn.attention import SCORES, SnapshotRNN
from pyg_tgl.nn.embedding import AttentionEmbedding, IdentityEmbedding
from pyg_tgl.nn.memory import NodeMemory
from pyg_tgl.nn.model import TemporalGNN
from pyg_tgl.nn.node_input import NodeInput
from pyg_tgl.nn.pair_history import PairHistory
from pyg_tgl.nn.predictors import EdgePredictor, SampledPairFeatures
from pyg_tgl.nn.state import DELIVER_TO

#: The schema's classes of the model's sections: their defaults fill what a configuration leaves
#: out (one definition of each option, ``pyg_tgl/config/model.py``).
SECTIONS = {"sampling": SamplingConfig, "memory": MemoryConfig, "gnn": GnnConfig}

#: What a model factory is: :func:`build_model`'s signature.
ModelFactory = Callable[..., torch.nn.Module]


def _mapping(obj: Any) -> Optional[Dict[str, Any]]:
    """``obj`` as a plain dict when it is a mapping or a dataclass, else ``None``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "keys") and hasattr(obj, "__getitem__"):
        return {str(k): obj[k] for k in obj.keys()}
    return None


def section(cfg: Any, name: str) -> Dict[str, Any]:
    """One section of a model configuration as a plain dict, the schema's defaults filling what it
    leaves out (all of them when it is absent); TGL's own YAML wraps each section in a
    one-element list, which is accepted too."""
    top = _mapping(cfg)
    sec = top.get(name) if top is not None else getattr(cfg, name, None)
    defaults = dataclasses.asdict(SECTIONS[name]())
    if sec is None:
        return defaults
    if _mapping(sec) is None and hasattr(sec, "__len__") and not isinstance(sec, str):
        if len(sec) != 1:
            raise ValueError(f"model config: section {name!r} must be a mapping (or TGL's list "
                             f"of one mapping), got a list of {len(sec)}")
        sec = sec[0]
    out = _mapping(sec)
    if out is None:
        raise ValueError(f"model config: section {name!r} must be a mapping, got "
                         f"{type(sec).__name__}")
    return {**defaults, **out}


def _require(sec: Dict[str, Any], key: str, where: str) -> Any:
    if key not in sec or sec[key] is None:
        raise ValueError(f"model config: missing {where}.{key}")
    return sec[key]


def _storage_dtype(name: Optional[str]) -> Optional[torch.dtype]:
    if name is None:  # torch's default dtype (float64 under hardware.precision=float64)
        return None
    if str(name) not in STORAGE_DTYPES:
        raise ValueError(f"model config: memory.storage_dtype must be one of "
                         f"{list(STORAGE_DTYPES)}, got {name!r}")
    return getattr(torch, str(name))


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


def build_memory(mem_cfg: Dict[str, Any], num_nodes: int, dim_edge_feat: int, dropout: float,
                 att_dropout: float) -> Optional[NodeMemory]:
    """The ``memory`` section's :class:`~pyg_tgl.nn.NodeMemory` (``None`` for ``type: none``)."""
    mem_type = str(mem_cfg["type"])
    if mem_type not in MEMORY_TYPES:
        raise ValueError(f"model config: memory.type must be one of {MEMORY_TYPES}, got "
                         f"{mem_type!r}")
    deliver_to = str(mem_cfg["deliver_to"])
    if mem_type == "none":
        if deliver_to == "neighbors":
            raise ValueError("model config: memory.deliver_to 'neighbors' needs memory.type "
                             "node")
        return None
    mem_dim = int(_require(mem_cfg, "dim_out", "memory"))
    if deliver_to not in DELIVER_TO:
        raise ValueError(f"model config: memory.deliver_to must be one of {DELIVER_TO}, "
                         f"got {deliver_to!r}")
    return NodeMemory(
        num_nodes, dim_edge_feat, mem_dim, int(mem_cfg["dim_time"]),
        updater=str(_require(mem_cfg, "memory_update", "memory")),
        mailbox_size=int(mem_cfg["mailbox_size"]),
        mail_combine=str(mem_cfg["mail_combine"]),
        num_heads=int(mem_cfg["attention_head"]), dropout=dropout,
        att_dropout=att_dropout, dtype=_storage_dtype(mem_cfg["storage_dtype"]))


def build_embedding(gnn: Dict[str, Any], sampling: Dict[str, Any], dim_input: int,
                    dim_edge_feat: int, memory: Optional[NodeMemory], dropout: float,
                    att_dropout: float) -> torch.nn.Module:
    """The ``gnn`` section's embedding: :class:`~pyg_tgl.nn.IdentityEmbedding` or
    :class:`~pyg_tgl.nn.AttentionEmbedding`."""
    arch = str(_require(gnn, "arch", "gnn"))
    if arch not in ARCHS:
        raise ValueError(f"model config: gnn.arch must be one of {ARCHS}, got {arch!r}")
    history = int(sampling["history"] or 1)
    if arch == "identity":
        if dim_input == 0:
            raise ValueError("model config: gnn.arch 'identity' needs a memory or node "
                             "features to embed")
        if gnn["dim_out"] is not None and int(gnn["dim_out"]) != dim_input:
            raise ValueError(f"model config: gnn.dim_out ({gnn['dim_out']}) must equal the "
                             f"input dimension ({dim_input}) for gnn.arch 'identity'")
        time_proj = bool(gnn["time_proj"]
                         or str(gnn["time_transform"]).upper() == "JODIE")
        if time_proj and memory is None:
            raise ValueError("model config: gnn.time_proj (JODIE) needs memory.type node")
        return IdentityEmbedding(dim_input, history, time_projection=time_proj)
    num_layers = int(_require(gnn, "layer", "gnn"))
    if num_layers <= 0:
        raise ValueError(f"model config: gnn.layer must be positive, got {num_layers}")
    if sampling["no_sample"]:
        raise ValueError("model config: gnn.arch 'transformer_attention' needs sampled "
                         "neighbours, but sampling.no_sample is set")
    hops = sampling["layer"]
    neighbor = list(sampling["neighbor"] or [])
    if hops is not None and int(hops) != num_layers:
        raise ValueError(f"model config: sampling.layer ({hops}) must equal gnn.layer "
                         f"({num_layers})")
    if neighbor and len(neighbor) != num_layers:
        raise ValueError(f"model config: sampling.neighbor {neighbor} must list one fan-out "
                         f"per GNN layer ({num_layers})")
    dim_out = int(gnn["dim_out"] or (memory.memory_dim if memory is not None else 0))
    if dim_out <= 0:
        raise ValueError("model config: missing gnn.dim_out")
    dim_time = int(gnn["dim_time"] or 0)
    if dim_input == 0 and dim_edge_feat == 0 and dim_time == 0:
        warnings.warn(
            "TemporalGNN: no memory, node or edge features and gnn.dim_time 0 leave the "
            f"first attention layer without input; encoding time with {dim_out} channels "
            "instead", stacklevel=3)
        dim_time = dim_out
    score = str(gnn["att_score"])
    if score not in SCORES:
        raise ValueError(f"model config: gnn.att_score must be one of {SCORES}, got "
                         f"{score!r}")
    dense = bool(gnn["dense"])
    return AttentionEmbedding(
        dim_input, dim_edge_feat, dim_time, dim_out, num_layers, history,
        num_heads=int(gnn["att_head"]), dropout=dropout, att_dropout=att_dropout,
        score=score, dense=dense, unique_inputs=bool(gnn["unique_inputs"]),
        # Roots with the same (node, time) have the same most recent neighbours, so the top
        # layer embeds each distinct root once (exact; a uniform sampler draws each root's
        # neighbours independently, so there every root keeps its own draw).
        unique_roots=str(sampling["strategy"]) == "recent")


def build_model(model_cfg: Any, num_nodes: int, dim_node_feat: int = 0, dim_edge_feat: int = 0,
                dropout: float = 0.2, att_dropout: float = 0.2,
                node_feat: Optional[Tensor] = None,
                edge_feat: Optional[Tensor] = None) -> TemporalGNN:
    """The :class:`~pyg_tgl.nn.TemporalGNN` that ``model_cfg`` describes.

    The parts are created in a fixed order (memory, node input, embedding, combiner, pair
    history, predictor), so one seed gives the same parameters whatever the configuration's
    form (``tests/test_tgl_config.py``).

    Args:
        model_cfg: the ``model`` node of the configuration (see the module docs).
        num_nodes: number of nodes (size of the memory).
        dim_node_feat: node feature dimension (0 for none; inferred from ``node_feat``).
        dim_edge_feat: edge feature dimension (0 for none; inferred from ``edge_feat``).
        dropout: dropout of attention layers and the APAN updater.
        att_dropout: dropout on attention weights.
        node_feat: ``[num_nodes, dim_node_feat]`` node features.
        edge_feat: ``[num_events, dim_edge_feat]`` edge features, indexed by event id.

    Raises:
        ValueError: values that do not fit together (named in the message); what the
            configuration leaves out takes the schema's default.
    """
    if num_nodes <= 0:
        raise ValueError(f"TemporalGNN: num_nodes must be positive, got {num_nodes}")
    dim_node_feat = _check_feat("node_feat", node_feat, dim_node_feat, num_nodes)
    dim_edge_feat = _check_feat("edge_feat", edge_feat, dim_edge_feat, None)
    sampling = section(model_cfg, "sampling")
    mem_cfg = section(model_cfg, "memory")
    gnn = section(model_cfg, "gnn")
    history = int(sampling["history"] or 1)
    memory = build_memory(mem_cfg, num_nodes, dim_edge_feat, dropout, att_dropout)
    node_input = NodeInput(dim_node_feat, memory.memory_dim if memory is not None else 0,
                           bool(mem_cfg["combine_node_feature"])
                           if memory is not None else True)
    embedding = build_embedding(gnn, sampling, node_input.dim_out, dim_edge_feat, memory,
                                dropout, att_dropout)
    combiner = None
    if history > 1:
        if str(gnn["combine"]) != "rnn":
            raise ValueError(f"model config: sampling.history is {history}, so gnn.combine "
                             f"must be 'rnn' (got {gnn['combine']!r})")
        combiner = SnapshotRNN(embedding.dim_out)
    # Optional pair terms of the predictor (pyg_tgl's additions, docs/accuracy.md): whether
    # each endpoint is among the other's sampled recent neighbours, and how often the pair
    # interacted over the whole stream so far (state, like memory).
    pair_features = (SampledPairFeatures(bool(gnn["pair_recency"]))
                     if gnn["pair_features"] else None)
    pair_history = (PairHistory(num_nodes, recency=bool(gnn["pair_history_recency"]),
                                nodes=bool(gnn["pair_history_nodes"]))
                    if gnn["pair_history"] else None)
    dim_pair = sum(p.width for p in (pair_features, pair_history) if p is not None)
    edge_predictor = EdgePredictor(embedding.dim_out, dim_pair)
    return TemporalGNN(embedding, edge_predictor, memory=memory, node_input=node_input,
                       combiner=combiner, pair_features=pair_features,
                       pair_history=pair_history,
                       deliver_to=str(mem_cfg["deliver_to"]) if memory is not None
                       else "self", node_feat=node_feat, edge_feat=edge_feat)
