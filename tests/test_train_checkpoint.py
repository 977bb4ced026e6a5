"""Atomic checkpoints, RNG capture, split capping, inductive masks and the sweep summary."""
from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch
import yaml

from pyg_tgl.train import checkpoint as ckpt
from pyg_tgl.train.splits import cap_split, inductive_mask
from pyg_tgl.train.summary import main as summary_main
from pyg_tgl.train.summary import write_summary


def test_checkpoint_roundtrip_and_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
             "history": [{"loss": 0.5}], "rng": ckpt.rng_state()}
    path = ckpt.save_checkpoint(state, tmp_path / "sub" / "last.pt")
    back = ckpt.load_checkpoint(path)  # weights_only=True: nothing pickled but plain data
    assert back["epoch"] == 3 and back["history"] == [{"loss": 0.5}]
    assert torch.equal(back["model"]["weight"], model.weight.detach())
    assert back["optimizer"]["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left behind
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    ckpt.save_checkpoint({"epoch": 1}, path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the run is killed while serialising

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["best.pt"]


def test_rng_state_restores_all_generators():
    ckpt.seed_everything(5)
    state = ckpt.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(3), torch.nn.functional.dropout(
        torch.ones(8), 0.5))
    ckpt.set_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(3), torch.nn.functional.dropout(
        torch.ones(8), 0.5))
    assert a[0] == b[0] and a[1] == b[1]
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


def test_cap_split_keeps_proportions_and_order():
    split = {"train": slice(0, 700), "val": slice(700, 850), "test": slice(850, 1000)}
    assert cap_split(split, None) == split
    assert cap_split(split, 5000) == split
    capped = cap_split(split, 100)
    assert capped == {"train": slice(0, 70), "val": slice(70, 85), "test": slice(85, 100)}
    tiny = cap_split(split, 3)
    assert [s.stop - s.start for s in tiny.values()] == [1, 1, 1]
    with pytest.raises(ValueError, match="max_events"):
        cap_split(split, 2)


def test_inductive_mask_flags_events_touching_unseen_nodes():
    #            train events        | evaluated events
    src = torch.tensor([0, 1, 2,      0, 3, 1, 4, 2])
    dst = torch.tensor([1, 2, 0,      2, 1, 5, 4, 1])
    mask = inductive_mask(src, dst, 6, slice(0, 3), slice(3, 8))
    # (0,2) seen; (3,1): 3 unseen; (1,5): 5 unseen; (4,4): unseen; (2,1) seen.
    assert mask.tolist() == [False, True, True, True, False]


def _fake_job(root, num, overrides, test_ap, val_ap=0.8, finished=True):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if test_ap is not None:
        metrics = {"finished": finished, "val": {"ap": val_ap, "auc": 0.5},
                   "test": {"ap": test_ap, "auc": 0.6, "mrr": 0.3}, "seconds_per_epoch": 2.0}
        (job / "metrics.json").write_text(json.dumps(metrics))


def test_sweep_summary_aggregates_over_seeds(tmp_path, capsys):
    _fake_job(tmp_path, 0, ["model=tgn", "seed=0", "train.epoch=1"], 0.90)
    _fake_job(tmp_path, 1, ["model=tgn", "seed=1", "train.epoch=1"], 0.94)
    _fake_job(tmp_path, 2, ["model=tgat", "seed=0", "train.epoch=1"], 0.70)
    _fake_job(tmp_path, 3, ["model=tgat", "seed=1", "train.epoch=1"], None)  # failed: no metrics
    csv_path, md_path = write_summary(tmp_path)
    import csv
    rows = {r["model"]: r for r in csv.DictReader(open(csv_path))}
    assert float(rows["tgn"]["test_ap_mean"]) == pytest.approx(0.92)
    assert float(rows["tgn"]["test_ap_std"]) == pytest.approx(np.std([0.90, 0.94], ddof=1))
    assert rows["tgn"]["runs"] == "2" and rows["tgn"]["seeds"] == "0,1"
    assert rows["tgat"]["runs"] == "1" and rows["tgat"]["incomplete"] == "1"
    assert rows["tgat"]["test_ap_std"] == ""  # one run: no spread to report
    md = md_path.read_text()
    assert "| model |" in md and "0.9200 ± 0.0283" in md
    assert "| 0.7000 |" in md and "0.7000 ±" not in md
    # An override shared by every row is stated once, not as a column.
    assert "Common to all rows: `train.epoch=1`" in md and "| train.epoch" not in md
    assert rows["tgn"]["train.epoch"] == "1"  # the CSV keeps every column
    assert summary_main([str(tmp_path)]) == 0
    assert "0.9200 ± 0.0283" in capsys.readouterr().out
    assert summary_main([str(tmp_path / "missing")]) == 2
