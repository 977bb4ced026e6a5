"""Data-parallel failure paths through the command line (``hardware=ddp``, 2 local ranks, gloo
on CPU): a rank that raises or is killed mid-epoch stops every rank, well before
``hardware.distributed.timeout_s``, the error names it, and ``resume=true`` on the same run
directory then repeats the uninterrupted run exactly; a rank that hangs makes the others fail
after ``timeout_s``, and the error names the hung rank.

Faults are injected by a ``sitecustomize`` module on the ranks' ``PYTHONPATH`` (test code: the
spawned ranks are fresh interpreters, which import it at start-up) that wraps
:meth:`~pyg_tgl.train.loop.LinkStep.forward`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli import cli_env, run_cli

# 5 training steps of 2 x 100 events per epoch; dropout on, so resuming must restore every
# rank's random stream.
# model=tgn: TGL's TGN, what these runs trained before the default became preset=best.
RUN = ["-m", "pyg_tgl.run", "model=tgn", "data=synthetic", "data.num_nodes=150",
       "data.num_events=1200", "data.edge_dim=4", "data.time_span=10000", "data.seed=3",
       "train.batch_size=100", "train.epoch=2", "train.dropout=0.2", "eval.num_negatives=9",
       "quiet=true", "hardware=ddp", "hardware.distributed.nproc_per_node=2"]
STEPS_PER_EPOCH = 5
#: The survivors of a raise or a kill must be stopped by the launcher, not by their
#: collectives' timeout: the test allows STOP_S after the fault, well under TIMEOUT_S. A hang
#: (SIGSTOP) is only noticed by the timeout: HANG_TIMEOUT_S.
TIMEOUT_S, HANG_TIMEOUT_S, STOP_S = 120, 10, 60

FAULT_HOOK = '''
import os, sys
_spec = os.environ.get("PYG_TGL_TEST_FAULT")
if _spec and any("spawn_main" in a for a in sys.orig_argv):  # a rank, not the launcher
    import signal
    import torch.distributed
    from pyg_tgl.train import loop
    with open(os.environ["PYG_TGL_TEST_PIDS"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    _kind, _rank, _step = _spec.split(":")
    _forward, _calls = loop.LinkStep.forward, [0]

    def _faulty(self, batch, weight=1.0):
        if self.model.training:
            _calls[0] += 1
            if _calls[0] == int(_step) and torch.distributed.get_rank() == int(_rank):
                open(os.environ["PYG_TGL_TEST_FIRED"], "w").close()
                if _kind == "raise":
                    raise RuntimeError(f"injected fault at training step {_step}")
                os.kill(os.getpid(), signal.SIGSTOP if _kind == "hang" else signal.SIGKILL)
        return _forward(self, batch, weight)
    loop.LinkStep.forward = _faulty
'''


def _state(run_dir: Path):
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu",
                      weights_only=False)
    return ckpt["model"]["params"], json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp_full")
    run_cli(RUN + [f"hydra.run.dir={tmp / 'run'}"], tmp, tmp / "data", timeout=600)
    return _state(tmp / "run")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to check the ranks")
@pytest.mark.parametrize("kind,rank,message", [
    ("raise", 1, "rank 1 failed (the other ranks were stopped): RuntimeError: injected fault"),
    ("kill", 0, "rank 0 died (process 0 terminated with signal SIGKILL)"),
    ("hang", 1, "rank(s) [1] stopped responding and were stopped: rank 0's collectives timed "
                "out after hardware.distributed.timeout_s"),
], ids=["raise", "kill", "hang"])
def test_a_failing_rank_stops_the_run_and_resume_repeats_it(kind, rank, message, tmp_path,
                                                            uninterrupted):
    hook, pids, fired = tmp_path / "hook", tmp_path / "pids", tmp_path / "fired"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAULT_HOOK)
    env = cli_env(tmp_path / "data")
    env.update(PYTHONPATH=os.pathsep.join([str(hook), env["PYTHONPATH"]]),
               PYG_TGL_TEST_FAULT=f"{kind}:{rank}:{STEPS_PER_EPOCH + 3}",  # mid second epoch
               PYG_TGL_TEST_PIDS=str(pids), PYG_TGL_TEST_FIRED=str(fired))
    run_dir = tmp_path / "run"
    timeout = HANG_TIMEOUT_S if kind == "hang" else TIMEOUT_S
    # The killed run also checkpoints inside epochs (every 2 steps): it resumes mid-epoch, with
    # every rank's losses and random streams of that step.
    inside = ["train.checkpoint_every=2"] if kind == "kill" else []
    proc = subprocess.Popen(
        [sys.executable, *RUN, *inside, f"hardware.distributed.timeout_s={timeout}",
         f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        # Hang guards, not timings: start-up may be slow; once the fault fired, every rank must
        # be stopped long before TIMEOUT_S (the launcher stops them; a hang takes
        # HANG_TIMEOUT_S plus the launcher's grace period).
        deadline = time.monotonic() + 600
        while not fired.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert fired.exists(), "the fault did not fire"
        _, err = proc.communicate(timeout=STOP_S)
    finally:
        proc.kill()
    assert proc.returncode == 1, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {message}"), err[-3000:]
    ranks = [int(p) for p in pids.read_text().split()]
    assert len(ranks) == 2 and not any(_alive(p) for p in ranks), "a rank survived"
    if kind == "raise":  # the failing rank's traceback is on stderr, once
        assert err.count("Traceback") == 1 and "[rank 1]" in err
    if kind == "hang":  # resuming after a hang is resuming after a kill
        return
    # The interrupted run kept its first epoch (and, killed, 2 steps of its second); resuming
    # there repeats the uninterrupted run.
    assert not json.loads((run_dir / "metrics.json").read_text())["finished"]
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 0 and (last.get("mid_epoch") or {}).get("next_batch") == (
        2 if kind == "kill" else None)
    run_cli(RUN + [f"hydra.run.dir={run_dir}", "resume=true"], tmp_path, tmp_path / "data",
            timeout=600)
    (full_params, full), (params, resumed) = uninterrupted, _state(run_dir)
    assert all(torch.equal(full_params[k], params[k]) for k in full_params)
    assert resumed["finished"] and len(resumed["epochs"]) == 2
    assert [e["loss"] for e in resumed["epochs"]] == [e["loss"] for e in full["epochs"]]
    for split in ("val", "test"):
        assert {k: v for k, v in resumed[split].items() if k != "time"} == \
            {k: v for k, v in full[split].items() if k != "time"}, split
