r"""The whole configuration of a run (:class:`RunConfig`) and its registration as Hydra structured
configs.

Sections with one shape (``train``, ``eval``, ``hardware``, ``export``, ``logger_options``) are
typed fields of :class:`RunConfig`. Four sections change shape with their ``name``
(:data:`KINDS`): ``model`` (a temporal GNN or EdgeBank), ``data`` (each loader's options),
``task`` (link or node) and ``schedule`` (chronological or random_chunk). Their group files in
``conf/`` pick their class in their defaults list (``- optional /schema/data@_here_: csv``),
so a composed run holds every option with its default, and
:func:`~pyg_tgl.config.check.check_config` types a configuration built any other way the same.

Registered names (:func:`register`): ``schema/run`` (the top level) and
``schema/{model,data,task,schedule}/<kind>``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import pyg_tgl.config.forms as forms
from pyg_tgl.config.data import DATASETS, data_kind
from pyg_tgl.config.fields import option, section
from pyg_tgl.config.hardware import HardwareConfig, LoggerOptions
from pyg_tgl.config.model import EdgeBankConfig, TemporalModelConfig, model_kind
from pyg_tgl.config.train import (ChronologicalSchedule, EvalConfig, ExportConfig, LinkTask,
                                  NodeTask, RandomChunkSchedule, TrainConfig)


@dataclass
class RunConfig:
    """The top level of ``conf/config.yaml``."""

    tgl_config: Optional[str] = option(None, "One of TGL's model files (config/TGN.yml) in "
                                       "place of the model group (docs/models.md).")
    seed: int = option(0, "Seeds Python, NumPy, torch, the negative samplers and the sampler; "
                       "same seed, same run.")
    deterministic: bool = option(False, "Ask torch for deterministic kernels (CPU runs repeat "
                                 "bit for bit anyway).")
    quiet: bool = option(False, "No progress bars, console log at WARNING (CI); the log file "
                         "keeps everything.")
    progress: Optional[bool] = option(None, "Progress bars; null: only when stderr is a "
                                      "terminal.")
    resume: Any = option(False, "Continue an interrupted run: true reads checkpoints/last.pt of "
                         "the run directory (hydra.run.dir=...), or give its directory.",
                         check=forms.resume, expects="true, false or a run directory")
    logger: Any = option(["csv"], "Experiment tracking, any of csv (metrics.csv), tensorboard, "
                         "wandb, mlflow; [] for none.", check=forms.logger_names,
                         expects="a list of csv, tensorboard, wandb, mlflow")
    logger_options: LoggerOptions = section(LoggerOptions, "Each logger's options.")
    callbacks: Any = option([], "User callbacks: Hydra entries built with "
                            "hydra.utils.instantiate, e.g. [{_target_: my.Callback}].",
                            check=forms.callbacks, expects="a list of {_target_: ...} entries")
    export: ExportConfig = section(ExportConfig, "Node embeddings at the end of the run.")
    train: TrainConfig = section(TrainConfig, "Training.")
    eval: EvalConfig = section(EvalConfig, "Validation and test.")
    hardware: HardwareConfig = section(HardwareConfig, "Device, threads, precision, DDP.")
    # Chosen by their ``name`` (KINDS); the group files select the class.
    task: Any = option(None, "link or node (task=...).")
    schedule: Any = option(None, "chronological or random_chunk (schedule=...).")
    data: Any = option(None, "The data set (data=...).")
    model: Any = option(None, "The model (model=... or tgl_config=...).")


@dataclass(frozen=True)
class Kind:
    """A section whose class depends on its ``name``."""

    of: Callable[[Any], Optional[type]]
    #: every class, by the name registered as ``schema/<section>/<name>``
    classes: Dict[str, type]
    #: what ``name`` may be, for the error message (``None``: any name)
    names: Optional[tuple] = None


KINDS: Dict[str, Kind] = {
    "model": Kind(model_kind, {"temporal": TemporalModelConfig, "edgebank": EdgeBankConfig}),
    "data": Kind(data_kind, dict(DATASETS), tuple(DATASETS)),
    "task": Kind({"link": LinkTask, "node": NodeTask}.get,
                 {"link": LinkTask, "node": NodeTask}, ("link", "node")),
    "schedule": Kind({"chronological": ChronologicalSchedule,
                      "random_chunk": RandomChunkSchedule}.get,
                     {"chronological": ChronologicalSchedule,
                      "random_chunk": RandomChunkSchedule}, ("chronological", "random_chunk")),
}

#: The default class of a section built without a name (``task``: link, ...).
DEFAULT_NAMES = {"task": "link", "schedule": "chronological", "data": "collegemsg",
                 "model": "model"}


def fields_of(cls: type) -> Dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


_registered = False


def register() -> None:
    """Stores the schema in Hydra's ConfigStore (once; importing :mod:`pyg_tgl.config` does it)."""
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore
    store = ConfigStore.instance()
    store.store(group="schema", name="run", node=RunConfig)
    for section_name, kind in KINDS.items():
        for name, cls in kind.classes.items():
            store.store(group=f"schema/{section_name}", name=name, node=cls)
    _registered = True


__all__ = ["RunConfig", "Kind", "KINDS", "DEFAULT_NAMES", "fields_of", "register"]
