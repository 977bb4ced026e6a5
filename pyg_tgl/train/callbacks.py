r"""Callbacks: user code called by the trainer at fixed points of a run.

Subclass :class:`Callback` and override the hooks you need; every hook gets the
:class:`RunInfo` of the run first. Order within one run::

    on_train_start
    for each epoch:  on_epoch_start, on_batch_end (per batch), on_validation_end, on_epoch_end
    on_test_end, on_train_end

``on_epoch_end`` runs after the epoch's checkpoint and ``metrics.json`` were written. On a
resumed run, ``on_train_start`` sees the epochs already done in ``run.history`` and the epoch
loop starts at ``run.start_epoch``.

Give callbacks from Python (``run_experiment(cfg, out_dir, callbacks=[MyCallback()])``) or in
the configuration, as a list of Hydra ``_target_`` entries (or a mapping name -> entry)::

    callbacks:
      - _target_: my_package.MyCallback
        every: 10

The loggers of ``logger`` (:mod:`pyg_tgl.train.loggers`) are callbacks too; they run on rank 0
alone, user callbacks on every rank of a data-parallel run (test ``run.is_main`` to act once).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor

from pyg_tgl.train.errors import ConfigError


@dataclass
class RunInfo:
    """What a callback may read about the run.

    Attributes:
        cfg: the run's configuration.
        out_dir: the run directory (``None`` on ranks other than 0).
        model: the model being trained.
        optimizer: the optimizer the loop steps (its ``param_groups[0]["lr"]`` is the rate).
        rank: this process's rank; ``world_size`` the number of ranks.
        start_epoch: the first epoch this process trains (``> 0`` on a resumed run).
        history: per-epoch records of ``metrics.json`` of the epochs already done.
    """

    cfg: Any
    out_dir: Optional[Path]
    model: torch.nn.Module
    optimizer: Any
    rank: int = 0
    world_size: int = 1
    start_epoch: int = 0
    history: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        """Rank 0, the process that writes the run directory."""
        return self.rank == 0


@dataclass
class StepInfo:
    """One training step, as :meth:`Callback.on_batch_end` sees it.

    Attributes:
        epoch: the epoch.
        batch: the batch's index within the epoch; ``num_batches`` the epoch's batch count.
        num_events: events of the (global) batch.
        loss: this rank's loss of the step, a detached 0-dim tensor on the model's device
            (``float(step.loss)`` waits for the device: read it every few batches on a GPU).
        lr: the learning rate of the step.
    """

    epoch: int
    batch: int
    num_batches: int
    num_events: int
    loss: Tensor
    lr: float


class Callback:
    """Base class of callbacks: every hook does nothing; override those you need."""

    def on_train_start(self, run: RunInfo) -> None:
        """Before the first epoch (after a resume restored the run's state)."""

    def on_epoch_start(self, run: RunInfo, epoch: int, num_batches: int) -> None:
        """Before the first batch of ``epoch``."""

    def on_batch_end(self, run: RunInfo, step: StepInfo) -> None:
        """After each optimizer step and memory update."""

    def on_validation_end(self, run: RunInfo, epoch: int, metrics: Dict[str, Any]) -> None:
        """After the validation pass of ``epoch`` (``metrics``: ``ap``, ``auc``, ``mrr``, ...)."""

    def on_epoch_end(self, run: RunInfo, record: Dict[str, Any]) -> None:
        """After ``epoch``'s checkpoint; ``record`` is its entry of ``metrics.json``
        (``epoch``, ``loss``, ``val_*``, ``time_*``, ``lr``, ...)."""

    def on_test_end(self, run: RunInfo, epoch: int, metrics: Dict[str, Any]) -> None:
        """After the test of the selected ``epoch`` (``metrics`` is ``metrics.json``'s
        ``test``)."""

    def on_train_end(self, run: RunInfo, result: Dict[str, Any]) -> None:
        """At the end of the link-prediction run (``result``: the content of
        ``metrics.json``)."""


class CallbackList:
    """Calls the hooks of several callbacks in order (what the trainer holds).

    Args:
        callbacks (iterable of Callback): the callbacks.
    """

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)
        self.run: Optional[RunInfo] = None
        self._epoch, self._batch, self._num_batches = 0, 0, 0

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self.run, *args)

    def train_start(self, run: RunInfo) -> None:
        self.run = run
        self._call("on_train_start")

    def epoch_start(self, epoch: int, num_batches: int, first_batch: int = 0) -> None:
        """``first_batch``: the index of the epoch's first batch trained in this process (a
        run resumed mid-epoch)."""
        self._epoch, self._batch, self._num_batches = int(epoch), int(first_batch), num_batches
        self._call("on_epoch_start", epoch, num_batches)

    def batch_end(self, num_events: int, loss: Tensor, lr: float) -> None:
        step = StepInfo(self._epoch, self._batch, self._num_batches, int(num_events), loss,
                        float(lr))
        self._batch += 1
        self._call("on_batch_end", step)

    def validation_end(self, epoch: int, metrics: Dict[str, Any]) -> None:
        self._call("on_validation_end", epoch, metrics)

    def epoch_end(self, record: Dict[str, Any]) -> None:
        self._call("on_epoch_end", record)

    def test_end(self, epoch: int, metrics: Dict[str, Any]) -> None:
        self._call("on_test_end", epoch, metrics)

    def train_end(self, result: Dict[str, Any]) -> None:
        self._call("on_train_end", result)


def _entries(cfg: Any) -> List[Any]:
    entries = OmegaConf.select(cfg, "callbacks", default=None)
    if entries is None:
        return []
    if isinstance(entries, DictConfig):
        return [(f"callbacks.{k}", v) for k, v in entries.items()]
    if isinstance(entries, (ListConfig, list)):
        return [(f"callbacks[{i}]", v) for i, v in enumerate(entries)]
    raise ConfigError(f"callbacks={entries!r}: expected a list of entries with a _target_ "
                      f"(or a mapping of names to such entries)")


def validate_callbacks_config(cfg: Any) -> None:
    """Checks that every ``callbacks`` entry names a ``_target_`` (before anything is loaded).

    Raises:
        ConfigError: naming the entry.
    """
    for where, entry in _entries(cfg):
        target = entry.get("_target_", None) if isinstance(entry, DictConfig) else None
        if not isinstance(target, str) or not target:
            raise ConfigError(f"{where}={entry!r}: expected a mapping with a _target_ naming a "
                              f"Callback class, e.g. {{_target_: my_package.MyCallback}}")


def config_callbacks(cfg: Any) -> List[Callback]:
    """The callbacks of ``cfg.callbacks``, built with :func:`hydra.utils.instantiate`.

    Raises:
        ConfigError: an entry that cannot be built or builds something that is not a
            :class:`Callback`.
    """
    from hydra.utils import instantiate
    out = []
    for where, entry in _entries(cfg):
        target = entry.get("_target_")
        try:
            cb = instantiate(entry)
        except Exception as e:  # Hydra wraps import and constructor errors alike
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"{where}._target_={target!r} could not be built: {reason}") from e
        if not isinstance(cb, Callback):
            raise ConfigError(f"{where}._target_={target!r} built a {type(cb).__name__}, not a "
                              f"subclass of pyg_tgl.train.callbacks.Callback")
        out.append(cb)
    return out


def build_callbacks(cfg: Any, loggers: Sequence[Callback] = (),
                    extra: Sequence[Callback] = ()) -> CallbackList:
    """The run's callbacks: ``loggers`` (:func:`~pyg_tgl.train.loggers.build_loggers`, rank 0
    only), then the callbacks of ``cfg.callbacks``, then ``extra`` (given from Python)."""
    for cb in extra:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks: {cb!r} is not a pyg_tgl.train.callbacks.Callback")
    return CallbackList([*loggers, *config_callbacks(cfg), *extra])
