"""Schema of the ``model`` section: TGL's ``sampling`` / ``memory`` / ``gnn`` keys (the same
names as TGL's ``config/*.yml``, so a TGL file maps onto these classes key for key) plus
pyg_tgl's additions, and EdgeBank's options.

Defaults are what the model does when TGL's file leaves a key out; the shipped model files set
TGL's values. The pair options (``gnn.pair_*``) are pyg_tgl's additions, off in TGL's models;
the ``features`` group turns them on for any model (``features=pair_history``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pyg_tgl.config.forms as forms
from pyg_tgl.config.fields import option, section

STRATEGIES = ("recent", "uniform")
ROOT_TIMES = ("event", "batch")
MEMORY_TYPES = ("node", "none")
DELIVER_TO = ("self", "neighbors")
MAIL_COMBINE = ("last", "mean")
MEMORY_UPDATES = ("gru", "rnn", "transformer")
STORAGE_DTYPES = ("float32", "bfloat16", "float16")
ARCHS = ("transformer_attention", "identity")
ATT_SCORES = ("leaky_relu", "scaled_dot")
EDGEBANK_MODES = ("unlimited", "time_window")
WINDOW_RULES = ("dyglib", "tgb")

_MEMORY = ("type", "node")
_ATTENTION = ("arch", "transformer_attention")


@dataclass
class SamplingConfig:
    """``model.sampling``: the temporal neighbourhoods the loader samples."""

    layer: Optional[int] = option(None, "Hops; null: one per entry of neighbor.", ge=1)
    neighbor: Any = option(None, "Fan-out per hop, e.g. [10] or [10, 10] (one integer: a list "
                           "of one); null: no neighbours.", check=forms.fan_outs,
                           expects="a list of integer fan-outs >= 1, one per layer")
    strategy: str = option("recent", "recent: the most recent neighbours; uniform: a uniform "
                           "sample of the earlier ones.", choices=STRATEGIES)
    prop_time: bool = option(False, "Sample hop l + 1 at the neighbour's time instead of the "
                             "root's (TGL).")
    history: int = option(1, "Snapshots (DySAT: 3); > 1 needs duration > 0.", ge=1)
    duration: float = option(0, "Snapshot length in the data set's time unit (DySAT: 10000; "
                             "scale it with the data set's span, docs/accuracy.md).", ge=0.0)
    num_thread: Optional[int] = option(None, "Sampler threads asked for by TGL's file (capped "
                                       "at the cores unless hardware.sampler_threads is set).",
                                       ge=1)
    no_sample: bool = option(False, "No neighbourhood at all (JODIE).")
    no_neg: bool = option(False, "No neighbourhoods for the negative roots (TGL's APAN).")
    root_time: str = option("event", "event: each root at its event's time (TGL); batch: all "
                            "at the batch's first event time, as PyG's TGN example "
                            "(docs/performance.md).", choices=ROOT_TIMES)
    dedup: Optional[bool] = option(None, "Hop l + 1 samples once per distinct (node, time) of "
                                   "hop l; null: where that is exact (recent sampling); true: "
                                   "also under uniform (repeated pairs share one draw).")


@dataclass
class MemoryConfig:
    """``model.memory``: TGL's node memory and mailbox (``type: none``: no memory)."""

    type: str = option("none", "node: a memory vector per node; none: no memory.",
                       choices=MEMORY_TYPES)
    dim_time: int = option(100, "Time encoding of the memory updater's input (0: none).",
                           ge=0, only_if=_MEMORY)
    deliver_to: str = option("self", "self: mails go to the event's endpoints; neighbors: also "
                             "to their sampled neighbours (APAN).", choices=DELIVER_TO)
    mail_combine: str = option("last", "How mails to one node in one batch combine.",
                               choices=MAIL_COMBINE, only_if=_MEMORY)
    memory_update: str = option("gru", "The memory updater: gru (TGN), rnn (JODIE), transformer "
                                "(APAN).", choices=MEMORY_UPDATES, only_if=_MEMORY)
    mailbox_size: int = option(1, "Mails kept per node (APAN: 10).", ge=1, only_if=_MEMORY)
    combine_node_feature: bool = option(True, "Add the (projected) node features to the "
                                        "memory.")
    dim_out: int = option(100, "Memory dimension.", ge=1, only_if=_MEMORY)
    attention_head: int = option(2, "Heads of the transformer updater.", ge=1,
                                 only_if=_MEMORY)
    storage_dtype: Optional[str] = option(None, "Storage of memory and mails: bfloat16 / "
                                          "float16 halve it (computed in float32); null: the "
                                          "default dtype (float64 under "
                                          "hardware.precision=float64).", choices=STORAGE_DTYPES)


@dataclass
class GnnConfig:
    """``model.gnn``: the embedding on top of the memory and the link predictor."""

    arch: str = option("transformer_attention", "transformer_attention: temporal attention "
                       "over the sampled neighbours; identity: the memory (or node features) "
                       "as the embedding.", choices=ARCHS)
    layer: int = option(1, "Attention layers (= model.sampling.layer).", ge=1,
                        only_if=_ATTENTION)
    att_head: int = option(2, "Attention heads; dim_out must be divisible by it.", ge=1,
                           only_if=_ATTENTION)
    dim_time: int = option(0, "Time encoding of the attention (0: none, as DySAT).", ge=0,
                           only_if=_ATTENTION)
    dim_out: Optional[int] = option(None, "Embedding dimension; null: model.memory.dim_out.",
                                    ge=1, only_if=_ATTENTION)
    combine: Optional[str] = option(None, "How snapshots combine: rnn (needed with "
                                    "model.sampling.history > 1).", choices=("rnn",))
    time_transform: Optional[str] = option(None, "TGL's spelling of time_proj: JODIE.")
    time_proj: bool = option(False, "Project the memory to the query time, h * (1 + w * dt) "
                             "(JODIE).")
    att_score: str = option("leaky_relu", "Attention score: leaky_relu (TGL) or scaled_dot.",
                            choices=ATT_SCORES)
    dense: bool = option(True, "Fixed fan-out attention; false: message passing over "
                         "edge_index (same numbers).")
    unique_inputs: bool = option(True, "Compute bottom-layer inputs once per distinct (node, "
                                 "time) and projections once per distinct (neighbour, edge).")
    pair_features: bool = option(False, "pyg_tgl: the predictor sees whether each endpoint is "
                                 "among the other's sampled recent neighbours "
                                 "(docs/accuracy.md); false is TGL's model.")
    pair_recency: bool = option(False, "With pair_features: also how recent those "
                                "neighbours are.")
    pair_history: bool = option(False, "pyg_tgl: the predictor sees how often the pair "
                                "interacted over the whole stream so far "
                                "(pyg_tgl.nn.PairHistory); false is TGL's model.")
    pair_history_recency: bool = option(False, "With pair_history: also how long ago the "
                                        "pair's latest event was.")
    pair_history_nodes: bool = option(False, "With pair_history: also how many events each "
                                      "endpoint sent / received and how long ago its latest "
                                      "was.")


@dataclass
class TemporalModelConfig:
    """``model``: one of TGL's models (JODIE, DySAT, TGAT, TGN, APAN) or any combination of
    their parts."""

    name: str = option("model", "The model's name (the run directory's, the log's).")
    sampling: SamplingConfig = section(SamplingConfig, "Neighbour sampling.")
    memory: MemoryConfig = section(MemoryConfig, "Node memory.")
    gnn: GnnConfig = section(GnnConfig, "Embedding and link predictor.")


@dataclass
class EdgeBankConfig:
    """``model=edgebank``: a pair scores 1 if it interacted before (Poursafaei et al., NeurIPS
    2022); nothing is learned."""

    name: str = option("edgebank", "The model.", choices=("edgebank",))
    mode: str = option("unlimited", "unlimited (EdgeBank_inf): a pair seen at any earlier time "
                       "counts; time_window (EdgeBank_tw): only within the last time_window.",
                       choices=EDGEBANK_MODES)
    time_window: Optional[float] = option(None, "time_window mode: the window in the data's "
                                          "time unit; null: derived with window_rule.", ge=0)
    window_rule: str = option("dyglib", "dyglib: t_max - quantile(t, 1 - proportion) over the "
                              "events before the split; tgb: proportion * (t_max - t_min) of "
                              "the training split.", choices=WINDOW_RULES)
    window_proportion: Optional[float] = option(None, "null: data.test_ratio (0.15), the value "
                                                "of both references.", gt=0, le=1)


def model_kind(name: Any) -> type:
    """The schema class of a model section: EdgeBank's, or the temporal GNN's (any other
    name, e.g. a TGL file's stem)."""
    return EdgeBankConfig if name == "edgebank" else TemporalModelConfig
