"""The command line: ``python -m pyg_tgl.run`` (default job, shortened), a multirun sweep with
its summary table, bad input, and ``python -m pyg_tgl.embed`` on the run's output."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from cli import run_cli

REPO = Path(__file__).resolve().parents[1]


def _cli(args, tmp_path_factory, check=True):
    base = tmp_path_factory.getbasetemp()
    return run_cli(args, base, base / "pyg_tgl_data", check=check)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default job (TGN on the shipped CollegeMsg), shortened for CI."""
    run_dir = tmp_path_factory.mktemp("default_run")
    _cli(["-m", "pyg_tgl.run", "quiet=true", "train.epoch=2", "train.max_events=4000",
          "eval.num_negatives=9", f"hydra.run.dir={run_dir}"], tmp_path_factory)
    return run_dir


def test_default_run_end_to_end(default_run):
    metrics = json.loads((default_run / "metrics.json").read_text())
    assert metrics["finished"] is True
    cfg = yaml.safe_load((default_run / "config_resolved.yaml").read_text())
    assert cfg["model"]["name"] == "tgn" and cfg["data"]["name"] == "collegemsg"
    # No model chosen: the most accurate documented configuration (preset=best), said in the
    # log's first line with the override that gives TGL's TGN.
    assert cfg["model"]["gnn"]["pair_history_nodes"] and cfg["train"]["batch_size"] == 200
    first = (default_run / "train.log").read_text().splitlines()[0]
    assert "preset=best: tgn with pyg_tgl's pair and node history features" in first, first
    assert "`model=tgn` (preset=quick) trains tgn exactly as TGL configures it" in first
    assert len(metrics["epochs"]) == 2
    for epoch in metrics["epochs"]:
        for key in ("loss", "val_ap", "val_auc", "val_mrr", "time_sample", "time_memory",
                    "time_compute", "time_update", "events_per_s"):
            assert key in epoch
    test = metrics["test"]
    # Well above chance (0.5 for AP/AUC with one negative per positive; MRR of a random
    # ranking among 9 negatives is about 0.29).
    assert test["ap"] > 0.65 and test["auc"] > 0.65, test
    assert test["mrr"] > 0.35 and test["num_negatives"] == 9
    assert metrics["split"] == {"train": [0, 2800], "val": [2800, 3400], "test": [3400, 4000]}
    for name in (".hydra/config.yaml", "checkpoints/best.pt", "checkpoints/last.pt",
                 "training_curve.png", "train.log"):
        assert (default_run / name).is_file(), name
    # The last log line says in words what was measured, with the AP of metrics.json.
    last = (default_run / "train.log").read_text().strip().splitlines()[-1]
    assert f"test AP {test['ap']:.4f}: average precision of the 600 test events, each against " \
           f"one random negative destination (model of epoch" in last, last
    assert "mrr" not in last.split("metrics.json")[0].split(";")[0].lower()


def test_embed_export(default_run, tmp_path, tmp_path_factory):
    out = tmp_path / "emb.pt"
    # A time inside the capped events: memory absorbs the events before it.
    _cli(["-m", "pyg_tgl.embed", str(default_run), "--time", "1e7", "--nodes", "0,5,7",
          "--out", str(out)], tmp_path_factory)
    emb = torch.load(out, weights_only=True)
    assert emb["nodes"].tolist() == [0, 5, 7]
    assert emb["embeddings"].shape == (3, 100) and torch.isfinite(emb["embeddings"]).all()
    assert emb["time"] == 1e7
    bad = _cli(["-m", "pyg_tgl.embed", str(default_run), "--time", "0", "--nodes", "99999"],
               tmp_path_factory, check=False)
    assert bad.returncode == 2 and "export.nodes: node id 99999" in bad.stderr


def test_a_run_directory_of_the_previous_layout_loads(default_run, tmp_path):
    """A run written before the schema has a config_resolved.yaml without the options added
    since (the six model options that had no YAML, ...): it loads with their defaults."""
    import shutil

    from pyg_tgl import load_run
    run_dir = tmp_path / "old_run"
    shutil.copytree(default_run, run_dir)
    cfg = yaml.safe_load((run_dir / "config_resolved.yaml").read_text())
    for section, key in (("sampling", "root_time"), ("sampling", "dedup"),
                         ("memory", "storage_dtype"), ("gnn", "att_score"),
                         ("gnn", "unique_inputs"), ("gnn", "pair_recency")):
        del cfg["model"][section][key]
    del cfg["logger_options"]
    (run_dir / "config_resolved.yaml").write_text(yaml.safe_dump(cfg))
    run = load_run(run_dir)
    assert run.config.model.sampling.root_time == "event" and run.config.model.gnn.unique_inputs
    nodes, emb = run.embed(time=1e7, nodes=[0, 5])
    assert emb.shape == (2, 100) and torch.isfinite(emb).all()


def test_multirun_sweep_writes_summary(tmp_path, tmp_path_factory):
    sweep = tmp_path / "sweep"
    _cli(["-m", "pyg_tgl.run", "-m", "quiet=true", "model=jodie", "train.epoch=1",
          "train.max_events=1500", "eval.num_negatives=2", "seed=0,1",
          f"hydra.sweep.dir={sweep}"], tmp_path_factory)
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert len(rows) == 1  # two seeds of one configuration
    row = rows[0]
    assert row["runs"] == "2" and row["seeds"] == "0,1" and row["model"] == "jodie"
    aps = [json.loads((sweep / str(i) / "metrics.json").read_text())["test"]["ap"]
           for i in (0, 1)]
    assert float(row["test_ap_mean"]) == pytest.approx(sum(aps) / 2)
    assert "± " in (sweep / "summary.md").read_text()


@pytest.mark.parametrize("args,needle", [
    (["model=foo"], "model='foo' is unknown; allowed values: ['apan', 'dysat', 'edgebank', "
                    "'jodie', 'tgat', 'tgn']"),
    (["-m", "data=collegemsg,nope"], "data='nope' is unknown; allowed values: ["),
    (["schedule=random_chunk", "train.batch_size=4"], "train.batch_size=4 < schedule.reorder=16"),
])
def test_bad_input_fails_with_one_clear_line(args, needle, tmp_path, tmp_path_factory):
    proc = _cli(["-m", "pyg_tgl.run", "quiet=true", f"hydra.run.dir={tmp_path}", *args],
                tmp_path_factory, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.strip().count("\n") == 0
    assert needle in proc.stderr
