"""Failure paths of a whole run, as a user meets them (subprocesses of ``python -m pyg_tgl.run``
with faults injected from outside by ``tests/faults.py``): ``kill -9`` inside training, inside a
checkpoint write, inside validation and inside the test, each followed by ``resume=true``; a full
disk while a checkpoint is written. The run ends exactly where an uninterrupted one does."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli import run_cli

REPO = Path(__file__).resolve().parents[1]

# TGN on 1,500 CollegeMsg events: 11 training batches per epoch, 3 validation batches, the test
# after replaying 14 batches (TGL protocol); a mid-epoch checkpoint every 4 training batches.
# model=tgn: TGL's TGN, what these runs trained before the default became preset=best.
BASE = ["model=tgn", "quiet=true", "train.epoch=2", "train.max_events=1500",
        "train.batch_size=100", "eval.num_negatives=4", "train.checkpoint_every=4"]


def _run(args, base, fault=None):
    head = [str(REPO / "tests" / "faults.py"), fault[0], str(fault[1])] if fault else \
        ["-m", "pyg_tgl.run"]
    return run_cli([*head, *BASE, *args], base, base / "pyg_tgl_data", check=False)


def _comparable(metrics):
    """metrics.json without wall-clock times."""
    def strip(d):
        return {k: v for k, v in d.items()
                if not k.startswith("time") and k not in ("events_per_s", "seconds_per_epoch")}
    return {"epochs": [strip(e) for e in metrics["epochs"]], "test": strip(metrics["test"]),
            "val": strip(metrics["val"]), "best_epoch": metrics["best_epoch"],
            "finished": metrics["finished"]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    proc = _run([f"hydra.run.dir={run_dir}"], base)
    assert proc.returncode == 0, proc.stderr
    return json.loads((run_dir / "metrics.json").read_text())


def _checkpoints_are_whole(run_dir):
    """Every checkpoint under its real name loads; no temporary file is trusted or kept."""
    for path in (run_dir / "checkpoints").glob("*.pt"):
        torch.load(path, weights_only=True)


def test_kill_9_anywhere_then_resume_repeats_the_uninterrupted_run(uninterrupted, tmp_path,
                                                                     tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    run_dir = tmp_path / "run"
    # Each process counts from its own start (after resuming); the comment says where it dies.
    kills = [
        ("kill-train", 7),   # epoch 0, batch 7: resumes mid-epoch from batch 4 (first epoch!)
        ("kill-save", 3),    # inside the write of last.pt at the end of epoch 0
        ("kill-eval", 2),    # inside epoch 0's validation
        ("kill-train", 9),   # epoch 1, batch 6
        ("kill-eval", 19),   # inside the test (after validation and the replay)
    ]
    for i, fault in enumerate(kills):
        args = [f"hydra.run.dir={run_dir}"] + (["resume=true"] if i else [])
        proc = _run(args, base, fault)
        assert proc.returncode == -9, (fault, proc.returncode, proc.stderr[-2000:])
        _checkpoints_are_whole(run_dir)
        metrics = json.loads((run_dir / "metrics.json").read_text()) if \
            (run_dir / "metrics.json").exists() else {"finished": False}
        assert metrics["finished"] is False
    proc = _run([f"hydra.run.dir={run_dir}", "resume=true"], base)
    assert proc.returncode == 0, proc.stderr
    final = json.loads((run_dir / "metrics.json").read_text())
    assert _comparable(final) == _comparable(uninterrupted)
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def test_disk_full_while_checkpointing_loses_nothing(uninterrupted, tmp_path, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    run_dir = tmp_path / "run"
    # The 4th checkpoint is last.pt at the end of epoch 0 (after two mid-epoch ones and best.pt).
    proc = _run([f"hydra.run.dir={run_dir}"], base, ("full-save", 4))
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("error: could not write the checkpoint "), line
    assert f"{run_dir / 'checkpoints' / 'last.pt'}: No space left on device" in line
    assert "the previous one is intact" in line and "resume=true" in line
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    previous = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert previous["mid_epoch"]["next_batch"] == 8
    proc = _run([f"hydra.run.dir={run_dir}", "resume=true"], base)
    assert proc.returncode == 0, proc.stderr
    final = json.loads((run_dir / "metrics.json").read_text())
    assert _comparable(final) == _comparable(uninterrupted)


def test_a_full_disk_under_the_data_cache_ends_with_one_line(tmp_path):
    """``python -m pyg_tgl.run`` on a data set whose cache folder is a 256 KiB tmpfs (mounted in
    a private user and mount namespace): one line naming the folder and the way out, exit 1."""
    import sys

    from cli import cli_env, private_tmpfs_or_skip, run_unshared, write_unix_time_events
    csv = write_unix_time_events(tmp_path / "events.csv")
    cache = tmp_path / "small"
    cache.mkdir()
    line = private_tmpfs_or_skip(cache, "256k", [
        sys.executable, "-m", "pyg_tgl.run", "quiet=true", "data=csv", f"data.path={csv}",
        f"data.cache_dir={cache}", f"hydra.run.dir={tmp_path / 'run'}"])
    proc = run_unshared(line, cli_env(tmp_path / "home"), tmp_path)
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and line.startswith("error: no space left on the device while "
                                                "writing the processed-data cache in "), line
    assert str(cache) in line and "data.cache=false" in line
