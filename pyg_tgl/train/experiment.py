r"""A whole experiment from a composed configuration: data, model, training, TGL evaluation,
checkpoints and outputs. :mod:`pyg_tgl.run` is the Hydra front end; this module has no Hydra
dependency, so it can be driven from Python (``run_experiment(cfg, out_dir)``).

Evaluation protocols (``eval.memory_carry``):

* ``false`` (TGL, Zhou et al., VLDB 2022, ``train.py``): after every epoch the validation events
  are scored with the memory left by the training epoch; the best validation epoch is kept. For
  the test, the best model's memory is reset, the training and validation events are replayed
  (evaluation mode, no gradient), then the test events are scored while memory keeps absorbing
  them.
* ``true`` (``../shared/TARGETS.md``, PyG's TGN example): the test is scored with the memory the
  selected epoch left after its validation pass (carried from training through validation).
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from pyg_tgl.train.callbacks import Callback, RunInfo, build_callbacks
from pyg_tgl.train.checkpoint import load_checkpoint, save_checkpoint, seed_everything
from pyg_tgl.train.distributed import DistEnv, worker_threads
from pyg_tgl.train.edgebank_run import is_edgebank, run_edgebank
from pyg_tgl.train.loop import EpochProgress, LinkTrainer, default_dtype
from pyg_tgl.train.metrics import test_summary
from pyg_tgl.train.optim import build_optimizer, current_lr
from pyg_tgl.train.protocol import score_test
from pyg_tgl.train.schedule import BatchSchedule
from pyg_tgl.train.resume import (CheckpointPolicy, checkpoint_to_resume,  # noqa: F401
                                  load_model_state, model_state, restore_training_state,
                                  training_state)
from pyg_tgl.train.splits import cap_split, inductive_mask
# The checks moved to pyg_tgl.train.validation; their names stay importable from here.
from pyg_tgl.train.validation import (ConfigError, _get, check_split,  # noqa: F401
                                      normalize_config, sampling_options, validate_config,
                                      validate_dataset)

log = logging.getLogger("pyg_tgl")


def find_unused_parameters(cfg: DictConfig) -> Optional[bool]:
    """``hardware.distributed.find_unused_parameters``; ``None`` for ``auto`` (decided from the
    model: :func:`~pyg_tgl.train.distributed.searches_unused_parameters`)."""
    value = _get(cfg, "hardware.distributed.find_unused_parameters", "auto")
    return None if value == "auto" else bool(value)


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if spec in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


# ------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------

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
        from pyg_tgl.data.loader import TemporalNeighborLoader
        cfg = self.cfg
        return TemporalNeighborLoader(
            self.ds.data, num_neighbors=self.sampling["num_neighbors"],
            strategy=self.sampling["strategy"],
            batch_size=int(batch_size or self.global_batch_size), neg_sampling=neg_sampling,
            num_neg=num_neg, events=events, tcsr=self.tcsr, prop_time=self.sampling["prop_time"],
            history=self.sampling["history"], duration=self.sampling["duration"],
            num_threads=self.sampling["num_threads"], seed=seed,
            prefetch=bool(_get(cfg, "hardware.prefetch", False)),
            train_events=self.split["train"], shard=(self.dist.rank, self.dist.world_size),
            sample_negatives=not self.sampling["no_neg"], root_time=self.sampling["root_time"],
            dedup=self.sampling["dedup"])


def _plot_curves(history: List[Dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, [h["loss"] for h in history], marker="o", label="train")
    a.plot(epochs, [h.get("val_loss", math.nan) for h in history], marker="o", label="val")
    a.set_xlabel("epoch"), a.set_ylabel("BCE loss"), a.legend()
    for key in ("val_ap", "val_auc", "val_mrr"):
        b.plot(epochs, [h.get(key, math.nan) for h in history], marker="o", label=key)
    b.set_xlabel("epoch"), b.set_ylabel("validation"), b.legend()
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _write_json(obj: Dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=True))
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------
# Link prediction
# ------------------------------------------------------------------------------------------------

def train_link(cfg: DictConfig, ctx: Context, model: torch.nn.Module, out_dir: Path,
               progress: bool = True, resume_from: Optional[Path] = None,
               callbacks: Sequence[Callback] = ()) -> Dict[str, Any]:
    """Trains with validation after each epoch, keeps the best (or last) epoch, then tests.

    Writes ``metrics.json`` after every epoch (``"finished": false`` until the test is done),
    ``checkpoints/last.pt`` (everything needed to resume; also within an epoch with
    ``train.checkpoint_every``) and ``checkpoints/best.pt``. ``resume_from``: the ``last.pt``
    to continue from (:func:`~pyg_tgl.train.resume.checkpoint_to_resume`).

    Returns:
        dict: the content of ``metrics.json``.
    """
    seed = int(cfg.seed)
    split = ctx.split
    dist = ctx.dist
    main = dist.is_main  # only rank 0 writes files
    ckpt_dir = out_dir / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    optimizer = build_optimizer(cfg, model.parameters())  # + clipping, lr schedule
    hooks = build_callbacks(cfg, out_dir if main else None, main, callbacks)
    schedule = BatchSchedule(split["train"], ctx.global_batch_size, cfg.schedule.name,
                             int(_get(cfg, "schedule.reorder", 1) or 1),
                             _get(cfg, "schedule.variant", "offset"), seed=seed)
    train_loader = ctx.loader(split["train"], int(cfg.train.num_negatives),
                              cfg.train.neg_sampling, seed)
    # Evaluation loaders restart from the same generator state at every pass, so every epoch is
    # validated against the same negatives (and a resumed run sees the same ones).
    val_loader = ctx.loader(split["val"], int(cfg.eval.val_num_negatives), cfg.eval.neg_sampling,
                            seed + 1, ctx.eval_batch_size)
    val_init = val_loader.state_dict()
    trainer = LinkTrainer(model, optimizer, train_loader, schedule, device=ctx.device,
                          loss=cfg.train.loss, ties=cfg.eval.ties, progress=progress,
                          sync_timers=bool(_get(cfg, "hardware.sync_timers", True)),
                          host_plans=bool(_get(cfg, "hardware.host_plans", False)),
                          precision=str(_get(cfg, "hardware.precision", "float32")), dist=dist,
                          find_unused_parameters=find_unused_parameters(cfg),
                          min_subset_events=int(_get(cfg, "eval.min_subset_events", 50)),
                          callbacks=hooks)
    metric = cfg.eval.metric
    sign = -1.0 if metric == "loss" else 1.0
    history: List[Dict[str, Any]] = []
    best: Dict[str, Any] = {"epoch": -1, "score": -math.inf, "val": {}}
    bad_epochs, start_epoch, partial = 0, 0, None
    if resume_from is not None:
        # Rank 0 reads the checkpoint and hands it to the others (no shared file system needed).
        state = dist.broadcast_object(load_checkpoint(resume_from, map_location="cpu")
                                      if main else None)
        history, best, bad_epochs, partial = restore_training_state(
            state, cfg, model, optimizer, train_loader, dist)
        start_epoch = state["epoch"] + 1
        if main and resume_from.parent.parent != out_dir:
            best_src = resume_from.parent / "best.pt"
            if best_src.is_file():
                save_checkpoint(load_checkpoint(best_src), best_path)
        log.info("resumed from %s %s", resume_from,
                 f"in epoch {start_epoch} after {partial.next_batch} batches" if partial
                 else f"after epoch {state['epoch']}")
    policy = CheckpointPolicy(_get(cfg, "train.checkpoint_every"), dist)

    def save_last(epoch_done: int, mid_epoch: Optional[EpochProgress] = None) -> None:
        state = training_state(model, optimizer, train_loader, dist, cfg, epoch_done, history,
                               best, bad_epochs, mid_epoch)
        if main:
            save_checkpoint(state, last_path)
        policy.saved()

    hooks.train_start(RunInfo(cfg, out_dir if main else None, model, optimizer, dist.rank,
                              dist.world_size, start_epoch, list(history)))
    stopped_early = False
    for epoch in range(start_epoch, int(cfg.train.epoch)):
        if bad_epochs and cfg.train.patience and bad_epochs >= cfg.train.patience:
            stopped_early = True
            break

        def after_batch(done: EpochProgress, epoch_done: int = epoch - 1) -> None:
            if policy.due(done.next_batch):
                save_last(epoch_done, done)

        stats = trainer.train_epoch(epoch, start=partial, after_batch=after_batch)
        partial = None
        val_loader.load_state_dict(val_init)
        val = trainer.evaluate(val_loader, ctx.inductive, desc="val")
        hooks.validation_end(epoch, val)
        record = {"epoch": epoch, "loss": stats["loss"],
                  **{f"val_{k}": v for k, v in val.items() if k != "time"},
                  "time_sample": stats["time_sample"], "time_memory": stats["time_memory"],
                  "time_compute": stats["time_compute"], "time_update": stats["time_update"],
                  "time_sync": stats["time_sync"],
                  "sync_bytes_per_step": stats["sync_bytes_per_step"],
                  "time_train": stats["time_total"], "time_eval": val["time"],
                  "events_per_s": stats["events_per_s"], "num_events": stats["num_events"],
                  "num_batches": stats["num_batches"], "schedule": stats["schedule"]}
        record["lr"] = current_lr(optimizer)  # the rate of the epoch's last step
        history.append(record)
        score = sign * val.get(metric, math.nan)
        if cfg.eval.select == "last" or score > best["score"]:
            best = {"epoch": epoch, "score": score, "val": val}
            bad_epochs = 0
            if main:
                save_checkpoint({"model": model_state(model), "epoch": epoch, "val": val,
                                 "config_yaml": OmegaConf.to_yaml(cfg, resolve=True)}, best_path)
        else:
            bad_epochs += 1
        save_last(epoch)
        if main:
            _write_json({"finished": False, "epochs": history, "best_epoch": best["epoch"]},
                        out_dir / "metrics.json")
        hooks.epoch_end(record)
        log.info("epoch %d  loss %.4f  val AP %.4f (%s negative per event)  train %.1fs (sample "
                 "%.1f memory %.1f compute %.1f update %.1f)  %.0f ev/s  eval %.1fs", epoch,
                 stats["loss"], val.get("ap", math.nan), cfg.eval.neg_sampling,
                 stats["time_total"], stats["time_sample"], stats["time_memory"],
                 stats["time_compute"], stats["time_update"], stats["events_per_s"],
                 val["time"])

    # ---- test ----
    chosen = dist.broadcast_object(load_checkpoint(best_path, map_location="cpu")
                                   if main else None)
    load_model_state(model, chosen["model"])
    test = score_test(cfg, ctx, trainer)  # pyg_tgl/train/protocol.py
    hooks.test_end(chosen["epoch"], test)
    log.info("%s", test_summary(test, str(cfg.eval.neg_sampling),
                                f"model of epoch {chosen['epoch']}, "
                                f"{'memory-carry' if cfg.eval.memory_carry else 'TGL'} protocol"))
    train_times = [h["time_train"] for h in history]
    result = {
        "finished": True,
        "epochs": history,
        "best_epoch": chosen["epoch"],
        "stopped_early": stopped_early,
        "val": {k: v for k, v in chosen["val"].items()},
        "test": test,
        "seconds_per_epoch": sum(train_times) / len(train_times) if train_times else math.nan,
        "protocol": "memory_carry" if cfg.eval.memory_carry else "tgl",
        "split": {k: [v.start, v.stop] for k, v in split.items()},
    }
    hooks.train_end(result)
    return result


# ------------------------------------------------------------------------------------------------
# Entry
# ------------------------------------------------------------------------------------------------

def run_experiment(cfg: DictConfig, out_dir: Optional[Path], progress: bool = True,
                   callbacks: Sequence[Callback] = (),
                   model_factory: Optional[Callable[..., torch.nn.Module]] = None
                   ) -> Dict[str, Any]:
    """Runs the configured task and writes all outputs into ``out_dir``.

    Outputs: ``config_resolved.yaml``, ``metrics.json``, ``checkpoints/{best,last}.pt``,
    ``training_curve.png`` and, with ``export.time`` set, ``embeddings.pt``.

    Started by ``torchrun`` (or :func:`pyg_tgl.train.distributed.launch_local`), the process
    joins the process group and trains data parallel; rank 0 writes the outputs (``out_dir`` of
    the other ranks is ignored), every rank returns the same result.

    ``callbacks``: :class:`~pyg_tgl.train.callbacks.Callback` instances called during the
    link training, after the loggers and the callbacks of ``cfg.callbacks``.
    ``model_factory``: builds the model instead of :func:`pyg_tgl.models.build_model` (same
    signature; a model composed from parts, ``docs/models.md``).

    Raises:
        ConfigError: for bad options or data that does not fit them (one line).
    """
    from pyg_tgl.train.distributed import init_distributed, shutdown
    cfg = normalize_config(cfg)
    validate_config(cfg)
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
        from pyg_tgl.train.node import run_node_classification
        result["node"] = run_node_classification(cfg, ctx, model, progress=progress)
    _write_json(result, out_dir / "metrics.json")
    if result["epochs"]:
        _plot_curves(result["epochs"], out_dir / "training_curve.png")
    export_time = _get(cfg, "export.time")
    if export_time is not None:
        from pyg_tgl.embed import export_embeddings
        export_embeddings(cfg, ctx, model, float(export_time), out_dir / "embeddings.pt",
                          nodes=_get(cfg, "export.nodes"))
    return result
