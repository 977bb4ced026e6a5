"""Smoke tests of the C++ core's own guarantees: clear errors for bad input, output independent of
the thread count and of the pointer cache on the parallel path, dedup, int64 neighbour ids and
atomic saves. Exhaustive comparisons with the brute-force reference live in test_sampler.py and
test_tcsr.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pyg_tgl.data.sampler import DedupSampledHop, TemporalSampler
from pyg_tgl.data.tcsr import TCSR
from reference import random_temporal_graph

FIELDS = ("nodes", "ts", "edge_index", "eid", "dt", "dense_index", "count")


def _graph(num_nodes=60, num_events=4000, seed=3, distinct=500):
    g = random_temporal_graph(num_nodes, num_events, seed=seed, num_distinct_times=distinct)
    return g, TCSR.from_edges(g.src, g.dst, g.t, num_nodes=num_nodes)


def _assert_same(a, b, where=""):
    assert len(a) == len(b)
    for s, (hops_a, hops_b) in enumerate(zip(a, b)):
        assert len(hops_a) == len(hops_b)
        for l, (x, y) in enumerate(zip(hops_a, hops_b)):
            assert x.num_roots == y.num_roots
            for f in FIELDS:
                assert torch.equal(getattr(x, f), getattr(y, f)), f"{where} [{s}][{l}].{f}"


# ------------------------------------------------------------------------------------------------
# Bad input -> ValueError naming the problem
# ------------------------------------------------------------------------------------------------

def test_bad_sampler_input_raises_value_error():
    _, tcsr = _graph(num_nodes=10, num_events=50)
    s = TemporalSampler(tcsr, [3])
    ts = torch.full((3,), 10.0, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"root_nodes\[1\] = 10 is not a node id in \[0, 10\)"):
        s.sample(torch.tensor([0, 10, 2]), ts)
    with pytest.raises(ValueError, match=r"root_nodes\[2\] = -1"):
        s.sample(torch.tensor([0, 1, -1]), ts)
    with pytest.raises(ValueError, match=r"root_ts\[0\] is NaN"):
        s.sample(torch.tensor([0, 1, 2]), torch.tensor([float("nan"), 1.0, 2.0]))
    with pytest.raises(ValueError, match="root_ts has 3 entries but root_nodes has 2"):
        s.sample(torch.tensor([0, 1]), ts)
    with pytest.raises(ValueError, match="integer tensor of node ids, got dtype torch.float32"):
        s.sample(torch.tensor([0.0, 1.0, 2.0]), ts)
    with pytest.raises(ValueError, match="one-dimensional"):
        s.sample(torch.zeros(3, 1, dtype=torch.long), ts)
    # A failed call does not consume a random stream.
    assert s.call_index == 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_neighbors=[5, 0]), r"num_neighbors\[1\] = 0 must be a positive"),
    (dict(num_neighbors=[-1]), r"num_neighbors\[0\] = -1 must be a positive"),
    (dict(num_neighbors=[]), "at least one fan-out"),
    (dict(strategy="latest"), "strategy must be one of"),
    (dict(history=2, duration=0.0), "duration must be a positive finite number"),
    (dict(history=0), "history must be an integer >= 1"),
    (dict(num_threads=0), "num_threads must be a positive integer"),
])
def test_bad_sampler_options(kwargs, match):
    _, tcsr = _graph(num_nodes=10, num_events=50)
    with pytest.raises(ValueError, match=match):
        TemporalSampler(tcsr, **kwargs)


def test_bad_tcsr_input_raises_value_error():
    src = np.array([0, 1, 2])
    dst = np.array([1, 2, 3])
    t = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"dst\[2\] = 3 is out of range for num_nodes = 3"):
        TCSR.from_edges(src, dst, t, num_nodes=3)
    with pytest.raises(ValueError, match="dst has 2 entries but src has 3"):
        TCSR.from_edges(src, dst[:2], t)
    with pytest.raises(ValueError, match="src must hold integer node ids, got dtype float64"):
        TCSR.from_edges(src.astype(np.float64), dst, t)
    with pytest.raises(ValueError, match=r"eid\[1\] = -5 is negative"):
        TCSR.from_edges(src, dst, t, eid=np.array([0, -5, 2]))
    with pytest.raises(ValueError, match="node 1: times are not sorted"):
        TCSR(indptr=[0, 1, 3, 3], indices=[1, 0, 2], eid=[0, 0, 1], ts=[1.0, 5.0, 2.0])
    with pytest.raises(ValueError, match=r"node 0: indices\[0\] = 7 is not a node id"):
        TCSR(indptr=[0, 1, 1], indices=[7], eid=[0], ts=[1.0])


def test_safe_dtype_conversions_give_the_same_samples():
    g, tcsr = _graph()
    roots = g.src[:500]
    times = np.round(g.t[:500]).astype(np.int64) + 1
    a = TemporalSampler(tcsr, [4, 2], "uniform", seed=1)
    b = TemporalSampler(tcsr, [4, 2], "uniform", seed=1)
    _assert_same(a.sample(torch.from_numpy(roots), torch.from_numpy(times.astype(np.float64))),
                 b.sample(torch.from_numpy(roots.astype(np.int32)), times))


# ------------------------------------------------------------------------------------------------
# Parallel path: thread count and pointer cache never change the output
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["recent", "uniform"])
def test_pointer_cache_and_threads_on_parallel_path(strategy):
    # Large batches over few nodes: the hop runs in parallel and repeated roots race on the same
    # cache slots. Batches move forward in time, then jump back (a new epoch).
    g, tcsr = _graph(num_nodes=50, num_events=6000, distinct=3000)
    rng = np.random.default_rng(1)
    kwargs = dict(num_neighbors=[8, 3], strategy=strategy, seed=5)
    plain = TemporalSampler(tcsr, num_threads=1, **kwargs)
    cached = TemporalSampler(tcsr, num_threads=2, use_pointer_cache=True, **kwargs)
    starts = list(range(0, 6000, 1500)) + [0, 3000]
    for start in starts:
        roots = rng.integers(0, 5, size=3000)
        ts = np.sort(rng.uniform(g.t[start], g.t[min(start + 1499, 5999)], size=3000))
        _assert_same(cached.sample(roots, ts), plain.sample(roots, ts), f"batch at {start}")
    cached.reset_pointer_cache()
    roots, ts = rng.integers(0, 50, size=3000), np.full(3000, g.t[-1] + 1)
    _assert_same(cached.sample(roots, ts), plain.sample(roots, ts), "after reset")


def test_snapshots_with_pointer_cache_on_parallel_path():
    g, tcsr = _graph(num_nodes=40, num_events=5000, distinct=2500)
    kwargs = dict(num_neighbors=[6], strategy="recent", history=3, duration=100.0)
    plain = TemporalSampler(tcsr, num_threads=1, **kwargs)
    cached = TemporalSampler(tcsr, num_threads=2, use_pointer_cache=True, **kwargs)
    for start in range(0, 5000, 1000):
        roots = np.concatenate([g.src[start:start + 1000], g.dst[start:start + 1000]])
        ts = np.tile(g.t[start:start + 1000], 2)
        _assert_same(cached.sample(roots, ts), plain.sample(roots, ts), f"batch at {start}")


# ------------------------------------------------------------------------------------------------
# dedup, int64 neighbour ids, save
# ------------------------------------------------------------------------------------------------

def test_dedup_roots_are_unique_pairs_and_inverse_maps_back():
    g, tcsr = _graph(num_nodes=30, num_events=2000, distinct=100)
    roots = np.concatenate([g.src[1000:1200], g.src[1000:1200]])  # every root twice
    ts = np.tile(g.t[1000:1200], 2)
    full = TemporalSampler(tcsr, [5, 3, 2], "recent").sample(roots, ts)[0]
    dd = TemporalSampler(tcsr, [5, 3, 2], "recent", dedup=True).sample(roots, ts)[0]
    assert all(isinstance(h, DedupSampledHop) for h in dd)
    assert dd[-1].inverse is None
    assert torch.equal(dd[0].nodes, full[0].nodes)
    for l in range(2):
        hop, nxt = dd[l], dd[l + 1]
        roots_next = nxt.nodes[:nxt.num_roots]
        pairs = set(zip(roots_next.tolist(), nxt.ts[:nxt.num_roots].tolist()))
        assert len(pairs) == nxt.num_roots  # unique
        assert torch.equal(roots_next[hop.inverse], hop.nodes)
        assert torch.equal(nxt.ts[:nxt.num_roots][hop.inverse], hop.ts)
    # Hop 1 of the deduplicated sampler samples each distinct root once, exactly as the full one.
    full1, dd1 = full[1], dd[1]
    inv = dd[0].inverse
    for j in range(0, full1.num_roots, 97):
        a = full1.eid[full1.edge_index[1] == j]
        b = dd1.eid[dd1.edge_index[1] == int(inv[j])]
        assert torch.equal(a, b)


def test_int64_neighbour_ids_match_int32():
    g = random_temporal_graph(80, 3000, seed=11, num_distinct_times=400)
    narrow = TCSR.from_edges(g.src, g.dst, g.t)
    wide = TCSR.from_edges(g.src, g.dst, g.t, index_dtype=torch.int64)
    assert narrow.indices.dtype == torch.int32 and wide.indices.dtype == torch.int64
    assert torch.equal(narrow.indices.long(), wide.indices)
    roots, ts = g.dst[::3], g.t[::3] + 0.5
    for strategy in ("recent", "uniform"):
        a = TemporalSampler(narrow, [5, 5], strategy, seed=2).sample(roots, ts)
        b = TemporalSampler(wide, [5, 5], strategy, seed=2).sample(roots, ts)
        _assert_same(a, b, strategy)


def test_save_replaces_atomically_without_leftovers(tmp_path):
    g, tcsr = _graph(num_nodes=20, num_events=300)
    path = tmp_path / "graph.npz"
    tcsr.save(path)
    other = TCSR.from_edges(g.src[:100], g.dst[:100], g.t[:100], num_nodes=20, add_reverse=False)
    other.save(path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.npz"]
    back = TCSR.load(path)
    assert back.num_edges == 100 and back.add_reverse is False
    with pytest.raises(FileNotFoundError):
        tcsr.save(tmp_path / "missing_dir" / "graph.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.npz"]


def test_uniform_large_fanout_draws_distinct_eligible_edges():
    # Fan-outs above 64 take the sorted-insertion path of Floyd's algorithm.
    n = 500
    src = np.zeros(n, dtype=np.int64)
    dst = np.arange(1, n + 1)
    t = np.arange(n, dtype=np.float64)
    tcsr = TCSR.from_edges(src, dst, t)
    s = TemporalSampler(tcsr, [100], "uniform", seed=7)
    hop = s.sample(torch.tensor([0, 0]), torch.tensor([400.0, 120.0]))[0][0]
    assert hop.count.tolist() == [100, 100]
    for i, limit in ((0, 400.0), (1, 120.0)):
        eid = hop.eid[hop.edge_index[1] == i]
        assert eid.unique().numel() == 100
        assert bool((t[eid.numpy()] < limit).all())
        assert bool((eid[:-1] > eid[1:]).all())  # decreasing position = decreasing eid here
    # Over many calls every eligible edge of the second root gets drawn.
    seen = set()
    for _ in range(30):
        hop = s.sample(torch.tensor([0]), torch.tensor([120.0]))[0][0]
        seen.update(hop.eid.tolist())
    assert seen == set(range(120))
