import pytest
import torch
from torch_geometric.data import TemporalData

from pyg_tgl.data.loader import NegativeSampler, TemporalNeighborLoader


def make_events(num_nodes=30, num_events=500, seed=0, bipartite=False):
    g = torch.Generator().manual_seed(seed)
    if bipartite:
        src = torch.randint(0, num_nodes // 2, (num_events,), generator=g)
        dst = torch.randint(num_nodes // 2, num_nodes, (num_events,), generator=g)
    else:
        src = torch.randint(0, num_nodes, (num_events,), generator=g)
        dst = torch.randint(0, num_nodes, (num_events,), generator=g)
    t = torch.sort(torch.randint(0, 200, (num_events,), generator=g).double()).values
    return TemporalData(src=src, dst=dst, t=t)


def assert_batches_equal(a, b):
    for name in ("src", "dst", "t", "eid", "neg_dst", "root_nodes", "root_ts"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert len(a.blocks) == len(b.blocks)
    for snap_a, snap_b in zip(a.blocks, b.blocks):
        for hop_a, hop_b in zip(snap_a, snap_b):
            for name in ("nodes", "ts", "edge_index", "eid", "dt", "dense_index", "count"):
                assert torch.equal(getattr(hop_a, name), getattr(hop_b, name)), name


def test_batches_cover_events_in_order_with_tgl_root_layout():
    data = make_events()
    loader = TemporalNeighborLoader(data, [5], batch_size=64, num_neg=2, events=slice(100, 400))
    seen = []
    for batch in loader:
        b = batch.num_events
        assert torch.equal(batch.src, data.src[batch.eid])
        assert torch.equal(batch.dst, data.dst[batch.eid])
        assert batch.t.dtype == torch.float64
        assert batch.neg_dst.numel() == 2 * b and batch.num_neg == 2
        assert torch.equal(batch.root_nodes, torch.cat([batch.src, batch.dst, batch.neg_dst]))
        assert torch.equal(batch.root_ts, torch.cat([batch.t] * 4))
        hop = batch.hops[0]
        assert torch.equal(hop.nodes[:hop.num_roots], batch.root_nodes)
        assert bool((hop.dt > 0).all())
        seen.append(batch.eid)
    assert torch.equal(torch.cat(seen), torch.arange(100, 400))
    assert len(loader) == len(seen) == 5


def test_without_neighbors_yields_no_blocks():
    data = make_events()
    batch = next(iter(TemporalNeighborLoader(data, [], batch_size=10)))
    assert batch.blocks == [] and batch.hops == []


def test_random_negatives_are_destinations_and_reproducible():
    data = make_events(bipartite=True)
    dsts = set(data.dst.tolist())
    runs = []
    for _ in range(2):
        loader = TemporalNeighborLoader(data, [], batch_size=50, num_neg=3, seed=7)
        runs.append(torch.cat([b.neg_dst for b in loader]))
    assert torch.equal(runs[0], runs[1])
    assert set(runs[0].tolist()) <= dsts
    other = torch.cat([b.neg_dst for b in TemporalNeighborLoader(data, [], batch_size=50,
                                                                  num_neg=3, seed=8)])
    assert not torch.equal(runs[0], other)


def test_historical_negatives_come_from_earlier_events():
    data = make_events()
    loader = TemporalNeighborLoader(data, [], batch_size=50, neg_sampling="historical",
                                    events=slice(200, 500))
    for batch in loader:
        start = int(batch.eid.min())
        earlier = set(data.dst[:start].tolist())
        assert set(batch.neg_dst.tolist()) <= earlier


def test_inductive_negatives_avoid_training_nodes():
    data = make_events(num_nodes=200, num_events=300)
    train = slice(0, 100)
    sampler = NegativeSampler(data, "inductive", train_events=train)
    neg = sampler.sample(torch.arange(100, 300), 4)
    seen = set(data.src[:100].tolist()) | set(data.dst[:100].tolist())
    assert neg.numel() == 800 and not (set(neg.tolist()) & seen)


def test_bad_arguments_are_rejected():
    data = make_events()
    with pytest.raises(ValueError, match="neg_sampling"):
        TemporalNeighborLoader(data, [], neg_sampling="hard")
    with pytest.raises(ValueError, match="batch_size"):
        TemporalNeighborLoader(data, [], batch_size=0)
    with pytest.raises(ValueError, match="event ids"):
        TemporalNeighborLoader(data, [], events=torch.tensor([0, 10_000]))


def test_prefetch_gives_the_same_batches():
    data = make_events()
    plain = list(TemporalNeighborLoader(data, [4, 3], strategy="uniform", batch_size=40, seed=3))
    ahead = list(TemporalNeighborLoader(data, [4, 3], strategy="uniform", batch_size=40, seed=3,
                                        prefetch=True))
    assert len(plain) == len(ahead)
    for a, b in zip(plain, ahead):
        assert_batches_equal(a, b)


def test_prefetch_stops_cleanly_when_the_consumer_breaks():
    data = make_events()
    loader = TemporalNeighborLoader(data, [4], batch_size=10, prefetch=True)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    assert sum(1 for _ in loader) == len(loader)


def test_set_batches_yields_exactly_those_events_once():
    data = make_events()
    loader = TemporalNeighborLoader(data, [3], batch_size=100)
    plan = [torch.tensor([5, 6, 7]), torch.arange(8, 30)]
    loader.set_batches(plan)
    assert [b.eid.tolist() for b in loader] == [p.tolist() for p in plan]
    assert len(list(loader)) == len(loader) == 5  # back to the default plan


def test_state_dict_resume_repeats_the_same_batches():
    data = make_events()
    kwargs = dict(num_neighbors=[4], strategy="uniform", batch_size=60, seed=11)
    loader = TemporalNeighborLoader(data, **kwargs)
    list(loader)  # one epoch
    state = loader.state_dict()
    expected = list(loader)

    resumed = TemporalNeighborLoader(data, **kwargs)
    resumed.load_state_dict(state)
    for a, b in zip(expected, resumed):
        assert_batches_equal(a, b)


def test_batch_root_time_embeds_every_root_before_the_batch():
    data = make_events(num_events=400)
    event = TemporalNeighborLoader(data, [5], batch_size=50, num_neg=2, seed=3)
    batch_time = TemporalNeighborLoader(data, [5], batch_size=50, num_neg=2, seed=3,
                                        root_time="batch")
    for a, b in zip(event, batch_time):
        # Same events and negatives; only the roots' query time moves to the batch's start.
        for name in ("src", "dst", "t", "eid", "neg_dst", "root_nodes"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        start = data.t[b.eid].min()
        assert torch.equal(b.root_ts, torch.full_like(a.root_ts, float(start)))
        hop = b.hops[0]
        # Nothing of the batch itself (nor anything at its first timestamp) is a neighbour.
        assert bool((data.t[hop.eid] < start).all())
        assert torch.allclose(hop.dt, start - data.t[hop.eid])
        # Each node's roots now coincide: the same neighbours, wherever the node appears.
        first = {}
        for r, node in enumerate(b.root_nodes.tolist()):
            row = hop.nodes[hop.dense_index[r][hop.dense_index[r] >= 0]].tolist()
            assert first.setdefault(node, row) == row
    # Sharded, every rank queries at the start of the global batch.
    shards = [TemporalNeighborLoader(data, [5], batch_size=50, root_time="batch",
                                     shard=(rank, 2)) for rank in range(2)]
    for x, y in zip(*shards):
        assert x.root_ts[0] == y.root_ts[0] == min(x.t.min(), y.t.min())
    with pytest.raises(ValueError, match="root_time must be one of"):
        TemporalNeighborLoader(data, [5], root_time="query")


# ------------------------------------------------------------------------------------------------
# The typed option objects and their keyword shortcuts
# ------------------------------------------------------------------------------------------------

def test_option_objects_and_keyword_shortcuts_build_the_same_loader():
    from pyg_tgl.data.loader import BatchOptions, NegativeOptions, SamplingOptions
    data = make_events()
    shortcuts = TemporalNeighborLoader(data, [4, 3], strategy="uniform", batch_size=40,
                                       neg_sampling="historical", num_neg=2, seed=5,
                                       events=slice(50, 450), root_time="batch", dedup=True)
    objects = TemporalNeighborLoader(
        data, seed=5,
        sampling=SamplingOptions(num_neighbors=[4, 3], strategy="uniform", root_time="batch",
                                 dedup=True),
        negatives=NegativeOptions(strategy="historical", num_neg=2),
        batching=BatchOptions(batch_size=40, events=slice(50, 450)))
    assert objects.sampling == shortcuts.sampling and objects.sampling.num_neighbors == (4, 3)
    assert objects.negatives == shortcuts.negatives and objects.batching == shortcuts.batching
    assert objects.sampler.dedup and objects.num_neg == 2 and objects.root_time == "batch"
    a, b = list(shortcuts), list(objects)
    assert len(a) == len(b) == 10
    for x, y in zip(a, b):
        assert_batches_equal(x, y)


def test_shortcuts_apply_on_top_of_the_objects_and_unknown_ones_are_named():
    from pyg_tgl.data.loader import BatchOptions, NegativeOptions, SamplingOptions
    data = make_events()
    base = SamplingOptions(num_neighbors=(5,), strategy="uniform")
    loader = TemporalNeighborLoader(data, sampling=base, num_threads=1, batch_size=30,
                                    batching=BatchOptions(batch_size=10, prefetch=True))
    assert loader.sampling == SamplingOptions(num_neighbors=(5,), strategy="uniform",
                                              num_threads=1)
    assert base.num_threads is None  # the object given is not changed
    assert loader.batch_size == 30 and loader.prefetch and len(loader) == 17
    # The positional fan-out is the shortcut of sampling.num_neighbors; [] samples nothing.
    assert TemporalNeighborLoader(data, [], sampling=base).sampler is None
    with pytest.raises(TypeError, match=r"unknown option 'batchsize'; did you mean 'batch_size'"):
        TemporalNeighborLoader(data, [], batchsize=10)
    with pytest.raises(TypeError, match=r"negatives= takes a NegativeOptions, got SamplingOptions"):
        TemporalNeighborLoader(data, [], negatives=base)
    # Bad values are refused where the object is made, naming the option.
    with pytest.raises(ValueError, match="batch_size must be positive"):
        BatchOptions(batch_size=0)
    with pytest.raises(ValueError, match="shard must be"):
        BatchOptions(shard=(3, 2))
    with pytest.raises(ValueError, match="num_neg must be >= 0"):
        NegativeOptions(num_neg=-1)
    with pytest.raises(ValueError, match="neg_sampling must be one of"):
        NegativeOptions(strategy="hard")
    with pytest.raises(ValueError, match="root_time must be one of"):
        SamplingOptions(root_time="query")


def test_transform_and_pin_memory_stay_settable():
    data = make_events()
    loader = TemporalNeighborLoader(data, [3], batch_size=100)

    def plan(batch):
        return batch.num_events
    loader.transform = plan
    assert loader.batching.transform is plan and loader.transform is plan
    assert [b.plan for b in loader] == [100] * 5
    loader.pin_memory = 1
    assert loader.batching.pin_memory is True and loader.pin_memory is True
