"""A finished run as a model in Python (``pyg_tgl.load_run``) and the ``pyg-tgl`` console
script (Hydra's help and tab completion need an installed script, not ``python -m``)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli import cli_env
from test_train_loop import _isolated, _test_metrics, cfg_of  # noqa: F401

import pyg_tgl
from pyg_tgl.train import metrics as metrics_module
from pyg_tgl.train.experiment import ConfigError, Context, load_data, run_experiment

# Batches of 120 split the 1,680 training and 360 validation events of the capped CollegeMsg
# evenly, so replaying "every event before the first test event" in batches from event 0 (what
# load_run does) is the replay of the run's test protocol.
TINY = ["quiet=true", "train.max_events=2400", "train.batch_size=120", "eval.num_negatives=4",
        "train.epoch=1", "model=tgn"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    # Module scope runs before the per-test isolation: the same settings, set here.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYG_TGL_DATA", str(tmp_path_factory.getbasetemp() / "pyg_tgl_data"))
        torch.set_num_threads(1)
        cfg = cfg_of(*TINY)
        ctx = Context(cfg, load_data(cfg), torch.device("cpu"))
        split, t = ctx.split, ctx.ds.data.t
        assert split["train"].stop % 120 == 0
        assert (split["val"].stop - split["val"].start) % 120 == 0
        assert t[split["val"].stop - 1] < t[split["test"].start]
        first_test_time = float(t[split["test"].start])
        run_dir = tmp_path_factory.mktemp("finished_run")
        result = run_experiment(cfg_of(*TINY, f"export.time={first_test_time}"), run_dir,
                                progress=False)
    return run_dir, result, first_test_time


def test_load_run_rebuilds_the_trained_model(finished_run):
    run_dir, result, time = finished_run
    run = pyg_tgl.load_run(run_dir)
    assert isinstance(run, pyg_tgl.TrainedRun) and not run.model.training
    assert run.config.model.name == "tgn" and run.epoch == result["best_epoch"]
    assert run.checkpoint == run_dir / "checkpoints" / "best.pt"
    assert run.metrics["test"]["ap"] == result["test"]["ap"]
    assert run.dataset.num_nodes == run.context.ds.num_nodes

    # The embeddings the run exported at its end (export.time), recomputed.
    exported = torch.load(run_dir / "embeddings.pt", weights_only=True)
    nodes, emb = run.embed(time)
    assert torch.equal(nodes, exported["nodes"]) and torch.equal(emb, exported["embeddings"])

    # The test metrics the run reported, re-scored with its protocol.
    assert _test_metrics({"test": run.test()}) == _test_metrics(result)


def test_score_gives_the_runs_own_test_scores(finished_run, monkeypatch):
    run_dir, result, time = finished_run
    run = pyg_tgl.load_run(run_dir)
    # The logits of the test batches, as the run's test computes them.
    seen = []
    real_add = metrics_module.LinkMetricAccumulator.add

    def recording_add(self, pos, neg, *args, **kwargs):
        seen.append(pos.clone())
        return real_add(self, pos, neg, *args, **kwargs)

    monkeypatch.setattr(metrics_module.LinkMetricAccumulator, "add", recording_add)
    run.test()
    # score() absorbs the events before each batch's first time: the run's test absorbed the
    # whole previous batch, the same events where no timestamp straddles the batch boundary.
    data = run.dataset.data
    start = run.context.split["test"].start
    ids = torch.arange(start, start + 2 * 120)
    assert float(data.t[start]) == time and data.t[start + 119] < data.t[start + 120]
    expected = torch.sigmoid(torch.cat(seen[:2]))
    got = run.score(data.src[ids], data.dst[ids], data.t[ids])
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # One time for every link: no replay between the batches, every link at that time.
    same_time = run.score(data.src[ids], data.dst[ids], time)
    assert torch.equal(same_time, run.score(data.src[ids], data.dst[ids], [time] * len(ids)))
    assert not torch.allclose(same_time, got)


def test_load_run_errors(finished_run, tmp_path):
    run_dir, _, _ = finished_run
    with pytest.raises(ConfigError, match=r"config_resolved.yaml does not exist"):
        pyg_tgl.load_run(tmp_path)
    with pytest.raises(ConfigError, match=r"checkpoint='nope.pt': checkpoint 'nope.pt' does "
                                          r"not exist"):
        pyg_tgl.load_run(run_dir, checkpoint="nope.pt")
    run = pyg_tgl.load_run(run_dir, checkpoint="last")
    with pytest.raises(ConfigError, match=r"score: dst: node id 99999 is outside"):
        run.score([0], [99999], 1.0)
    with pytest.raises(ValueError, match=r"non-decreasing"):
        run.score([0, 1], [1, 2], [5.0, 4.0])


SCRIPT = Path(sys.executable).with_name("pyg-tgl")


def _script(args, tmp_path, **env):
    if not SCRIPT.is_file():
        pytest.skip(f"{SCRIPT} is not installed: pip install -e . installs the console script")
    return subprocess.run([str(SCRIPT), *args], cwd=tmp_path, capture_output=True, text=True,
                          env={**cli_env(tmp_path / "data"), **env}, timeout=300)


def test_console_script_help_and_tab_completion(tmp_path):
    help_ = _script(["--help"], tmp_path)
    assert help_.returncode == 0, help_.stderr
    assert help_.stdout.startswith("pyg-tgl (also: python -m pyg_tgl.run)")
    assert "model: apan, dysat, edgebank, jodie, tgat, tgn" in help_.stdout

    install = _script(["-sc", "install=bash"], tmp_path)
    assert install.returncode == 0, install.stderr
    # Completion is registered for the script's name (with python -m it would be for python).
    assert install.stdout.rstrip().endswith("-F hydra_bash_completion pyg-tgl")
    line = "pyg-tgl train.lr_sch"
    query = _script(["-sc", "query=bash"], tmp_path, COMP_LINE=line, COMP_POINT=str(len(line)))
    assert query.returncode == 0 and query.stdout.split() == ["train.lr_schedule="]
