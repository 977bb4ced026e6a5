"""``model=edgebank`` in the Hydra pipeline (:mod:`pyg_tgl.train.edgebank_run`): a sweep writes
``metrics.json`` of the learned models' shape and a summary row per variant, and its metrics equal
EdgeBank computed directly on the same events and the same negatives (those of the learned models'
test loader), with memory = every event before the scored batch."""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from cli import run_cli
from sklearn.metrics import average_precision_score, roc_auc_score

REPO = Path(__file__).resolve().parents[1]
MAX_EVENTS = 4000
BATCH = 200
NUM_NEG = 9


def _cli(args, base: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli(args, base, base / "pyg_tgl_data", check=check)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """``python -m pyg_tgl.run -m model=edgebank model.mode=unlimited,time_window`` on the first
    4,000 CollegeMsg events (ships with the package: no download)."""
    base = tmp_path_factory.mktemp("edgebank_pipeline")
    out = base / "sweep"
    _cli(["-m", "pyg_tgl.run", "-m", "model=edgebank", "data=collegemsg",
          "model.mode=unlimited,time_window", "quiet=true", f"train.max_events={MAX_EVENTS}",
          f"train.batch_size={BATCH}", f"eval.num_negatives={NUM_NEG}",
          "eval.memory_carry=true", "hardware.num_threads=1", f"hydra.sweep.dir={out}"], base)
    return out


def _jobs(sweep: Path):
    jobs = {}
    for ov in sorted(sweep.glob("*/.hydra/overrides.yaml")):
        mode = dict(o.split("=", 1) for o in yaml.safe_load(ov.read_text()))["model.mode"]
        jobs[mode] = ov.parent.parent
    assert sorted(jobs) == ["time_window", "unlimited"], jobs
    return jobs


def _direct(mode: str, seed: int = 0):
    """EdgeBank run by hand: fill with train + validation events, then score each test batch of
    the learned models' test loader (seed + 2, ``NUM_NEG`` negatives) and insert it."""
    from pyg_tgl.data.datasets import load_dataset
    from pyg_tgl.data.loader import TemporalNeighborLoader
    from pyg_tgl.nn.edgebank import EdgeBank
    from pyg_tgl.train.splits import cap_split

    ds = load_dataset("collegemsg", cache=False)
    split = cap_split(ds.split, MAX_EVENTS)
    d = ds.data
    history = slice(0, split["test"].start)
    window = EdgeBank.window_from_history(d.t[history], 0.15) if mode == "time_window" else None
    bank = EdgeBank(ds.num_nodes, mode=mode, time_window=window)
    bank.update(d.src[history], d.dst[history], d.t[history])
    # Pure-Python reference of the unlimited bank: the set of pairs seen before each batch.
    seen = {(int(u), int(v)) for u, v in zip(d.src[history], d.dst[history])}
    loader = TemporalNeighborLoader(d, num_neighbors=[], batch_size=BATCH, neg_sampling="random",
                                    num_neg=NUM_NEG, events=split["test"], seed=seed + 2,
                                    train_events=split["train"])
    pos, neg, ref_pos = [], [], []
    for batch in loader:
        b = batch.num_events
        pos.append(bank.score(batch.src, batch.dst, batch.t))
        neg.append(bank.score(batch.src.repeat(NUM_NEG), batch.neg_dst,
                              batch.t.repeat(NUM_NEG)).view(NUM_NEG, b))
        ref_pos.append(torch.tensor([float((int(u), int(v)) in seen)
                                     for u, v in zip(batch.src, batch.dst)]))
        bank.update(batch.src, batch.dst, batch.t)
        seen.update((int(u), int(v)) for u, v in zip(batch.src, batch.dst))
    pos, neg, ref_pos = torch.cat(pos), torch.cat(neg, dim=1), torch.cat(ref_pos)
    return pos, neg, ref_pos, window


@pytest.mark.parametrize("mode", ["unlimited", "time_window"])
def test_edgebank_run_equals_direct_edgebank(sweep, mode):
    job = _jobs(sweep)[mode]
    metrics = json.loads((job / "metrics.json").read_text())
    # The learned models' shape: no epochs, val and test blocks, the split, the protocol.
    assert metrics["finished"] is True and metrics["epochs"] == []
    assert metrics["protocol"] == "memory_carry"
    assert metrics["split"] == {"train": [0, 2800], "val": [2800, 3400], "test": [3400, 4000]}
    test = metrics["test"]
    for key in ("ap", "auc", "mrr", "inductive_ap", "inductive_mrr", "num_inductive"):
        assert key in test and key in metrics["val"], key
    assert test["num_events"] == 600 and test["num_negatives"] == NUM_NEG
    assert metrics["val"]["num_negatives"] == 1  # eval.val_num_negatives

    pos, neg, ref_pos, window = _direct(mode)
    if mode == "unlimited":
        # Memory is every event before the scored batch, nothing of the batch itself.
        assert torch.equal(pos, ref_pos)
    else:
        assert metrics["edgebank"]["time_window"]["test"] == pytest.approx(window)
    assert 0 < float(pos.mean()) < 1  # a non-trivial ranking
    labels = torch.cat([torch.ones_like(pos), torch.zeros_like(pos)]).numpy()
    scores = torch.cat([pos, neg[0]]).numpy()
    assert test["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-9)
    assert test["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    # MRR among the NUM_NEG negatives, ties counting one half (eval.ties=average).
    rank = 1 + (neg > pos).sum(0) + 0.5 * (neg == pos).sum(0)
    assert test["mrr"] == pytest.approx(float((1.0 / rank).mean()), abs=1e-6)


def test_edgebank_sweep_summary(sweep):
    rows = {r["model.mode"]: r for r in csv.DictReader(open(sweep / "summary.csv"))}
    assert sorted(rows) == ["time_window", "unlimited"]
    for mode, job in _jobs(sweep).items():
        ap = json.loads((job / "metrics.json").read_text())["test"]["ap"]
        assert float(rows[mode]["test_ap_mean"]) == pytest.approx(ap)
        assert rows[mode]["runs"] == "1" and rows[mode]["incomplete"] == "0"


@pytest.mark.parametrize("args,needle", [
    (["task=node"], "model=edgebank supports task=link only"),
    (["model.mode=tw"], "model.mode='tw' is not supported; allowed values: ['unlimited', "
                        "'time_window']"),
    (["model.time_window=10"], "model.time_window=10 is only used with model.mode=time_window"),
])
def test_edgebank_bad_options(args, needle, tmp_path):
    proc = _cli(["-m", "pyg_tgl.run", "model=edgebank", "quiet=true", "train.max_events=1000",
                 f"hydra.run.dir={tmp_path / 'run'}", *args], tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and needle in proc.stderr
