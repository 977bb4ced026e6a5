r"""Data-parallel training on CPU (gloo): step-time breakdown and bytes exchanged, 1 vs N ranks.

Each configuration is one ``python -m pyg_tgl.run`` (TGN, 1 epoch) on wikipedia.csv with 172
random edge features (WIKI's feature width), the first ``--events`` events; rank 0's epoch
statistics are read from ``metrics.json``:

* ``1x600``: one process, batch 600 (both cores for its intra-op threads);
* ``2x300``: two ranks of 300 events, global batch 600: the same training as ``1x600``
  (``tests/test_distributed.py`` checks it), so the ratio is the cost of splitting a step;
* ``2x600``: two ranks of 600 events, global batch 1200: TGL's way of scaling out (the batch
  grows with the number of GPUs).

Rounds are interleaved (every configuration once per round) and the table gives the median and
the spread over rounds. Columns: training events/s of the whole job, then per step of rank 0 the
milliseconds spent sampling, in forward+backward (which contains DDP's gradient all-reduce),
in the optimizer, writing memory, and exchanging memory writes (``sync``: the all-gather plus the
wait for the slower rank), and the bytes rank 0 sent per step (memory writes; the gradient
all-reduce moves 4 bytes per parameter on top).

Writes ``experiments/results/bench_ddp.{json,md}`` and prints the table. Run it on a quiet
machine from the repository root: ``python experiments/bench_ddp.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
CONFIGS = {"1x600": (1, 600), "2x300": (2, 300), "2x600": (2, 600)}
PHASES = ("sample", "compute", "update", "memory", "sync")


def run_once(name: str, events: int, tmp: Path) -> Dict[str, Any]:
    nproc, batch = CONFIGS[name]
    run_dir = tmp / name
    args = [sys.executable, "-m", "pyg_tgl.run", "model=tgn", "data=wikipedia_nofeat",
            "data.rand_edge_features=172", f"train.max_events={events}", "train.epoch=1",
            f"train.batch_size={batch}", "eval.num_negatives=1", "quiet=true",
            f"hydra.run.dir={run_dir}"]
    if nproc > 1:
        args += ["hardware=ddp", f"hardware.distributed.nproc_per_node={nproc}"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    epoch = metrics["epochs"][0]
    steps = epoch["num_batches"]
    row = {"config": name, "ranks": nproc, "batch_per_rank": batch,
           "events_per_s": epoch["events_per_s"], "steps": steps,
           "sync_bytes_per_step": epoch.get("sync_bytes_per_step", 0.0),
           "test_ap": metrics["test"]["ap"]}
    for phase in PHASES:
        row[f"ms_{phase}"] = 1000.0 * epoch.get(f"time_{phase}", 0.0) / steps
    return row


def summarize(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    out = []
    for name in CONFIGS:
        mine = [r for r in rows if r["config"] == name]
        if not mine:
            continue
        s = {"config": name, "ranks": mine[0]["ranks"], "batch_per_rank": mine[0]["batch_per_rank"],
             "rounds": len(mine), "steps": mine[0]["steps"]}
        for key in ["events_per_s", "sync_bytes_per_step", "test_ap"] + [f"ms_{p}" for p in PHASES]:
            values = [r[key] for r in mine]
            s[key] = statistics.median(values)
            s[f"{key}_min"], s[f"{key}_max"] = min(values), max(values)
        out.append(s)
    base = next((s for s in out if s["config"] == "1x600"), None)
    for s in out:
        s["speedup_vs_1x600"] = s["events_per_s"] / base["events_per_s"] if base else None
    return out


def markdown(result: Dict[str, Any]) -> str:
    lines = [f"Data-parallel TGN on CPU ({result['machine']}), wikipedia.csv + 172 random edge "
             f"features, first {result['events']} events, one epoch, median of "
             f"{result['rounds']} interleaved rounds (min-max in brackets). Per step of rank 0.",
             "",
             "| config | ranks x batch | train events/s | vs 1x600 | sample ms | compute ms "
             "(incl. grad all-reduce) | optimizer ms | memory ms | sync ms | memory-write bytes "
             "sent/step | test AP |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in result["summary"]:
        def cell(key: str, fmt: str = "{:.1f}") -> str:
            return (f"{fmt.format(s[key])} ({fmt.format(s[key + '_min'])}-"
                    f"{fmt.format(s[key + '_max'])})")
        lines.append(
            f"| {s['config']} | {s['ranks']} x {s['batch_per_rank']} | {cell('events_per_s', '{:,.0f}')} "
            f"| {s['speedup_vs_1x600']:.2f}x | {cell('ms_sample')} | {cell('ms_compute')} | "
            f"{cell('ms_update')} | {cell('ms_memory')} | {cell('ms_sync')} | "
            f"{s['sync_bytes_per_step'] / 1e6:.2f} MB | {s['test_ap']:.4f} |")
    lines += ["", f"Model parameters: {result['num_params']:,} (gradient all-reduce "
              f"{4 * result['num_params'] / 1e6:.2f} MB per step)."]
    return "\n".join(lines) + "\n"


def _num_params() -> int:
    sys.path.insert(0, str(ROOT))
    from hydra import compose, initialize_config_dir

    from pyg_tgl.models import build_model
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="config", overrides=["model=tgn"])
    import torch
    model = build_model(cfg.model, 9227, edge_feat=torch.zeros(1, 172))
    return sum(p.numel() for p in model.parameters())


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=80000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = ap.parse_args(argv)
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
        for rnd in range(args.rounds):
            for name in args.configs:
                row = run_once(name, args.events, Path(tmp) / f"r{rnd}")
                row["round"] = rnd
                rows.append(row)
                print(f"round {rnd} {name}: {row['events_per_s']:,.0f} ev/s", flush=True)
    import platform
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
              "events": args.events, "rounds": args.rounds, "num_params": _num_params(),
              "rows": rows, "summary": summarize(rows)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_ddp.json").write_text(json.dumps(result, indent=2))
    table = markdown(result)
    (RESULTS / "bench_ddp.md").write_text(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
