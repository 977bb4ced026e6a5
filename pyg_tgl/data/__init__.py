"""Data side of pyg_tgl: data sets, the T-CSR graph, the temporal sampler and the loader."""
from pyg_tgl._lazy import lazy_attributes

_LAZY = {
    "TCSR": "pyg_tgl.data.tcsr",
    "TemporalSampler": "pyg_tgl.data.sampler",
    "TemporalNeighborLoader": "pyg_tgl.data.loader",
    "NegativeSampler": "pyg_tgl.data.loader",
    "TemporalBatch": "pyg_tgl.data.batch",
    "SampledHop": "pyg_tgl.data.batch",
    "load_dataset": "pyg_tgl.data.datasets",
    "TemporalDataset": "pyg_tgl.data.datasets",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
