r"""How training cost grows with the graph: events/s and peak RSS vs number of events (issue 7).

Synthetic power-law graphs (:mod:`pyg_tgl.data.synthetic`) of ``10^5, 10^6, 10^7`` events
(``--sizes 1e5,1e6,1e7,1e8`` adds ``10^8``; it needs ~16 GB), with WIKI's node/event ratio
(one node per 17 events), small edge features (``--edge-dim``, default 4) and TGN's model
(GRU node memory, 1 hop of 10 most recent neighbours, TGL, Zhou et al., VLDB 2022). For each size
a fresh process builds the events and the T-CSR, then trains ``--batches`` batches of 600 taken
from the middle of the event stream (so the sampler sees a long history and the memory tables
have their full size) after a short warm-up; per-event cost should stay flat as the graph grows
(the goal is within 1.5x from ``10^5`` to ``10^8``). Peak RSS is the worker's
``ru_maxrss`` (events, T-CSR, memory, mailbox and the model together).

Writes ``experiments/results/bench_scale[_TAG].{json,md,png}`` and prints the table. Run from the
repository root: ``python experiments/bench_scale.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
EVENTS_PER_NODE = 17  # WIKI: 157,474 events over 9,227 nodes
GENERATE_CHUNK = 1 << 22


def worker(num_events: int, edge_dim: int, batches: int, batch_size: int, precision: str,
           threads: Optional[int], memory_dtype: str = "float32") -> Dict[str, Any]:
    """Builds one graph and times ``batches`` training batches from its middle (in-process)."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from torch_geometric.data import TemporalData

    from pyg_tgl.data.loader import TemporalNeighborLoader
    from pyg_tgl.data.synthetic import SyntheticConfig, synthetic_events
    from pyg_tgl.data.tcsr import TCSR
    from pyg_tgl.models import build_model
    from pyg_tgl.train.loop import LinkTrainer
    from pyg_tgl.train.schedule import BatchSchedule

    if threads:
        torch.set_num_threads(threads)
    num_nodes = max(2, num_events // EVENTS_PER_NODE)
    t0 = time.perf_counter()
    cfg = SyntheticConfig(num_nodes=num_nodes, num_events=num_events, seed=0, edge_dim=edge_dim)
    # Generated chunk by chunk into the final arrays (the stream does not depend on the
    # chunking): one call for 10^8 events would hold ~30 GB of temporaries at once.
    src = np.empty(num_events, dtype=np.int64)
    dst = np.empty(num_events, dtype=np.int64)
    t = np.empty(num_events, dtype=np.float64)
    msg = np.empty((num_events, edge_dim), dtype=np.float32) if edge_dim else None
    for lo in range(0, num_events, GENERATE_CHUNK):
        hi = min(lo + GENERATE_CHUNK, num_events)
        parts = synthetic_events(cfg, lo, hi)
        src[lo:hi], dst[lo:hi], t[lo:hi] = parts[:3]
        if msg is not None:
            msg[lo:hi] = parts[3]
    data = TemporalData(src=torch.from_numpy(src), dst=torch.from_numpy(dst),
                        t=torch.from_numpy(t),
                        msg=None if msg is None else torch.from_numpy(msg))
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    tcsr = TCSR.from_data(data, add_reverse=True, num_nodes=num_nodes)
    t_tcsr = time.perf_counter() - t0
    cfg = OmegaConf.load(ROOT / "conf" / "model" / "tgn.yaml").model
    cfg.memory.storage_dtype = memory_dtype
    torch.manual_seed(0)
    model = build_model(cfg, num_nodes, edge_feat=data.msg)
    warm = 5
    span = (warm + batches) * batch_size
    if span > num_events:
        raise ValueError(f"{num_events} events are fewer than the {span} the run needs; lower "
                         f"--batches")
    start = (num_events - span) // 2
    loader = TemporalNeighborLoader(data, [10], batch_size=batch_size, tcsr=tcsr,
                                    num_threads=1, prefetch=True)
    trainer = LinkTrainer(model, torch.optim.Adam(model.parameters(), lr=1e-4), loader,
                          BatchSchedule(torch.arange(start, start + span), batch_size),
                          progress=False, precision=precision)
    trainer.train_epoch(0, max_batches=warm)
    # The timed batches follow the warm-up ones in the stream (memory is reset per epoch).
    trainer.schedule = BatchSchedule(torch.arange(start + warm * batch_size, start + span),
                                     batch_size)
    r = trainer.train_epoch(0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"num_events": num_events, "num_nodes": num_nodes, "edge_dim": edge_dim,
            "events_per_second": r["events_per_s"], "seconds": r["time_total"],
            "timed_events": r["num_events"], "peak_rss_bytes": rss,
            "time_generate": t_gen, "time_tcsr": t_tcsr,
            "time_split": {k: r[k] for k in ("time_sample", "time_compute", "time_update",
                                             "time_memory")},
            "memory_state_bytes": model.memory.nbytes}


def _plot(rows: List[Dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["num_events"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].plot(x, [r["events_per_second"] for r in rows], "o-")
    ax[0].set(xscale="log", xlabel="events in the graph", ylabel="training events/s",
              title="throughput (TGN, batch 600)")
    ax[0].set_ylim(bottom=0)
    ax[1].plot(x, [r["peak_rss_bytes"] / 2 ** 30 for r in rows], "o-", color="C1")
    ax[1].set(xscale="log", yscale="log", xlabel="events in the graph", ylabel="peak RSS (GiB)",
              title="peak memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(out: Dict[str, Any]) -> str:
    rows = out["rows"]
    base = rows[0]["events_per_second"] if rows else float("nan")
    lines = [f"Machine: {out['machine']}; load average at start "
             f"{', '.join(f'{x:.2f}' for x in out['load_average'])}, at end "
             f"{', '.join(f'{x:.2f}' for x in out['load_average_end'])}. TGN, batch "
             f"{out['args']['batch_size']}, {out['args']['batches']} timed batches from the middle"
             f" of the stream, {out['args']['edge_dim']}-dim edge features, "
             f"{out['args']['precision']}, memory stored in "
             f"{out['args'].get('memory_dtype', 'float32')}.", "",
             "| events | nodes | events/s | vs smallest | peak RSS | T-CSR build |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['num_events']:,} | {r['num_nodes']:,} | "
                     f"{r['events_per_second']:,.0f} | {r['events_per_second'] / base:.2f}x | "
                     f"{r['peak_rss_bytes'] / 2 ** 30:.2f} GiB | {r['time_tcsr']:.1f} s |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e5,1e6,1e7", help="comma list of event counts")
    p.add_argument("--edge-dim", type=int, default=4)
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=600)
    p.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--memory-dtype", default="float32", choices=("float32", "bfloat16"),
                   help="storage dtype of node memory and mails (model.memory.storage_dtype)")
    p.add_argument("--tag", default="")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        res = worker(args.worker, args.edge_dim, args.batches, args.batch_size, args.precision,
                     args.threads, args.memory_dtype)
        print("RESULT " + json.dumps(res))
        return res
    try:
        sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    except ValueError:
        raise SystemExit(f"--sizes: expected numbers like 1e5,1e6, got {args.sizes!r}")
    out: Dict[str, Any] = {"args": vars(args), "load_average": list(os.getloadavg()),
                           "rows": []}
    import platform
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    for n in sizes:
        # One process per size, so ru_maxrss is this size's peak and not the largest so far.
        cmd = [sys.executable, __file__, "--worker", str(n), "--edge-dim", str(args.edge_dim),
               "--batches", str(args.batches), "--batch-size", str(args.batch_size),
               "--precision", args.precision, "--memory-dtype", args.memory_dtype]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            raise SystemExit(f"bench_scale: size {n} failed (exit {proc.returncode}):\n"
                             f"{proc.stderr[-3000:]}")
        row = json.loads(line[-1][len("RESULT "):])
        out["rows"].append(row)
        print(f"{n:>12,} events: {row['events_per_second']:,.0f} ev/s, peak RSS "
              f"{row['peak_rss_bytes'] / 2 ** 30:.2f} GiB", flush=True)
    out["load_average_end"] = list(os.getloadavg())
    table = markdown(out)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "bench_scale" + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1))
    (RESULTS / f"{stem}.md").write_text(table)
    _plot(out["rows"], RESULTS / f"{stem}.png")
    return out


if __name__ == "__main__":
    main()
