r"""Host synchronisations per training batch on a CUDA device: pyg_tgl against PyG's TGN example
(issue 7, GPU readiness).

Every synchronising CUDA call (``.item()``, a device-to-host copy, ``nonzero``, ``unique``, a
boolean mask, ...) makes the host wait until the GPU has drained its queue, so the CPU can no
longer run ahead issuing kernels. :func:`torch.cuda.set_sync_debug_mode` reports each one; this
script records the first frame of each report outside ``torch/`` (the line in pyg_tgl, PyG or the
peer that asked for it) while ``k`` and then ``2k`` training batches run, and gives the per-batch
count as the difference divided by ``k``, so once-per-epoch reads (the mean loss) cancel.
Explicit ``torch.cuda.synchronize`` calls (the peer's phase timers; ours are off here) are not
reported by the debug mode, and synchronisations inside the backward pass, on autograd's device
thread, may go unreported too.

Run from the repository root on a machine with a GPU::

    python experiments/bench_gpu_syncs.py --batches 20
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from experiments.bench_train import MODELS, Ours, load_events  # noqa: E402
from pyg_tgl.data.tcsr import TCSR  # noqa: E402

RESULTS = ROOT / "experiments" / "results"
TORCH_DIR = str(Path(torch.__file__).resolve().parent)


def _site(stack: List[traceback.FrameSummary]) -> str:
    """The innermost frame outside torch (and outside this script's own bookkeeping)."""
    for frame in reversed(stack):
        if frame.filename == __file__:
            return "bench_gpu_syncs"
        if not frame.filename.startswith(TORCH_DIR) and "warnings" not in frame.filename:
            path = Path(frame.filename).resolve()
            if path.is_relative_to(ROOT):
                path = path.relative_to(ROOT)
            return f"{path}:{frame.lineno} ({frame.name})"
    return "torch internals"


@contextmanager
def record_syncs() -> Iterator[Counter]:
    counts: Counter = Counter()

    def show(message, category, filename, lineno, file=None, line=None):
        if "synchronizing" in str(message):
            counts[_site(traceback.extract_stack()[:-1])] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield counts
        finally:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("default")


def per_batch(run: Callable[[int], None], k: int) -> Dict[str, float]:
    """Synchronisations per batch by site: (count over 2k batches - count over k) / k."""
    run(2)  # warm-up: lazy initialisations synchronise once
    with record_syncs() as few:
        run(k)
    with record_syncs() as many:
        run(2 * k)
    sites = (set(few) | set(many)) - {"bench_gpu_syncs"}
    return {s: (many[s] - few[s]) / k for s in sorted(sites) if many[s] != few[s]}


def markdown(out: Dict) -> str:
    lines = [f"{out['device']}, torch {out['torch']}, batch {out['batch_size']}, "
             f"{out['batches']} vs {2 * out['batches']} batches.", "",
             "| run | syncs per batch | sites (per batch) |", "|---|---|---|"]
    for run, sites in out["runs"].items():
        detail = "; ".join(f"{s}: {v:g}" for s, v in sorted(sites.items(), key=lambda x: -x[1]))
        lines.append(f"| {run} | {sum(sites.values()):g} | {detail} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--dataset", default="real", help="'real' (wikipedia.csv) or 'synthetic'")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=600)
    p.add_argument("--no-peer", action="store_true", help="skip PyG's TGN example")
    p.add_argument("--host-plans", action="store_true",
                   help="also count each model with LinkTrainer(host_plans=True) (rows "
                        "pyg_tgl_*_hostplans)")
    args = p.parse_args(argv)
    if torch.device(args.device).type != "cuda" or not torch.cuda.is_available():
        raise SystemExit("bench_gpu_syncs: needs a CUDA device (--device cuda); "
                         "torch.cuda.is_available() is False here")
    data = load_events(args.dataset, 172, None)
    tcsr = TCSR.from_data(data, add_reverse=True)
    out: Dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                 "batches": args.batches, "batch_size": args.batch_size, "runs": {}}
    for name in [m for m in args.models.split(",") if m]:
        for plans in (False, True) if args.host_plans else (False,):
            ours = Ours(data, tcsr, name, args.batch_size, "float32", 1, device=args.device,
                        sync_timers=False, host_plans=plans)
            out["runs"][f"pyg_tgl_{name}{'_hostplans' if plans else ''}"] = per_batch(
                lambda k: ours.trainer.train_epoch(0, max_batches=k), args.batches)
    if not args.no_peer:
        from experiments.peers.pyg_tgn import time_pyg_tgn_epoch
        out["runs"]["pyg_tgn"] = per_batch(
            lambda k: time_pyg_tgn_epoch(data, batch_size=args.batch_size, max_batches=k,
                                         device=args.device), args.batches)
    table = markdown(out)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_gpu_syncs.json").write_text(json.dumps(out, indent=1))
    (RESULTS / "bench_gpu_syncs.md").write_text(table + "\n")
    return out


if __name__ == "__main__":
    main()
