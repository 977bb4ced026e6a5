"""Schema of where and how a run computes (``hardware``, ``hardware.distributed``) and of the
experiment trackers' options (``logger_options``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pyg_tgl.config.forms as forms
from pyg_tgl.config.fields import option, section

PRECISIONS = ("float32", "bfloat16", "float64")
BACKENDS = ("auto", "gloo", "nccl")


@dataclass
class DistributedConfig:
    """``hardware.distributed``: data-parallel training (DDP, docs/scaling.md)."""

    backend: str = option("auto", "auto: nccl on CUDA, gloo on CPU.", choices=BACKENDS)
    nproc_per_node: Any = option(1, "Processes this command launches on this machine (ignored "
                                 "under torchrun); auto: one per GPU, or 2 on a CPU-only "
                                 "machine.", check=forms.auto_or_count,
                                 expects="'auto' or an integer >= 1")
    timeout_s: float = option(300, "Seconds a collective waits for the other ranks before "
                              "failing (a dead or stuck rank).", gt=0.0)
    find_unused_parameters: Any = option(
        "auto", "DDP's search for parameters a step leaves unused; auto: true for models with "
        "several snapshots (DySAT), false otherwise.", choices=("auto", True, False))


@dataclass
class HardwareConfig:
    """``hardware``: device, threads and precision (groups: auto, cpu, cuda, ddp)."""

    device: str = option("auto", "auto (CUDA when available, else CPU), cpu, cuda or cuda:N.")
    num_threads: Optional[int] = option(None, "torch intra-op threads; null: torch's default.",
                                        ge=1)
    sampler_threads: Optional[int] = option(None, "Sampler (OpenMP) threads; null: "
                                            "min(model.sampling.num_thread, CPU cores).", ge=1)
    prefetch: bool = option(False, "Sample the next batch in a background thread while the "
                            "current one trains.")
    all_on_gpu: bool = option(True, "Keep node/edge features on the compute device (TGL: "
                              "all_on_gpu).")
    precision: str = option("float32", "bfloat16: forward and loss under autocast (parameters "
                            "and memory stay float32); float64: everything in double precision "
                            "(numerical checks).", choices=PRECISIONS)
    sync_timers: bool = option(True, "On CUDA, synchronise at phase borders so the "
                               "sample/memory/compute/update times are exact.")
    host_plans: bool = option(False, "The loader computes the model's index work on the host, "
                              "in its prefetch thread: no host synchronisation per step on CUDA "
                              "(docs/performance.md).")
    distributed: DistributedConfig = section(DistributedConfig, "Data-parallel training.")


@dataclass
class CsvLoggerOptions:
    """``logger_options.csv``."""

    filename: str = option("metrics.csv", "File in the run directory.")


@dataclass
class TensorBoardLoggerOptions:
    """``logger_options.tensorboard`` (pip install tensorboard)."""

    subdir: str = option("tensorboard", "Folder of the event files inside the run directory.")


@dataclass
class WandbLoggerOptions:
    """``logger_options.wandb`` (pip install wandb)."""

    project: str = option("pyg_tgl", "W&B project.")
    entity: Optional[str] = option(None, "W&B team or user; null: your default entity.")
    mode: str = option("offline", "offline (files in <run>/wandb, upload later with wandb "
                       "sync), online or disabled.")
    name: Optional[str] = option(None, "Run name; null: the run directory's name.")
    tags: Any = option(None, "Tags of the W&B run (a list); null: none.", check=forms.strings,
                       expects="a list of strings or null")


@dataclass
class MlflowLoggerOptions:
    """``logger_options.mlflow`` (pip install mlflow)."""

    tracking_uri: Optional[str] = option(None, "null: $MLFLOW_TRACKING_URI, else "
                                         "sqlite:///<run>/mlflow.db (artifacts in <run>/mlruns).")
    experiment: str = option("pyg_tgl", "MLflow experiment.")
    run_name: Optional[str] = option(None, "Run name; null: the run directory's name.")


@dataclass
class LoggerOptions:
    """``logger_options``: each logger's options, used when it is listed in ``logger``."""

    csv: CsvLoggerOptions = section(CsvLoggerOptions, "The csv logger.")
    tensorboard: TensorBoardLoggerOptions = section(TensorBoardLoggerOptions,
                                                    "The tensorboard logger.")
    wandb: WandbLoggerOptions = section(WandbLoggerOptions, "The wandb logger.")
    mlflow: MlflowLoggerOptions = section(MlflowLoggerOptions, "The mlflow logger.")
