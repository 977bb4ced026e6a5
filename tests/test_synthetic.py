"""The synthetic generator: determinism, chunk independence, size, bounded memory and planted
temporal structure."""
from __future__ import annotations

import tracemalloc
from collections import defaultdict, deque

import numpy as np
import pytest

from pyg_tgl.data.synthetic import SyntheticConfig, generate_synthetic, synthetic_events


def _recent_partner_fraction(src: np.ndarray, dst: np.ndarray, k: int = 5) -> float:
    """Fraction of events whose destination is among the source's ``k`` latest partners: what a
    memory-based model can exploit (a readable reference loop; test only)."""
    recent = defaultdict(lambda: deque(maxlen=k))
    hits = 0
    for a, b in zip(src.tolist(), dst.tolist()):
        hits += b in recent[a]
        recent[a].append(b)
    return hits / len(src)


def test_same_seed_same_events_other_seed_differs():
    cfg = SyntheticConfig(num_nodes=500, num_events=20_000, seed=3, edge_dim=4)
    a = synthetic_events(cfg, 0, cfg.num_events)
    b = synthetic_events(cfg, 0, cfg.num_events)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = synthetic_events(SyntheticConfig(num_nodes=500, num_events=20_000, seed=4, edge_dim=4),
                         0, 20_000)
    assert (a[0] != c[0]).mean() > 0.5 and (a[1] != c[1]).mean() > 0.5


def test_any_chunking_gives_the_same_stream(tmp_path):
    cfg = SyntheticConfig(num_nodes=300, num_events=10_007, seed=1, edge_dim=3)
    full = synthetic_events(cfg, 0, cfg.num_events)
    part = synthetic_events(cfg, 4_000, 5_500)
    for x, y in zip(full, part):
        np.testing.assert_array_equal(x[4_000:5_500], y)
    p1 = generate_synthetic(tmp_path / "a", cfg, chunk_size=1_000)
    p2 = generate_synthetic(tmp_path / "b", cfg, chunk_size=4_096)
    for k in ("src", "dst", "t", "msg"):
        np.testing.assert_array_equal(np.load(p1[k]), np.load(p2[k]))
    np.testing.assert_array_equal(np.load(p1["msg"]), full[3])


def test_requested_size_and_valid_events(tmp_path):
    cfg = SyntheticConfig(num_nodes=1_000, num_events=50_001, seed=0, time_span=1e5)
    paths = generate_synthetic(tmp_path, cfg, chunk_size=8_192)
    src, dst, t = (np.load(paths[k]) for k in ("src", "dst", "t"))
    assert src.shape == dst.shape == t.shape == (50_001,)
    assert src.dtype == dst.dtype == np.int64 and t.dtype == np.float64
    assert 0 <= src.min() and max(src.max(), dst.max()) < 1_000 and dst.min() >= 0
    assert not (src == dst).any()
    assert (np.diff(t) >= 0).all() and t[0] == 0 and t[-1] < 1e5
    # Power-law activity: the busiest 1% of nodes send far more than 1% of the events.
    counts = np.sort(np.bincount(src, minlength=1_000))[::-1]
    assert counts[:10].sum() > 0.1 * len(src)


def test_planted_repeats_are_learnable_structure():
    kw = dict(num_nodes=2_000, num_events=60_000, seed=0)
    s, d, _, _ = synthetic_events(SyntheticConfig(**kw), 0, kw["num_events"])
    structured = _recent_partner_fraction(s, d)
    # Same sources and destination popularity, order destroyed.
    shuffled = _recent_partner_fraction(s, np.random.default_rng(0).permutation(d))
    # Only the popularity mechanism (hubs meet hubs by chance).
    s0, d0, _, _ = synthetic_events(SyntheticConfig(**kw, p_repeat=0.0, p_community=0.0), 0,
                                    kw["num_events"])
    no_mechanism = _recent_partner_fraction(s0, d0)
    assert structured > 10 * shuffled
    assert structured > 1.5 * no_mechanism


def test_generation_memory_is_bounded_by_the_chunk(tmp_path):
    cfg = SyntheticConfig(num_nodes=100_000, num_events=2_000_000, seed=0)
    tracemalloc.start()
    try:
        generate_synthetic(tmp_path, cfg, chunk_size=1 << 15)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out_bytes = 2_000_000 * (8 + 8 + 8)
    assert (tmp_path / "src.npy").stat().st_size >= 2_000_000 * 8
    # One chunk of 32k events needs a few MB; holding the output would need 48 MB.
    assert peak < 12 * 2 ** 20, f"peak {peak / 2 ** 20:.1f} MiB for {out_bytes / 2 ** 20:.0f} MiB output"


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="num_nodes"):
        SyntheticConfig(num_nodes=1, num_events=10)
    with pytest.raises(ValueError, match="p_repeat"):
        SyntheticConfig(num_nodes=10, num_events=10, p_repeat=0.8, p_community=0.5)
    with pytest.raises(ValueError, match="chunk_size"):
        generate_synthetic("/nonexistent-never-created", SyntheticConfig(10, 10), chunk_size=0)


def test_load_dataset_synthetic(tmp_path, monkeypatch):
    from pyg_tgl.data.datasets import load_dataset

    monkeypatch.setenv("PYG_TGL_DATA", str(tmp_path))
    ds = load_dataset("synthetic", num_nodes=200, num_events=5_000, seed=2, edge_dim=6,
                      chunk_size=777, progress=False)
    cfg = SyntheticConfig(num_nodes=200, num_events=5_000, seed=2, edge_dim=6)
    src, dst, t, msg = synthetic_events(cfg, 0, 5_000)
    assert ds.num_nodes == 200 and ds.num_events == 5_000
    np.testing.assert_array_equal(ds.data.src.numpy(), src)
    np.testing.assert_array_equal(ds.data.t.numpy(), t)
    np.testing.assert_array_equal(ds.edge_feat.numpy(), msg)
    # The chunk size does not change the data, so it does not change the cache either.
    ds2 = load_dataset("synthetic", num_nodes=200, num_events=5_000, seed=2, edge_dim=6,
                       chunk_size=100, progress=False)
    assert ds2.cache_dir == ds.cache_dir
