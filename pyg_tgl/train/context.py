r"""What a run builds once before it trains: the device, the data set (loaded once per machine
under data parallelism), the model, and the :class:`Context` that hands out the run's loaders."""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from pyg_tgl.train.distributed import DistEnv, worker_threads
from pyg_tgl.train.errors import ConfigError
from pyg_tgl.train.splits import cap_split, inductive_mask
from pyg_tgl.train.validation import _get, sampling_options

log = logging.getLogger("pyg_tgl")


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if spec in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def load_data(cfg: DictConfig, dist: Optional[DistEnv] = None,
              progress: Optional[bool] = None) -> Any:
    """``load_dataset(**cfg.data)`` with file errors turned into one-line :class:`ConfigError`.

    Data parallel: the first rank of each machine loads first (processing the raw files and
    writing the cache once), then the others read the cache; with the cache on, arrays are
    memory-mapped so the ranks of a machine share one copy in the page cache.
    """
    options = OmegaConf.to_container(cfg.data, resolve=True)
    if options.get("progress") is None and progress is not None:
        options["progress"] = progress  # data.progress: null follows the run's progress bars
    if dist is not None and dist.enabled:
        if options.get("cache", True) and options.get("mmap") is None:
            options["mmap"] = True
        with dist.local_rank_first():
            return _load_dataset(cfg, options)
    return _load_dataset(cfg, options)


def _load_dataset(cfg: DictConfig, options: Dict[str, Any]) -> Any:
    from pyg_tgl.data.datasets import load_dataset
    try:
        return load_dataset(**options)
    except (FileNotFoundError, TypeError, ValueError) as e:
        # Missing files, unknown options and malformed rows: the loader's message names the
        # file/row/option; prefix which configuration entry led there.
        path = _get(cfg, "data.path")
        where = f"data.path={path!r}" if path is not None and isinstance(
            e, FileNotFoundError) else f"data={options.get('name')!r}"
        raise ConfigError(f"{where}: {e}") from e


def build_model(cfg: DictConfig, ds: Any, device: torch.device,
                model_factory: Optional[Callable[..., torch.nn.Module]] = None
                ) -> torch.nn.Module:
    """The model of ``cfg.model`` for the data set's features: ``model_factory`` (default
    :func:`pyg_tgl.models.build_model`, TGL's compositions) called with its arguments."""
    from pyg_tgl.models import build_model as tgl_model
    node_feat = ds.node_feat
    edge_feat = ds.edge_feat
    on_device = bool(_get(cfg, "hardware.all_on_gpu", True))
    if on_device:
        # TGL's all_on_gpu: features live on the compute device, no per-batch host copy.
        node_feat = None if node_feat is None else node_feat.to(device)
        edge_feat = None if edge_feat is None else edge_feat.to(device)
    try:
        model = (model_factory or tgl_model)(
            cfg.model, ds.num_nodes,
            dim_node_feat=0 if node_feat is None else int(node_feat.size(1)),
            dim_edge_feat=0 if edge_feat is None else int(edge_feat.size(1)),
            dropout=float(_get(cfg, "train.dropout", 0.2)),
            att_dropout=float(_get(cfg, "train.att_dropout", _get(cfg, "train.dropout", 0.2))),
            node_feat=node_feat, edge_feat=edge_feat)
    except ValueError as e:
        # The modules refuse sizes and choices that do not fit together (their message names
        # the module and the values); here nothing but the configuration can be the cause.
        raise ConfigError(f"model={_get(cfg, 'model.name')!r}: {e}") from e
    return model.to(device)


class Context:
    """Everything an experiment builds once: data, split, device, T-CSR and the loaders' shared
    options."""

    def __init__(self, cfg: DictConfig, ds: Any, device: torch.device,
                 dist: Optional[DistEnv] = None) -> None:
        self.cfg = cfg
        self.ds = ds
        self.device = device
        self.dist = dist if dist is not None else DistEnv(device=device)
        self.split = cap_split(ds.split, _get(cfg, "train.max_events"))
        self.sampling = sampling_options(cfg.model)
        threads = _get(cfg, "hardware.sampler_threads")
        if threads is None and self.sampling["num_threads"] is not None:
            # TGL's configs ask for 32 sampler threads; more than the cores only adds contention.
            threads = min(int(self.sampling["num_threads"]), os.cpu_count() or 1)
        if threads is None and self.dist.enabled:
            threads = worker_threads(self.dist.local_world_size, None)
        self.sampling["num_threads"] = threads
        self.tcsr = None
        if self.sampling["num_neighbors"]:
            # Built (and cached) by the first rank of a machine, memory-mapped by the others.
            with self.dist.local_rank_first():
                self.tcsr = ds.tcsr(add_reverse=True)
        data = ds.data
        n = data.src.numel()
        # Inductive flags for every event id: touches a node never seen in training.
        self.inductive = torch.zeros(n, dtype=torch.bool)
        for part in ("val", "test"):
            s = self.split[part]
            self.inductive[s] = inductive_mask(data.src, data.dst, ds.num_nodes,
                                               self.split["train"], s)

    @property
    def global_batch_size(self) -> int:
        """Events per step over all ranks: ``train.batch_size`` is per rank, as in TGL."""
        return int(self.cfg.train.batch_size) * self.dist.world_size

    @property
    def eval_batch_size(self) -> int:
        """Events per evaluation step over all ranks: ``eval.batch_size``, or the training one."""
        return int(_get(self.cfg, "eval.batch_size", None) or self.global_batch_size)

    def loader(self, events: slice, num_neg: int, neg_sampling: str, seed: int,
               batch_size: Optional[int] = None) -> Any:
        """A loader over ``events`` whose batches are global (``batch_size`` is global, default
        :attr:`global_batch_size`) and which yields this rank's slice of each."""
        from pyg_tgl.data.loader import (BatchOptions, NegativeOptions, SamplingOptions,
                                         TemporalNeighborLoader)
        s = self.sampling
        sampling = SamplingOptions(
            num_neighbors=s["num_neighbors"], strategy=s["strategy"], prop_time=s["prop_time"],
            history=s["history"], duration=s["duration"], num_threads=s["num_threads"],
            dedup=s["dedup"], root_time=s["root_time"], sample_negatives=not s["no_neg"])
        negatives = NegativeOptions(neg_sampling, num_neg, train_events=self.split["train"])
        batching = BatchOptions(int(batch_size or self.global_batch_size), events=events,
                                shard=(self.dist.rank, self.dist.world_size),
                                prefetch=bool(_get(self.cfg, "hardware.prefetch", False)))
        return TemporalNeighborLoader(self.ds.data, sampling=sampling, negatives=negatives,
                                      batching=batching, tcsr=self.tcsr, seed=seed)
