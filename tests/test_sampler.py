"""TemporalSampler (pyg_tgl.data.sampler) against the brute-force reference in reference.py.

``recent`` is deterministic and must equal the reference field by field. ``uniform`` is checked by
replaying the implementation's draws through the reference layout (so every structural rule is
still checked exactly) plus distribution, seeding, thread and resume properties.
"""
from __future__ import annotations

import inspect
from typing import List

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference import (assert_blocks_equal, hop_to_numpy,
                       random_temporal_graph, reference_sample, reference_tcsr)

from pyg_tgl.data.batch import SampledHop
from pyg_tgl.data.sampler import TemporalSampler
from pyg_tgl.data.tcsr import TCSR


def _tcsr(g, add_reverse: bool = True) -> TCSR:
    return TCSR.from_edges(torch.from_numpy(g.src), torch.from_numpy(g.dst),
                           torch.from_numpy(g.t), num_nodes=g.num_nodes, add_reverse=add_reverse)


def _sample(sampler: TemporalSampler, roots, ts) -> List[List[SampledHop]]:
    return sampler.sample(torch.as_tensor(np.asarray(roots, dtype=np.int64)),
                          torch.as_tensor(np.asarray(ts, dtype=np.float64)))


def _roots(g, rng: np.random.Generator, num_roots: int):
    """Roots mixing every awkward case: exact event times (strictness), times between events,
    times before all events and after all events, nodes without history, duplicated roots."""
    nodes = rng.integers(0, g.num_nodes, size=num_roots)
    t_min = float(g.t.min()) if g.num_events else 0.0
    t_max = float(g.t.max()) if g.num_events else 0.0
    choices = [
        lambda: float(rng.choice(g.t)) if g.num_events else 1.0,
        lambda: float(rng.choice(g.t)) + 0.5 if g.num_events else 1.5,
        lambda: t_min - 1.0,
        lambda: t_max + 10.0,
        lambda: float(rng.integers(int(t_min) - 1, int(t_max) + 3)),
    ]
    ts = np.array([choices[int(rng.integers(0, len(choices)))]() for _ in range(num_roots)])
    if num_roots >= 4:
        # Exact duplicate roots (same node, same time); recent must treat both copies alike.
        nodes[-2:] = nodes[:2]
        ts[-2:] = ts[:2]
    return nodes.astype(np.int64), ts.astype(np.float64)


def _graph(seed: int):
    rng = np.random.default_rng(seed)
    num_nodes = int(rng.integers(1, 16))
    num_events = int(rng.integers(0, 80))
    # Every third graph has heavily repeated timestamps (1 to 4 distinct values).
    distinct = int(rng.integers(1, 5)) if seed % 3 == 0 else int(rng.integers(5, 60))
    return random_temporal_graph(num_nodes, num_events, seed=seed, num_distinct_times=distinct,
                                 num_active_nodes=max(1, num_nodes - seed % 3),
                                 self_loops=seed % 5 == 0)


# ------------------------------------------------------------------------------------------------
# Worked example, checked by hand
# ------------------------------------------------------------------------------------------------

def test_hand_example_recent_two_hops():
    # Events: e0 (0,1,t=1), e1 (0,2,t=2), e2 (0,3,t=2), e3 (1,2,t=3), e4 (0,1,t=4).
    # T-CSR: node 0: e0 e1 e2 e4 | node 1: e0 e3 e4 | node 2: e1 e3 | node 3: e2.
    src, dst, t = [0, 0, 0, 1, 0], [1, 2, 3, 2, 1], [1.0, 2.0, 2.0, 3.0, 4.0]
    tcsr = TCSR.from_edges(torch.tensor(src), torch.tensor(dst),
                           torch.tensor(t, dtype=torch.float64))
    sampler = TemporalSampler(tcsr, num_neighbors=[2, 2], strategy="recent")
    blocks = _sample(sampler, [0, 1], [4.0, 3.5])
    assert len(blocks) == 1 and len(blocks[0]) == 2
    # Hop 0. Root 0 at t=4: e0, e1, e2 are eligible (e4 is not: ts < t strictly); the two most
    # recent are e2 (node 3) then e1 (node 2), tied at t=2, larger position first.
    # Root 1 at t=3.5: e3 (node 2, t=3) then e0 (node 0, t=1).
    expected = [
        dict(nodes=[0, 1, 3, 2, 2, 0], ts=[4.0, 3.5, 2.0, 2.0, 3.0, 1.0],
             edge_index=[[2, 3, 4, 5], [0, 0, 1, 1]], eid=[2, 1, 3, 0], dt=[2.0, 2.0, 0.5, 2.5],
             dense_index=[[2, 3], [4, 5]], count=[2, 2]),
        # Hop 1: roots are all hop-0 nodes at their times. Node 3 at t=2 and node 2 at t=2 see
        # nothing (their edges are at t >= 2), node 2 at t=3 sees e1, node 0 at t=1 sees nothing.
        dict(nodes=[0, 1, 3, 2, 2, 0, 3, 2, 2, 0, 0],
             ts=[4.0, 3.5, 2.0, 2.0, 3.0, 1.0, 2.0, 2.0, 3.0, 1.0, 2.0],
             edge_index=[[6, 7, 8, 9, 10], [0, 0, 1, 1, 4]], eid=[2, 1, 3, 0, 1],
             dt=[2.0, 2.0, 0.5, 2.5, 1.0],
             dense_index=[[6, 7], [8, 9], [-1, -1], [-1, -1], [10, -1], [-1, -1]],
             count=[2, 2, 0, 0, 1, 0]),
    ]
    for hop, (block, want) in enumerate(zip(blocks[0], expected)):
        got = hop_to_numpy(block)
        assert got.num_roots == [2, 6][hop]
        for name, value in want.items():
            assert getattr(got, name).tolist() == value, f"hop {hop} {name}"
    ref = reference_sample(reference_tcsr(src, dst, t), [0, 1], [4.0, 3.5], [2, 2])
    assert_blocks_equal(blocks, ref, "hand example")
    # prop_time: neighbours carry their root's time, so hop 1 sees more.
    sampler = TemporalSampler(tcsr, num_neighbors=[2, 2], strategy="recent", prop_time=True)
    blocks = _sample(sampler, [0, 1], [4.0, 3.5])
    assert hop_to_numpy(blocks[0][0]).ts.tolist() == [4.0, 3.5, 4.0, 4.0, 3.5, 3.5]
    # Node 3 at t=4 now sees e2; node 2 at t=4 and at t=3.5 sees e3 then e1; node 0 at t=3.5
    # sees e2 then e1.
    assert hop_to_numpy(blocks[0][1]).eid.tolist() == [2, 1, 3, 0, 2, 3, 1, 3, 1, 2, 1]
    ref = reference_sample(reference_tcsr(src, dst, t), [0, 1], [4.0, 3.5], [2, 2], prop_time=True)
    assert_blocks_equal(blocks, ref, "hand example, prop_time")


def test_hand_example_snapshots():
    # Node 0's edges at t = 0..9 (one per time unit); root at t=10, H=3 snapshots of D=2:
    # snapshot 0 covers [4, 6), 1 covers [6, 8), 2 covers [8, 10).
    src, dst = [0] * 10, list(range(1, 11))
    t = [float(x) for x in range(10)]
    tcsr = TCSR.from_edges(torch.tensor(src), torch.tensor(dst),
                           torch.tensor(t, dtype=torch.float64))
    sampler = TemporalSampler(tcsr, num_neighbors=[5], history=3, duration=2.0)
    blocks = _sample(sampler, [0], [10.0])
    assert [hop_to_numpy(b[0]).eid.tolist() for b in blocks] == [[5, 4], [7, 6], [9, 8]]


# ------------------------------------------------------------------------------------------------
# recent: exact equality with the reference
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prop_time", [False, True])
def test_recent_matches_reference(prop_time):
    for seed in range(120):
        g = _graph(seed)
        rng = np.random.default_rng(1000 + seed)
        num_hops = 1 + seed % 3
        fanouts = [int(x) for x in rng.integers(1, 7 if num_hops < 3 else 4, size=num_hops)]
        roots, ts = _roots(g, rng, int(rng.integers(1, 14)))
        add_reverse = seed % 4 != 1
        tcsr = _tcsr(g, add_reverse)
        ref_tcsr = reference_tcsr(g.src, g.dst, g.t, num_nodes=g.num_nodes, add_reverse=add_reverse)
        sampler = TemporalSampler(tcsr, num_neighbors=fanouts, strategy="recent",
                                  prop_time=prop_time)
        expected = reference_sample(ref_tcsr, roots, ts, fanouts, prop_time=prop_time)
        assert_blocks_equal(_sample(sampler, roots, ts), expected,
                            f"seed {seed} fanouts {fanouts} prop_time={prop_time}")


@pytest.mark.parametrize("history", [1, 2, 3])
def test_recent_snapshots_match_reference(history):
    for seed in range(60):
        g = _graph(seed)
        rng = np.random.default_rng(2000 + seed)
        duration = 0.0 if history == 1 else float(rng.choice([1.0, 2.0, 5.0, 0.5]))
        num_hops = 1 + seed % 2
        fanouts = [int(x) for x in rng.integers(1, 5, size=num_hops)]
        prop_time = bool(seed % 2)
        roots, ts = _roots(g, rng, int(rng.integers(1, 10)))
        sampler = TemporalSampler(_tcsr(g), num_neighbors=fanouts, strategy="recent",
                                  prop_time=prop_time, history=history, duration=duration)
        expected = reference_sample(reference_tcsr(g.src, g.dst, g.t, num_nodes=g.num_nodes),
                                    roots, ts, fanouts, prop_time=prop_time, history=history,
                                    duration=duration)
        assert_blocks_equal(_sample(sampler, roots, ts), expected,
                            f"seed {seed} history {history} duration {duration} fanouts {fanouts}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), num_nodes=st.integers(1, 10),
       num_events=st.integers(0, 50), distinct=st.integers(1, 30),
       fanouts=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       prop_time=st.booleans(), history=st.integers(1, 3), duration=st.sampled_from([1.0, 3.0]),
       num_roots=st.integers(0, 8))
def test_recent_matches_reference_hypothesis(seed, num_nodes, num_events, distinct, fanouts,
                                             prop_time, history, duration, num_roots):
    g = random_temporal_graph(num_nodes, num_events, seed=seed, num_distinct_times=distinct)
    rng = np.random.default_rng(seed)
    roots, ts = _roots(g, rng, num_roots)
    duration = duration if history > 1 else 0.0
    sampler = TemporalSampler(_tcsr(g), num_neighbors=fanouts, strategy="recent",
                              prop_time=prop_time, history=history, duration=duration)
    expected = reference_sample(reference_tcsr(g.src, g.dst, g.t, num_nodes=g.num_nodes), roots,
                                ts, fanouts, prop_time=prop_time, history=history,
                                duration=duration)
    assert_blocks_equal(_sample(sampler, roots, ts), expected, "hypothesis")


def test_recent_heavy_ties_prefer_larger_position():
    # All events at the same time: the most recent k are the last k in T-CSR order (event order).
    g = random_temporal_graph(4, 40, seed=3, num_distinct_times=1)
    sampler = TemporalSampler(_tcsr(g), num_neighbors=[3])
    roots = np.arange(4)
    blocks = _sample(sampler, roots, np.full(4, 1.0))
    expected = reference_sample(reference_tcsr(g.src, g.dst, g.t, num_nodes=4), roots,
                                np.full(4, 1.0), [3])
    assert_blocks_equal(blocks, expected, "single timestamp")
    hop = hop_to_numpy(blocks[0][0])
    for i in range(4):
        eids = hop.eid[hop.edge_index[1] == i]
        assert np.all(np.diff(eids) < 0), "ties must list the later event first"
    # Strictly earlier edges only: at t equal to the only timestamp nothing is eligible.
    assert hop_to_numpy(_sample(sampler, roots, np.zeros(4))[0][0]).eid.size == 0


def test_empty_batch():
    g = random_temporal_graph(5, 30, seed=0)
    for history, duration in [(1, 0.0), (2, 4.0)]:
        sampler = TemporalSampler(_tcsr(g), num_neighbors=[4, 2], history=history,
                                  duration=duration)
        blocks = _sample(sampler, [], [])
        assert len(blocks) == history
        for hops in blocks:
            assert len(hops) == 2
            for hop, k in zip(hops, [4, 2]):
                assert isinstance(hop, SampledHop)
                assert hop.num_roots == 0
                assert tuple(hop.nodes.shape) == (0,) and tuple(hop.ts.shape) == (0,)
                assert tuple(hop.edge_index.shape) == (2, 0)
                assert tuple(hop.dense_index.shape) == (0, k)
                assert tuple(hop.count.shape) == (0,) and hop.eid.numel() == 0


def test_roots_before_all_events_and_nodes_without_history():
    g = random_temporal_graph(8, 40, seed=1, num_active_nodes=5)
    sampler = TemporalSampler(_tcsr(g), num_neighbors=[3, 3])
    # Nodes 5..7 never occur; every node at time min(t) or earlier has no eligible edge.
    roots = np.array([5, 6, 7, 0, 1, 2])
    ts = np.array([1e9, 1e9, 1e9, g.t.min(), g.t.min(), g.t.min() - 1e6])
    for hop in _sample(sampler, roots, ts)[0]:
        hop = hop_to_numpy(hop)
        assert hop.eid.size == 0 and np.all(hop.dense_index == -1) and np.all(hop.count == 0)
        assert hop.nodes.tolist() == roots.tolist()


def test_fanout_larger_than_degree_returns_all():
    g = random_temporal_graph(6, 30, seed=2)
    sampler = TemporalSampler(_tcsr(g), num_neighbors=[1000])
    roots = np.arange(6)
    hop = hop_to_numpy(_sample(sampler, roots, np.full(6, g.t.max() + 1))[0][0])
    degree = np.bincount(np.concatenate([g.src, g.dst]), minlength=6)
    assert hop.count.tolist() == degree.tolist()
    assert hop.dense_index.shape == (6, 1000)


def test_sampler_on_loaded_tcsr(tmp_path):
    g = random_temporal_graph(12, 150, seed=13, num_distinct_times=40)
    path = tmp_path / "g.npz"
    _tcsr(g).save(path)
    roots, ts = _roots(g, np.random.default_rng(1), 20)
    sampler = TemporalSampler(TCSR.load(path), num_neighbors=[4, 2])
    expected = reference_sample(reference_tcsr(g.src, g.dst, g.t, num_nodes=g.num_nodes), roots,
                                ts, [4, 2])
    assert_blocks_equal(_sample(sampler, roots, ts), expected, "loaded T-CSR")
    # A TGL-style file (int64 indices) samples the same.
    ref = reference_tcsr(g.src, g.dst, g.t, num_nodes=g.num_nodes)
    np.savez(path, indptr=ref.indptr, indices=ref.indices, ts=ref.ts, eid=ref.eid)
    sampler = TemporalSampler(TCSR.load(path), num_neighbors=[4, 2])
    assert_blocks_equal(_sample(sampler, roots, ts), expected, "loaded T-CSR, int64 indices")


def test_recent_real_data_collegemsg(shared_data):
    # Unix times (~1.08e9 s) with many equal seconds; roots are the events' own endpoints.
    raw = np.loadtxt(shared_data / "CollegeMsg.txt", dtype=np.int64)
    src, dst, t = raw[:, 0], raw[:, 1], raw[:, 2].astype(np.float64)
    tcsr = TCSR.from_edges(torch.from_numpy(src), torch.from_numpy(dst), torch.from_numpy(t))
    events = np.random.default_rng(0).choice(len(t), size=150, replace=False)
    roots = np.concatenate([src[events], dst[events]])
    ts = np.concatenate([t[events], t[events]])
    ref_tcsr = reference_tcsr(src, dst, t)
    for prop_time in (False, True):
        sampler = TemporalSampler(tcsr, num_neighbors=[10, 3], prop_time=prop_time)
        expected = reference_sample(ref_tcsr, roots, ts, [10, 3], prop_time=prop_time)
        assert_blocks_equal(_sample(sampler, roots, ts), expected,
                            f"CollegeMsg prop_time={prop_time}")


# ------------------------------------------------------------------------------------------------
# uniform
# ------------------------------------------------------------------------------------------------

class _Replay:
    """A reference chooser that returns the implementation's draws after checking them."""

    def __init__(self, blocks, tcsr):
        self.hops = [[hop_to_numpy(h) for h in hops] for hops in blocks]
        self.tcsr = tcsr

    def __call__(self, eligible, k, snapshot, hop_index, root):
        hop = self.hops[snapshot][hop_index]
        drawn = hop.eid[hop.edge_index[1] == root].tolist()
        where = f"snapshot {snapshot} hop {hop_index} root {root}"
        assert len(drawn) == min(k, len(eligible)), (
            f"{where}: {len(drawn)} neighbours, expected min({k}, {len(eligible)} eligible)")
        assert len(set(drawn)) == len(drawn), f"{where}: repeated eids {drawn}"
        by_eid = {int(self.tcsr.eid[p]): p for p in eligible}
        missing = [e for e in drawn if e not in by_eid]
        assert not missing, f"{where}: eids {missing} are not eligible (eligible {sorted(by_eid)})"
        return [by_eid[e] for e in drawn]


def _check_uniform(g, roots, ts, fanouts, prop_time=False, history=1, duration=0.0, seed=0,
                   where=""):
    sampler = TemporalSampler(_tcsr(g), num_neighbors=fanouts, strategy="uniform",
                              prop_time=prop_time, history=history, duration=duration, seed=seed)
    blocks = _sample(sampler, roots, ts)
    ref_tcsr = reference_tcsr(g.src, g.dst, g.t, num_nodes=g.num_nodes)
    # Replaying the draws through the reference checks the layout, order (decreasing position),
    # times, dt, dense_index, count, and that each hop's roots are the previous hop's nodes.
    expected = reference_sample(ref_tcsr, roots, ts, fanouts, prop_time=prop_time,
                                history=history, duration=duration,
                                chooser=_Replay(blocks, ref_tcsr))
    assert_blocks_equal(blocks, expected, where)
    return blocks


def test_uniform_valid_samples():
    for seed in range(80):
        rng = np.random.default_rng(3000 + seed)
        num_nodes = int(rng.integers(2, 12))
        g = random_temporal_graph(num_nodes, int(rng.integers(0, 90)), seed=seed,
                                  num_distinct_times=int(rng.integers(1, 40)))
        num_hops = 1 + seed % 3
        fanouts = [int(x) for x in rng.integers(1, 6 if num_hops < 3 else 4, size=num_hops)]
        history = 1 + seed % 3 if seed % 2 else 1
        duration = float(rng.choice([1.0, 4.0])) if history > 1 else 0.0
        roots, ts = _roots(g, rng, int(rng.integers(0, 12)))
        _check_uniform(g, roots, ts, fanouts, prop_time=bool(seed % 4 < 2), history=history,
                       duration=duration, seed=seed, where=f"seed {seed}")


def _star(num_edges: int):
    """Node 0 linked to nodes 1..num_edges at times 0..num_edges-1."""
    src = np.zeros(num_edges, dtype=np.int64)
    dst = np.arange(1, num_edges + 1, dtype=np.int64)
    t = np.arange(num_edges, dtype=np.float64)
    return TCSR.from_edges(torch.from_numpy(src), torch.from_numpy(dst), torch.from_numpy(t))


def _chi2_pvalue(counts: np.ndarray) -> float:
    from scipy.stats import chisquare
    return float(chisquare(counts).pvalue)


def _subset_counts(eid_rows) -> dict:
    keys = {}
    for row in eid_rows:
        key = tuple(sorted(row))
        keys[key] = keys.get(key, 0) + 1
    return keys


def test_uniform_subsets_are_uniform_across_calls():
    # 6 eligible edges, k = 2: each of the 15 pairs should come up equally often.
    sampler = TemporalSampler(_star(6), num_neighbors=[2], strategy="uniform", seed=123)
    rows = []
    for _ in range(1500):
        hop = hop_to_numpy(_sample(sampler, [0], [100.0])[0][0])
        rows.append(hop.eid.tolist())
    counts = _subset_counts(rows)
    assert len(counts) == 15 and all(len(k) == 2 for k in counts)
    assert _chi2_pvalue(np.array(list(counts.values()))) > 1e-4, counts


def test_uniform_subsets_are_uniform_across_root_positions():
    # The same root repeated in one call draws independently per position.
    sampler = TemporalSampler(_star(5), num_neighbors=[3], strategy="uniform", seed=7)
    n = 5000
    hop = hop_to_numpy(_sample(sampler, np.zeros(n), np.full(n, 10.0))[0][0])
    assert hop.count.tolist() == [3] * n
    eids = hop.eid.reshape(n, 3)
    counts = _subset_counts(eids.tolist())
    assert len(counts) == 10
    assert _chi2_pvalue(np.array(list(counts.values()))) > 1e-4, counts
    # Inclusion probability of each edge is k / n = 3 / 5; first-listed is always the latest drawn.
    inclusion = np.bincount(eids.ravel(), minlength=5)
    assert _chi2_pvalue(inclusion) > 1e-4, inclusion
    assert np.all(np.diff(eids, axis=1) < 0)


def test_uniform_respects_time_window_per_root():
    # Roots at different times see different prefixes of the same star; nothing at or after t.
    tcsr = _star(20)
    sampler = TemporalSampler(tcsr, num_neighbors=[4], strategy="uniform", seed=1)
    ts = np.repeat(np.arange(0, 21, dtype=np.float64), 50)
    hop = hop_to_numpy(_sample(sampler, np.zeros(ts.size), ts)[0][0])
    assert hop.count.tolist() == np.minimum(ts, 4).astype(int).tolist()
    root_t = ts[hop.edge_index[1]]
    assert np.all(hop.eid < root_t)  # eid e has time e on the star
    assert np.array_equal(hop.dt, root_t - hop.eid)
    # Over the 50 copies of root t=20 every edge shows up.
    last = hop.edge_index[1] >= 20 * 50
    assert set(hop.eid[last].tolist()) == set(range(20))


def _flat(blocks) -> list:
    return [hop_to_numpy(h) for hops in blocks for h in hops]


def _same(a, b) -> bool:
    return all(np.array_equal(getattr(x, f), getattr(y, f)) for x, y in zip(_flat(a), _flat(b))
               for f in ("nodes", "ts", "eid", "edge_index", "dense_index", "count"))


def test_uniform_seed_determinism_and_fresh_draws():
    g = random_temporal_graph(30, 600, seed=5)
    roots, ts = np.arange(30), np.full(30, g.t.max() + 1)
    a = TemporalSampler(_tcsr(g), num_neighbors=[5, 3], strategy="uniform", seed=42)
    b = TemporalSampler(_tcsr(g), num_neighbors=[5, 3], strategy="uniform", seed=42)
    c = TemporalSampler(_tcsr(g), num_neighbors=[5, 3], strategy="uniform", seed=43)
    first_a, first_b, first_c = _sample(a, roots, ts), _sample(b, roots, ts), _sample(c, roots, ts)
    assert _same(first_a, first_b), "same seed must give the same sample"
    assert not _same(first_a, first_c), "different seeds gave identical samples"
    second_a = _sample(a, roots, ts)
    assert not _same(first_a, second_a), "the next call must draw afresh"
    assert _same(second_a, _sample(b, roots, ts))


def test_uniform_draws_differ_between_hops_and_snapshots():
    # With prop_time, hop 1's first roots equal hop 0's roots (same node, same time); the draws
    # are keyed by hop, so they must not coincide.
    g = random_temporal_graph(20, 800, seed=8)
    roots, ts = np.arange(20), np.full(20, g.t.max() + 1)
    sampler = TemporalSampler(_tcsr(g), num_neighbors=[4, 4], strategy="uniform", prop_time=True)
    hop0, hop1 = [hop_to_numpy(h) for h in _sample(sampler, roots, ts)[0]]
    first = hop1.edge_index[1] < 20
    assert not np.array_equal(hop0.eid, hop1.eid[first])


@pytest.mark.parametrize("strategy", ["uniform", "recent"])
def test_thread_count_does_not_change_output(strategy):
    g = random_temporal_graph(200, 5000, seed=6, num_distinct_times=2000)
    rng = np.random.default_rng(0)
    roots, ts = _roots(g, rng, 3000)
    out = []
    for threads in (1, 2):
        sampler = TemporalSampler(_tcsr(g), num_neighbors=[6, 3], strategy=strategy,
                                  num_threads=threads, seed=9)
        out.append([_sample(sampler, roots, ts), _sample(sampler, roots, ts)])
    for call in range(2):
        for x, y in zip(_flat(out[0][call]), _flat(out[1][call])):
            for f in ("nodes", "ts", "eid", "edge_index", "dt", "dense_index", "count"):
                assert np.array_equal(getattr(x, f), getattr(y, f)), f"{f} differs, call {call}"


def test_state_dict_round_trip_reproduces_next_call():
    g = random_temporal_graph(25, 500, seed=10)
    roots, ts = np.arange(25), np.full(25, g.t.max() + 1)
    a = TemporalSampler(_tcsr(g), num_neighbors=[4, 2], strategy="uniform", seed=3)
    _sample(a, roots, ts)
    _sample(a, roots, ts)
    state = a.state_dict()
    third = _sample(a, roots, ts)
    fourth = _sample(a, roots, ts)
    b = TemporalSampler(_tcsr(g), num_neighbors=[4, 2], strategy="uniform", seed=3)
    first_b = _sample(b, roots, ts)
    assert not _same(first_b, third)
    b.load_state_dict(state)
    assert _same(_sample(b, roots, ts), third)
    assert _same(_sample(b, roots, ts), fourth)


# ------------------------------------------------------------------------------------------------
# pointer cache
# ------------------------------------------------------------------------------------------------

def _has_pointer_cache() -> bool:
    return "use_pointer_cache" in inspect.signature(TemporalSampler).parameters


@pytest.mark.skipif(not _has_pointer_cache(), reason="TemporalSampler has no use_pointer_cache")
@pytest.mark.parametrize("strategy,prop_time,history", [
    ("recent", False, 1), ("recent", True, 1), ("recent", False, 3), ("recent", True, 2),
    ("uniform", False, 1), ("uniform", True, 3)])
def test_pointer_cache_matches_search_on_chronological_batches(strategy, prop_time, history):
    g = random_temporal_graph(40, 1500, seed=12, num_distinct_times=300)
    duration = 0.0 if history == 1 else 20.0
    kwargs = dict(num_neighbors=[5, 2], strategy=strategy, prop_time=prop_time, history=history,
                  duration=duration, seed=4)
    cached = TemporalSampler(_tcsr(g), use_pointer_cache=True, **kwargs)
    searched = TemporalSampler(_tcsr(g), use_pointer_cache=False, **kwargs)
    ref_tcsr = reference_tcsr(g.src, g.dst, g.t, num_nodes=g.num_nodes)
    rng = np.random.default_rng(0)
    # Loader-style batches: roots cat([src, dst, neg]) at cat([t, t, t]), batch after batch.
    for start in range(0, g.num_events, 100):
        stop = min(start + 100, g.num_events)
        neg = rng.integers(0, g.num_nodes, size=stop - start)
        roots = np.concatenate([g.src[start:stop], g.dst[start:stop], neg])
        ts = np.tile(g.t[start:stop], 3)
        got = _sample(cached, roots, ts)
        want = _sample(searched, roots, ts)
        assert _same(got, want), f"batch at event {start}"
        if strategy == "recent" and start % 500 == 0:
            expected = reference_sample(ref_tcsr, roots, ts, [5, 2], prop_time=prop_time,
                                        history=history, duration=duration)
            assert_blocks_equal(got, expected, f"cached, batch at event {start}")
    # A second epoch goes back in time: the cache must not leak the first epoch's positions.
    for start in range(0, 600, 150):
        roots = np.concatenate([g.src[start:start + 150], g.dst[start:start + 150]])
        ts = np.tile(g.t[start:start + 150], 2)
        got, want = _sample(cached, roots, ts), _sample(searched, roots, ts)
        assert _same(got, want), f"second epoch, batch at event {start}"
        if strategy == "recent":
            expected = reference_sample(ref_tcsr, roots, ts, [5, 2], prop_time=prop_time,
                                        history=history, duration=duration)
            assert_blocks_equal(got, expected, f"cached, second epoch at event {start}")


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def sampler():
    return TemporalSampler(_tcsr(random_temporal_graph(5, 20, seed=0)), num_neighbors=[2])


def test_bad_root_ids(sampler):
    with pytest.raises(ValueError, match=r"(?i)root|node"):
        _sample(sampler, [0, 5], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"(?i)root|node"):
        _sample(sampler, [0, -1], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"(?i)root|node"):
        _sample(sampler, [2**40], [1.0])


def test_bad_root_times(sampler):
    with pytest.raises(ValueError, match=r"(?i)nan"):
        _sample(sampler, [0, 1], [1.0, float("nan")])


def test_root_length_mismatch(sampler):
    with pytest.raises(ValueError, match=r"root_ts|root_nodes"):
        _sample(sampler, [0, 1, 2], [1.0, 2.0])


def test_bad_constructor_options():
    tcsr = _tcsr(random_temporal_graph(5, 20, seed=0))
    with pytest.raises(ValueError, match=r"(?i)num_neighbors|fan"):
        TemporalSampler(tcsr, num_neighbors=[3, -1])
    with pytest.raises(ValueError, match=r"(?i)strategy"):
        TemporalSampler(tcsr, num_neighbors=[3], strategy="most_recent")
    with pytest.raises(ValueError, match=r"(?i)history"):
        TemporalSampler(tcsr, num_neighbors=[3], history=0)
