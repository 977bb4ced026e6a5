r"""Checks that involve more than one option (each option's own type, choices and range are the
schema's, :mod:`pyg_tgl.config.fields`). Each rule takes the typed configuration of
:func:`~pyg_tgl.config.check.check_config` and raises :class:`ConfigError` with one line naming
the options and what to change.
"""
from __future__ import annotations

from typing import Any, Callable, List

import pyg_tgl.config.forms as forms
from pyg_tgl.config.errors import ConfigError


def _is_edgebank(cfg: Any) -> bool:
    return cfg.model.name == "edgebank"


def schedule_chunks(cfg: Any) -> None:
    if cfg.schedule.name == "random_chunk" and cfg.train.batch_size < cfg.schedule.reorder:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} < schedule.reorder={cfg.schedule.reorder}"
            f": random chunk scheduling needs chunks of batch_size // reorder >= 1 events; "
            f"lower schedule.reorder or raise train.batch_size")


def sampling(cfg: Any) -> None:
    """Fan-outs against hops, snapshots against their length, the negatives' neighbourhoods,
    mails to neighbours."""
    if _is_edgebank(cfg):
        return
    s, gnn, memory = cfg.model.sampling, cfg.model.gnn, cfg.model.memory
    neighbors = [] if s.no_sample else list(s.neighbor or [])
    if neighbors and s.layer is not None and s.layer != len(neighbors):
        raise ConfigError(
            f"model.sampling.neighbor={neighbors} has {len(neighbors)} entries but "
            f"model.sampling.layer={s.layer}; give one fan-out per layer")
    if s.history > 1 and s.duration <= 0:
        raise ConfigError(
            f"model.sampling.history={s.history} snapshots need model.sampling.duration > 0 "
            f"(got {s.duration:g}): snapshot sampling without a snapshot length is undefined")
    if s.duration > 0 and s.history == 1 and s.strategy == "recent" and neighbors:
        raise ConfigError(
            f"model.sampling.duration={s.duration:g} with history=1 and strategy='recent': "
            f"snapshot sampling needs model.sampling.history > 1 (or duration: 0)")
    if s.history > 1 and gnn.combine != "rnn":
        raise ConfigError(
            f"model.sampling.history={s.history} snapshots need model.gnn.combine=rnn (got "
            f"{gnn.combine!r}): the RNN combines the snapshots' embeddings")
    if s.no_neg and neighbors and (gnn.arch != "identity" or gnn.pair_features):
        what = (f"model.gnn.arch={gnn.arch!r}" if gnn.arch != "identity"
                else "model.gnn.pair_features=true")
        raise ConfigError(
            f"model.sampling.no_neg=true leaves the negatives without neighbourhoods, but "
            f"{what} needs them; set model.sampling.no_neg=false")
    if memory.deliver_to == "neighbors":
        if memory.type == "none":
            raise ConfigError("model.memory.deliver_to='neighbors' needs a memory; set "
                              "model.memory.type=node or deliver_to: self")
        if not neighbors:
            raise ConfigError(
                "model.memory.deliver_to='neighbors' needs sampled neighbours; set "
                "model.sampling.neighbor or deliver_to: self")


def attention_heads(cfg: Any) -> None:
    if _is_edgebank(cfg):
        return
    gnn = cfg.model.gnn
    if gnn.arch != "identity" and gnn.dim_out is not None and gnn.dim_out % gnn.att_head:
        raise ConfigError(f"model.gnn.dim_out={gnn.dim_out} is not divisible by "
                          f"model.gnn.att_head={gnn.att_head}: each attention head gets "
                          f"dim_out / att_head features")


def edgebank(cfg: Any) -> None:
    """What EdgeBank cannot do: a window outside time_window mode, the node task, embeddings."""
    if not _is_edgebank(cfg):
        return
    model = cfg.model
    if model.time_window is not None and model.mode != "time_window":
        raise ConfigError(f"model.time_window={model.time_window:g} is only used with "
                          f"model.mode=time_window (got model.mode={model.mode!r}); set it to "
                          f"null")
    if cfg.task.name != "link":
        raise ConfigError(f"model=edgebank supports task=link only (got task="
                          f"{cfg.task.name!r}): it has no node embeddings")
    if cfg.export.time is not None:
        raise ConfigError("export.time: model=edgebank has no node embeddings to export; set "
                          "export.time=null")


def lr_schedule(cfg: Any) -> None:
    train = cfg.train
    if train.lr_schedule in ("cosine", "linear"):
        horizon = float(train.lr_horizon_epochs if train.lr_horizon_epochs is not None
                        else train.epoch)
        warmup = float(train.lr_warmup_epochs)
        if horizon <= warmup:
            raise ConfigError(
                f"train.lr_warmup_epochs={warmup:g} leaves nothing of the {horizon:g}-epoch "
                f"{train.lr_schedule} decay (train.lr_horizon_epochs, or train.epoch when "
                f"null); lower the warmup or raise the horizon")


def data_split(cfg: Any) -> None:
    data = cfg.data
    if float(data.val_ratio) + float(data.test_ratio) >= 1.0:
        raise ConfigError(f"data.val_ratio={data.val_ratio:g} + data.test_ratio="
                          f"{data.test_ratio:g} >= 1 leaves no training events; lower them")


def trackers(cfg: Any) -> None:
    """Unknown or repeated loggers, a logger whose package is missing, callbacks without a
    ``_target_``."""
    from omegaconf import OmegaConf
    for problem in (forms.logger_problem(OmegaConf.to_container(cfg)["logger"]),
                    forms.callback_problem(OmegaConf.to_container(cfg)["callbacks"])):
        if problem is not None:
            raise ConfigError(problem)


def device(cfg: Any) -> None:
    """A device torch knows, and CUDA only where it is available."""
    value = str(cfg.hardware.device)
    if forms.device(value) is not None:
        raise ConfigError(f"hardware.device={value!r} is not a device; allowed values: "
                          f"auto, cpu, cuda, cuda:N (or another torch device)")
    if value.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise ConfigError(f"hardware.device={value!r} but CUDA is not available here; "
                              f"allowed values on this machine: ['auto', 'cpu']")


#: Every rule, in the order they are checked.
RULES: List[Callable[[Any], None]] = [schedule_chunks, sampling, attention_heads, edgebank,
                                      lr_schedule, data_split, trackers, device]


def check_rules(cfg: Any) -> None:
    """Runs :data:`RULES` on a typed configuration.

    Raises:
        ConfigError: the first rule that fails.
    """
    for rule in RULES:
        rule(cfg)


__all__ = ["RULES", "check_rules"]
