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

import copy
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from omegaconf import DictConfig, OmegaConf

from pyg_tgl.data.loader import ROOT_TIMES
from pyg_tgl.train.checkpoint import (load_checkpoint, rng_state, save_checkpoint,
                                      seed_everything, set_rng_state)
from pyg_tgl.train.distributed import DistEnv, worker_threads
from pyg_tgl.train.edgebank_run import is_edgebank, run_edgebank, validate_edgebank_config
from pyg_tgl.train.loop import LOSSES, PRECISIONS, LinkTrainer, default_dtype
from pyg_tgl.train.schedule import SCHEDULES, VARIANTS, BatchSchedule
from pyg_tgl.train.splits import cap_split, inductive_mask

log = logging.getLogger("pyg_tgl")

MODELS = ("jodie", "dysat", "tgat", "tgn", "apan", "edgebank")
TASKS = ("link", "node")
NEG_SAMPLING = ("random", "historical", "inductive")
STRATEGIES = ("recent", "uniform")
MEMORY_TYPES = ("node", "none")
TIES = ("average", "optimistic", "pessimistic")
SELECT = ("best", "last")
SELECT_METRICS = ("ap", "auc", "mrr", "loss")


class ConfigError(ValueError):
    """A bad option: the message is one line naming the option and what is allowed."""


# ------------------------------------------------------------------------------------------------
# Configuration checks
# ------------------------------------------------------------------------------------------------

def _get(cfg: Any, path: str, default: Any = None) -> Any:
    return OmegaConf.select(cfg, path, default=default)


def _choice(cfg: Any, path: str, allowed: Tuple[str, ...], default: Any = None) -> Any:
    value = _get(cfg, path, default)
    if value not in allowed:
        raise ConfigError(f"{path}={value!r} is not supported; allowed values: {list(allowed)}")
    return value


def _positive_int(cfg: Any, path: str, minimum: int = 1, allow_none: bool = False) -> None:
    value = _get(cfg, path)
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{path}={value!r}: expected an integer >= {minimum}")


def sampling_options(model_cfg: Any) -> Dict[str, Any]:
    """Maps TGL's ``sampling`` section to :class:`~pyg_tgl.data.loader.TemporalNeighborLoader`
    arguments (``no_sample: true`` means no neighbourhood at all, as JODIE)."""
    s = model_cfg.get("sampling", None) or {}
    if s.get("no_sample", False):
        neighbors: List[int] = []
    else:
        neighbors = [int(k) for k in (s.get("neighbor", None) or [])]
    return {
        "num_neighbors": neighbors,
        "strategy": s.get("strategy", "recent"),
        "prop_time": bool(s.get("prop_time", False)),
        "history": int(s.get("history", 1)),
        "duration": float(s.get("duration", 0) or 0),
        "num_threads": s.get("num_thread", None),
        "no_neg": bool(s.get("no_neg", False)),
        "root_time": str(s.get("root_time", "event")),
        "dedup": None if s.get("dedup", None) is None else bool(s["dedup"]),
    }


def validate_config(cfg: DictConfig) -> None:
    """Checks options and their combinations before anything is loaded.

    Raises:
        ConfigError: one line naming the option and the allowed values.
    """
    _choice(cfg, "task.name", TASKS)
    _positive_int(cfg, "train.epoch", 1)
    _positive_int(cfg, "train.batch_size", 1)
    _positive_int(cfg, "train.num_negatives", 1)
    _positive_int(cfg, "eval.num_negatives", 1)
    _positive_int(cfg, "eval.batch_size", 1, allow_none=True)
    _positive_int(cfg, "eval.val_num_negatives", 1)
    _positive_int(cfg, "train.max_events", 3, allow_none=True)
    _positive_int(cfg, "train.patience", 0)
    _choice(cfg, "train.loss", LOSSES)
    _choice(cfg, "train.neg_sampling", NEG_SAMPLING)
    _choice(cfg, "eval.neg_sampling", NEG_SAMPLING)
    _choice(cfg, "eval.ties", TIES)
    _choice(cfg, "eval.select", SELECT)
    _choice(cfg, "eval.metric", SELECT_METRICS)
    _choice(cfg, "hardware.precision", PRECISIONS, "float32")
    lr = _get(cfg, "train.lr")
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise ConfigError(f"train.lr={lr!r}: expected a positive number")
    for p in ("train.dropout", "train.att_dropout"):
        v = _get(cfg, p, 0.0)
        if not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise ConfigError(f"{p}={v!r}: expected a number in [0, 1)")

    name = _choice(cfg, "schedule.name", SCHEDULES)
    if name == "random_chunk":
        _positive_int(cfg, "schedule.reorder", 1)
        _choice(cfg, "schedule.variant", VARIANTS)
        bs, reorder = _get(cfg, "train.batch_size"), _get(cfg, "schedule.reorder")
        if bs < reorder:
            raise ConfigError(
                f"train.batch_size={bs} < schedule.reorder={reorder}: random chunk scheduling "
                f"needs chunks of batch_size // reorder >= 1 events; lower schedule.reorder or "
                f"raise train.batch_size")

    model = cfg.get("model", None)
    if model is None:
        raise ConfigError(f"model is not set; allowed values: {list(MODELS)}")
    s = sampling_options(model)
    if s["num_neighbors"]:
        _choice(cfg, "model.sampling.strategy", STRATEGIES, "recent")
        _choice(cfg, "model.sampling.root_time", ROOT_TIMES, "event")
        layer = _get(cfg, "model.sampling.layer", len(s["num_neighbors"]))
        if layer != len(s["num_neighbors"]):
            raise ConfigError(
                f"model.sampling.neighbor={s['num_neighbors']} has {len(s['num_neighbors'])} "
                f"entries but model.sampling.layer={layer}; give one fan-out per layer")
        if any(k < 1 for k in s["num_neighbors"]):
            raise ConfigError(f"model.sampling.neighbor={s['num_neighbors']}: fan-outs must be "
                              f">= 1")
    if s["history"] < 1:
        raise ConfigError(f"model.sampling.history={s['history']}: expected >= 1 snapshot")
    if s["history"] > 1 and s["duration"] <= 0:
        raise ConfigError(
            f"model.sampling.history={s['history']} snapshots need model.sampling.duration > 0 "
            f"(got {s['duration']}): snapshot sampling without a snapshot length is undefined")
    if s["duration"] > 0 and s["history"] == 1 and s["strategy"] == "recent" and \
            s["num_neighbors"]:
        raise ConfigError(
            f"model.sampling.duration={s['duration']} with history=1 and strategy='recent': "
            f"snapshot sampling needs model.sampling.history > 1 (or duration: 0)")
    if s["no_neg"] and s["num_neighbors"]:
        arch = _get(cfg, "model.gnn.arch", "transformer_attention")
        if arch != "identity" or _get(cfg, "model.gnn.pair_features", False):
            what = (f"model.gnn.arch={arch!r}" if arch != "identity"
                    else "model.gnn.pair_features=true")
            raise ConfigError(
                f"model.sampling.no_neg=true leaves the negatives without neighbourhoods, but "
                f"{what} needs them; set model.sampling.no_neg=false")
    mem_type = _choice(cfg, "model.memory.type", MEMORY_TYPES, "none")
    if mem_type != "none" and _get(cfg, "model.memory.deliver_to", "self") == "neighbors" and \
            not s["num_neighbors"]:
        raise ConfigError(
            "model.memory.deliver_to='neighbors' needs sampled neighbours; set "
            "model.sampling.neighbor or deliver_to: self")
    from pyg_tgl.train.distributed import BACKENDS
    _choice(cfg, "hardware.distributed.backend", BACKENDS, "auto")
    nproc = _get(cfg, "hardware.distributed.nproc_per_node", 1)
    if nproc != "auto" and (not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1):
        raise ConfigError(f"hardware.distributed.nproc_per_node={nproc!r}: expected 'auto' or an "
                          f"integer >= 1")
    unused = _get(cfg, "hardware.distributed.find_unused_parameters", "auto")
    if unused not in ("auto", True, False):
        raise ConfigError(f"hardware.distributed.find_unused_parameters={unused!r}: expected "
                          f"auto, true or false")
    timeout = _get(cfg, "hardware.distributed.timeout_s", 300)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError(f"hardware.distributed.timeout_s={timeout!r}: expected seconds > 0")
    if is_edgebank(cfg):
        validate_edgebank_config(cfg)
    device = str(_get(cfg, "hardware.device", "auto"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"hardware.device={device!r} but CUDA is not available here; allowed "
                          f"values on this machine: ['auto', 'cpu']")


def find_unused_parameters(cfg: DictConfig) -> Optional[bool]:
    """``hardware.distributed.find_unused_parameters``; ``None`` for ``auto`` (decided from the
    model: :func:`~pyg_tgl.train.distributed.searches_unused_parameters`)."""
    value = _get(cfg, "hardware.distributed.find_unused_parameters", "auto")
    return None if value == "auto" else bool(value)


def validate_dataset(cfg: DictConfig, ds: Any) -> None:
    """Checks that the data set fits the configuration (node ids for memory, labels for the
    node task)."""
    data = ds.data
    name = _get(cfg, "data.name", "?")
    if data.src.numel() < 3:
        raise ConfigError(f"data={name!r} holds {data.src.numel()} events; at least 3 are needed "
                          f"(one per split)")
    max_id = int(torch.maximum(data.src.max(), data.dst.max()))
    if ds.num_nodes is None or ds.num_nodes <= max_id:
        raise ConfigError(
            f"data={name!r}: node ids must be integers in [0, num_nodes) for "
            f"model.memory / sampling, got max id {max_id} with num_nodes={ds.num_nodes}")
    if _get(cfg, "task.name") == "node" and getattr(ds, "node_labels", None) is None:
        raise ConfigError(f"task=node needs node labels, but data={name!r} has none; use a data "
                          f"set with labels (e.g. data=wikipedia_nofeat) or task=link")


def resolve_device(spec: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch."""
    if spec in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


# ------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------

def load_data(cfg: DictConfig, dist: Optional[DistEnv] = None) -> Any:
    """``load_dataset(**cfg.data)`` with file errors turned into one-line :class:`ConfigError`.

    Data parallel: the first rank of each machine loads first (processing the raw files and
    writing the cache once), then the others read the cache; with the cache on, arrays are
    memory-mapped so the ranks of a machine share one copy in the page cache.
    """
    options = OmegaConf.to_container(cfg.data, resolve=True)
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


def build_model(cfg: DictConfig, ds: Any, device: torch.device) -> torch.nn.Module:
    """Instantiates :class:`~pyg_tgl.nn.TemporalGNN` for the data set's features."""
    from pyg_tgl.nn import TemporalGNN
    node_feat = ds.node_feat
    edge_feat = ds.edge_feat
    on_device = bool(_get(cfg, "hardware.all_on_gpu", True))
    if on_device:
        # TGL's all_on_gpu: features live on the compute device, no per-batch host copy.
        node_feat = None if node_feat is None else node_feat.to(device)
        edge_feat = None if edge_feat is None else edge_feat.to(device)
    model = TemporalGNN(
        cfg.model, ds.num_nodes,
        dim_node_feat=0 if node_feat is None else int(node_feat.size(1)),
        dim_edge_feat=0 if edge_feat is None else int(edge_feat.size(1)),
        dropout=float(_get(cfg, "train.dropout", 0.2)),
        att_dropout=float(_get(cfg, "train.att_dropout", _get(cfg, "train.dropout", 0.2))),
        node_feat=node_feat, edge_feat=edge_feat)
    return model.to(device)


def model_state(model: torch.nn.Module) -> Dict[str, Any]:
    """Parameters plus the memory/mailbox state and the pair history (which live outside
    ``state_dict``)."""
    state: Dict[str, Any] = {"params": model.state_dict()}
    memory = getattr(model, "memory", None)
    if memory is not None and hasattr(memory, "memory_state"):
        state["memory"] = memory.memory_state()
    history = getattr(model, "pair_history", None)
    if history is not None:
        state["pair_history"] = history.history_state()
    return state


def load_model_state(model: torch.nn.Module, state: Dict[str, Any]) -> None:
    """Inverse of :func:`model_state`."""
    model.load_state_dict(state["params"])
    memory = getattr(model, "memory", None)
    if state.get("memory") is not None and memory is not None:
        memory.load_memory_state(state["memory"])
    history = getattr(model, "pair_history", None)
    if state.get("pair_history") is not None and history is not None:
        history.load_history_state(state["pair_history"])


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


# Options added after checkpoints were already being written, with the value that trains what those
# checkpoints trained. A checkpoint that lacks one resumes when the current run keeps that value.
# (``sampling.dedup: null`` deduplicates only where that is exact, so its results are the same.)
ADDED_OPTIONS: Dict[Tuple[str, ...], Any] = {
    ("model", "sampling", "root_time"): "event",
    ("model", "sampling", "dedup"): None,
    ("model", "memory", "storage_dtype"): "float32",
}


def _with_added_options(saved: Dict[str, Any]) -> Dict[str, Any]:
    """A :func:`_comparable` dict with the :data:`ADDED_OPTIONS` it lacks filled in."""
    saved = copy.deepcopy(saved)
    for path, value in ADDED_OPTIONS.items():
        section = saved
        for key in path[:-1]:
            section = section.get(key) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section.setdefault(path[-1], value)
    return saved


def _changed_options(saved: Dict[str, Any], current: Dict[str, Any], prefix: str = "") -> List[str]:
    """Dotted names of the options whose values differ between two :func:`_comparable` dicts."""
    out = []
    for key in sorted(set(saved) | set(current), key=str):
        a, b, name = saved.get(key), current.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_options(a, b, name + ".")
        elif a != b or (key in saved) != (key in current):
            out.append(name)
    return out


def _comparable(cfg: DictConfig) -> Dict[str, Any]:
    """The parts of a configuration a resumed run must share with the interrupted one."""
    out = {}
    for key in ("model", "data", "schedule", "task", "seed"):
        out[key] = OmegaConf.to_container(cfg[key], resolve=True) if isinstance(
            cfg.get(key), DictConfig) else cfg.get(key)
    train = OmegaConf.to_container(cfg.train, resolve=True)
    train.pop("epoch", None)  # resuming with more epochs is allowed
    train.pop("patience", None)
    out["train"] = train
    return out


# ------------------------------------------------------------------------------------------------
# Link prediction
# ------------------------------------------------------------------------------------------------

def train_link(cfg: DictConfig, ctx: Context, model: torch.nn.Module, out_dir: Path,
               progress: bool = True) -> Dict[str, Any]:
    """Trains with validation after each epoch, keeps the best (or last) epoch, then tests.

    Writes ``metrics.json`` after every epoch (``"finished": false`` until the test is done),
    ``checkpoints/last.pt`` (everything needed to resume) and ``checkpoints/best.pt``.

    Returns:
        dict: the content of ``metrics.json``.
    """
    seed = int(cfg.seed)
    split = ctx.split
    dist = ctx.dist
    main = dist.is_main  # only rank 0 writes files
    ckpt_dir = out_dir / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg.train.lr))
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
                          find_unused_parameters=find_unused_parameters(cfg))
    metric = cfg.eval.metric
    sign = -1.0 if metric == "loss" else 1.0
    history: List[Dict[str, Any]] = []
    best: Dict[str, Any] = {"epoch": -1, "score": -math.inf, "val": {}}
    bad_epochs, start_epoch = 0, 0

    resume = _get(cfg, "resume", False)
    if resume:
        src = last_path if resume is True else Path(str(resume)) / "checkpoints" / "last.pt"
        # Rank 0 reads the checkpoint and hands it to the others (no shared file system needed).
        found = dist.broadcast_object(src.is_file() if main else None)
        if not found:
            raise ConfigError(
                f"resume={resume!r}: no checkpoint at {src}; point hydra.run.dir (or resume=) "
                f"at the interrupted run's directory")
        state = dist.broadcast_object(load_checkpoint(src, map_location="cpu") if main else None)
        changed = _changed_options(_with_added_options(state["config"]),
                                   _with_added_options(_comparable(cfg)))
        if changed:
            raise ConfigError(f"resume={resume!r}: the checkpoint was written with different "
                              f"options ({', '.join(changed)}); resume with the same configuration")
        load_model_state(model, state["model"])
        optimizer.load_state_dict(state["optimizer"])
        train_loader.load_state_dict(state["train_loader"])
        history, best = state["history"], state["best"]
        bad_epochs, start_epoch = state["bad_epochs"], state["epoch"] + 1
        ranks_rng = state.get("rng_ranks")
        set_rng_state(ranks_rng[dist.rank] if ranks_rng and len(ranks_rng) == dist.world_size
                      else state["rng"])
        if main and resume is not True and Path(str(resume)) != out_dir:
            best_src = Path(str(resume)) / "checkpoints" / "best.pt"
            if best_src.is_file():
                save_checkpoint(load_checkpoint(best_src), best_path)
        log.info("resumed from %s after epoch %d", src, state["epoch"])

    stopped_early = False
    for epoch in range(start_epoch, int(cfg.train.epoch)):
        if bad_epochs and cfg.train.patience and bad_epochs >= cfg.train.patience:
            stopped_early = True
            break
        stats = trainer.train_epoch(epoch)
        val_loader.load_state_dict(val_init)
        val = trainer.evaluate(val_loader, ctx.inductive, desc="val")
        record = {"epoch": epoch, "loss": stats["loss"],
                  **{f"val_{k}": v for k, v in val.items() if k != "time"},
                  "time_sample": stats["time_sample"], "time_memory": stats["time_memory"],
                  "time_compute": stats["time_compute"], "time_update": stats["time_update"],
                  "time_sync": stats["time_sync"],
                  "sync_bytes_per_step": stats["sync_bytes_per_step"],
                  "time_train": stats["time_total"], "time_eval": val["time"],
                  "events_per_s": stats["events_per_s"], "num_events": stats["num_events"],
                  "num_batches": stats["num_batches"], "schedule": stats["schedule"]}
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
        # Every rank's RNG (dropout masks differ per rank), so a resumed run repeats exactly.
        rng_ranks = dist.all_gather_object(rng_state()) if dist.enabled else None
        if main:
            save_checkpoint({"model": model_state(model), "optimizer": optimizer.state_dict(),
                             "train_loader": train_loader.state_dict(), "rng": rng_state(),
                             "rng_ranks": rng_ranks, "epoch": epoch, "history": history,
                             "best": best, "bad_epochs": bad_epochs,
                             "config": _comparable(cfg)}, last_path)
            _write_json({"finished": False, "epochs": history, "best_epoch": best["epoch"]},
                        out_dir / "metrics.json")
        log.info("epoch %d  loss %.4f  val ap %.4f auc %.4f mrr %.4f  train %.1fs (sample %.1f "
                 "memory %.1f compute %.1f update %.1f)  %.0f ev/s  eval %.1fs", epoch,
                 stats["loss"], val.get("ap", math.nan), val.get("auc", math.nan),
                 val.get("mrr", math.nan), stats["time_total"], stats["time_sample"],
                 stats["time_memory"], stats["time_compute"], stats["time_update"],
                 stats["events_per_s"], val["time"])

    # ---- test ----
    chosen = dist.broadcast_object(load_checkpoint(best_path, map_location="cpu")
                                   if main else None)
    load_model_state(model, chosen["model"])
    test_loader = ctx.loader(split["test"], int(cfg.eval.num_negatives), cfg.eval.neg_sampling,
                             seed + 2, ctx.eval_batch_size)
    t0 = time.perf_counter()
    if not cfg.eval.memory_carry:
        trainer.reset_state()
        for part in ("train", "val"):
            replay = ctx.loader(split[part], 1, "random", seed + 3, ctx.eval_batch_size)
            trainer.evaluate(replay, desc=f"replay {part}", score=False)
    test = trainer.evaluate(test_loader, ctx.inductive, desc="test")
    test["time"] = time.perf_counter() - t0
    log.info("test (epoch %d, %s protocol): ap %.4f auc %.4f mrr %.4f (k=%d) | inductive ap %s "
             "| batch-mean ap %.4f", chosen["epoch"],
             "memory-carry" if cfg.eval.memory_carry else "TGL", test.get("ap", math.nan),
             test.get("auc", math.nan), test.get("mrr", math.nan), cfg.eval.num_negatives,
             f"{test['inductive_ap']:.4f}" if "inductive_ap" in test else "n/a",
             test.get("ap_batch_mean", math.nan))
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
    return result


# ------------------------------------------------------------------------------------------------
# Entry
# ------------------------------------------------------------------------------------------------

def run_experiment(cfg: DictConfig, out_dir: Optional[Path], progress: bool = True
                   ) -> Dict[str, Any]:
    """Runs the configured task and writes all outputs into ``out_dir``.

    Outputs: ``config_resolved.yaml``, ``metrics.json``, ``checkpoints/{best,last}.pt``,
    ``training_curve.png`` and, with ``export.time`` set, ``embeddings.pt``.

    Started by ``torchrun`` (or :func:`pyg_tgl.train.distributed.launch_local`), the process
    joins the process group and trains data parallel; rank 0 writes the outputs (``out_dir`` of
    the other ranks is ignored), every rank returns the same result.

    Raises:
        ConfigError: for bad options or data that does not fit them (one line).
    """
    from pyg_tgl.train.distributed import init_distributed, shutdown
    validate_config(cfg)
    device = resolve_device(_get(cfg, "hardware.device", "auto"))
    dist, device = init_distributed(
        device, str(_get(cfg, "hardware.distributed.backend", "auto")),
        float(_get(cfg, "hardware.distributed.timeout_s", 300)))
    try:
        with default_dtype(str(_get(cfg, "hardware.precision", "float32"))):
            return _run(cfg, Path(out_dir) if out_dir is not None else None, progress, dist,
                        device)
    finally:
        if dist.enabled:
            shutdown()


def _run(cfg: DictConfig, out_dir: Optional[Path], progress: bool, dist: DistEnv,
         device: torch.device) -> Dict[str, Any]:
    main = dist.is_main
    if main:
        if out_dir is None:
            raise ValueError("run_experiment: rank 0 needs an output directory")
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if dist.enabled and cfg.task.name == "node":
        raise ConfigError("task=node runs in one process; data-parallel training "
                          "(hardware.distributed) supports task=link")
    threads = _get(cfg, "hardware.num_threads")
    if threads or dist.enabled:
        torch.set_num_threads(worker_threads(dist.local_world_size, threads))
    seed_everything(int(cfg.seed), bool(_get(cfg, "deterministic", False)))
    ds = load_data(cfg, dist)
    validate_dataset(cfg, ds)
    ctx = Context(cfg, ds, device, dist)
    if is_edgebank(cfg):  # link task, nothing to train: pyg_tgl/train/edgebank_run.py
        return run_edgebank(cfg, ctx, out_dir)
    model = build_model(cfg, ds, device)
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
        result = train_link(cfg, ctx, model, out_dir if main else Path("."), progress=progress)
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
