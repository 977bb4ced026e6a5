r"""A whole experiment from a composed configuration, in the order it happens: checks, device and
process group, data and model (:mod:`~pyg_tgl.train.context`), the task (link training
:mod:`~pyg_tgl.train.link`, EdgeBank :mod:`~pyg_tgl.train.edgebank_run`, node classification
:mod:`~pyg_tgl.train.node`), then the outputs (:mod:`~pyg_tgl.train.outputs`, the embedding export
:mod:`~pyg_tgl.train.embed`). :mod:`pyg_tgl.run` is the Hydra front end; this module has no Hydra
dependency, so it can be driven from Python (``run_experiment(cfg, out_dir)``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from pyg_tgl.config.check import check_config
from pyg_tgl.train.callbacks import Callback
from pyg_tgl.train.checkpoint import seed_everything
from pyg_tgl.train.context import Context, build_model, load_data, resolve_device
from pyg_tgl.train.distributed import DistEnv, worker_threads
from pyg_tgl.train.edgebank_run import run_edgebank
from pyg_tgl.train.embed import export_embeddings
from pyg_tgl.train.link import train_link
from pyg_tgl.train.loop import default_dtype
from pyg_tgl.train.node import run_node_classification
from pyg_tgl.train.outputs import plot_curves, write_json
from pyg_tgl.train.resume import checkpoint_to_resume, load_model_state, model_state
# Names this module has always offered (tests, benchmarks and user code import them from here).
from pyg_tgl.train.validation import (ConfigError, _get, check_split, is_edgebank,
                                      sampling_options, validate_dataset)

log = logging.getLogger("pyg_tgl")

__all__ = ["run_experiment", "train_link", "Context", "build_model", "load_data",
           "resolve_device", "checkpoint_to_resume", "load_model_state", "model_state",
           "ConfigError", "check_split", "is_edgebank", "sampling_options", "validate_dataset"]


def run_experiment(cfg: DictConfig, out_dir: Optional[Path], progress: bool = True,
                   callbacks: Sequence[Callback] = (),
                   model_factory: Optional[Callable[..., torch.nn.Module]] = None
                   ) -> Dict[str, Any]:
    """Runs the configured task and writes all outputs into ``out_dir``.

    Outputs: ``config_resolved.yaml``, ``metrics.json``, ``checkpoints/{best,last}.pt``,
    ``training_curve.png`` and, with ``export.time`` set, ``embeddings.pt``.

    Started by ``torchrun`` (or :func:`pyg_tgl.train.launch.launch_local`), the process
    joins the process group and trains data parallel; rank 0 writes the outputs (``out_dir`` of
    the other ranks is ignored), every rank returns the same result.

    ``callbacks``: :class:`~pyg_tgl.train.callbacks.Callback` instances called during the
    link training, after the loggers and the callbacks of ``cfg.callbacks``.
    ``model_factory``: builds the model instead of :func:`pyg_tgl.models.build_model` (same
    signature; a model composed from parts, ``docs/models.md``).

    ``cfg`` is read through the schema (:func:`~pyg_tgl.config.check.check_config`): options
    it lacks take their defaults.

    Raises:
        ConfigError: for bad options or data that does not fit them (one line).
    """
    from pyg_tgl.train.distributed import init_distributed, shutdown
    cfg = check_config(cfg)  # read through the schema: every option, checked
    device = resolve_device(_get(cfg, "hardware.device", "auto"))
    dist, device = init_distributed(
        device, str(_get(cfg, "hardware.distributed.backend", "auto")),
        float(_get(cfg, "hardware.distributed.timeout_s", 300)))
    try:
        with default_dtype(str(_get(cfg, "hardware.precision", "float32"))):
            return _run(cfg, Path(out_dir) if out_dir is not None else None, progress, dist,
                        device, callbacks, model_factory)
    finally:
        if dist.enabled:
            shutdown()


def _run(cfg: DictConfig, out_dir: Optional[Path], progress: bool, dist: DistEnv,
         device: torch.device, callbacks: Sequence[Callback] = (),
         model_factory: Optional[Callable[..., torch.nn.Module]] = None) -> Dict[str, Any]:
    main = dist.is_main
    resume_from = None
    if main:
        if out_dir is None:
            raise ValueError("run_experiment: rank 0 needs an output directory")
        resume_from = checkpoint_to_resume(cfg, out_dir)  # before this run's files are written
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    resume_from = dist.broadcast_object(resume_from)
    if dist.enabled and cfg.task.name == "node":
        raise ConfigError("task=node runs in one process; data-parallel training "
                          "(hardware.distributed) supports task=link")
    threads = _get(cfg, "hardware.num_threads")
    if threads or dist.enabled:
        torch.set_num_threads(worker_threads(dist.local_world_size, threads))
    seed_everything(int(cfg.seed), bool(_get(cfg, "deterministic", False)))
    ds = load_data(cfg, dist, progress)
    validate_dataset(cfg, ds)
    ctx = Context(cfg, ds, device, dist)
    check_split(ctx.split, ds, _get(cfg, "data.name"))
    if is_edgebank(cfg):  # link task, nothing to train: pyg_tgl/train/edgebank_run.py
        return run_edgebank(cfg, ctx, out_dir)
    model = build_model(cfg, ds, device, model_factory)
    if dist.enabled:
        # Same initial parameters everywhere (same seed; DDP also broadcasts rank 0's), then a
        # different dropout stream per rank.
        torch.manual_seed(int(cfg.seed) * 1_000_003 + dist.rank)
    log.info("data %s: %d events, %d nodes; split %s; model %s on %s%s",
             _get(cfg, "data.name"), ds.data.src.numel(), ds.num_nodes,
             {k: v.stop - v.start for k, v in ctx.split.items()}, _get(cfg, "model.name"),
             device, f"; rank {dist.rank} of {dist.world_size}" if dist.enabled else "")
    if cfg.task.name == "node" and _get(cfg, "task.link_checkpoint"):
        # The link model comes from an earlier run: no link training here.
        result: Dict[str, Any] = {"finished": True, "epochs": [],
                                  "link_checkpoint": str(cfg.task.link_checkpoint)}
    else:
        result = train_link(cfg, ctx, model, out_dir if main else Path("."), progress=progress,
                            resume_from=resume_from, callbacks=callbacks)
    if dist.enabled:
        result["world_size"] = dist.world_size
    if not main:
        return result
    # What follows runs on rank 0 alone: its loaders must not take a rank's slice.
    ctx.dist = DistEnv(device=device)
    if cfg.task.name == "node":
        result["node"] = run_node_classification(cfg, ctx, model, progress=progress)
    write_json(result, out_dir / "metrics.json")
    if result["epochs"]:
        plot_curves(result["epochs"], out_dir / "training_curve.png")
    export_time = _get(cfg, "export.time")
    if export_time is not None:
        export_embeddings(cfg, ctx, model, float(export_time), out_dir / "embeddings.pt",
                          nodes=_get(cfg, "export.nodes"))
    return result
