"""Throughput of pyg_tgl's temporal sampler against PyG's ``LastNeighborLoader``.

Workload (TGL, Zhou et al., VLDB 2022, Sec. 5): a synthetic power-law bipartite graph the size of
REDDIT (10,984 nodes, 672,447 events, reverse edges added), chronological batches of 600 events,
roots ``cat([src, dst, neg])`` at ``cat([t, t, t])`` with one uniform negative destination per
event, one whole epoch per measurement:

* (a) 1 hop, ``recent``, fan-out 10: ours with 1 and 2 threads (with and without the pointer
  cache) against ``torch_geometric.nn.models.tgn.LastNeighborLoader`` as PyG's TGN example uses it
  (``loader(n_id.unique())`` then ``loader.insert(src, dst)`` per batch, with
  ``torch.set_num_threads(1)``, its fastest setting for these small ops). The peer keeps the 10
  last neighbours inserted *before the batch*; ours finds, per root, the 10 most recent edges
  strictly before the root's own time.
* (b) 2 hops, ``uniform``, fan-out [10, 10]: ours with 1 and 2 threads (PyG has no CPU peer for
  temporal uniform sampling without pyg-lib).

Rounds interleave the contestants (ours, peer, ours, peer, ...) so that a change in machine load
hits all of them; the table reports the median and the min-max spread over the rounds.

``--big`` instead builds the T-CSR of a synthetic 200-million-event graph (400M entries with
reverse edges) and samples one epoch of 1-hop ``recent`` on it, reporting build time and peak
resident memory. It needs about 14 GB of RAM.

Usage::

    python experiments/bench_sampler.py               # REDDIT-sized, 3 rounds
    python experiments/bench_sampler.py --rounds 5
    python experiments/bench_sampler.py --big         # 200M events (minutes, ~14 GB)

Writes ``experiments/results/bench_sampler[_big].{json,md}`` and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyg_tgl.data.sampler import TemporalSampler  # noqa: E402
from pyg_tgl.data.tcsr import TCSR  # noqa: E402

RESULTS = ROOT / "experiments" / "results"

REDDIT_USERS, REDDIT_ITEMS, REDDIT_EVENTS = 10_000, 984, 672_447

Batch = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # roots, ts, src, dst


# ------------------------------------------------------------------------------------------------
# Workload
# ------------------------------------------------------------------------------------------------

def powerlaw_bipartite(num_users: int, num_items: int, num_events: int, seed: int = 0,
                       exponent: float = 1.0, span: float = 2.7e6):
    """Events ``user -> item`` with Zipf-distributed endpoints (exponent ``exponent``), sorted
    times uniform over ``[0, span)`` (REDDIT spans about a month of seconds)."""
    rng = np.random.default_rng(seed)
    pu = 1.0 / np.arange(1, num_users + 1) ** exponent
    pi = 1.0 / np.arange(1, num_items + 1) ** exponent
    src = rng.permutation(num_users)[rng.choice(num_users, num_events, p=pu / pu.sum())]
    dst = num_users + rng.permutation(num_items)[rng.choice(num_items, num_events, p=pi / pi.sum())]
    t = np.sort(rng.uniform(0.0, span, num_events))
    return src.astype(np.int64), dst.astype(np.int64), t


def make_batches(src: np.ndarray, dst: np.ndarray, t: np.ndarray, batch_size: int,
                 neg_low: int, neg_high: int, seed: int = 1) -> List[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(0, len(src), batch_size):
        s, d, tt = src[i:i + batch_size], dst[i:i + batch_size], t[i:i + batch_size]
        neg = rng.integers(neg_low, neg_high, size=len(s))
        out.append((torch.from_numpy(np.concatenate([s, d, neg])),
                    torch.from_numpy(np.concatenate([tt, tt, tt])),
                    torch.from_numpy(s), torch.from_numpy(d)))
    return out


# ------------------------------------------------------------------------------------------------
# Contestants: each returns (seconds, roots, sampled edges) for one epoch
# ------------------------------------------------------------------------------------------------

def ours(tcsr: TCSR, fanouts: List[int], strategy: str, threads: int, cache: bool,
         batches: List[Batch]) -> Callable[[], Tuple[float, int, int]]:
    sampler = TemporalSampler(tcsr, fanouts, strategy, num_threads=threads,
                              use_pointer_cache=cache, seed=0)

    def run():
        sampler.reset_pointer_cache()
        roots = edges = 0
        start = time.perf_counter()
        for r, rt, _, _ in batches:
            blocks = sampler.sample(r, rt)
            roots += r.numel()
            edges += sum(h.num_edges for h in blocks[0])
        return time.perf_counter() - start, roots, edges

    return run


def peer_last_neighbor_loader(num_nodes: int, size: int,
                              batches: List[Batch]) -> Callable[[], Tuple[float, int, int]]:
    from torch_geometric.nn.models.tgn import LastNeighborLoader

    loader = LastNeighborLoader(num_nodes, size=size)

    def run():
        loader.reset_state()
        roots = edges = 0
        start = time.perf_counter()
        for r, _, s, d in batches:
            n_id, _, e_id = loader(r.unique())
            loader.insert(s, d)
            roots += r.numel()
            edges += e_id.numel()
        return time.perf_counter() - start, roots, edges

    return run


def interleave(contestants: Dict[str, Callable], rounds: int) -> Dict[str, List[dict]]:
    runs: Dict[str, List[dict]] = {name: [] for name in contestants}
    for r in range(rounds):
        for name, fn in contestants.items():
            seconds, roots, edges = fn()
            runs[name].append(dict(seconds=seconds, roots=roots, edges=edges,
                                   roots_per_s=roots / seconds, edges_per_s=edges / seconds))
            print(f"  round {r + 1}/{rounds} {name:<34} {seconds:8.3f} s  "
                  f"{roots / seconds / 1e6:7.2f} M roots/s  {edges / seconds / 1e6:8.1f} M edges/s",
                  flush=True)
    return runs


def summarise(runs: List[dict], key: str) -> dict:
    values = [r[key] for r in runs]
    return dict(median=statistics.median(values), min=min(values), max=max(values))


# ------------------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------------------

def environment() -> dict:
    # The OpenMP wait policy decides how much spinning threads steal from each other when the
    # cores are shared, which changes multi-threaded results a lot (see docs/development.md).
    omp_env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY",
                                              "GOMP_SPINCOUNT")}
    return dict(python=platform.python_version(), torch=torch.__version__,
                torch_threads=torch.get_num_threads(),
                cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                usable_cores=len(os.sched_getaffinity(0)), load_avg=os.getloadavg(),
                omp_env=omp_env, time=time.strftime("%Y-%m-%d %H:%M:%S"))


def fmt_spread(s: dict, scale: float, digits: int) -> str:
    return (f"{s['median'] / scale:.{digits}f} ({s['min'] / scale:.{digits}f}-"
            f"{s['max'] / scale:.{digits}f})")


def write_outputs(name: str, result: dict, table: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(table + "\n")
    print("\n" + table)
    print(f"\nwrote {RESULTS / (name + '.json')} and {RESULTS / (name + '.md')}")


def main_reddit(args) -> None:
    src, dst, t = powerlaw_bipartite(REDDIT_USERS, REDDIT_ITEMS, args.events, seed=args.seed)
    num_nodes = REDDIT_USERS + REDDIT_ITEMS
    start = time.perf_counter()
    tcsr = TCSR.from_edges(src, dst, t, num_nodes=num_nodes, add_reverse=True)
    build_s = time.perf_counter() - start
    batches = make_batches(src, dst, t, args.batch_size, REDDIT_USERS, num_nodes, seed=args.seed)
    print(f"graph: {num_nodes} nodes, {len(src)} events, {tcsr.num_edges} T-CSR entries "
          f"(built in {build_s:.3f} s); {len(batches)} batches of {args.batch_size} events")

    threads = list(args.threads)
    peer_name = "PyG LastNeighborLoader(size=10)"
    print("(a) 1 hop, recent, fan-out 10")
    contestants_a: Dict[str, Callable] = {}
    for idx, n in enumerate(threads):
        contestants_a[f"pyg_tgl recent [10], {n} thread(s)"] = ours(
            tcsr, [10], "recent", n, False, batches)
        contestants_a[f"pyg_tgl recent [10], {n} thread(s), pointer cache"] = ours(
            tcsr, [10], "recent", n, True, batches)
        if idx == 0:  # the peer sits between our runs in every round
            contestants_a[peer_name] = peer_last_neighbor_loader(num_nodes, 10, batches)
    runs_a = interleave(contestants_a, args.rounds)
    print("(b) 2 hops, uniform, fan-out [10, 10]")
    contestants_b = {f"pyg_tgl uniform [10, 10], {n} thread(s)": ours(
        tcsr, [10, 10], "uniform", n, False, batches) for n in threads}
    runs_b = interleave(contestants_b, args.rounds)

    peer_rps = summarise(runs_a[peer_name], "roots_per_s")["median"]
    rows = []
    for part, runs in (("a", runs_a), ("b", runs_b)):
        for name, rs in runs.items():
            rps, eps = summarise(rs, "roots_per_s"), summarise(rs, "edges_per_s")
            ratio = rps["median"] / peer_rps if part == "a" else None
            rows.append(dict(part=part, name=name, roots_per_s=rps, edges_per_s=eps,
                             ratio_to_peer=ratio, seconds=summarise(rs, "seconds"), runs=rs))
    env = environment()
    lines = [
        f"Sampler throughput, synthetic REDDIT-sized power-law graph ({num_nodes:,} nodes, "
        f"{len(src):,} events, reverse edges), batches of {args.batch_size} events, roots "
        f"src+dst+1 negative, one epoch; median (min-max) over {args.rounds} interleaved rounds. "
        f"{env['usable_cores']} usable cores, load average at the end "
        f"{env['load_avg'][0]:.2f}, OMP_WAIT_POLICY={env['omp_env']['OMP_WAIT_POLICY']}.",
        "",
        "| part | sampler | M roots/s | M sampled edges/s | vs LastNeighborLoader |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row['ratio_to_peer']:.1f}x" if row["ratio_to_peer"] is not None else "n/a"
        lines.append(f"| ({row['part']}) | {row['name']} "
                     f"| {fmt_spread(row['roots_per_s'], 1e6, 2)} "
                     f"| {fmt_spread(row['edges_per_s'], 1e6, 1)} | {ratio} |")
    result = dict(benchmark="sampler", environment=env, num_nodes=num_nodes,
                  num_events=len(src), tcsr_entries=tcsr.num_edges, tcsr_build_s=build_s,
                  batch_size=args.batch_size, rounds=args.rounds, rows=rows)
    write_outputs("bench_sampler", result, "\n".join(lines))


# ------------------------------------------------------------------------------------------------
# --big: 200M events
# ------------------------------------------------------------------------------------------------

def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident memory while the block runs, sampled every 20 ms in a thread."""

    def __enter__(self):
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def powerlaw_ids(rng: np.random.Generator, n: int, num_nodes: int, skew: float,
                 out: np.ndarray) -> None:
    # Inverse-transform draw: id = floor(N * u^skew) gives node i a probability roughly
    # proportional to i^(1/skew - 1), a power law, without an O(N) table lookup per draw.
    chunk = 10_000_000
    for i in range(0, n, chunk):
        u = rng.random(min(chunk, n - i))
        np.power(u, skew, out=u)
        u *= num_nodes
        out[i:i + len(u)] = u.astype(np.int64)


def main_big(args) -> None:
    E, N = args.big_events, args.big_nodes
    rng = np.random.default_rng(args.seed)
    gen_start = time.perf_counter()
    src = np.empty(E, dtype=np.int64)
    dst = np.empty(E, dtype=np.int64)
    powerlaw_ids(rng, E, N, 2.0, src)
    powerlaw_ids(rng, E, N, 2.0, dst)
    # Chronological, 4 events per time stamp (ties), as a recorded stream would be.
    t = np.arange(E, dtype=np.float64)
    np.floor_divide(t, 4.0, out=t)
    gen_s = time.perf_counter() - gen_start
    rss_before = rss_bytes()
    print(f"generated {E:,} events over {N:,} nodes in {gen_s:.1f} s; "
          f"RSS {rss_before / 2**30:.2f} GiB", flush=True)
    with PeakRSS() as peak:
        start = time.perf_counter()
        tcsr = TCSR.from_edges(src, dst, t, num_nodes=N, add_reverse=True,
                               num_threads=max(args.threads))
        build_s = time.perf_counter() - start
    print(f"T-CSR: {tcsr.num_edges:,} entries built in {build_s:.1f} s; peak RSS during build "
          f"{peak.peak / 2**30:.2f} GiB (inputs alone {rss_before / 2**30:.2f} GiB)", flush=True)

    threads = max(args.threads)
    sampler = TemporalSampler(tcsr, [10], "recent", num_threads=threads,
                              use_pointer_cache=args.big_cache)
    bs = args.batch_size
    roots_total = edges_total = 0
    sample_s = 0.0
    with PeakRSS() as peak_sample:
        epoch_start = time.perf_counter()
        num_sampled_events = int(E * args.big_epoch_fraction)
        for i in range(0, num_sampled_events, bs):
            s, d, tt = src[i:i + bs], dst[i:i + bs], t[i:i + bs]
            roots = torch.from_numpy(np.concatenate([s, d, rng.integers(0, N, size=len(s))]))
            ts = torch.from_numpy(np.concatenate([tt, tt, tt]))
            t0 = time.perf_counter()
            blocks = sampler.sample(roots, ts)
            sample_s += time.perf_counter() - t0
            roots_total += roots.numel()
            edges_total += blocks[0][0].num_edges
        epoch_s = time.perf_counter() - epoch_start
    peak_all = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    env = environment()
    result = dict(benchmark="sampler_big", environment=env, num_events=E, num_nodes=N,
                  tcsr_entries=tcsr.num_edges, index_dtype=str(tcsr.indices.dtype),
                  generate_s=gen_s, build_s=build_s, build_threads=threads,
                  rss_inputs_bytes=rss_before, peak_rss_build_bytes=peak.peak,
                  peak_rss_process_bytes=peak_all, sample_threads=threads,
                  pointer_cache=args.big_cache, batch_size=bs, epoch_s=epoch_s,
                  epoch_fraction=args.big_epoch_fraction, sample_s=sample_s,
                  roots=roots_total, sampled_edges=edges_total,
                  roots_per_s=roots_total / sample_s, edges_per_s=edges_total / sample_s,
                  peak_rss_sampling_bytes=peak_sample.peak)
    lines = [
        f"T-CSR build and 1-hop recent [10] epoch on a synthetic power-law graph: {E:,} events, "
        f"{N:,} nodes, {tcsr.num_edges:,} T-CSR entries (reverse edges), {threads} thread(s), "
        f"batches of {bs} events (roots src+dst+1 negative). Load average at the end "
        f"{env['load_avg'][0]:.2f}.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| T-CSR build time | {build_s:.1f} s |",
        f"| RSS of the inputs (src, dst, t) | {rss_before / 2**30:.2f} GiB |",
        f"| peak RSS during build | {peak.peak / 2**30:.2f} GiB |",
        f"| peak RSS of the process | {peak_all / 2**30:.2f} GiB |",
        f"| sampling time (sampler only, {args.big_epoch_fraction:.0%} of the epoch) "
        f"| {sample_s:.1f} s |",
        f"| roots/s | {roots_total / sample_s / 1e6:.2f} M |",
        f"| sampled edges/s | {edges_total / sample_s / 1e6:.1f} M |",
    ]
    write_outputs("bench_sampler_big", result, "\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="sampler thread counts to measure")
    parser.add_argument("--batch-size", type=int, default=600)
    parser.add_argument("--events", type=int, default=REDDIT_EVENTS,
                        help="events of the REDDIT-sized graph (smaller for a quick check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--big", action="store_true", help="200M-event build + epoch instead")
    parser.add_argument("--big-events", type=int, default=200_000_000)
    parser.add_argument("--big-nodes", type=int, default=2_000_000)
    parser.add_argument("--big-cache", action="store_true",
                        help="use the pointer cache for the --big epoch")
    parser.add_argument("--big-epoch-fraction", type=float, default=1.0,
                        help="sample only this leading fraction of the --big epoch")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    # The peer's per-batch tensor ops are tiny: intra-op threads cannot speed them up, and their
    # spinning collapses its throughput when the cores are shared (0.15 vs 1.2 M roots/s measured
    # on a loaded 2-core machine), so it runs single-threaded, its best setting. Our sampler
    # sets its own thread count.
    torch.set_num_threads(1)
    if args.big:
        main_big(args)
    else:
        main_reddit(args)


if __name__ == "__main__":
    main()
