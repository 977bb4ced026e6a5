"""Fuzz driver for the C++ T-CSR build and temporal sampler (``pyg_tgl._core``).

Each case draws a random small temporal graph (empty neighbour lists, duplicate times, ``±inf``
and ``±1e308`` times, ``-0.0``, event ids up to ``2**63 - 1``, int32 or int64 neighbour ids),
random sampler options (``recent``/``uniform``, 1-3 hops, fan-outs above the degrees,
``prop_time``, snapshots, the pointer cache, ``dedup``, 1-3 threads, sometimes a tight
``max_output_bytes``) and a few calls with random roots (nodes without history, times at, between,
before and after the events, ``±inf``), and checks the output against ``tests/reference.py``:
``recent`` field by field, ``uniform`` by replaying the implementation's draws through the
reference layout after checking that they are eligible and distinct.

About a third of the cases feed invalid input instead, which must raise a one-line
:class:`ValueError` and never crash: a T-CSR built with ``validate=False`` whose ``indptr``,
``indices``, ``ts`` or ``eid`` is corrupted, the same corruption written into a valid T-CSR after
its sampler was built (through torch, which the sampler notices, or through a numpy view, which
only its bounds checks see), root ids at the int64 extremes, NaN root times, and fan-outs or
output bounds that cannot work.

``tests/test_sampler_fuzz.py`` runs it in a subprocess, with the normal build and with an
AddressSanitizer build of the extension (``--core``); run by hand::

    python tests/sampler_fuzz.py --cases 2000 --seed 0

The last line of the output is ``FUZZ-SUMMARY {json}`` with the number of cases of each kind and
the failures (case seed, what was checked, the error); the exit status is 1 when any case failed.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

_TESTS = Path(__file__).resolve().parent
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

INT64_MAX, INT64_MIN = 2**63 - 1, -2**63
INT32_MAX, INT32_MIN = 2**31 - 1, -2**31
INF = math.inf

#: Times that stress the comparisons: infinities, the largest finite values, signed zeros,
#: Unix-scale values half a unit apart.
SPECIAL_TIMES = [-INF, INF, -1e308, 1e308, -0.0, 0.0, 1.6e9, 1.6e9 + 0.5, -3.0]
DURATIONS = [0.5, 1.0, 2.0, 3.0, 1e-3, 1e308]


class CaseFailure(AssertionError):
    """A check of one fuzz case failed."""


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise CaseFailure(what)


def load_core(path: Optional[str]) -> None:
    """Makes ``pyg_tgl._core`` the extension at ``path`` (e.g. an AddressSanitizer build) before
    anything imports the installed one."""
    if path is None:
        return
    import pyg_tgl
    spec = importlib.util.spec_from_file_location("pyg_tgl._core", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["pyg_tgl._core"] = module
    pyg_tgl._core = module


# ------------------------------------------------------------------------------------------------
# Random graphs, options and roots
# ------------------------------------------------------------------------------------------------

def random_graph(rng: np.random.Generator):
    """Events ``(src, dst, t, eid or None)``, the node count and the T-CSR options."""
    num_nodes = int(rng.choice([0, 1, 2, 3, 4, 6, 9, 13]))
    num_events = int(rng.integers(0, 41)) if num_nodes else 0
    src = rng.integers(0, max(num_nodes, 1), size=num_events)
    dst = rng.integers(0, max(num_nodes, 1), size=num_events)
    # A few distinct times, so that many events share one; special values in half the graphs.
    pool = [float(x) for x in rng.integers(-2, 12, size=int(rng.integers(1, 7)))]
    if rng.random() < 0.5:
        pool += [float(x) for x in rng.choice(SPECIAL_TIMES, size=int(rng.integers(1, 4)))]
    t = np.array([pool[i] for i in rng.integers(0, len(pool), size=num_events)],
                 dtype=np.float64)
    eid = None
    if rng.random() < 0.5:
        choices = np.array([0, 1, 5, INT64_MAX, INT64_MAX - 1, 2**62, 2**32], dtype=np.int64)
        eid = np.where(rng.random(num_events) < 0.5, rng.choice(choices, size=num_events),
                       rng.integers(0, 50, size=num_events))
    options = dict(add_reverse=bool(rng.random() < 0.7),
                   index_dtype=[None, "int32", "int64"][int(rng.integers(0, 3))])
    return src.astype(np.int64), dst.astype(np.int64), t, eid, num_nodes, options


def random_sampler_options(rng: np.random.Generator) -> dict:
    num_hops = int(rng.integers(1, 4))
    high = [2, 4, 7, 50]
    fanouts = [int(rng.integers(1, high[int(rng.integers(0, 4))])) for _ in range(num_hops)]
    history = int(rng.choice([1, 1, 2, 3]))
    return dict(num_neighbors=fanouts, strategy=["recent", "uniform"][int(rng.integers(0, 2))],
                prop_time=bool(rng.random() < 0.4), history=history,
                duration=float(rng.choice(DURATIONS)) if history > 1 else 0.0,
                num_threads=int(rng.integers(1, 4)), seed=int(rng.integers(0, 2**62)),
                use_pointer_cache=bool(rng.random() < 0.5), dedup=bool(rng.random() < 0.4))


def random_roots(rng: np.random.Generator, num_nodes: int, event_times: np.ndarray,
                 num_roots: int) -> Tuple[np.ndarray, np.ndarray]:
    nodes = rng.integers(0, max(num_nodes, 1), size=num_roots)
    finite = event_times[np.isfinite(event_times)]
    times = []
    for _ in range(num_roots):
        kind = int(rng.integers(0, 6))
        if kind <= 1 and event_times.size:
            x = float(rng.choice(event_times))
            times.append(x + 0.5 if kind == 1 and math.isfinite(x) else x)
        elif kind == 2:
            times.append(float(rng.choice(SPECIAL_TIMES)))
        elif kind == 3 and finite.size:
            times.append(float(finite.max()) + float(rng.integers(1, 4)))
        else:
            times.append(float(rng.integers(-3, 14)))
    return nodes.astype(np.int64), np.array(times, dtype=np.float64)


# ------------------------------------------------------------------------------------------------
# Expected output
# ------------------------------------------------------------------------------------------------

def _replayed_positions(hop, root: int, eligible: List[int], k: int, ref, prop_time: bool,
                        where: str) -> List[int]:
    """The T-CSR positions of the neighbours ``uniform`` drew for ``root``, after checking that
    they are ``min(k, eligible)`` distinct eligible entries.

    The output lists them by decreasing position; each is matched, in that order, to the largest
    eligible position below the previous match whose entry gives the same output (neighbour,
    eid, dt and time). Entries that match the same output are interchangeable, and taking the
    largest one first never blocks a later match (greedy subsequence matching)."""
    edges = np.nonzero(hop.edge_index[1] == root)[0]
    _check(len(edges) == min(k, len(eligible)),
           f"{where}: {len(edges)} neighbours drawn, expected min({k}, {len(eligible)})")
    t = float(hop.ts[root])
    candidates = list(reversed(eligible))  # decreasing position
    chosen: List[int] = []
    for e in edges:
        q = int(hop.edge_index[0][e])
        key = (int(hop.nodes[q]), int(hop.eid[e]), float(hop.dt[e]), float(hop.ts[q]))
        match = next((p for p in candidates if (not chosen or p < chosen[-1]) and
                      (int(ref.indices[p]), int(ref.eid[p]), t - float(ref.ts[p]),
                       t if prop_time else float(ref.ts[p])) == key), None)
        _check(match is not None, f"{where}: drawn edge {key} (node, eid, dt, ts) matches no "
                                  f"eligible entry below position {chosen[-1:]}")
        chosen.append(match)
    return chosen


def expected_blocks(ref, roots: np.ndarray, ts: np.ndarray, opt: dict, actual=None):
    """``blocks[s][l]`` (reference hops) and, with ``dedup``, the expected inverse maps.

    ``recent`` picks with :func:`reference.recent_chooser`; ``uniform`` replays ``actual``."""
    from reference import build_hop, eligible_positions, hop_to_numpy, recent_chooser

    fanouts, H, D = opt["num_neighbors"], opt["history"], opt["duration"]
    blocks, inverses = [], []
    for s in range(H):
        rn, rt = [int(n) for n in roots], [float(x) for x in ts]
        hops, invs = [], []
        for l, k in enumerate(fanouts):
            got = hop_to_numpy(actual[s][l]) if actual is not None else None
            chosen = []
            for i, (node, t) in enumerate(zip(rn, rt)):
                eligible = eligible_positions(ref, node, t, H, D, s)
                if opt["strategy"] == "recent":
                    chosen.append(recent_chooser(eligible, k, s, l, i))
                else:
                    chosen.append(_replayed_positions(got, i, eligible, k, ref,
                                                      opt["prop_time"],
                                                      f"snapshot {s} hop {l} root {i}"))
            block = build_hop(ref, rn, rt, k, chosen, opt["prop_time"])
            hops.append(block)
            if opt["dedup"] and l + 1 < len(fanouts):
                # First appearance order; -0.0 and 0.0 are one key, as in the C++ hash.
                first: Dict[tuple, int] = {}
                inverse = []
                nxt_n, nxt_t = [], []
                for node, t in zip(block.nodes.tolist(), block.ts.tolist()):
                    key = (node, t)
                    if key not in first:
                        first[key] = len(nxt_n)
                        nxt_n.append(node)
                        nxt_t.append(t)
                    inverse.append(first[key])
                invs.append(np.array(inverse, dtype=np.int64))
                rn, rt = nxt_n, nxt_t
            else:
                invs.append(None)
                rn, rt = block.nodes.tolist(), block.ts.tolist()
        blocks.append(hops)
        inverses.append(invs)
    return blocks, inverses


def output_bytes(blocks, opt: dict) -> int:
    """Bytes the sampler allocates for ``blocks`` (reference or sampled hops; the formula of
    TemporalSampler's docstring) with the options ``num_neighbors`` and ``dedup`` of ``opt``."""
    total = 0
    num_hops = len(opt["num_neighbors"])
    for hops in blocks:
        for l, hop in enumerate(hops):
            R, E = int(hop.num_roots), int(hop.eid.shape[0])
            k = opt["num_neighbors"][l]
            total += 8 * R * (k + 1) + 16 * (R + E) + 32 * E
            if opt["dedup"] and l + 1 < num_hops:
                total += 24 * (R + E)
    return total


def check_blocks(actual, ref, roots, ts, opt: dict, where: str) -> None:
    from reference import assert_blocks_equal

    expected, inverses = expected_blocks(ref, roots, ts, opt, actual)
    try:
        assert_blocks_equal(actual, expected, where)
    except AssertionError as exc:
        raise CaseFailure(str(exc)) from None
    if opt["dedup"]:
        for s, hops in enumerate(actual):
            for l, hop in enumerate(hops):
                inv = inverses[s][l]
                if inv is None:
                    _check(hop.inverse is None, f"{where} [{s}][{l}]: last hop has an inverse")
                else:
                    _check(hop.inverse is not None and np.array_equal(hop.inverse.numpy(), inv),
                           f"{where} [{s}][{l}]: inverse differs")


# ------------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------------

def _expect_value_error(fn: Callable, where: str, match: Optional[str] = None) -> str:
    try:
        fn()
    except ValueError as exc:
        msg = str(exc)
        _check("\n" not in msg and msg.strip() != "", f"{where}: error is not one line: {msg!r}")
        _check(match is None or match in msg, f"{where}: error {msg!r} does not mention {match!r}")
        return msg
    raise CaseFailure(f"{where}: expected a ValueError, the call returned")


def _build(src, dst, t, eid, num_nodes, options):
    import torch
    from reference import reference_tcsr

    from pyg_tgl.data.tcsr import TCSR

    dtype = {None: None, "int32": torch.int32, "int64": torch.int64}[options["index_dtype"]]
    tcsr = TCSR.from_edges(src, dst, t, num_nodes=num_nodes, add_reverse=options["add_reverse"],
                           eid=eid, index_dtype=dtype)
    ref = reference_tcsr(src, dst, t, num_nodes=num_nodes, add_reverse=options["add_reverse"],
                         eid=eid)
    for name in ("indptr", "indices", "eid", "ts"):
        _check(np.array_equal(getattr(tcsr, name).numpy(), getattr(ref, name)),
               f"T-CSR {name} differs from reference_tcsr")
    return tcsr, ref


def valid_case(rng: np.random.Generator, where: str) -> str:
    from pyg_tgl.data.sampler import TemporalSampler

    src, dst, t, eid, num_nodes, options = random_graph(rng)
    tcsr, ref = _build(src, dst, t, eid, num_nodes, options)
    opt = random_sampler_options(rng)
    limit_mode = rng.random() < 0.2 and opt["strategy"] == "recent" and num_nodes > 0
    sampler = None if limit_mode else TemporalSampler(tcsr, **opt)
    for call in range(int(rng.integers(1, 4))):
        # Mostly small batches; some large enough for the parallel path (R * k >= 4096).
        big = rng.random() < 0.08 and len(opt["num_neighbors"]) == 1
        num_roots = int(rng.integers(520, 700)) if big else int(rng.integers(0, 10))
        if num_nodes == 0:
            num_roots = 0
        roots, ts = random_roots(rng, num_nodes, t, num_roots)
        here = f"{where} call {call} ({opt}, {num_roots} roots)"
        if limit_mode:
            expected, _ = expected_blocks(ref, roots, ts, opt)
            need = output_bytes(expected, opt)
            limit = max(1, need + int(rng.choice([-1, 0, 1, -(need // 2), 8])))
            k_max = max(opt["num_neighbors"])
            if 8 * k_max > limit:
                _expect_value_error(lambda: TemporalSampler(tcsr, **opt, max_output_bytes=limit),
                                    here, "max_output_bytes")
                return "valid/limit"
            sampler = TemporalSampler(tcsr, **opt, max_output_bytes=limit)
            if need > limit:
                _expect_value_error(lambda: sampler.sample(roots, ts), here, "max_output_bytes")
                _check(sampler.call_index == 0, f"{here}: a refused call used a random stream")
                return "valid/limit"
        blocks = sampler.sample(roots, ts)
        check_blocks(blocks, ref, roots, ts, opt, here)
        if limit_mode:
            _check(output_bytes(blocks, opt) <= limit, f"{here}: output above max_output_bytes")
    return "valid/limit" if limit_mode else "valid"


def _corruptions(rng: np.random.Generator, tcsr, roots: np.ndarray):
    """One corruption ``(array name, position, value, raises_at_sampling)`` that makes ``tcsr``
    invalid; ``raises_at_sampling`` says whether the bounds checks alone (writes through numpy,
    no revalidation) must refuse a call with ``roots``."""
    N, M = tcsr.num_nodes, tcsr.num_edges
    indptr, ts = tcsr.indptr.numpy(), tcsr.ts.numpy()
    idx_min, idx_max = (INT32_MIN, INT32_MAX) if tcsr.indices.dtype.itemsize == 4 else \
        (INT64_MIN, INT64_MAX)
    options = []
    if roots.size:
        n = int(rng.choice(roots))
        # The slice of a hop-0 root out of [0, M] or reversed: the bounds checks must refuse.
        options.append(("indptr", n + 1, M + 1 + int(rng.integers(0, 3)), True))
        options.append(("indptr", n + 1, int(rng.choice([INT64_MAX, M + 2**40])), True))
        options.append(("indptr", n, int(rng.choice([-1, INT64_MIN])), True))
        options.append(("indptr", n, int(indptr[n + 1]) + 1, True))  # reversed slice
    options.append(("indptr", 0, int(rng.choice([1, -1, INT64_MAX, INT64_MIN])), False))
    options.append(("indptr", N, M + int(rng.choice([1, 2**40])), False))
    if N >= 2:
        n = int(rng.integers(1, N))
        options.append(("indptr", n, int(rng.choice([-1, INT64_MIN, INT64_MAX])), False))
    if M:
        p = int(rng.integers(0, M))
        options.append(("indices", p, int(rng.choice([-1, N, idx_max, idx_min])), False))
        options.append(("ts", p, math.nan, False))
        options.append(("eid", p, int(rng.choice([-1, INT64_MIN])), False))
        for node in rng.permutation(N):
            beg, end = int(indptr[node]), int(indptr[node + 1])
            if end - beg >= 2 and ts[beg] < ts[end - 1]:
                options.append(("ts", (beg, end - 1), None, False))  # swap: unsorted
                break
    return options[int(rng.integers(0, len(options)))]


def _apply(arrays: dict, corruption) -> None:
    """Writes ``corruption`` into ``arrays[name]`` (numpy arrays or torch tensors)."""
    name, pos, value, _ = corruption
    a = arrays[name]
    if value is None:  # swap two times
        i, j = pos
        x, y = float(a[i]), float(a[j])
        a[i], a[j] = y, x
    else:
        a[pos] = value


def invalid_case(rng: np.random.Generator, where: str) -> str:
    from pyg_tgl.data.sampler import TemporalSampler
    from pyg_tgl.data.tcsr import TCSR

    src, dst, t, eid, num_nodes, options = random_graph(rng)
    tcsr, ref = _build(src, dst, t, eid, num_nodes, options)
    opt = random_sampler_options(rng)
    roots, ts = random_roots(rng, num_nodes, t, int(rng.integers(1, 8)) if num_nodes else 0)
    kind = int(rng.integers(0, 6))
    here = f"{where} ({opt})"
    if kind == 0:  # corrupted before the sampler is built, TCSR(validate=False)
        corruption = _corruptions(rng, tcsr, roots)
        arrays = {n: getattr(tcsr, n).numpy().copy() for n in ("indptr", "indices", "eid", "ts")}
        _apply(arrays, corruption)
        bad = TCSR(**arrays, validate=False)
        _expect_value_error(lambda: TemporalSampler(bad, **opt), f"{here} {corruption}",
                            "invalid T-CSR")
        _expect_value_error(bad.validate, f"{here} {corruption} TCSR.validate")
        return "invalid/before"
    if kind in (1, 2):  # corrupted in place after the sampler was built
        corruption = _corruptions(rng, tcsr, roots)
        sampler = TemporalSampler(tcsr, **opt)
        name = corruption[0]
        if kind == 1:  # through torch: the version counter changes, the sampler re-validates
            tensor = getattr(tcsr, name)
            saved = tensor.clone()
            _apply({name: tensor}, corruption)
            _expect_value_error(lambda: sampler.sample(roots, ts), f"{here} torch {corruption}",
                                "changed in place")
            tensor.copy_(saved)  # repaired: the next call samples the original graph again
            check_blocks(sampler.sample(roots, ts), ref, roots, ts, opt, f"{here} after repair")
            return "invalid/after-torch"
        # through a numpy view: invisible to the version counters, the bounds checks must hold
        _apply({name: getattr(tcsr, name).numpy()}, corruption)
        try:
            sampler.sample(roots, ts)
        except ValueError as exc:
            _check("\n" not in str(exc), f"{here}: error is not one line")
            return "invalid/after-numpy"
        _check(not corruption[3], f"{here} numpy {corruption}: an out-of-bounds slice of a root "
                                  f"was sampled without an error")
        return "invalid/after-numpy"
    sampler = TemporalSampler(tcsr, **opt)
    if kind == 3 or not roots.size:  # root ids at the extremes
        bad = roots.copy() if roots.size else np.zeros(1, dtype=np.int64)
        bad[int(rng.integers(0, bad.size))] = int(rng.choice([-1, num_nodes, INT64_MAX,
                                                              INT64_MIN]))
        bad_ts = np.resize(ts, bad.size) if ts.size else np.zeros(1)
        _expect_value_error(lambda: sampler.sample(bad, bad_ts), f"{here} roots {bad.tolist()}",
                            "root_nodes")
        _check(sampler.call_index == 0, f"{here}: a refused call used a random stream")
        return "invalid/roots"
    if kind == 4:  # NaN root time
        bad_ts = ts.copy()
        bad_ts[int(rng.integers(0, ts.size))] = math.nan
        _expect_value_error(lambda: sampler.sample(roots, bad_ts), f"{here} NaN time", "NaN")
        return "invalid/roots"
    # options that cannot work
    bad_opts = [dict(num_neighbors=[0]), dict(num_neighbors=[3, -1]), dict(num_neighbors=[]),
                dict(num_neighbors=[2**63]), dict(num_neighbors=[2**62]),
                dict(history=0), dict(history=2, duration=math.nan),
                dict(history=2, duration=INF), dict(history=2, duration=0.0),
                dict(max_output_bytes=0), dict(max_output_bytes=2**63),
                dict(num_neighbors=[10**6, 10**6], max_output_bytes=2**30)]
    # The last one (issue 24's example) needs roots, hence nodes.
    bad_opt = {**opt, **bad_opts[int(rng.integers(0, len(bad_opts) - (num_nodes == 0)))]}
    if bad_opt.get("max_output_bytes") == 2**30 and bad_opt["num_neighbors"] == [10**6, 10**6]:
        s = TemporalSampler(tcsr, **bad_opt)
        many = np.resize(roots, 1000)
        _expect_value_error(lambda: s.sample(many, np.resize(ts, 1000)), f"{here} {bad_opt}",
                            "max_output_bytes")
    else:
        _expect_value_error(lambda: TemporalSampler(tcsr, **bad_opt), f"{here} {bad_opt}")
    return "invalid/options"


def run(num_cases: int, seed: int, invalid_fraction: float = 0.35) -> dict:
    import torch

    torch.set_num_threads(1)
    counts: Dict[str, int] = {}
    failures = []
    start = time.perf_counter()
    for i in range(num_cases):
        case_seed = seed * 1_000_003 + i
        rng = np.random.default_rng(case_seed)
        where = f"case {i} (seed {case_seed})"
        try:
            kind = invalid_case(rng, where) if rng.random() < invalid_fraction \
                else valid_case(rng, where)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, then reported
            kind = "failed"
            failures.append(dict(case=i, seed=case_seed, error=f"{type(exc).__name__}: {exc}",
                                 traceback=traceback.format_exc(limit=4)))
        counts[kind] = counts.get(kind, 0) + 1
    return dict(cases=num_cases, seed=seed, counts=counts, failures=failures[:20],
                num_failures=len(failures), seconds=round(time.perf_counter() - start, 2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--core", default=None,
                        help="path of a pyg_tgl._core build to test (e.g. an ASan build)")
    args = parser.parse_args(argv)
    load_core(args.core)
    summary = run(args.cases, args.seed)
    import pyg_tgl._core as core
    summary["core"] = core.__file__
    print("FUZZ-SUMMARY " + json.dumps(summary), flush=True)
    return 1 if summary["num_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
