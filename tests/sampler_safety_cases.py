"""Inputs that used to crash the interpreter inside the C++ sampler (issue 24, items 0c and 0d).

Run as a script, it runs every case of :data:`CASES` in order and prints one line per case,
``CASE <name> -> ok`` or ``CASE <name> -> <exception type>: <message>``, so that
``tests/test_sampler_safety.py`` can run them all in one subprocess (a segfault ends the
subprocess, not pytest) and check each line. Before the fix the first cases ended with a
segmentation fault (exit status 139).
"""
from __future__ import annotations

import resource
import sys
from typing import Callable, Dict

import numpy as np
import torch

from pyg_tgl.data.sampler import TemporalSampler
from pyg_tgl.data.tcsr import TCSR

# Node 0: e0 (t=1, nbr 1), e2 (t=3, nbr 2), e3 (t=4, nbr 3); node 1: e0, e1; node 2: e1, e2;
# node 3: e3. Eight entries.
SRC, DST, T = np.array([0, 1, 2, 0]), np.array([1, 2, 0, 3]), np.array([1.0, 2.0, 3.0, 4.0])


def _graph() -> TCSR:
    return TCSR.from_edges(SRC, DST, T)


def _unvalidated(**changes) -> TCSR:
    g = _graph()
    arrays = {k: getattr(g, k).clone() for k in ("indptr", "indices", "eid", "ts")}
    for name, (pos, value) in changes.items():
        arrays[name][pos] = value
    return TCSR(**arrays, validate=False)


def bad_indptr_unvalidated():
    TemporalSampler(_unvalidated(indptr=(2, 10**12)), [5]).sample([1], [10.0])


def indptr_end_beyond_entries_unvalidated():
    TemporalSampler(_unvalidated(indptr=(4, 13)), [5]).sample([3], [10.0])


def neighbour_out_of_range_unvalidated():
    TemporalSampler(_unvalidated(indices=(0, 2**30)), [5, 5]).sample([0], [10.0])


def indptr_written_by_torch_after_build():
    g = _graph()
    sampler = TemporalSampler(g, [5])
    g.indptr[2] = 10**12
    sampler.sample([1], [10.0])


def indptr_written_through_numpy_after_build():
    g = _graph()
    sampler = TemporalSampler(g, [5])
    g.indptr.numpy()[1] = -10**12  # a numpy view: no torch version counter changes
    sampler.sample([1], [10.0])


def neighbour_written_through_numpy_after_build():
    g = _graph()
    sampler = TemporalSampler(g, [5, 5])
    g.indices.numpy()[int(g.indptr[0])] = 10**9  # caught as a root of hop 1
    sampler.sample([0], [10.0])


def neighbour_written_through_numpy_after_build_last_hop():
    g = _graph()
    sampler = TemporalSampler(g, [5])
    g.indices.numpy()[int(g.indptr[0])] = -1  # caught in the last hop's output
    sampler.sample([0], [10.0])


def storage_replaced_after_build():
    """Tensor.set_ swaps the TCSR's storage; the sampler keeps reading the memory it validated."""
    g = _graph()
    sampler = TemporalSampler(g, [5, 5])
    before = sampler.sample([0, 1], [10.0, 2.5])
    for name in ("indptr", "indices", "eid", "ts"):
        getattr(g, name).set_()
    junk = [torch.full((1 << 16,), -(1 << 62)) for _ in range(8)]  # reuse of freed memory
    after = sampler.sample([0, 1], [10.0, 2.5])
    del junk
    for hop_a, hop_b in zip(before[0], after[0]):
        for field in ("nodes", "ts", "eid", "dense_index", "count"):
            assert torch.equal(getattr(hop_a, field), getattr(hop_b, field)), field


def times_shifted_by_torch_after_build():
    """A valid in-place change is re-validated and then sampled: no edge is before t = 10 now."""
    g = _graph()
    sampler = TemporalSampler(g, [5])
    assert sampler.sample([0], [10.0])[0][0].num_edges == 3
    g.ts.add_(100.0)
    assert sampler.sample([0], [10.0])[0][0].num_edges == 0


def huge_fanout_issue_example():
    """Issue 24's example: fan-outs [10**6, 10**6] over 1,000 roots (5 GB and rising before)."""
    rng = np.random.default_rng(0)
    g = TCSR.from_edges(rng.integers(0, 1000, 20000), rng.integers(0, 1000, 20000),
                        np.sort(rng.random(20000)), num_nodes=1000)
    sampler = TemporalSampler(g, [10**6, 10**6], num_threads=1, max_output_bytes=2**30)
    # A regression must fail with MemoryError here, not take the machine's memory.
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (vm + (3 << 30), resource.RLIM_INFINITY))
    sampler.sample(np.arange(1000), np.full(1000, 2.0))


CASES: Dict[str, Callable[[], None]] = {fn.__name__: fn for fn in (
    bad_indptr_unvalidated, indptr_end_beyond_entries_unvalidated,
    neighbour_out_of_range_unvalidated, indptr_written_by_torch_after_build,
    indptr_written_through_numpy_after_build, neighbour_written_through_numpy_after_build,
    neighbour_written_through_numpy_after_build_last_hop, storage_replaced_after_build, times_shifted_by_torch_after_build, huge_fanout_issue_example)}


def main() -> int:
    torch.set_num_threads(1)
    for name, case in CASES.items():
        print(f"CASE {name} -> ", end="", flush=True)
        try:
            case()
        except Exception as exc:  # noqa: BLE001 - the test checks the type and message
            print(f"{type(exc).__name__}: {exc}", flush=True)
        else:
            print("ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
