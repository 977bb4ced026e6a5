r"""Optimisation options of ``train`` (defined in :class:`pyg_tgl.config.train.TrainConfig`):
the optimizer, weight decay, gradient clipping and the learning-rate schedule.

:func:`build_optimizer` returns a :class:`TrainingOptimizer`, the object the training loop steps:
before each optimizer step it clips the gradients' global norm (``train.grad_clip``) and sets the
learning rate of the schedule (``train.lr_schedule``).

The schedule is a function of the training progress in epochs, read at the start of each batch:
``p = epoch + batch / num_batches`` (``num_batches`` of that epoch, so it holds for schedules
whose number of batches changes from epoch to epoch), and the rate is updated before every
optimizer step. The rate of a batch is ``train.lr * warmup(p) * decay(p)`` with

* ``warmup(p) = min(1, (p + 1 / num_batches) / W)`` for ``W = train.lr_warmup_epochs > 0`` (a
  linear ramp whose last warmup batch reaches the full rate; 1 without warmup);
* ``decay``: ``none`` 1; ``cosine`` ``m + (1 - m) (1 + cos(pi s)) / 2`` and ``linear``
  ``m + (1 - m) (1 - s)`` with ``s = clamp((p - W) / (H - W), 0, 1)``, ``m =
  train.lr_min_factor`` and the horizon ``H = train.lr_horizon_epochs`` (null: ``train.epoch``);
  ``step`` ``train.lr_gamma ** floor(p / train.lr_step_epochs)``.

The schedule's position and its horizon are part of the optimizer's ``state_dict`` (saved in
``checkpoints/last.pt``), so a resumed run continues the same curve, with the horizon of the
interrupted run even when ``train.epoch`` is raised on resume (set ``train.lr_horizon_epochs``
to plan a longer run).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Optional

import torch
from omegaconf import OmegaConf

from pyg_tgl.config.fields import default_of
from pyg_tgl.config.schema import fields_of
from pyg_tgl.config.train import LR_SCHEDULES, OPTIM_OPTIONS, OPTIMIZERS, TrainConfig  # noqa: F401

#: Each option of this module and its default (the schema's, :class:`~pyg_tgl.config.train.
#: TrainConfig`): the value that trains exactly what pyg_tgl trained before the option existed
#: (Adam, no weight decay, no clipping, a constant rate). A configuration without an option reads
#: it as this value.
DEFAULTS: Dict[str, Any] = {name: default_of(fields_of(TrainConfig)[name])
                            for name in OPTIM_OPTIONS}


def option(cfg: Any, name: str) -> Any:
    """``train.<name>`` of ``cfg``, or its :data:`DEFAULTS` value when the configuration has none."""
    return OmegaConf.select(cfg, f"train.{name}", default=DEFAULTS[name])


def horizon_epochs(cfg: Any) -> float:
    """The epoch at which ``cosine`` / ``linear`` reach ``train.lr_min_factor``."""
    horizon = option(cfg, "lr_horizon_epochs")
    return float(horizon if horizon is not None else OmegaConf.select(cfg, "train.epoch"))


class LRSchedule:
    r"""The learning-rate factor of each batch as a function of the progress in epochs (see the
    module docstring for the formulas).

    Args:
        name (str): ``"none"``, ``"cosine"``, ``"linear"`` or ``"step"``.
        horizon_epochs (float): end of the ``cosine`` / ``linear`` decay.
        warmup_epochs (float): length of the linear warmup (0: none).
        min_factor (float): factor reached at the horizon (``cosine`` / ``linear``).
        step_epochs (float): epochs between two decays (``step``).
        gamma (float): factor of each decay (``step``).
    """

    def __init__(self, name: str = "none", horizon_epochs: float = 1.0,
                 warmup_epochs: float = 0.0, min_factor: float = 0.0, step_epochs: float = 1.0,
                 gamma: float = 0.1) -> None:
        if name not in LR_SCHEDULES:
            raise ValueError(f"train.lr_schedule={name!r} is unknown; allowed: "
                             f"{list(LR_SCHEDULES)}")
        self.name = name
        self.horizon_epochs = float(horizon_epochs)
        self.warmup_epochs = float(warmup_epochs)
        self.min_factor = float(min_factor)
        self.step_epochs = float(step_epochs)
        self.gamma = float(gamma)
        # Position: the epoch being trained, the batches of it already stepped, its batch count.
        self.epoch: Optional[int] = None
        self.batch = 0
        self.num_batches = 1

    def factor(self, progress: float, batch_fraction: float) -> float:
        """Factor of the batch starting at ``progress`` epochs that makes up ``batch_fraction``
        of its epoch."""
        out = 1.0
        warmup = self.warmup_epochs
        if warmup > 0:
            out = min(1.0, (progress + batch_fraction) / warmup)
        if self.name in ("cosine", "linear"):
            s = min(max((progress - warmup) / (self.horizon_epochs - warmup), 0.0), 1.0)
            shape = (1 + math.cos(math.pi * s)) / 2 if self.name == "cosine" else 1 - s
            out *= self.min_factor + (1 - self.min_factor) * shape
        elif self.name == "step":
            out *= self.gamma ** math.floor(progress / self.step_epochs)
        return out

    def start_epoch(self, epoch: int, num_batches: int) -> None:
        """Moves to ``epoch`` (of ``num_batches`` batches). A position inside that same epoch,
        restored from a checkpoint written mid-epoch, is kept."""
        if epoch != self.epoch or not 0 < self.batch < num_batches:
            self.batch = 0
        self.epoch, self.num_batches = int(epoch), max(int(num_batches), 1)

    def next_factor(self) -> float:
        """The factor of the next batch; advances the position by one batch."""
        epoch = self.epoch if self.epoch is not None else 0
        out = self.factor(epoch + self.batch / self.num_batches, 1.0 / self.num_batches)
        self.batch += 1
        return out

    def state_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "horizon_epochs": self.horizon_epochs,
                "epoch": -1 if self.epoch is None else self.epoch, "batch": self.batch,
                "num_batches": self.num_batches}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.horizon_epochs = float(state["horizon_epochs"])
        self.epoch = None if state["epoch"] < 0 else int(state["epoch"])
        self.batch, self.num_batches = int(state["batch"]), int(state["num_batches"])


class TrainingOptimizer:
    r"""What the training loop steps: a :class:`torch.optim.Optimizer`, gradient clipping
    before each step and the learning-rate schedule. It offers the optimizer methods the loop
    uses (``zero_grad``, ``step``, ``param_groups``, ``state_dict``, ``load_state_dict``) plus
    :meth:`start_epoch`.

    Args:
        optimizer (torch.optim.Optimizer): the optimizer; its groups' ``lr`` at construction
            is the base rate the schedule multiplies.
        grad_clip (float, optional): maximum global L2 norm of all gradients (``None``: off).
        schedule (LRSchedule, optional): the learning-rate schedule (``None``: constant).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, grad_clip: Optional[float] = None,
                 schedule: Optional[LRSchedule] = None) -> None:
        self.optimizer = optimizer
        self.grad_clip = grad_clip
        self.schedule = schedule
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self._params = [p for group in optimizer.param_groups for p in group["params"]]

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def start_epoch(self, epoch: int, num_batches: int) -> None:
        """Called by the loop at the start of each epoch (the schedule's position)."""
        if self.schedule is not None:
            self.schedule.start_epoch(epoch, num_batches)

    def step(self) -> None:
        """Clips the gradients, sets this batch's learning rate, then steps the optimizer."""
        if self.grad_clip is not None:
            # The norm stays a device tensor: no host synchronisation per batch.
            torch.nn.utils.clip_grad_norm_(self._params, self.grad_clip)
        if self.schedule is not None:
            factor = self.schedule.next_factor()
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base * factor
        self.optimizer.step()

    def state_dict(self) -> Dict[str, Any]:
        """The optimizer's ``state_dict``, plus ``lr_schedule`` with a schedule."""
        state = self.optimizer.state_dict()
        if self.schedule is not None:
            state["lr_schedule"] = self.schedule.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`; also reads a plain optimizer's ``state_dict`` (a
        checkpoint written before the schedule existed: the schedule then starts from the
        epoch the loop gives it)."""
        state = dict(state)
        schedule = state.pop("lr_schedule", None)
        self.optimizer.load_state_dict(state)
        if self.schedule is not None and schedule is not None:
            self.schedule.load_state_dict(schedule)


def build_optimizer(cfg: Any, parameters: Iterable[torch.nn.Parameter]) -> TrainingOptimizer:
    """The :class:`TrainingOptimizer` of ``cfg.train`` over ``parameters``.

    With every option at its default this is ``torch.optim.Adam(parameters, lr=train.lr)``, as
    before the options existed.
    """
    lr = float(OmegaConf.select(cfg, "train.lr"))
    decay = float(option(cfg, "weight_decay"))
    cls = torch.optim.AdamW if option(cfg, "optimizer") == "adamw" else torch.optim.Adam
    optimizer = cls(parameters, lr=lr, weight_decay=decay)
    schedule = None
    if option(cfg, "lr_schedule") != "none" or float(option(cfg, "lr_warmup_epochs")) > 0:
        schedule = LRSchedule(option(cfg, "lr_schedule"), horizon_epochs(cfg),
                              float(option(cfg, "lr_warmup_epochs")),
                              float(option(cfg, "lr_min_factor")),
                              float(option(cfg, "lr_step_epochs")),
                              float(option(cfg, "lr_gamma")))
    clip = option(cfg, "grad_clip")
    return TrainingOptimizer(optimizer, None if clip is None else float(clip), schedule)


def current_lr(optimizer: Any) -> float:
    """The learning rate of the first parameter group (the rate of the last step taken)."""
    return float(optimizer.param_groups[0]["lr"])
