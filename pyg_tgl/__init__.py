"""pyg_tgl: TGL-style temporal GNN training for PyTorch Geometric.

Importing the package is cheap: submodules (the C++ sampler, the models, the training loop) load on
first use, so ``import pyg_tgl`` neither compiles, reads data nor prints anything.
"""
from importlib import import_module
from typing import Any

from pyg_tgl._lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "TCSR": "pyg_tgl.data.tcsr",
    "TemporalSampler": "pyg_tgl.data.sampler",
    "TemporalNeighborLoader": "pyg_tgl.data.loader",
    "TemporalBatch": "pyg_tgl.data.batch",
    "SampledHop": "pyg_tgl.data.batch",
    "load_dataset": "pyg_tgl.data.datasets",
    "load_run": "pyg_tgl.inference",
    "TrainedRun": "pyg_tgl.inference",
}

__all__ = ["__version__", *_LAZY]


_SUBPACKAGES = {name: f"pyg_tgl.{name}" for name in ("data", "nn", "train")}
_lazy_getattr, __dir__ = lazy_attributes(__name__, _LAZY)


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return import_module(_SUBPACKAGES[name])
    return _lazy_getattr(name)
