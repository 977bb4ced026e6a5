r"""Resuming an interrupted run: which checkpoint, when checkpoints are written, and the check that
a resumed run is the run that was interrupted.

``checkpoints/last.pt`` is written at the end of every epoch and, with ``train.checkpoint_every``,
inside an epoch too (every N batches, or every so many minutes), so a run killed hours into one
of TGL's long epochs (GDELT, MAG) loses at most that interval. A mid-epoch checkpoint holds what
the rest of the epoch needs to repeat the uninterrupted run exactly: parameters, optimizer, node
memory and mailbox, the loader's random streams as of the last batch trained (not the batches a
prefetching loader drew ahead), every rank's RNG and the epoch's losses so far.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from omegaconf import DictConfig, OmegaConf

from pyg_tgl.config.check import with_defaults
from pyg_tgl.config.errors import ConfigError
from pyg_tgl.config.forms import parse_checkpoint_every
from pyg_tgl.train.checkpoint import rng_state, set_rng_state
from pyg_tgl.train.validation import _get

log = logging.getLogger("pyg_tgl")

#: ``train`` options a resumed run may change: how long it trains and how often it saves.
RESUMABLE_CHANGES = ("epoch", "patience", "checkpoint_every")


def _read_through_schema(config: Dict[str, Any]) -> Dict[str, Any]:
    """A :func:`comparable_config` dict with every option it lacks at the schema's default: a
    checkpoint written before an option existed trained what that default trains (each new
    option's default keeps the behaviour from before it)."""
    filled = with_defaults(config)
    train = filled.get("train")
    if isinstance(train, dict):
        for key in RESUMABLE_CHANGES:
            train.pop(key, None)
    return filled


def _changed_options(saved: Dict[str, Any], current: Dict[str, Any], prefix: str = "") -> List[str]:
    """Dotted names of the options whose values differ between two :func:`comparable_config`
    dicts."""
    out = []
    for key in sorted(set(saved) | set(current), key=str):
        a, b, name = saved.get(key), current.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_options(a, b, name + ".")
        elif a != b or (key in saved) != (key in current):
            out.append(name)
    return out


def comparable_config(cfg: DictConfig) -> Dict[str, Any]:
    """The parts of a configuration a resumed run must share with the interrupted one."""
    out = {}
    for key in ("model", "data", "schedule", "task", "seed"):
        out[key] = OmegaConf.to_container(cfg[key], resolve=True) if isinstance(
            cfg.get(key), DictConfig) else cfg.get(key)
    train = OmegaConf.to_container(cfg.train, resolve=True)
    for key in RESUMABLE_CHANGES:
        train.pop(key, None)
    out["train"] = train
    return out


def check_same_run(saved_config: Dict[str, Any], cfg: DictConfig, resume: Any) -> None:
    """Refuses to resume a checkpoint written with other options, naming them."""
    changed = _changed_options(_read_through_schema(saved_config),
                               _read_through_schema(comparable_config(cfg)))
    if changed:
        raise ConfigError(f"resume={resume!r}: the checkpoint was written with different "
                          f"options ({', '.join(changed)}); resume with the same configuration")


def checkpoint_to_resume(cfg: DictConfig, out_dir: Path) -> Optional[Path]:
    """The ``last.pt`` that ``resume`` points at; ``None`` when the run starts from the beginning.

    ``resume=true`` reads the run directory's checkpoint, ``resume=DIR`` another run's. When that
    directory holds a run (its ``config_resolved.yaml``) that stopped before its first
    checkpoint, the run starts from the beginning, which is what resuming it means, with a
    warning. Call this before the run writes its own ``config_resolved.yaml``.

    Raises:
        ConfigError: the directory holds no run at all (a wrong path).
    """
    resume = _get(cfg, "resume", False)
    if not resume:
        return None
    run_dir = out_dir if resume is True else Path(str(resume))
    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        return last
    if (run_dir / "config_resolved.yaml").is_file():
        log.warning("resume=%r: %s has no checkpoint yet (the run stopped before its first epoch "
                    "ended and before train.checkpoint_every); starting it from the beginning",
                    resume, run_dir)
        return None
    raise ConfigError(f"resume={resume!r}: no checkpoint at {last}, and {run_dir} holds no run; "
                      f"point hydra.run.dir (or resume=) at the interrupted run's directory")


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


def training_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, train_loader: Any,
                   dist: Any, cfg: DictConfig, epoch_done: int, history: List[Dict[str, Any]],
                   best: Dict[str, Any], bad_epochs: int,
                   mid_epoch: Optional[Any] = None) -> Dict[str, Any]:
    """The content of ``checkpoints/last.pt`` after epoch ``epoch_done`` (``-1``: none yet) and,
    with ``mid_epoch`` (an :class:`~pyg_tgl.train.loop.EpochProgress`), inside the next one.

    A collective under data parallelism (every rank's RNG and losses are gathered): call it on
    every rank; rank 0 writes the result.
    """
    state: Dict[str, Any] = {
        "model": model_state(model), "optimizer": optimizer.state_dict(),
        "train_loader": train_loader.state_dict(), "rng": rng_state(),
        # Every rank's RNG (dropout masks differ per rank), so a resumed run repeats exactly.
        "rng_ranks": dist.all_gather_object(rng_state()) if dist.enabled else None,
        "epoch": epoch_done, "history": history, "best": best, "bad_epochs": bad_epochs,
        "config": comparable_config(cfg)}
    if mid_epoch is not None:
        progress = mid_epoch.state_dict()
        losses = progress.pop("losses")
        progress["losses_ranks"] = dist.all_gather_object(losses) if dist.enabled else [losses]
        state["mid_epoch"] = progress
    return state


def restore_training_state(state: Dict[str, Any], cfg: DictConfig, model: torch.nn.Module,
                           optimizer: torch.optim.Optimizer, train_loader: Any, dist: Any
                           ) -> Tuple[List[Dict[str, Any]], Dict[str, Any], int, Optional[Any]]:
    """Loads a :func:`training_state` into the run's objects (after :func:`check_same_run`).

    Returns:
        tuple: ``(history, best, bad_epochs, partial)``: ``partial`` is the interrupted epoch's
        :class:`~pyg_tgl.train.loop.EpochProgress`, or ``None`` after a whole epoch.

    Raises:
        ConfigError: other options, or a mid-epoch checkpoint of another number of ranks.
    """
    from pyg_tgl.train.loop import EpochProgress
    resume = _get(cfg, "resume")
    check_same_run(state["config"], cfg, resume)
    mid = state.get("mid_epoch")
    if mid is not None and len(mid["losses_ranks"]) != dist.world_size:
        raise ConfigError(f"resume={resume!r}: the checkpoint was written inside an epoch by "
                          f"{len(mid['losses_ranks'])} rank(s); resume it with as many (this run "
                          f"has {dist.world_size}), or from an epoch's end")
    load_model_state(model, state["model"])
    optimizer.load_state_dict(state["optimizer"])
    train_loader.load_state_dict(state["train_loader"])
    ranks_rng = state.get("rng_ranks")
    set_rng_state(ranks_rng[dist.rank] if ranks_rng and len(ranks_rng) == dist.world_size
                  else state["rng"])
    partial = None
    if mid is not None:
        device = next(iter(model.parameters())).device
        partial = EpochProgress.from_state_dict(
            {**mid, "losses": mid["losses_ranks"][dist.rank]}, device)
    return state["history"], state["best"], int(state["bad_epochs"]), partial


class CheckpointPolicy:
    r"""Decides at each batch end whether a mid-epoch checkpoint is due.

    Under data parallelism every rank must save at the same step (the checkpoint gathers every
    rank's RNG): a time-based decision is rank 0's, broadcast every :attr:`DIST_CHECK_EVERY`
    batches (a collective per step would be a host synchronisation per step on GPUs); a batch
    count is the same on every rank anyway.

    Args:
        every: ``train.checkpoint_every`` (see
            :func:`~pyg_tgl.config.forms.parse_checkpoint_every`).
        dist: the run's :class:`~pyg_tgl.train.distributed.DistEnv`.
    """

    DIST_CHECK_EVERY = 32

    def __init__(self, every: Any, dist: Any) -> None:
        self.every = parse_checkpoint_every(every)
        self.dist = dist
        self._last = time.monotonic()

    def due(self, batches_done: int) -> bool:
        if self.every is None:
            return False
        kind, amount = self.every
        if kind == "batches":
            return batches_done % int(amount) == 0
        if self.dist.enabled:
            if batches_done % self.DIST_CHECK_EVERY:
                return False
            return bool(self.dist.broadcast_object(time.monotonic() - self._last >= amount))
        return time.monotonic() - self._last >= amount

    def saved(self) -> None:
        """Restarts the interval (after any checkpoint, the epoch's own included)."""
        self._last = time.monotonic()
