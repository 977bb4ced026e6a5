r"""Accuracy benchmark: pyg_tgl's five models against EdgeBank, PyG's TGN example and TGM's TGN.

Protocol of ``../shared/TARGETS.md``: chronological 70/15/15 split, batch 200, one random negative
per training event, 5 epochs, times shifted to start at 0 (as TGL's files), the predictor's pair features on
(``model.gnn.pair_features``; ``--set model.gnn.pair_features=false`` for TGL's models), memory carried from training through validation into the test
(``eval.memory_carry=true``), test AP and AUC over the whole split (each positive with its first
negative), MRR of each positive among 49 random negatives (DistTGL's protocol, average ties),
transductive and inductive (events touching a node unseen in training), seconds per epoch.
Negatives of pyg_tgl and of the peers are drawn from the destination nodes (``neg_range="dst"``,
PyG's rule); EdgeBank is also reported with negatives from all node ids (``all``), the setting of
its published wikipedia number. EdgeBank's ``dst`` rows run through the pipeline
(``model=edgebank``, :mod:`pyg_tgl.train.edgebank_run`): the same split, negatives and metrics
(MRR, inductive) as pyg_tgl's models; its ``all`` rows through
:func:`experiments.peers.run_edgebank` (PyG's split and loader, the peers' protocol), as the
pipeline's negatives come from the destination nodes only. Each row says which (``path``).

Every finished run is appended to ``experiments/results/<name>.json`` at once and the Markdown
table ``<name>.md`` is rewritten, so an interrupted benchmark keeps what it measured; a rerun
skips the runs already in the JSON (``--force`` repeats them).

Usage (from the repository root)::

    python -m experiments.bench_accuracy                                   # everything, 3 seeds
    python -m experiments.bench_accuracy --data collegemsg_snap --models tgn edgebank --seeds 0
    python -m experiments.bench_accuracy --name accuracy_ablation --data enron --models tgn \
        --tag lr1e-3 --set train.lr=0.001                                  # one ablation row
    python -m experiments.bench_accuracy --batch-size 600 --set schedule=random_chunk \
        --tag bs600_chunk --models tgn                                     # the batch-600 goal
    python -m experiments.bench_accuracy --data travian --models tgat --work-dir runs/
                                           # hours-long runs: rerun the same command to resume
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the peers live in experiments/peers
    sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "experiments" / "results"

#: pyg_tgl's models (``conf/model``) and the peers.
MODELS = ("jodie", "dysat", "tgat", "tgn", "apan")
PEERS = ("edgebank", "edgebank_tw", "pyg_tgn", "tgm_tgn")
#: Data sets of the benchmark (``conf/data`` names).
DATASETS = ("wikipedia_nofeat", "collegemsg_snap", "enron", "travian", "primaryschool")
#: Options applied to every pyg_tgl run besides the TARGETS protocol; see docs/accuracy.md.
PROTOCOL = ["train.epoch=5", "train.batch_size=200", "train.num_negatives=1",
            "eval.memory_carry=true", "eval.num_negatives=49", "eval.ties=average",
            "eval.neg_sampling=random", "train.neg_sampling=random", "data.time_shift=true",
            "model.gnn.pair_features=true"]


#: Per-model additions: JODIE samples no neighbours in TGL, so its pair features would be zero;
#: 10 recent neighbours are sampled for the pair term only (its embedding ignores them).
MODEL_OVERRIDES = {"jodie": ["model.sampling.no_sample=false", "model.sampling.layer=1",
                             "model.sampling.neighbor=[10]", "model.sampling.strategy=recent"],
                   # The pair term needs the negatives' neighbourhoods, which TGL's APAN skips.
                   "apan": ["model.sampling.no_neg=false"],
                   # The 10 most recent neighbours (DyGLib's default) instead of TGL's uniform
                   # sample: test AP +0.06 on CollegeMsg, +0.09 on primary school.
                   "tgat": ["model.sampling.strategy=recent"]}
#: DySAT's snapshot length per data set: about 1/270 of its time span, the ratio of TGL's
#: ``duration: 10000`` to WIKI's 30-day span, rounded to a readable unit. TGL's 10,000 s on the
#: 3.6-year Enron leaves each of the three snapshots nearly empty (test AP 0.774 against 0.902
#: with 5 days; docs/accuracy.md).
DYSAT_SNAPSHOT_SECONDS = {"wikipedia_nofeat": 10_000, "travian": 10_000,
                          "enron": 432_000,            # 5 days of a 3.6-year span
                          "collegemsg_snap": 64_800,   # 18 hours of a 194-day span
                          "primaryschool": 450}        # 7.5 minutes of a 32-hour span
#: EdgeBank rows: ``model.mode`` of ``conf/model/edgebank.yaml``.
EDGEBANK_MODES = {"edgebank": "unlimited", "edgebank_tw": "time_window"}


def compose(model: str, data: str, seed: int, overrides: Sequence[str]) -> Any:
    """The Hydra configuration of one pyg_tgl run (``conf/``), protocol plus ``overrides``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    GlobalHydra.instance().clear()
    # EdgeBank has no GNN section (its pair term is the model itself).
    protocol = [o for o in PROTOCOL if not (model == "edgebank" and o.startswith("model.gnn."))]
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return hydra_compose(config_name="config", overrides=[
            f"model={model}", f"data={data}", f"seed={seed}", "quiet=true",
            "hardware.device=cpu", *protocol, *MODEL_OVERRIDES.get(model, []),
            *data_overrides(model, data), *overrides])


def data_overrides(model: str, data: str) -> List[str]:
    """Options of ``model`` that the benchmark sets per data set (DySAT's snapshot length)."""
    if model == "dysat" and data in DYSAT_SNAPSHOT_SECONDS:
        return [f"model.sampling.duration={DYSAT_SNAPSHOT_SECONDS[data]}"]
    return []


def run_pyg_tgl(model: str, data: str, seed: int, overrides: Sequence[str] = (),
                threads: int = 1, out_dir: Optional[Path] = None,
                resume: bool = True) -> Dict[str, Any]:
    """Trains and tests one of pyg_tgl's models; returns the row of the results file.

    With ``out_dir`` the run keeps its outputs (checkpoints after every epoch) there and, when an
    earlier call was killed, resumes from its last checkpoint (unless ``resume`` is false), so an
    hours-long run loses at most one epoch; without it they go to a temporary folder."""
    from pyg_tgl.train.experiment import run_experiment
    options = [f"hardware.num_threads={threads}", f"hardware.sampler_threads={threads}",
               *overrides]
    if resume and out_dir is not None and (out_dir / "checkpoints" / "last.pt").is_file():
        options.append("resume=true")
        print(f"{data} {model} seed {seed}: resuming from {out_dir}", flush=True)
    cfg = compose(model, data, seed, options)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        return _row(run_experiment(cfg, out_dir, progress=False))
    with tempfile.TemporaryDirectory(prefix="bench_acc_") as tmp:
        return _row(run_experiment(cfg, Path(tmp), progress=False))


def _row(res: Dict[str, Any]) -> Dict[str, Any]:
    """The results-file row of a pipeline run's ``metrics.json`` content."""
    test = res["test"]
    return {"test_ap": test.get("ap"), "test_auc": test.get("auc"), "test_mrr": test.get("mrr"),
            "test_inductive_ap": test.get("inductive_ap"),
            "test_inductive_auc": test.get("inductive_auc"),
            "test_inductive_mrr": test.get("inductive_mrr"),
            "val_ap_per_epoch": [e.get("val_ap") for e in res["epochs"]],
            "best_epoch": res["best_epoch"], "seconds_per_epoch": res["seconds_per_epoch"],
            "neg_range": "dst", "path": "pipeline"}


def run_edgebank_pipeline(peer: str, data: str, seed: int, threads: int = 1) -> Dict[str, Any]:
    """EdgeBank (``peer``: ``edgebank`` or ``edgebank_tw``) through ``model=edgebank``: the
    split, negatives and metrics of :func:`run_pyg_tgl`'s runs."""
    from pyg_tgl.train.experiment import run_experiment
    cfg = compose("edgebank", data, seed, [f"hardware.num_threads={threads}",
                                           f"model.mode={EDGEBANK_MODES[peer]}"])
    with tempfile.TemporaryDirectory(prefix="bench_acc_") as tmp:
        res = run_experiment(cfg, Path(tmp), progress=False)
    row = _row(res)
    row["time_window"] = res["edgebank"]["time_window"]
    return row


def _peer_data(data: str) -> Any:
    """The data set as the peers take it: integer times starting at 0 (TGM needs t < 2^31),
    a single all-zero edge feature when the data set has none."""
    import torch
    from torch_geometric.data import TemporalData

    from pyg_tgl.data.datasets import load_dataset
    ds = load_dataset(data, time_shift=True)
    d = ds.data
    t = d.t.round().long() if d.t.is_floating_point() else d.t.long()
    msg = d.msg.float() if getattr(d, "msg", None) is not None else \
        torch.zeros(d.src.numel(), 1)
    return TemporalData(src=d.src.long(), dst=d.dst.long(), t=t, msg=msg)


def run_peer(peer: str, data: str, seed: int, neg_range: str = "dst",
             threads: int = 1, tgm_orientation: str = "seed_to_nbr") -> Dict[str, Any]:
    """Runs one peer under the same protocol; returns the row of the results file
    (``tgm_orientation``: see :class:`experiments.peers.tgm_tgn.TgmTGN`)."""
    if peer in EDGEBANK_MODES and neg_range == "dst":
        return run_edgebank_pipeline(peer, data, seed, threads)
    td = _peer_data(data)
    if peer in EDGEBANK_MODES:
        from experiments.peers import run_edgebank
        res = run_edgebank(td, batch_size=200,
                           mode="unlimited" if peer == "edgebank" else "time_window",
                           neg_range=neg_range)
        return {"test_ap": res["test_ap"][-1], "test_auc": res["test_auc"][-1],
                "neg_range": neg_range, "seconds_per_epoch": 0.0, "path": "peers"}
    if peer == "pyg_tgn":
        from experiments.peers.pyg_tgn import run_pyg_tgn as run
    elif peer == "tgm_tgn":
        try:
            from experiments.peers.tgm_tgn import run_tgm_tgn as run
        except ImportError as e:  # the optional extra .[bench]
            raise RuntimeError(f"tgm_tgn needs tgm-lib (pip install tgm-lib==0.1.0b1): {e}")
    else:
        raise ValueError(f"unknown peer {peer!r}; known: {list(PEERS)}")
    extra = {"edge_orientation": tgm_orientation} if peer == "tgm_tgn" else {}
    res = run(td, epochs=5, batch_size=200, lr=1e-4, seed=seed, device="cpu", progress=False,
              neg_range=neg_range, **extra)
    secs = res.get("train_seconds")
    if isinstance(secs, list):
        secs = sum(secs) / max(len(secs), 1)
    return {"test_ap": res["test_ap"][-1], "test_auc": res["test_auc"][-1],
            "val_ap_per_epoch": res.get("val_ap"), "test_ap_per_epoch": res.get("test_ap"),
            "seconds_per_epoch": secs, "neg_range": neg_range, "path": "peers", **extra}


def _work_dir(root: Optional[Path], key: Dict[str, Any]) -> Optional[Path]:
    """The output folder of one run under ``--work-dir`` (None without it)."""
    if root is None:
        return None
    return root / "-".join(str(p) for p in (key["data"], key["model"], key["tag"] or "default",
                                            f"seed{key['seed']}"))


# ------------------------------------------------------------------------------------------------
# Results files
# ------------------------------------------------------------------------------------------------

def _load(path: Path) -> List[Dict[str, Any]]:
    if path.is_file():
        return json.loads(path.read_text())["runs"]
    return []


def _save(runs: List[Dict[str, Any]], name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"protocol": PROTOCOL, "runs": runs}, indent=1))
    os.replace(tmp, path)
    (RESULTS / f"{name}.md").write_text(markdown(runs))


def _record(row: Dict[str, Any], key: Dict[str, Any], name: str) -> List[Dict[str, Any]]:
    """Adds one run to the results file under a lock: several benchmark processes (ablations
    side by side) may write the same file, and each must keep the others' rows."""
    import fcntl
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / f"pyg_tgl_bench_{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs = [r for r in _load(RESULTS / f"{name}.json")
                if not all(r.get(k) == v for k, v in key.items())]
        runs.append(row)
        _save(runs, name)
    return runs


def _mean_std(values: List[float]) -> str:
    """The table cell of ``values`` over seeds (missing and NaN values left out)."""
    from pyg_tgl.train.summary import format_mean_std, mean_std
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return format_mean_std(*mean_std(v)) if v else "—"


def markdown(runs: List[Dict[str, Any]]) -> str:
    """Mean ± std over seeds per (data, model, tag, negatives)."""
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["data"], r["model"], r.get("tag", ""), r.get("neg_range", "dst")),
                          []).append(r)
    cols = ["test_ap", "test_auc", "test_mrr", "test_inductive_ap", "test_inductive_mrr",
            "seconds_per_epoch"]
    lines = ["| data | model | setting | negatives | seeds | " + " | ".join(cols) + " |",
             "|" + "---|" * (5 + len(cols))]
    for (data, model, tag, neg), rs in sorted(groups.items()):
        cells = [_mean_std([r.get(c) for r in rs]) for c in cols]
        lines.append(f"| {data} | {model} | {tag or 'default'} | {neg} | {len(rs)} | "
                     + " | ".join(cells) + " |")
    return ("Test metrics after 5 epochs, protocol of ../shared/TARGETS.md (batch 200 unless the "
            "setting says otherwise, memory carried into the test, AP/AUC with one negative per "
            "positive, MRR among `eval.num_negatives` negatives: 49, or 1 in rows run with "
            "`eval.num_negatives=1`, where MRR is not comparable). Seconds per epoch: CPU, one "
            "thread, measured while other jobs shared the two cores. Settings and overrides of "
            "each row are in the JSON.\n\n"
            + "\n".join(lines) + "\n")


def plot(runs: List[Dict[str, Any]], path: Path) -> None:
    """Validation AP per epoch, one panel per data set, one line per model (seed mean)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = sorted({r["data"] for r in runs if r.get("val_ap_per_epoch")})
    if not datasets:
        return
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.5), squeeze=False)
    for ax, data in zip(axes[0], datasets):
        per: Dict[str, List[List[float]]] = {}
        for r in runs:
            if r["data"] == data and r.get("val_ap_per_epoch") and not r.get("tag"):
                per.setdefault(r["model"], []).append(r["val_ap_per_epoch"])
        for model, curves in sorted(per.items()):
            n = min(len(c) for c in curves)
            mean = [sum(c[i] for c in curves) / len(curves) for i in range(n)]
            ax.plot(range(1, n + 1), mean, marker="o", label=model)
        ax.set_title(data)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation AP")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", default=list(DATASETS))
    p.add_argument("--models", nargs="+", default=list(MODELS + PEERS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--name", default="accuracy", help="results file stem")
    p.add_argument("--tag", default="", help="label of this setting (ablations)")
    p.add_argument("--set", nargs="*", default=[], dest="overrides",
                   help="Hydra overrides for pyg_tgl's models")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--neg-range", nargs="+", default=["dst"], choices=["dst", "all"],
                   help="negatives of the EdgeBank rows")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tgm-orientation", default="seed_to_nbr",
                   choices=["seed_to_nbr", "nbr_to_seed"],
                   help="neighbour edge_index of the tgm_tgn peer: TGM's [seed, neighbour] or "
                        "PyG's [neighbour, seed] (tag the rows with --tag)")
    p.add_argument("--force", action="store_true",
                   help="repeat runs already in the JSON (from scratch, also under --work-dir)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="keep each pyg_tgl run's outputs in WORK_DIR/<data>-<model>-<tag>-seed<N> "
                        "and resume an interrupted run from its last epoch")
    args = p.parse_args(argv)
    for m in args.models:
        if m not in MODELS + PEERS:
            p.error(f"--models: {m!r} is unknown; allowed: {list(MODELS + PEERS)}")
    import torch
    torch.set_num_threads(args.threads)
    overrides = list(args.overrides)
    if args.batch_size:
        overrides.append(f"train.batch_size={args.batch_size}")
    runs = _load(RESULTS / f"{args.name}.json")
    for data in args.data:
        for model in args.models:
            for seed in args.seeds:
                negs = args.neg_range if model.startswith("edgebank") else ["dst"]
                for neg in negs:
                    key = dict(data=data, model=model, seed=seed, tag=args.tag, neg_range=neg)
                    if not args.force and any(all(r.get(k) == v for k, v in key.items())
                                              for r in runs):
                        continue
                    t0 = time.perf_counter()
                    try:
                        row = run_pyg_tgl(model, data, seed, overrides, args.threads,
                                          _work_dir(args.work_dir, key), not args.force) \
                            if model in MODELS else run_peer(model, data, seed, neg,
                                                             args.threads, args.tgm_orientation)
                    except (RuntimeError, ValueError, FileNotFoundError) as e:
                        print(f"{data} {model} seed {seed}: skipped ({e})", file=sys.stderr)
                        continue
                    row.update(key, overrides=[*data_overrides(model, data), *overrides]
                               if model in MODELS else [],
                               wall_seconds=time.perf_counter() - t0)
                    runs = _record(row, key, args.name)
                    print(f"{data} {model} seed {seed} {args.tag} ({neg}): test AP "
                          f"{row['test_ap']:.4f}", flush=True)
    if runs:
        plot(runs, RESULTS / f"{args.name}_ap_per_epoch.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
