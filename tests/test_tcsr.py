"""T-CSR (pyg_tgl.data.tcsr.TCSR) against the brute-force reference, save/load and bad input."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from reference import RefTCSR, random_temporal_graph, reference_tcsr

from pyg_tgl.data.tcsr import TCSR

FIELDS = ("indptr", "indices", "eid", "ts")


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _build(src, dst, t, **kwargs) -> TCSR:
    return TCSR.from_edges(torch.as_tensor(np.asarray(src, dtype=np.int64)),
                           torch.as_tensor(np.asarray(dst, dtype=np.int64)),
                           torch.as_tensor(np.asarray(t, dtype=np.float64)), **kwargs)


def assert_tcsr_equal(actual, expected: RefTCSR, where: str = "") -> None:
    """Exact equality of all four arrays, with the dtypes of docs/design.md."""
    got = {name: _np(getattr(actual, name)) for name in FIELDS}
    assert got["indptr"].dtype == np.int64, f"{where}: indptr dtype {got['indptr'].dtype}"
    assert got["indices"].dtype in (np.int32, np.int64), (
        f"{where}: indices dtype {got['indices'].dtype}")
    assert got["eid"].dtype == np.int64, f"{where}: eid dtype {got['eid'].dtype}"
    assert got["ts"].dtype == np.float64, f"{where}: ts dtype {got['ts'].dtype}"
    for name in FIELDS:
        a, b = got[name], getattr(expected, name)
        assert a.shape == b.shape, f"{where}: {name} shape {a.shape}, expected {b.shape}"
        assert np.array_equal(a, b), (
            f"{where}: {name} differs\n got      {a.tolist()}\n expected {b.tolist()}")


# ------------------------------------------------------------------------------------------------
# A worked example, checked by hand, pins the reference itself to the spec.
# ------------------------------------------------------------------------------------------------

# Events (src, dst, t): e0 (0,1,1), e1 (1,2,1), e2 (0,2,2), e3 (2,0,2), e4 (1,0,5); node 3 isolated.
HAND_SRC, HAND_DST, HAND_T = [0, 1, 0, 2, 1], [1, 2, 2, 0, 0], [1.0, 1.0, 2.0, 2.0, 5.0]
HAND_REVERSE = RefTCSR(
    indptr=np.array([0, 4, 7, 10, 10]),
    indices=np.array([1, 2, 2, 1, 0, 2, 0, 1, 0, 0]),
    eid=np.array([0, 2, 3, 4, 0, 1, 4, 1, 2, 3]),
    ts=np.array([1.0, 2.0, 2.0, 5.0, 1.0, 1.0, 5.0, 1.0, 2.0, 2.0]))
HAND_FORWARD = RefTCSR(
    indptr=np.array([0, 2, 4, 5, 5]),
    indices=np.array([1, 2, 2, 0, 0]),
    eid=np.array([0, 2, 1, 4, 3]),
    ts=np.array([1.0, 2.0, 1.0, 5.0, 2.0]))


@pytest.mark.parametrize("add_reverse", [True, False])
def test_hand_example(add_reverse):
    expected = HAND_REVERSE if add_reverse else HAND_FORWARD
    ref = reference_tcsr(HAND_SRC, HAND_DST, HAND_T, num_nodes=4, add_reverse=add_reverse)
    for name in FIELDS:
        assert np.array_equal(getattr(ref, name), getattr(expected, name)), name
    tcsr = _build(HAND_SRC, HAND_DST, HAND_T, num_nodes=4, add_reverse=add_reverse)
    assert_tcsr_equal(tcsr, expected, f"hand example add_reverse={add_reverse}")


def test_add_reverse_is_default():
    tcsr = _build(HAND_SRC, HAND_DST, HAND_T, num_nodes=4)
    assert_tcsr_equal(tcsr, HAND_REVERSE, "default add_reverse")


# ------------------------------------------------------------------------------------------------
# Random graphs
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("add_reverse", [True, False])
def test_random_graphs_match_reference(add_reverse):
    for seed in range(60):
        rng = np.random.default_rng(seed)
        num_nodes = int(rng.integers(1, 25))
        num_events = int(rng.integers(0, 120))
        # Alternate between heavy ties (1-3 distinct times) and almost-distinct times.
        distinct = int(rng.integers(1, 4)) if seed % 2 else None
        g = random_temporal_graph(num_nodes, num_events, seed=seed, num_distinct_times=distinct,
                                  num_active_nodes=max(1, num_nodes - seed % 4),
                                  self_loops=seed % 3 == 0)
        ref = reference_tcsr(g.src, g.dst, g.t, num_nodes=g.num_nodes, add_reverse=add_reverse)
        tcsr = _build(g.src, g.dst, g.t, num_nodes=g.num_nodes, add_reverse=add_reverse)
        assert_tcsr_equal(tcsr, ref, f"seed {seed}, add_reverse={add_reverse}")


def test_events_not_in_time_order():
    # Slices are sorted by (ts, eid) whatever order the events come in.
    g = random_temporal_graph(15, 300, seed=17, num_distinct_times=25)
    order = np.random.default_rng(0).permutation(g.num_events)
    src, dst, t = g.src[order], g.dst[order], g.t[order]
    for add_reverse in (True, False):
        ref = reference_tcsr(src, dst, t, add_reverse=add_reverse)
        assert_tcsr_equal(_build(src, dst, t, add_reverse=add_reverse), ref,
                          f"shuffled events, add_reverse={add_reverse}")


@pytest.mark.skipif("num_threads" not in inspect.signature(TCSR.from_edges).parameters,
                    reason="TCSR.from_edges has no num_threads option")
def test_build_independent_of_thread_count():
    # Big enough that every thread owns nodes; shuffled so the per-node sort runs in parallel.
    g = random_temporal_graph(500, 20000, seed=19, num_distinct_times=3000, self_loops=True)
    order = np.random.default_rng(1).permutation(g.num_events)
    src, dst, t = g.src[order], g.dst[order], g.t[order]
    ref = reference_tcsr(src, dst, t)
    for threads in (1, 2, 3):
        tcsr = TCSR.from_edges(torch.from_numpy(src), torch.from_numpy(dst),
                               torch.from_numpy(t), num_threads=threads)
        assert_tcsr_equal(tcsr, ref, f"num_threads={threads}")


def test_from_data_matches_from_edges():
    g = random_temporal_graph(15, 200, seed=3, num_distinct_times=20)
    ref = reference_tcsr(g.src, g.dst, g.t)
    assert_tcsr_equal(TCSR.from_data(g.to_data()), ref, "from_data, add_reverse default")
    ref = reference_tcsr(g.src, g.dst, g.t, num_nodes=30, add_reverse=False)
    assert_tcsr_equal(TCSR.from_data(g.to_data(), num_nodes=30, add_reverse=False), ref,
                      "from_data, num_nodes=30, add_reverse=False")


def test_num_nodes_default_and_isolated_trailing_nodes(small_graph):
    g = small_graph  # 20 nodes, events only among the first 16
    inferred = int(max(g.src.max(), g.dst.max())) + 1
    assert inferred <= 16
    tcsr = _build(g.src, g.dst, g.t)
    assert_tcsr_equal(tcsr, reference_tcsr(g.src, g.dst, g.t), "num_nodes inferred")
    assert _np(tcsr.indptr).shape == (inferred + 1,)
    tcsr = _build(g.src, g.dst, g.t, num_nodes=g.num_nodes)
    indptr = _np(tcsr.indptr)
    assert indptr.shape == (g.num_nodes + 1,)
    assert np.all(indptr[inferred:] == indptr[-1]), "nodes without events must have empty lists"


def test_no_events():
    tcsr = _build([], [], [], num_nodes=5)
    assert_tcsr_equal(tcsr, reference_tcsr([], [], [], num_nodes=5), "no events")


def test_self_loop_listed_under_its_node():
    # The event must be reachable from its node; the reference (like TGL's gen_graph.py) lists a
    # self-loop once per endpoint, i.e. twice.
    tcsr = _build([0, 1, 1], [1, 1, 0], [1.0, 2.0, 3.0], num_nodes=2)
    eid = _np(tcsr.eid)
    indptr = _np(tcsr.indptr)
    node1 = eid[indptr[1]:indptr[2]].tolist()
    assert 1 in node1 and 1 not in eid[indptr[0]:indptr[1]].tolist()
    assert_tcsr_equal(tcsr, reference_tcsr([0, 1, 1], [1, 1, 0], [1.0, 2.0, 3.0], num_nodes=2),
                      "self-loop")


def test_int64_event_ids_beyond_int32():
    g = random_temporal_graph(12, 150, seed=5, num_distinct_times=10)
    eid = (np.int64(1) << 40) + 7 * np.arange(g.num_events, dtype=np.int64)
    ref = reference_tcsr(g.src, g.dst, g.t, eid=eid)
    tcsr = _build(g.src, g.dst, g.t, eid=torch.from_numpy(eid))
    assert_tcsr_equal(tcsr, ref, "eids above 2**40")
    assert _np(tcsr.eid).min() >= 1 << 40


def test_custom_eids_order_ties_by_eid():
    # With custom ids, ties in time are ordered by eid (the documented sort key), not event order.
    g = random_temporal_graph(8, 100, seed=11, num_distinct_times=4)
    eid = np.random.default_rng(0).permutation(g.num_events).astype(np.int64) * 3 + (1 << 33)
    ref = reference_tcsr(g.src, g.dst, g.t, eid=eid)
    tcsr = _build(g.src, g.dst, g.t, eid=torch.from_numpy(eid))
    assert_tcsr_equal(tcsr, ref, "permuted custom eids")


def test_float64_unix_times_keep_precision():
    # float32 spacing at 1.6e9 is 128 s: these times would all collapse into a handful of values.
    g = random_temporal_graph(6, 200, seed=2, num_distinct_times=400, t_offset=1.6e9,
                              time_step=0.25)
    assert np.unique(g.t.astype(np.float32)).size < np.unique(g.t).size // 10
    ref = reference_tcsr(g.src, g.dst, g.t)
    tcsr = _build(g.src, g.dst, g.t)
    assert_tcsr_equal(tcsr, ref, "Unix times with quarter seconds")
    ts = _np(tcsr.ts)
    assert np.array_equal(np.unique(ts), np.unique(g.t))


@pytest.mark.parametrize("add_reverse", [True, False])
def test_real_data_collegemsg(shared_data, add_reverse):
    raw = np.loadtxt(shared_data / "CollegeMsg.txt", dtype=np.int64)
    src, dst, t = raw[:, 0], raw[:, 1], raw[:, 2].astype(np.float64)
    ref = reference_tcsr(src, dst, t, add_reverse=add_reverse)
    tcsr = _build(src, dst, t, add_reverse=add_reverse)
    assert_tcsr_equal(tcsr, ref, f"CollegeMsg add_reverse={add_reverse}")


# ------------------------------------------------------------------------------------------------
# save / load
# ------------------------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    g = random_temporal_graph(30, 400, seed=9, num_distinct_times=50, num_active_nodes=25,
                              t_offset=1.6e9, time_step=0.125)
    eid = (np.int64(1) << 35) + np.arange(g.num_events, dtype=np.int64)
    tcsr = _build(g.src, g.dst, g.t, num_nodes=30, eid=torch.from_numpy(eid))
    path = tmp_path / "graph.npz"
    tcsr.save(path)
    assert path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.npz"], "temporary file left behind"
    loaded = TCSR.load(path)
    ref = reference_tcsr(g.src, g.dst, g.t, num_nodes=30, eid=eid)
    assert_tcsr_equal(loaded, ref, "loaded")
    # Saving again over an existing file replaces it.
    other = _build(HAND_SRC, HAND_DST, HAND_T, num_nodes=4)
    other.save(path)
    assert_tcsr_equal(TCSR.load(path), HAND_REVERSE, "overwritten")
    assert_tcsr_equal(TCSR.load(str(path)), HAND_REVERSE, "loaded from str path")


def test_load_tgl_style_file_with_int64_indices(tmp_path):
    # TGL's gen_graph.py writes indptr/indices/eid as int64 and ts as float64, with no metadata.
    g = random_temporal_graph(12, 90, seed=21, num_distinct_times=15)
    ref = reference_tcsr(g.src, g.dst, g.t)
    path = tmp_path / "ext_full.npz"
    np.savez(path, indptr=ref.indptr, indices=ref.indices, ts=ref.ts, eid=ref.eid)
    loaded = TCSR.load(path)
    assert_tcsr_equal(loaded, ref, "TGL-style file")


def _saved_arrays(tcsr: TCSR, path: Path) -> tuple:
    """Saves ``tcsr``; returns the file's arrays and {field name: key of that field in the file}.

    Keys are found by content so the test does not depend on how the file names its arrays.
    """
    tcsr.save(path)
    with np.load(path) as f:
        arrays = {key: f[key] for key in f.files}
    roles = {}
    for name in FIELDS:
        value = _np(getattr(tcsr, name))
        keys = [k for k, a in arrays.items() if a.shape == value.shape and np.array_equal(a, value)]
        assert len(keys) == 1, (
            f"field {name} matches keys {keys} of the saved file ({list(arrays)})")
        roles[name] = keys[0]
    return arrays, roles


def _corrupted_graph() -> TCSR:
    # eids shifted by 1000 so no saved array equals another one.
    g = random_temporal_graph(10, 60, seed=4, num_distinct_times=40)
    return _build(g.src, g.dst, g.t, eid=torch.arange(1000, 1000 + g.num_events))


def _rewrite(path: Path, arrays: dict) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _assert_load_fails(path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(path.name)):
        TCSR.load(path)


def test_load_rejects_unsorted_times(tmp_path):
    tcsr = _corrupted_graph()
    path = tmp_path / "unsorted.npz"
    arrays, roles = _saved_arrays(tcsr, path)
    indptr = _np(tcsr.indptr)
    ts = arrays[roles["ts"]].copy()
    sizes = np.diff(indptr)
    node = int(np.argmax(sizes))
    seg = ts[indptr[node]:indptr[node + 1]]
    assert seg[0] < seg[-1]
    ts[indptr[node]:indptr[node + 1]] = seg[::-1]
    arrays[roles["ts"]] = ts
    _rewrite(path, arrays)
    _assert_load_fails(path)


def test_load_rejects_truncated_arrays(tmp_path):
    tcsr = _corrupted_graph()
    for name in ("ts", "indices", "eid"):
        path = tmp_path / f"truncated_{name}.npz"
        arrays, roles = _saved_arrays(tcsr, path)
        arrays[roles[name]] = arrays[roles[name]][:-3]
        _rewrite(path, arrays)
        _assert_load_fails(path)


def test_load_rejects_non_monotone_indptr(tmp_path):
    tcsr = _corrupted_graph()
    path = tmp_path / "indptr.npz"
    arrays, roles = _saved_arrays(tcsr, path)
    indptr = arrays[roles["indptr"]].copy()
    indptr[3], indptr[4] = indptr[4] + 1, indptr[3]
    arrays[roles["indptr"]] = indptr
    _rewrite(path, arrays)
    _assert_load_fails(path)


def test_load_rejects_missing_array(tmp_path):
    tcsr = _corrupted_graph()
    path = tmp_path / "missing.npz"
    arrays, roles = _saved_arrays(tcsr, path)
    del arrays[roles["ts"]]
    _rewrite(path, arrays)
    _assert_load_fails(path)


def test_load_rejects_corrupted_bytes(tmp_path):
    # The zip directory stays intact but an array's bytes are damaged (a bad disk block).
    tcsr = _corrupted_graph()
    path = tmp_path / "flipped.npz"
    tcsr.save(path)
    data = bytearray(path.read_bytes())
    ts_bytes = _np(tcsr.ts).tobytes()
    at = bytes(data).find(ts_bytes)
    assert at > 0, "ts not stored uncompressed; pick another corruption"
    for i in range(at, at + len(ts_bytes), 8):
        data[i + 7] ^= 0xFF  # flips sign and exponent bits of every time
    path.write_bytes(bytes(data))
    _assert_load_fails(path)


def test_load_rejects_truncated_file(tmp_path):
    tcsr = _corrupted_graph()
    path = tmp_path / "cut.npz"
    tcsr.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_load_fails(path)


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------

def test_bad_input_length_mismatch():
    # The message must name the arrays whose lengths disagree.
    with pytest.raises(ValueError, match=r"\bdst\b"):
        _build([0, 1, 2], [1, 2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"\bt\b"):
        _build([0, 1], [1, 2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"(?i)eid"):
        _build([0, 1], [1, 2], [1.0, 2.0], eid=torch.arange(3))


def test_bad_input_negative_node_id():
    with pytest.raises(ValueError, match=r"(?i)negative|node|src|dst"):
        _build([0, -1], [1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"(?i)negative|node|src|dst"):
        _build([0, 1], [1, -5], [1.0, 2.0])


def test_bad_input_num_nodes_too_small():
    with pytest.raises(ValueError, match=r"(?i)num_nodes"):
        _build([0, 1], [1, 7], [1.0, 2.0], num_nodes=5)


def test_bad_input_nan_time():
    with pytest.raises(ValueError, match=r"(?i)nan|finite"):
        _build([0, 1, 2], [1, 2, 0], [1.0, float("nan"), 3.0])
