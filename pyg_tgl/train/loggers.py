r"""Experiment tracking: the loggers of the top-level ``logger`` option, as
:class:`~pyg_tgl.train.callbacks.Callback`\ s (``conf/config.yaml``).

* ``csv`` (default): ``metrics.csv`` in the run directory, one ``stage=train`` row per epoch
  (the epoch's record of ``metrics.json``: loss, validation metrics, times, learning rate) and a
  final ``stage=test`` row (``test_*``). The file is rewritten atomically after every epoch; on a
  resumed run its rows are rebuilt from the checkpoint's history, so an epoch that was logged but
  not checkpointed before a kill appears once, as retrained.
* ``tensorboard``: ``torch.utils.tensorboard`` event files in ``<run>/tensorboard``
  (``tensorboard --logdir outputs``); a resumed run purges the steps from the resumed epoch on.
* ``wandb``: Weights & Biases, ``mode`` offline by default (``<run>/wandb``; ``wandb sync`` uploads
  it); a resumed run continues the same W&B run.
* ``mlflow``: MLflow, by default a SQLite store in the run directory (``<run>/mlflow.db``,
  ``mlflow ui --backend-store-uri sqlite:///<run>/mlflow.db``) unless ``tracking_uri`` or
  ``MLFLOW_TRACKING_URI`` names another; a resumed run continues the same MLflow run.

Scalars are named ``train/loss``, ``val/ap``, ``time/train``, ``test/ap``, ... and stepped by
epoch. Each logger's options live in ``logger_options.<name>``.
"""
from __future__ import annotations

import csv
import importlib
import io
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import ListConfig, OmegaConf

import pyg_tgl.config.forms as forms
from pyg_tgl.config.errors import ConfigError
from pyg_tgl.train.callbacks import Callback, RunInfo

# The logger names and their packages are the schema's (the ``logger`` option).
LOGGERS, PACKAGES = forms.LOGGERS, forms.LOGGER_PACKAGES
#: Ids of the tracking runs, so that a resumed run continues them.
RUN_IDS_FILE = "logger_runs.json"


def logger_names(cfg: Any) -> List[str]:
    """``cfg.logger`` as a list (a single name is accepted; null or ``[]``: no logger)."""
    value = OmegaConf.select(cfg, "logger", default=["csv"])
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (ListConfig, list, tuple)):
        return [str(v) for v in value]
    raise ConfigError(f"logger={value!r}: expected a list of logger names from {list(LOGGERS)}")


def _options(cfg: Any, name: str) -> Dict[str, Any]:
    section = OmegaConf.select(cfg, f"logger_options.{name}", default=None)
    return {} if section is None else OmegaConf.to_container(section, resolve=True)


def scalars(record: Dict[str, Any], prefix: str = "") -> Dict[str, float]:
    """The numeric entries of a metrics record under tracker names: ``val_ap`` ->
    ``val/ap``, ``time_train`` -> ``time/train``, ``loss`` -> ``train/loss`` (with ``prefix``,
    ``ap`` -> ``<prefix>/ap``); ``epoch`` and non-numbers are left out."""
    out = {}
    for key, value in record.items():
        if key == "epoch" or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if prefix:
            out[f"{prefix}/{key}"] = float(value)
            continue
        group, _, rest = key.partition("_")
        out[f"{group}/{rest}" if rest and group in ("val", "time") else f"train/{key}"] = \
            float(value)
    return out


def _run_ids(out_dir: Path) -> Dict[str, str]:
    path = out_dir / RUN_IDS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _save_run_id(out_dir: Path, name: str, run_id: str) -> None:
    ids = _run_ids(out_dir)
    ids[name] = run_id
    tmp = out_dir / f".{RUN_IDS_FILE}.tmp"
    tmp.write_text(json.dumps(ids, indent=2))
    os.replace(tmp, out_dir / RUN_IDS_FILE)


def _flat_config(cfg: Any) -> Dict[str, str]:
    """The resolved configuration as ``dotted.key -> str(value)`` (tracker parameters)."""
    out: Dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = str(node)
    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


class CSVLogger(Callback):
    """``metrics.csv`` in the run directory (see the module docstring).

    Args:
        out_dir (pathlib.Path): the run directory.
        filename (str): the file name.
    """

    def __init__(self, out_dir: Path, filename: str = "metrics.csv") -> None:
        self.path = Path(out_dir) / filename
        self.rows: List[Dict[str, Any]] = []

    def on_train_start(self, run: RunInfo) -> None:
        # The checkpoint's history is the truth: rows a killed run wrote after its last
        # checkpoint are dropped, their epochs are trained again.
        self.rows = [{"stage": "train", **record} for record in run.history]
        self._write()

    def on_epoch_end(self, run: RunInfo, record: Dict[str, Any]) -> None:
        self.rows.append({"stage": "train", **record})
        self._write()

    def on_test_end(self, run: RunInfo, epoch: int, metrics: Dict[str, Any]) -> None:
        self.rows.append({"stage": "test", "epoch": epoch,
                          **{f"test_{k}": v for k, v in metrics.items()}})
        self._write()

    def _write(self) -> None:
        columns: Dict[str, None] = {}
        for row in self.rows:
            columns.update(dict.fromkeys(row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(buf.getvalue())
        os.replace(tmp, self.path)


class TensorBoardLogger(Callback):
    """TensorBoard event files via :class:`torch.utils.tensorboard.SummaryWriter`.

    Args:
        out_dir (pathlib.Path): the run directory; events go to ``<out_dir>/<subdir>``.
        subdir (str): the folder of the event files.
    """

    def __init__(self, out_dir: Path, subdir: str = "tensorboard") -> None:
        self.log_dir = Path(out_dir) / subdir
        self.writer: Any = None

    def on_train_start(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter
        # purge_step: TensorBoard hides the events a killed run wrote from the resumed epoch on.
        self.writer = SummaryWriter(str(self.log_dir),
                                    purge_step=run.start_epoch if run.start_epoch else None)

    def on_epoch_end(self, run: RunInfo, record: Dict[str, Any]) -> None:
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, record["epoch"])
        self.writer.flush()

    def on_test_end(self, run: RunInfo, epoch: int, metrics: Dict[str, Any]) -> None:
        for tag, value in scalars(metrics, "test").items():
            self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def on_train_end(self, run: RunInfo, result: Dict[str, Any]) -> None:
        self.writer.close()


class WandbLogger(Callback):
    """Weights & Biases (``import wandb``).

    Args:
        out_dir (pathlib.Path): the run directory (W&B's ``dir``).
        project (str): W&B project. entity (str, optional): team or user.
        name (str, optional): run name (default: the run directory's name).
        mode (str): ``"offline"`` (default), ``"online"`` or ``"disabled"``.
        tags (list of str, optional): run tags.
    """

    def __init__(self, out_dir: Path, project: str = "pyg_tgl", entity: Optional[str] = None,
                 name: Optional[str] = None, mode: str = "offline",
                 tags: Optional[List[str]] = None) -> None:
        self.out_dir = Path(out_dir)
        self.options = {"project": project, "entity": entity, "mode": mode,
                        "name": name or self.out_dir.name, "tags": tags}
        self.run: Any = None

    def on_train_start(self, run: RunInfo) -> None:
        wandb = importlib.import_module("wandb")
        run_id = _run_ids(self.out_dir).get("wandb")
        self.run = wandb.init(dir=str(self.out_dir), id=run_id, resume="allow",
                              config=OmegaConf.to_container(run.cfg, resolve=True),
                              **self.options)
        _save_run_id(self.out_dir, "wandb", str(self.run.id))

    def on_epoch_end(self, run: RunInfo, record: Dict[str, Any]) -> None:
        self.run.log(scalars(record), step=record["epoch"])

    def on_test_end(self, run: RunInfo, epoch: int, metrics: Dict[str, Any]) -> None:
        summary = scalars(metrics, "test")
        summary["test/epoch"] = epoch
        self.run.summary.update(summary)

    def on_train_end(self, run: RunInfo, result: Dict[str, Any]) -> None:
        self.run.finish()


class MLflowLogger(Callback):
    """MLflow, through :class:`mlflow.tracking.MlflowClient` (no global active run, so it does
    not interfere with the user's own MLflow calls).

    Args:
        out_dir (pathlib.Path): the run directory.
        tracking_uri (str, optional): the tracking store; default ``MLFLOW_TRACKING_URI``, else
            ``sqlite:///<out_dir>/mlflow.db`` (artifacts in ``<out_dir>/mlruns``).
        experiment (str): experiment name.
        run_name (str, optional): run name (default: the run directory's name).
    """

    def __init__(self, out_dir: Path, tracking_uri: Optional[str] = None,
                 experiment: str = "pyg_tgl", run_name: Optional[str] = None) -> None:
        self.out_dir = Path(out_dir).resolve()
        self.local_store = tracking_uri is None and not os.environ.get("MLFLOW_TRACKING_URI")
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
            f"sqlite:///{self.out_dir / 'mlflow.db'}"
        self.experiment = experiment
        self.run_name = run_name or self.out_dir.name
        self.client: Any = None
        self.run_id: Optional[str] = None

    def on_train_start(self, run: RunInfo) -> None:
        tracking = importlib.import_module("mlflow.tracking")
        self.client = tracking.MlflowClient(tracking_uri=self.tracking_uri)
        self.run_id = _run_ids(self.out_dir).get("mlflow")
        if self.run_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                experiment_id = found.experiment_id
            else:
                artifacts = (self.out_dir / "mlruns").as_uri() if self.local_store else None
                experiment_id = self.client.create_experiment(self.experiment,
                                                              artifact_location=artifacts)
            self.run_id = self.client.create_run(experiment_id,
                                                 run_name=self.run_name).info.run_id
            _save_run_id(self.out_dir, "mlflow", self.run_id)
            entities = importlib.import_module("mlflow.entities")
            params = [entities.Param(k, v) for k, v in _flat_config(run.cfg).items()]
            for i in range(0, len(params), 100):  # MLflow's limit of parameters per batch
                self.client.log_batch(self.run_id, params=params[i:i + 100])

    def _log(self, values: Dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.client.log_metric(self.run_id, key, value, step=step)

    def on_epoch_end(self, run: RunInfo, record: Dict[str, Any]) -> None:
        self._log(scalars(record), record["epoch"])

    def on_test_end(self, run: RunInfo, epoch: int, metrics: Dict[str, Any]) -> None:
        self._log(scalars(metrics, "test"), epoch)

    def on_train_end(self, run: RunInfo, result: Dict[str, Any]) -> None:
        self.client.set_terminated(self.run_id, "FINISHED")


_CLASSES = {"csv": CSVLogger, "tensorboard": TensorBoardLogger, "wandb": WandbLogger,
            "mlflow": MLflowLogger}


def build_loggers(cfg: Any, out_dir: Path) -> List[Callback]:
    """The loggers of ``cfg.logger``, in that order, with their ``logger_options``."""
    return [_CLASSES[name](Path(out_dir), **_options(cfg, name)) for name in logger_names(cfg)]
