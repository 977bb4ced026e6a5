"""Neural modules of pyg_tgl: time encoding, node memory and mailbox, memory updaters, temporal
message passing, embedding modules, prediction heads, :class:`TemporalGNN` which composes them
(:func:`pyg_tgl.models.build_model` builds TGL's five models from their configurations), and the
:class:`EdgeBank` baseline.

Submodules load on first attribute access, so ``import pyg_tgl.nn`` stays cheap.
"""
from pyg_tgl._lazy import lazy_attributes

_LAZY = {
    "TimeEncoder": "pyg_tgl.nn.time_encoder",
    "Mailbox": "pyg_tgl.nn.mailbox",
    "NodeMemory": "pyg_tgl.nn.memory",
    "MemoryState": "pyg_tgl.nn.memory",
    "MemoryWrites": "pyg_tgl.nn.memory",
    "MemoryQuery": "pyg_tgl.nn.memory",
    "latest_per_node": "pyg_tgl.nn.storage",
    "latest_entry_of": "pyg_tgl.nn.storage",
    "GRUUpdater": "pyg_tgl.nn.updaters",
    "RNNUpdater": "pyg_tgl.nn.updaters",
    "TransformerUpdater": "pyg_tgl.nn.updaters",
    "TemporalAttention": "pyg_tgl.nn.attention",
    "IdentityLayer": "pyg_tgl.nn.attention",
    "JODIETimeProjection": "pyg_tgl.nn.attention",
    "SnapshotRNN": "pyg_tgl.nn.attention",
    "AttentionEmbedding": "pyg_tgl.nn.embedding",
    "IdentityEmbedding": "pyg_tgl.nn.embedding",
    "NodeInput": "pyg_tgl.nn.node_input",
    "EdgePredictor": "pyg_tgl.nn.predictors",
    "SampledPairFeatures": "pyg_tgl.nn.predictors",
    "NodeClassifier": "pyg_tgl.nn.predictors",
    "PairHistory": "pyg_tgl.nn.pair_history",
    "TemporalGNN": "pyg_tgl.nn.model",
    "StateUpdate": "pyg_tgl.nn.state",
    "PairEvents": "pyg_tgl.nn.state",
    "EdgeBank": "pyg_tgl.nn.edgebank",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
