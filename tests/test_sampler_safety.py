"""No T-CSR, no later change of it and no fan-out can crash the interpreter (issue 24, 0c and 0d).

The crash cases run in one subprocess (``tests/sampler_safety_cases.py``): before the fix the
first of them ended it with a segmentation fault. The output bound (``max_output_bytes``) is
checked in-process on small graphs, where a regression costs little memory.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyg_tgl.data.sampler import TemporalSampler, default_max_output_bytes
from pyg_tgl.data.tcsr import TCSR
from reference import (assert_blocks_equal, random_temporal_graph, reference_sample,
                       reference_tcsr)
from sampler_fuzz import output_bytes

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def case_results():
    env = {**os.environ, "OMP_WAIT_POLICY": "passive"}
    proc = subprocess.run([sys.executable, str(TESTS / "sampler_safety_cases.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    results = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"CASE (\w+) -> (.*)$", line)
        if m:
            results[m.group(1)] = m.group(2)
    return proc, results


def _result(case_results, name: str) -> str:
    proc, results = case_results
    assert results.get(name, "").strip(), (
        f"the subprocess ended (exit status {proc.returncode}) during or before case {name}:\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return results[name]


_UNVALIDATED = (" (the sampler validates its graph; a TCSR built with validate=False must still "
                "pass TCSR.validate())")
_MODIFIED = (": the T-CSR's arrays were modified in place after the sampler was built; build the "
             "TCSR again and a new TemporalSampler")


@pytest.mark.parametrize("name,expected", [
    ("bad_indptr_unvalidated",
     "InputError: invalid T-CSR: indptr decreases at node 2 (indptr[2] = 1000000000000 > "
     "indptr[3] = 7)" + _UNVALIDATED),
    ("indptr_end_beyond_entries_unvalidated",
     "InputError: invalid T-CSR: indptr[-1] = 13 but indices/eid/ts hold 8 entries"
     + _UNVALIDATED),
    ("neighbour_out_of_range_unvalidated",
     "InputError: invalid T-CSR: node 0: indices[0] = 1073741824 is not a node id in [0, 4)"
     + _UNVALIDATED),
    ("indptr_written_by_torch_after_build",
     "ValueError: the T-CSR's indptr changed in place after the sampler was built and the graph "
     "is no longer valid: indptr decreases at node 2 (indptr[2] = 1000000000000 > indptr[3] = "
     "7); build the TCSR again and a new TemporalSampler"),
    ("indptr_written_through_numpy_after_build",
     "InputError: snapshot 0 hop 0: indptr[1] = -1000000000000 and indptr[2] = 5 do not delimit "
     "a slice of the 8 entries (0 <= indptr[n] <= indptr[n + 1] <= 8 is required)" + _MODIFIED),
    ("neighbour_written_through_numpy_after_build",
     "InputError: snapshot 0 hop 1: indices[0] = 1000000000 is not a node id in [0, 4)"
     + _MODIFIED),
    ("neighbour_written_through_numpy_after_build_last_hop",
     "InputError: snapshot 0 hop 0: indices[0] = -1 is not a node id in [0, 4)" + _MODIFIED),
    ("storage_replaced_after_build", "ok"),
    ("times_shifted_by_torch_after_build", "ok"),
    ("huge_fanout_issue_example",
     "InputError: sampling 1000 roots with num_neighbors [1000000, 1000000] and history 1 needs "
     "at least 16000048000 bytes (14.9 GiB) of output (dense_index alone holds roots x fan-out "
     "int64 per hop), above max_output_bytes = 1073741824 bytes (1.0 GiB); sample fewer roots "
     "per call, lower the fan-outs, or raise max_output_bytes"),
])
def test_no_crash_and_a_clear_error(case_results, name, expected):
    assert _result(case_results, name) == expected


def test_cases_subprocess_exits_cleanly(case_results):
    proc, results = case_results
    assert proc.returncode == 0, proc.stderr[-3000:]
    from sampler_safety_cases import CASES
    assert set(results) == set(CASES)


def test_inf_root_with_overflowing_snapshot_offset_sees_no_edge():
    # t = +inf and a window offset of 2 * 1e308 = inf give the bound inf - inf = NaN; the rule
    # "lo <= ts < hi" then holds for no edge. The search used to treat the NaN bound as -inf.
    g = random_temporal_graph(4, 30, seed=3, num_distinct_times=6)
    tcsr = TCSR.from_edges(g.src, g.dst, g.t, num_nodes=4)
    ref = reference_tcsr(g.src, g.dst, g.t, num_nodes=4)
    roots, ts = np.array([0, 1, 2, 3]), np.array([np.inf, np.inf, 5.0, -np.inf])
    for cache in (False, True):
        sampler = TemporalSampler(tcsr, [3, 2], history=3, duration=1e308,
                                  use_pointer_cache=cache)
        for _ in range(2):  # the second call starts from a filled pointer cache
            expected = reference_sample(ref, roots, ts, [3, 2], history=3, duration=1e308)
            assert_blocks_equal(sampler.sample(roots, ts), expected, f"cache={cache}")


# ------------------------------------------------------------------------------------------------
# max_output_bytes
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("history,dedup", [(1, False), (1, True), (2, False), (3, True)])
def test_limit_admits_the_exact_output_size_and_refuses_one_byte_less(history, dedup):
    g = random_temporal_graph(30, 600, seed=4, num_distinct_times=50)
    tcsr = TCSR.from_edges(g.src, g.dst, g.t, num_nodes=30)
    roots, ts = np.concatenate([g.src[300:340]] * 2), np.tile(g.t[300:340], 2) + 0.5
    fanouts = [4, 3, 2]
    opts = dict(history=history, duration=20.0 if history > 1 else 0.0, dedup=dedup)
    accounting = dict(num_neighbors=fanouts, dedup=dedup)
    need = output_bytes(TemporalSampler(tcsr, fanouts, **opts).sample(roots, ts), accounting)
    exact = TemporalSampler(tcsr, fanouts, **opts, max_output_bytes=need)
    assert output_bytes(exact.sample(roots, ts), accounting) == need
    tight = TemporalSampler(tcsr, fanouts, **opts, max_output_bytes=need - 1)
    # The bytes given are a lower bound or the exact count, and above need - 1: exactly need.
    with pytest.raises(ValueError, match=rf"sampling needs (at least )?{need} bytes .* above "
                                         rf"max_output_bytes = {need - 1} bytes"):
        tight.sample(roots, ts)
    assert tight.call_index == 0, "a refused call must not use up a random stream"


def test_limit_counts_the_actual_edges_of_a_hop():
    # 100 roots on a hub of degree 1000: the roots x fan-out part is 0.8 MB, the edges 4.8 MB.
    hub = 1000
    tcsr = TCSR.from_edges(np.zeros(hub, dtype=np.int64), np.arange(1, hub + 1),
                           np.arange(hub, dtype=np.float64))
    sampler = TemporalSampler(tcsr, [hub], max_output_bytes=2_000_000)
    with pytest.raises(ValueError, match=r"sampling needs 5602400 bytes .*snapshot 0 hop 0 has "
                                         r"100 roots x fan-out 1000 .* and 100000 sampled edges"):
        sampler.sample(np.zeros(100, dtype=np.int64), np.full(100, 1e9))
    few = sampler.sample(np.zeros(2, dtype=np.int64), np.full(2, 1e9))  # 2 roots fit
    assert few[0][0].num_edges == 2 * hub


def test_fanout_too_large_for_the_limit_is_refused_when_built():
    tcsr = TCSR.from_edges(np.array([0]), np.array([1]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"num_neighbors\[1\] = 1000: one root's dense_index row "
                                         r"alone needs 8000 bytes, above max_output_bytes = 4000"):
        TemporalSampler(tcsr, [2, 1000], max_output_bytes=4000)
    with pytest.raises(ValueError, match=r"num_neighbors\[0\] = 9223372036854775808"):
        TemporalSampler(tcsr, [2**63])  # beyond int64: a clear error, not a conversion error
    with pytest.raises(ValueError, match=r"needs 36893488147419103232 bytes"):
        TemporalSampler(tcsr, [np.int64(2**62)])  # 8 * k must not wrap around in int64
    for bad in (0, -1, 2**63, 1.5, True):
        with pytest.raises(ValueError, match="max_output_bytes must be a positive integer"):
            TemporalSampler(tcsr, [2], max_output_bytes=bad)


def test_default_limit_is_half_the_memory():
    limit = default_max_output_bytes()
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < limit <= physical // 2
    tcsr = TCSR.from_edges(np.array([0]), np.array([1]), np.array([1.0]))
    assert TemporalSampler(tcsr, [2]).max_output_bytes == limit


def test_empty_batch_with_a_large_fanout_allocates_nothing():
    tcsr = TCSR.from_edges(np.array([0]), np.array([1]), np.array([1.0]))
    sampler = TemporalSampler(tcsr, [10**6, 10**6], max_output_bytes=2**24)
    hops = sampler.sample(np.zeros(0, dtype=np.int64), np.zeros(0))[0]
    assert [tuple(h.dense_index.shape) for h in hops] == [(0, 10**6), (0, 10**6)]
