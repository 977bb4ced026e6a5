"""Data side of pyg_tgl: data sets, the T-CSR graph, the temporal sampler and the loader."""
from importlib import import_module
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pyg_tgl.data' has no attribute {name!r}")
