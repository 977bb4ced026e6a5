"""The speed paths compute exactly what the plain paths compute (issue 7).

* :meth:`TemporalAttention.forward_dense_unique` and ``AttentionEmbedding``'s ``unique_inputs``
  (inputs once per distinct ``(node, time)``, projections once per distinct ``(neighbour,
  edge)``): the same embeddings, gradients and memory updates as the expanded dense path.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch_geometric.data import TemporalData

from pyg_tgl.data.loader import TemporalNeighborLoader
from pyg_tgl.data.synthetic import SyntheticConfig, synthetic_events
from pyg_tgl.models import build_model
from pyg_tgl.nn.attention import TemporalAttention

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"


def test_forward_dense_unique_equals_forward_dense():
    torch.manual_seed(1)
    layer = TemporalAttention(6, 4, 5, 8, num_heads=2).double().eval()
    num_roots = 5
    x_u = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    e_u = torch.randn(3, 4, dtype=torch.float64)
    dense_index = torch.tensor([[5, 6, 7], [8, 9, -1], [10, -1, -1], [-1, -1, -1],
                                [11, 12, 13]])
    num_edges = 9
    node_of = torch.randint(4, (num_roots + num_edges,))
    edge_of = torch.randint(3, (num_edges,))
    dt = torch.rand(num_edges, dtype=torch.float64) * 100
    ref = layer.forward_dense(x_u[node_of], dense_index, dt, e_u[edge_of])
    out = layer.forward_dense_unique(x_u, node_of, dense_index, dt, e_u, edge_of)
    assert torch.allclose(out, ref, atol=1e-10)
    g = torch.randn_like(ref)
    ga, = torch.autograd.grad(ref, x_u, g)
    gb, = torch.autograd.grad(out, x_u, g)
    assert torch.allclose(ga, gb, atol=1e-10)
    with pytest.raises(ValueError, match="node_of must map the 5 roots and 9 neighbours"):
        layer.forward_dense_unique(x_u, node_of[:3], dense_index, dt, e_u, edge_of)
    with pytest.raises(ValueError, match="edge_of must map the 9 edges"):
        layer.forward_dense_unique(x_u, node_of, dense_index, dt, e_u, None)


def _data(n: int = 900) -> TemporalData:
    src, dst, t, msg = synthetic_events(
        SyntheticConfig(num_nodes=40, num_events=n, seed=5, edge_dim=6), 0, n)
    return TemporalData(src=torch.from_numpy(src), dst=torch.from_numpy(dst),
                        t=torch.from_numpy(t), msg=torch.from_numpy(msg))


@pytest.mark.parametrize("name, strategy, root_time", [
    ("tgn", None, "event"), ("tgat", None, "event"),
    # Every root at the batch's start: a node's roots coincide and the top layer embeds it once.
    ("tgn", None, "batch"), ("tgat", "recent", "batch")])
def test_unique_inputs_give_the_same_training_run(name, strategy, root_time):
    torch.manual_seed(0)
    data = _data()
    cfg = OmegaConf.load(CONF / f"{name}.yaml").model
    if strategy is not None:
        cfg.sampling.strategy = strategy
    cfg.gnn.dim_out = 8
    cfg.gnn.dim_time = 6
    if cfg.memory.get("type") == "node":
        cfg.memory.dim_out = 8
        cfg.memory.dim_time = 6
    fanout = list(cfg.sampling.neighbor)
    fast = build_model(cfg, 40, edge_feat=data.msg, dropout=0.0, att_dropout=0.0)
    assert fast.embedding.unique_inputs
    assert fast.embedding.unique_roots == (cfg.sampling.strategy == "recent")
    slow = copy.deepcopy(fast)
    slow.embedding.unique_inputs = slow.embedding.unique_roots = False
    opt = torch.optim.SGD(fast.parameters(), lr=1e-3)
    loader = TemporalNeighborLoader(data, fanout, strategy=str(cfg.sampling.strategy),
                                    batch_size=150, num_threads=1, root_time=root_time)
    duplicates = 0
    for batch in loader:
        keys = batch.root_nodes.double() * 1e12 + batch.root_ts
        duplicates += batch.root_nodes.numel() - keys.unique().numel()
        outs, updates = [], []
        for model in (fast, slow):
            model.zero_grad()
            pos, neg, update = model.step(batch)
            updates.append(update)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                torch.cat([pos, neg]), torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]))
            loss.backward()
            outs.append((pos.detach(), {k: p.grad.clone() for k, p in model.named_parameters()
                                        if p.grad is not None}))
        (pa, ga), (pb, gb) = outs
        assert torch.allclose(pa, pb, rtol=1e-4, atol=1e-5), (pa - pb).abs().max()
        assert ga.keys() == gb.keys()
        for k in ga:
            # Time-encoder gradients scale with raw time gaps (~1e5 here): compare relatively.
            scale = gb[k].abs().max().clamp(min=1.0)
            assert (ga[k] - gb[k]).abs().max() <= 1e-4 * scale, k
        opt.step()
        # The plain model continues from the same parameters, so the runs cannot drift apart
        # through float rounding amplified by training.
        slow.load_state_dict(fast.state_dict())
        fast.apply_update(updates[0])
        slow.apply_update(updates[1])
        if fast.memory is not None:
            assert torch.allclose(fast.memory.memory, slow.memory.memory, rtol=1e-3, atol=1e-5)
    if root_time == "batch":
        assert duplicates > 0.3 * loader.events.numel()  # the compaction had work to do


@pytest.mark.parametrize("name", ["jodie", "dysat", "tgat", "tgn", "apan"])
def test_host_index_plans_give_the_same_training_run(name):
    # LinkTrainer(host_plans=True) has the prefetching loader apply the model's batch_transform
    # (TemporalGNN.index_plan) on the host (what a CUDA device gets by default): the same
    # losses, memory and scores.
    from pyg_tgl.train.experiment import sampling_options
    from pyg_tgl.train.loop import LinkTrainer
    from pyg_tgl.train.schedule import BatchSchedule

    data = _data()
    cfg = OmegaConf.load(CONF / f"{name}.yaml").model
    if name == "dysat":
        cfg.sampling.duration = float(data.t.max() - data.t.min()) / 10
    if name == "tgat":
        cfg.sampling.strategy = "recent"  # deduplicated roots and hops too
    runs = []
    for host_plans in (False, True):
        torch.manual_seed(0)
        model = build_model(cfg, 40, edge_feat=data.msg, dropout=0.0, att_dropout=0.0)
        s = sampling_options(cfg)

        def loader(events, seed):
            return TemporalNeighborLoader(
                data, s["num_neighbors"], strategy=s["strategy"], batch_size=150,
                events=events, num_threads=1, seed=seed, prefetch=True, history=s["history"],
                duration=s["duration"], sample_negatives=not s["no_neg"])
        train = slice(0, 600)
        trainer = LinkTrainer(model, torch.optim.Adam(model.parameters(), lr=1e-3),
                              loader(train, 0), BatchSchedule(train, 150), progress=False,
                              host_plans=host_plans)
        if host_plans:
            assert trainer.train_loader.transform is model.batch_transform
        losses = [trainer.train_epoch(e)["loss"] for e in range(2)]
        val = loader(slice(600, 900), 1)
        m = trainer.evaluate(val)
        assert val.transform is None  # evaluation restores the loader's own options
        runs.append((losses, m["ap"], m["mrr"],
                     None if model.memory is None else model.memory.memory.clone()))
    (la, apa, mrra, mema), (lb, apb, mrrb, memb) = runs
    assert la == lb and apa == apb and mrra == mrrb
    assert mema is None or torch.equal(mema, memb)


def test_index_plan_travels_with_the_batch_and_is_checked():
    data = _data(300)
    cfg = OmegaConf.load(CONF / "tgn.yaml").model
    model = build_model(cfg, 40, edge_feat=data.msg)
    loader = TemporalNeighborLoader(data, [10], batch_size=100, num_threads=1,
                                    transform=model.batch_transform)
    batch = next(iter(loader))
    plan, = batch.plan
    assert set(plan) == {"pairs", "memory", "roots", "edges", "neighbor_pairs"}
    # Named tuples keep their type when the batch moves.
    moved = batch.to("cpu")
    assert type(moved.plan[0]["memory"]) is type(plan["memory"])
    assert torch.equal(moved.plan[0]["memory"].query_of, plan["memory"].query_of)
    # The memory's plan reproduces torch.unique's maps: query rows index back to the queries.
    nodes, ts, _ = plan["pairs"]
    q = plan["memory"]
    assert torch.equal(q.nodes[q.node_of], nodes)
    assert torch.equal(q.nodes[q.query_node][q.query_of], nodes)
    assert torch.equal(q.query_t[q.query_of], ts)
    batch.plan = batch.plan * 2
    with pytest.raises(ValueError, match="batch.plan has 2 snapshots"):
        model(batch)
    # A malformed batch is named before any plan is computed.
    batch.blocks = [[]]
    for plan in (None, batch.plan[:1]):
        batch.plan = plan
        with pytest.raises(ValueError, match="snapshot 0 has 0 hops, the model has 1 layers"):
            model(batch)
