"""Callbacks and loggers (``pyg_tgl/train/{callbacks,loggers}.py``): the hook order a user
callback sees, callbacks from the configuration, ``metrics.csv`` across a resume, TensorBoard
event files, and the W&B / MLflow calls (against fake modules)."""
from __future__ import annotations

import csv
import importlib.machinery
import json
import math
import sys
import types
from typing import Any, Dict, List

import pytest
import torch
from test_train_loop import SMALL, _isolated, cfg_of  # noqa: F401

from pyg_tgl.train import loggers, loop
from pyg_tgl.train.callbacks import Callback
from pyg_tgl.config import compose as compose_run
from pyg_tgl.train.experiment import ConfigError, run_experiment

JODIE = [*SMALL, "model=jodie"]


class Recorder(Callback):
    """Records every hook call; instances built from the configuration register themselves."""

    built: List["Recorder"] = []

    def __init__(self, tag: str = "python") -> None:
        self.tag = tag
        self.calls: List[tuple] = []
        Recorder.built.append(self)

    def on_train_start(self, run):
        self.calls.append(("train_start", run.start_epoch, len(run.history), run.is_main))

    def on_epoch_start(self, run, epoch, num_batches):
        self.calls.append(("epoch_start", epoch, num_batches))

    def on_batch_end(self, run, step):
        self.calls.append(("batch_end", step.epoch, step.batch, step.num_batches,
                           step.num_events, float(step.loss), step.lr))

    def on_validation_end(self, run, epoch, metrics):
        self.calls.append(("validation_end", epoch, metrics["ap"]))

    def on_epoch_end(self, run, record):
        self.calls.append(("epoch_end", record["epoch"], record["loss"]))

    def on_test_end(self, run, epoch, metrics):
        self.calls.append(("test_end", epoch, metrics["ap"]))

    def on_train_end(self, run, result):
        self.calls.append(("train_end", result["finished"]))


def test_a_user_callback_sees_every_epoch_and_the_test_in_order(tmp_path):
    Recorder.built.clear()
    python_cb = Recorder()
    target = f"{__name__}.Recorder"
    result = run_experiment(cfg_of(*JODIE, "train.epoch=2",
                                   f"callbacks=[{{_target_: {target}, tag: config}}]"),
                            tmp_path, progress=False, callbacks=[python_cb])
    from_config = [r for r in Recorder.built if r.tag == "config"]
    assert len(from_config) == 1 and from_config[0].calls == python_cb.calls

    expected: List[tuple] = [("train_start", 0, 0, True)]
    lr = float(cfg_of(*JODIE).train.lr)
    for e in result["epochs"]:
        n = e["num_batches"]
        expected.append(("epoch_start", e["epoch"], n))
        steps = [c for c in python_cb.calls if c[0] == "batch_end" and c[1] == e["epoch"]]
        assert [c[2] for c in steps] == list(range(n))
        assert sum(c[4] for c in steps) == e["num_events"]
        # The epoch's loss is the mean of the losses the steps reported.
        assert sum(c[5] for c in steps) / n == pytest.approx(e["loss"], rel=1e-6)
        expected += steps
        expected += [("validation_end", e["epoch"], e["val_ap"]),
                     ("epoch_end", e["epoch"], e["loss"])]
        assert all(c[3] == n and c[6] == lr for c in steps)
    expected += [("test_end", result["best_epoch"], result["test"]["ap"]), ("train_end", True)]
    assert python_cb.calls == expected


@pytest.mark.parametrize("entry,match", [
    ("[{tag: x}]", r"callbacks\[0\]=.*expected a mapping with a _target_"),
    ("[{_target_: no_such_module.Nope}]",
     r"callbacks\[0\]._target_='no_such_module.Nope' could not be built"),
    ("[{_target_: collections.OrderedDict}]", r"built a OrderedDict, not a subclass of "
                                              r"pyg_tgl.train.callbacks.Callback"),
])
def test_bad_callback_entries(tmp_path, entry, match):
    with pytest.raises(ConfigError, match=match) as info:
        run_experiment(cfg_of(*JODIE, "train.epoch=1", f"callbacks={entry}"), tmp_path,
                       progress=False)
    assert "\n" not in str(info.value)


def _csv_rows(path) -> List[Dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_rows_match_the_history_across_a_kill_and_resume(tmp_path, monkeypatch):
    options = [*JODIE, "train.epoch=3"]
    # Killed in the middle of epoch 2 (after epoch 1's checkpoint).
    calls = {"n": 0}
    real_loss = loop.link_loss

    def dying_loss(*args, **kwargs):
        calls["n"] += torch.is_grad_enabled()
        if calls["n"] == 2 * 9 + 3:  # 9 training batches per epoch
            raise KeyboardInterrupt("killed")
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(loop, "link_loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg_of(*options), tmp_path, progress=False)
    monkeypatch.setattr(loop, "link_loss", real_loss)
    rows = _csv_rows(tmp_path / "metrics.csv")
    assert [(r["stage"], r["epoch"]) for r in rows] == [("train", "0"), ("train", "1")]
    # As if the kill had come after a logger wrote epoch 2 but before its checkpoint.
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("train,2," + ",".join(["0.5"] * (len(rows[0]) - 2)) + "\n")

    result = run_experiment(cfg_of(*options, "resume=true"), tmp_path, progress=False)
    rows = _csv_rows(tmp_path / "metrics.csv")
    assert [(r["stage"], r["epoch"]) for r in rows] == [
        ("train", "0"), ("train", "1"), ("train", "2"), ("test", str(result["best_epoch"]))]
    for row, record in zip(rows, result["epochs"]):
        for key in ("loss", "val_ap", "val_mrr", "lr", "num_batches"):
            assert float(row[key]) == record[key], key
    assert rows[-1]["loss"] == "" and float(rows[-1]["test_ap"]) == result["test"]["ap"]
    assert float(rows[-1]["test_mrr"]) == result["test"]["mrr"]


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    result = run_experiment(cfg_of(*JODIE, "train.epoch=2", "logger=[csv,tensorboard]"),
                            tmp_path, progress=False)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "val/ap", "val/mrr", "time/train", "test/ap"} <= tags
    loss = events.Scalars("train/loss")
    assert [s.step for s in loss] == [0, 1]
    assert [s.value for s in loss] == pytest.approx([e["loss"] for e in result["epochs"]])
    test = events.Scalars("test/ap")
    assert [s.step for s in test] == [result["best_epoch"]]
    assert test[0].value == pytest.approx(result["test"]["ap"])
    assert (tmp_path / "metrics.csv").is_file()


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attrs)
    return module


class _FakeWandbRun:
    def __init__(self, log: List[tuple], kwargs: Dict[str, Any]) -> None:
        self.id = kwargs["id"] or "wb123"
        self.summary: Dict[str, Any] = {}
        self._log = log

    def log(self, values, step):
        self._log.append(("log", step, dict(values)))

    def finish(self):
        self._log.append(("finish",))


class _FakeMlflowClient:
    calls: List[tuple] = []

    def __init__(self, tracking_uri):
        self.calls.append(("client", tracking_uri))

    def get_experiment_by_name(self, name):
        self.calls.append(("get_experiment_by_name", name))
        return None

    def create_experiment(self, name, artifact_location=None):
        self.calls.append(("create_experiment", name, artifact_location))
        return "7"

    def create_run(self, experiment_id, run_name=None):
        self.calls.append(("create_run", experiment_id, run_name))
        return types.SimpleNamespace(info=types.SimpleNamespace(run_id="ml456"))

    def log_batch(self, run_id, params=()):
        self.calls.append(("log_batch", run_id, {p.key: p.value for p in params}))

    def log_metric(self, run_id, key, value, step=None):
        self.calls.append(("log_metric", run_id, key, value, step))

    def set_terminated(self, run_id, status):
        self.calls.append(("set_terminated", run_id, status))


def test_wandb_and_mlflow_loggers_make_the_expected_calls(tmp_path, monkeypatch):
    wandb_calls: List[tuple] = []
    runs: List[_FakeWandbRun] = []

    def init(**kwargs):
        wandb_calls.append(("init", kwargs))
        runs.append(_FakeWandbRun(wandb_calls, kwargs))
        return runs[-1]

    _FakeMlflowClient.calls = []
    param = types.SimpleNamespace
    monkeypatch.setitem(sys.modules, "wandb", _module("wandb", init=init))
    monkeypatch.setitem(sys.modules, "mlflow", _module("mlflow"))
    monkeypatch.setitem(sys.modules, "mlflow.tracking",
                        _module("mlflow.tracking", MlflowClient=_FakeMlflowClient))
    monkeypatch.setitem(sys.modules, "mlflow.entities", _module(
        "mlflow.entities", Param=lambda key, value: param(key=key, value=value)))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    options = [*JODIE, "logger=[wandb,mlflow]", "logger_options.wandb.project=demo"]
    first = run_experiment(cfg_of(*options, "train.epoch=1"), tmp_path, progress=False)

    kind, init_kwargs = wandb_calls[0]
    assert kind == "init" and init_kwargs["mode"] == "offline" and init_kwargs["id"] is None
    assert init_kwargs["project"] == "demo" and init_kwargs["dir"] == str(tmp_path)
    assert init_kwargs["name"] == tmp_path.name and init_kwargs["resume"] == "allow"
    assert init_kwargs["config"]["model"]["name"] == "jodie"
    _, step, values = wandb_calls[1]
    assert step == 0 and values["train/loss"] == first["epochs"][0]["loss"]
    assert values["val/ap"] == first["epochs"][0]["val_ap"] and "time/train" in values
    assert runs[0].summary["test/ap"] == first["test"]["ap"]
    assert runs[0].summary["test/epoch"] == first["best_epoch"]
    assert wandb_calls[-1] == ("finish",)

    ml = _FakeMlflowClient.calls
    assert ml[0] == ("client", f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}")
    assert ("create_experiment", "pyg_tgl", (tmp_path.resolve() / "mlruns").as_uri()) in ml
    assert ("create_run", "7", tmp_path.name) in ml
    params = {k: v for c in ml if c[0] == "log_batch" for k, v in c[2].items()}
    assert params["model.name"] == "jodie" and params["train.lr_schedule"] == "none"
    metrics = {(c[2], c[4]): c[3] for c in ml if c[0] == "log_metric"}
    assert metrics[("train/loss", 0)] == first["epochs"][0]["loss"]
    assert metrics[("test/ap", first["best_epoch"])] == first["test"]["ap"]
    assert ml[-1] == ("set_terminated", "ml456", "FINISHED")
    ids = json.loads((tmp_path / loggers.RUN_IDS_FILE).read_text())
    assert ids == {"wandb": "wb123", "mlflow": "ml456"}

    # A resumed run continues both tracking runs.
    wandb_calls.clear()
    _FakeMlflowClient.calls = []
    run_experiment(cfg_of(*options, "train.epoch=2", "resume=true"), tmp_path, progress=False)
    assert wandb_calls[0][1]["id"] == "wb123"
    assert [c[1] for c in wandb_calls if c[0] == "log"] == [1]
    ml = _FakeMlflowClient.calls
    assert not [c for c in ml if c[0] in ("create_run", "create_experiment", "log_batch")]
    assert {c[4] for c in ml if c[0] == "log_metric" and c[2] == "train/loss"} == {1}


@pytest.mark.parametrize("overrides,match", [
    (["logger=[csv,neptune]"], r"logger='neptune' is not supported; allowed values: "
                               r"\['csv', 'tensorboard', 'wandb', 'mlflow'\]"),
    (["logger=[csv,csv]"], r"'csv' is listed twice"),
    (["logger=[wandb]", "+logger_options.wandb.colour=red"],
     r"unknown option 'logger_options.wandb.colour'; 'logger_options.wandb' has no such "
     r"option; its options: entity, mode, name, project, tags"),
])
def test_bad_logger_options(overrides, match, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", _module("wandb"))
    with pytest.raises(ConfigError, match=match) as info:
        compose_run(overrides)
    assert "\n" not in str(info.value)


def test_a_missing_logger_package_names_the_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"logger='mlflow' needs the 'mlflow' package, which "
                                          r"is not installed; pip install mlflow"):
        compose_run(["logger=[csv,mlflow]"])


def test_scalar_names():
    record = {"epoch": 3, "loss": 0.5, "val_ap": 0.9, "time_train": 1.0, "lr": 1e-4,
              "schedule": "offset:0", "val_inductive_ap": math.nan, "finished": True}
    out = loggers.scalars(record)
    assert set(out) == {"train/loss", "val/ap", "time/train", "train/lr", "val/inductive_ap"}
    assert loggers.scalars({"ap": 0.7}, "test") == {"test/ap": 0.7}
