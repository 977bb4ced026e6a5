"""What a newcomer's mistakes get from the command line: one line, ``error: ...``, exit status 2,
naming the option and what would be right; never Hydra's advice to append with ``+`` nor a
traceback. Also the run directory lock, Ctrl-C, and progress output written into files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli import cli_env, run_cli
from hydra import compose, initialize_config_dir

from pyg_tgl.run import config_dir
from pyg_tgl.train.run_lock import RunDirLock
from pyg_tgl.config import ConfigError
from pyg_tgl.config import compose as compose_run

REPO = Path(__file__).resolve().parents[1]
QUICK = ["quiet=true", "train.epoch=1", "train.max_events=600", "eval.num_negatives=2"]


def _cli(args, tmp_path_factory, check=False, **kwargs):
    base = tmp_path_factory.getbasetemp()
    return run_cli(["-m", "pyg_tgl.run", *args], base, base / "pyg_tgl_data", check=check,
                   **kwargs)


def _one_error_line(proc):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    line = proc.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line, proc.stderr
    assert "Traceback" not in proc.stderr and "+train" not in line
    return line


@pytest.mark.parametrize("override", ["train.epochs=3", "+train.epochs=3"])
def test_unknown_option_with_or_without_plus_names_the_closest(override, tmp_path,
                                                               tmp_path_factory):
    line = _one_error_line(_cli([override, f"hydra.run.dir={tmp_path}"], tmp_path_factory))
    assert "unknown option 'train.epochs' (did you mean 'train.epoch'?)" in line
    assert "append" not in line
    assert not (tmp_path / ".hydra").exists()  # refused before anything was written


def test_plus_on_a_known_or_documented_option_just_sets_it(tmp_path_factory):
    out = _cli(["+train.epoch=7", "model.memory.storage_dtype=bfloat16", "--cfg", "job"],
               tmp_path_factory, check=True).stdout
    cfg = __import__("yaml").safe_load(out)
    assert cfg["train"]["epoch"] == 7
    assert cfg["model"]["memory"]["storage_dtype"] == "bfloat16"


def cfg_of(*overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("override,message", [
    ("train.lr=nan", "train.lr=nan: expected a finite number > 0.0"),
    ("train.lr=inf", "train.lr=inf: expected a finite number > 0.0"),
    ("seed=abc", "seed='abc': expected an integer"),
    ("seed=1.5", "seed=1.5: expected an integer"),
    ("model.memory.dim_out=0", "model.memory.dim_out=0: expected an integer >= 1"),
    ("model.memory.dim_out=abc", "model.memory.dim_out='abc': expected an integer >= 1"),
    ("model.gnn.att_head=0", "model.gnn.att_head=0: expected an integer >= 1"),
    ("model.gnn.att_head=3", "model.gnn.dim_out=100 is not divisible by model.gnn.att_head=3"),
    ("model.gnn.layer=0", "model.gnn.layer=0: expected an integer >= 1"),
    ("model.gnn.dim_out=0", "model.gnn.dim_out=0: expected an integer >= 1"),
    ("model.sampling.num_thread=0", "model.sampling.num_thread=0: expected an integer >= 1"),
    ("model.sampling.neighbor=abc", "model.sampling.neighbor='abc': expected a list of integer"),
    ("model.sampling.duration=-1", "model.sampling.duration=-1: expected a finite number >= 0.0"),
    ("hardware.num_threads=0", "hardware.num_threads=0: expected an integer >= 1 or null"),
    ("hardware.sampler_threads=-1", "hardware.sampler_threads=-1: expected an integer >= 1"),
    ("hardware.device=tpu", "hardware.device='tpu' is not a device"),
    ("quiet=abc", "quiet='abc': expected true or false"),
    ("eval.memory_carry=1", "eval.memory_carry=1: expected true or false"),
    ("export.time=abc", "export.time='abc': expected a finite number"),
    ("export.nodes=abc", "export.nodes='abc': expected a list of node ids"),
    ("train.checkpoint_every=abc", "train.checkpoint_every='abc': expected null"),
    ("train.checkpoint_every=0", "train.checkpoint_every=0: expected null"),
    ("eval.min_subset_events=0", "eval.min_subset_events=0: expected an integer >= 1"),
])
def test_bad_values_are_refused_naming_the_option(override, message):
    with pytest.raises(ConfigError) as e:
        compose_run([override])
    assert message in str(e.value)


@pytest.mark.parametrize("override", ["model.memory.memory_update=foo", "model.gnn.arch=foo",
                                      "model.memory.mail_combine=foo",
                                      "model.memory.deliver_to=foo"])
def test_unknown_model_choices_end_in_one_line(override, tmp_path, tmp_path_factory):
    line = _one_error_line(_cli([*QUICK, override, f"hydra.run.dir={tmp_path}"],
                                tmp_path_factory))
    assert "foo" in line


def test_a_single_fan_out_is_a_list_of_one(tmp_path):
    from pyg_tgl.train.experiment import run_experiment
    cfg = cfg_of("quiet=true", "train.epoch=1", "train.max_events=600",
                 "eval.num_negatives=2", "model.sampling.neighbor=5")
    result = run_experiment(cfg, tmp_path, progress=False)
    assert result["finished"]
    resolved = __import__("yaml").safe_load((tmp_path / "config_resolved.yaml").read_text())
    assert resolved["model"]["sampling"]["neighbor"] == [5]


def test_a_split_with_no_validation_events_is_refused_before_training(tmp_path):
    """100 events over 2 timestamps: the chronological split keeps equal times together, so the
    validation split is empty; the run says so at once instead of training and then failing on a
    best checkpoint that was never written."""
    from pyg_tgl.train.experiment import run_experiment
    rows = [f"{i % 7},{10 + i % 5},{1000 if i < 90 else 2000}" for i in range(100)]
    path = tmp_path / "coarse.csv"
    path.write_text("src,dst,t\n" + "\n".join(rows) + "\n")
    cfg = cfg_of("quiet=true", "train.epoch=1", "data=csv", f"data.path={path}")
    with pytest.raises(ConfigError) as e:
        run_experiment(cfg, tmp_path / "run", progress=False)
    assert str(e.value) == (
        "data='csv': the val split is empty (train 90 | val 0 | test 10 events): a chronological "
        "split keeps events of equal time together, and these 100 events have only 2 distinct "
        "timestamps; use a data set with finer timestamps or more events, or change "
        "data.val_ratio / data.test_ratio")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_second_run_on_a_directory_in_use_is_refused(tmp_path, tmp_path_factory):
    run_dir = tmp_path / "run"
    lock = RunDirLock(run_dir).acquire()
    try:
        line = _one_error_line(_cli([*QUICK, f"hydra.run.dir={run_dir}"], tmp_path_factory))
        assert f"{run_dir} is in use by another run (pid {os.getpid()} on " in line
        assert sorted(p.name for p in run_dir.iterdir()) == [".pyg_tgl.lock"]  # nothing written
    finally:
        lock.release()
    proc = _cli([*QUICK, f"hydra.run.dir={run_dir}"], tmp_path_factory)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["finished"]


def test_the_lock_dies_with_its_process(tmp_path):
    """A run killed with SIGKILL leaves no stale lock: its resume is not refused."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pyg_tgl.train.run_lock import RunDirLock;"
         f"RunDirLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=cli_env(tmp_path))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match="in use by another run"):
            RunDirLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    RunDirLock(tmp_path).acquire().release()


def test_ctrl_c_says_how_to_resume_and_that_command_resumes(tmp_path, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    run_dir = tmp_path / "run"
    args = ["quiet=true", "train.epoch=1", "train.max_events=1500", "train.batch_size=100",
            "eval.num_negatives=2", "train.checkpoint_every=2", f"hydra.run.dir={run_dir}"]
    proc = run_cli([str(REPO / "tests" / "faults.py"), "sigint-train", "5", *args], base,
                   base / "pyg_tgl_data", check=False)
    assert proc.returncode == 130, proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, proc.stderr
    assert line.startswith("error: interrupted; continue from the last checkpoint with: "
                           "python -m pyg_tgl.run ")
    command = line.split("with: ", 1)[1].split()
    assert f"hydra.run.dir={run_dir}" in command and command[-1] == "resume=true"
    resumed = run_cli(command[1:], base, base / "pyg_tgl_data", check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["finished"]


def test_no_progress_bar_frames_in_a_log_file(tmp_path, tmp_path_factory):
    """stderr is not a terminal here (a pipe, as with ``2> file``): the default shows no bars,
    only log lines; ``progress=true`` forces them."""
    args = ["train.epoch=1", "train.max_events=600", "eval.num_negatives=2"]
    plain = _cli([*args, f"hydra.run.dir={tmp_path / 'plain'}"], tmp_path_factory)
    assert plain.returncode == 0, plain.stderr
    assert "ev/s]" not in plain.stderr and "%|" not in plain.stderr  # no tqdm frame at all
    assert "epoch 0  loss" in (tmp_path / "plain" / "train.log").read_text()
    bars = _cli([*args, "progress=true", f"hydra.run.dir={tmp_path / 'bars'}"],
                tmp_path_factory)
    assert bars.returncode == 0, bars.stderr
    assert "ev/s]" in bars.stderr and "%|" in bars.stderr
