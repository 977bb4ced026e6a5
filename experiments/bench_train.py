r"""Training throughput of pyg_tgl against PyG's TGN example (and TGM), side by side (issue 7).

One epoch of link-prediction training at batch 600 with TGN's configuration (memory 100, time
100, 1 hop of the 10 most recent neighbours, 2 heads, 172-dim edge features) on

* ``real``: ``../shared/data/wikipedia.csv`` (JODIE's Wikipedia, TGL's WIKI) with 172 random
  edge features, as in ``../shared/TARGETS.md``;
* ``synthetic``: a power-law graph the size of WIKI (9,227 nodes, 157,474 events,
  :mod:`pyg_tgl.data.synthetic`) with 172-dim features.

pyg_tgl (TGL's design, Zhou et al., VLDB 2022) and the peers run in the *same process*, their
rounds interleaved (ours, peer, ours, peer, ...) so a loaded machine skews both alike; the table
gives the median and the min-max events/s over the rounds, the median ratio, and the time split
(``sample`` / ``memory`` / ``gnn`` / ``backward`` / ``update``). ``pyg_tgl_tgn_*_batchroots``
is TGN with ``sampling.root_time=batch`` (every root at the batch's start, each distinct node
embedded once, as PyG's example; ``--no-batch-roots`` skips it). ``--ap-epochs N`` also trains
both for ``N`` epochs and reports their test AP. TGAT, JODIE, APAN and DySAT run (pyg_tgl alone)
with their own configurations. Results go to ``experiments/results/bench_train[_TAG].{json,md}``.

Time split of pyg_tgl: ``sample`` waiting for the loader; ``memory`` the memory read
(:meth:`NodeMemory.compute`, GRU over the distinct ``(node, time)`` queries) plus applying the
step's writes after the optimizer step (:meth:`TemporalGNN.apply_update`); ``gnn`` the rest of
the forward (the writes included, :meth:`TemporalGNN.step`) and the loss;
``backward``; ``update`` the optimizer step.

Run from the repository root::

    python experiments/bench_train.py --rounds 3                  # full epochs
    python experiments/bench_train.py --max-batches 40 --rounds 3  # partial epochs, quick
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import torch
from omegaconf import OmegaConf
from torch_geometric.data import TemporalData

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from experiments.peers import read_events_csv, split_indices  # noqa: E402
from pyg_tgl.data.datasets import shared_data_dir  # noqa: E402
from pyg_tgl.data.loader import TemporalNeighborLoader  # noqa: E402
from pyg_tgl.data.synthetic import SyntheticConfig, synthetic_events  # noqa: E402
from pyg_tgl.data.tcsr import TCSR  # noqa: E402
from pyg_tgl.models import build_model  # noqa: E402
from pyg_tgl.nn import TemporalGNN  # noqa: E402
from pyg_tgl.train.experiment import sampling_options  # noqa: E402
from pyg_tgl.train.loop import LinkTrainer  # noqa: E402
from pyg_tgl.train.schedule import BatchSchedule  # noqa: E402

DATA_DIR = shared_data_dir()  # $PYG_TGL_SHARED_DATA, else ../shared/data
RESULTS = ROOT / "experiments" / "results"
PHASES = ("sample", "memory", "gnn", "backward", "update")
MODELS = ("tgn", "tgat", "jodie", "apan", "dysat")


def load_events(which: str, edge_dim: int, max_events: Optional[int]) -> TemporalData:
    """``real`` (wikipedia.csv + random features) or ``synthetic`` (WIKI-sized power law)."""
    if which == "real":
        path = DATA_DIR / "wikipedia.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing (the shared data folder); run with "
                                    f"--datasets synthetic")
        data = read_events_csv(path, max_events=max_events, edge_dim=1)
        g = torch.Generator().manual_seed(0)
        data.msg = torch.randn(data.num_events, edge_dim, generator=g)
        return data
    if which == "synthetic":
        n = 157_474 if max_events is None else min(157_474, max_events)
        src, dst, t, msg = synthetic_events(
            SyntheticConfig(num_nodes=9_227, num_events=n, seed=0, edge_dim=edge_dim), 0, n)
        return TemporalData(src=torch.from_numpy(src), dst=torch.from_numpy(dst),
                            t=torch.from_numpy(t), msg=torch.from_numpy(msg))
    raise ValueError(f"--datasets: unknown data set {which!r}; expected 'real' or 'synthetic'")


class _Phases:
    """Accumulates the time spent in memory reads and whole forwards of a model."""

    def __init__(self) -> None:
        self.memory = 0.0
        self.forward = 0.0

    @contextmanager
    def charge(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, name, getattr(self, name) + time.perf_counter() - t0)


def _instrument(model: TemporalGNN, phases: _Phases) -> None:
    """Times the memory read and the forward without changing what they compute."""
    step = model.step

    def timed_step(batch):
        with phases.charge("forward"):
            return step(batch)
    model.step = timed_step
    if model.memory is not None:
        compute = model.memory.compute

        def timed_compute(*args, **kwargs):
            with phases.charge("memory"):
                return compute(*args, **kwargs)
        model.memory.compute = timed_compute


class Ours:
    """pyg_tgl's model, loader and loop for one model configuration on one data set."""

    def __init__(self, data: TemporalData, tcsr: TCSR, name: str, batch_size: int,
                 precision: str, threads: int, seed: int = 0, device: str = "cpu",
                 sync_timers: bool = True, root_time: Optional[str] = None,
                 host_plans: bool = False) -> None:
        self.data, self.name, self.batch_size = data, name, batch_size
        self.device, self.sync_timers = torch.device(device), sync_timers
        self.host_plans = host_plans
        self.cfg = OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml").model
        if root_time is not None:
            self.cfg.sampling.root_time = root_time
        self.val_idx, self.test_idx = split_indices(data.t)
        self.tcsr, self.precision, self.threads, self.seed = tcsr, precision, threads, seed
        self.num_nodes = int(torch.cat([data.src, data.dst]).max()) + 1
        self.build()

    def loader(self, events: slice, seed: int) -> TemporalNeighborLoader:
        s = sampling_options(self.cfg)
        return TemporalNeighborLoader(
            self.data, s["num_neighbors"], strategy=s["strategy"], batch_size=self.batch_size,
            events=events, tcsr=self.tcsr, prop_time=s["prop_time"], history=s["history"],
            duration=s["duration"], num_threads=self.threads, seed=seed, prefetch=True,
            root_time=s["root_time"], dedup=s["dedup"])

    def build(self) -> None:
        torch.manual_seed(self.seed)
        self.model = build_model(self.cfg, self.num_nodes, edge_feat=self.data.msg,
                                 dropout=0.2, att_dropout=0.2).to(self.device)
        self.phases = _Phases()
        _instrument(self.model, self.phases)
        opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        train = slice(0, self.val_idx)
        self.trainer = LinkTrainer(self.model, opt, self.loader(train, self.seed),
                                   BatchSchedule(train, self.batch_size), device=self.device,
                                   progress=False, precision=self.precision,
                                   sync_timers=self.sync_timers, host_plans=self.host_plans)

    def time_epoch(self, max_batches: Optional[int]) -> Dict[str, Any]:
        self.phases.memory = self.phases.forward = 0.0
        r = self.trainer.train_epoch(0, max_batches=max_batches)
        mem_read = self.phases.memory
        split = {"sample": r["time_sample"], "memory": mem_read + r["time_memory"],
                 "gnn": self.phases.forward - mem_read,
                 "backward": r["time_compute"] - self.phases.forward,
                 "update": r["time_update"]}
        split["other"] = max(r["time_total"] - sum(split.values()), 0.0)
        return {"events_per_second": r["events_per_s"], "seconds": r["time_total"],
                "events": r["num_events"], "loss": r["loss"], "time_split": split}

    def train_and_test(self, epochs: int) -> Dict[str, float]:
        self.build()
        for epoch in range(epochs):
            self.trainer.train_epoch(epoch)
        # Memory carries from train through validation into test, as in the peers' protocol.
        self.trainer.evaluate(self.loader(slice(self.val_idx, self.test_idx), 12345),
                              score=False)
        m = self.trainer.evaluate(self.loader(slice(self.test_idx, self.data.num_events),
                                              12346))
        return {"test_ap": float(m["ap"]), "test_auc": float(m.get("auc", float("nan")))}


def _peer_fns(peers: List[str]) -> Dict[str, Dict[str, Callable]]:
    out: Dict[str, Dict[str, Callable]] = {}
    if "pyg" in peers:
        from experiments.peers.pyg_tgn import run_pyg_tgn, time_pyg_tgn_epoch
        out["pyg_tgn"] = {"time": time_pyg_tgn_epoch, "run": run_pyg_tgn}
    if "tgm" in peers:
        try:
            from experiments.peers.tgm_tgn import run_tgm_tgn, time_tgm_tgn_epoch
            from experiments.peers.tgm_tgn import _import_tgm
            _import_tgm()
            out["tgm_tgn"] = {"time": time_tgm_tgn_epoch, "run": run_tgm_tgn}
        except Exception as e:  # TGM is optional: say why it is absent and go on
            print(f"[bench_train] TGM peer skipped: {e}", file=sys.stderr)
    return out


def _summary(rounds: List[Dict[str, Any]]) -> Dict[str, Any]:
    eps = [r["events_per_second"] for r in rounds]
    split = {k: statistics.median(r["time_split"].get(k, 0.0) for r in rounds)
             for k in PHASES + ("other",)}
    total = sum(split.values()) or 1.0
    return {"events_per_second_median": statistics.median(eps),
            "events_per_second_min": min(eps), "events_per_second_max": max(eps),
            "rounds": rounds, "time_split_median": split,
            "time_share": {k: v / total for k, v in split.items()}}


def machine(device: str = "cpu") -> Dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load_average": list(os.getloadavg()),
            "python": platform.python_version(), "device": device,
            "gpu": (torch.cuda.get_device_name(torch.device(device))
                    if torch.device(device).type == "cuda" else None)}


def bench(args: argparse.Namespace) -> Dict[str, Any]:
    peers = _peer_fns([p for p in args.peers.split(",") if p])
    precisions = [p for p in args.precision.split(",") if p]
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in MODELS:
            raise SystemExit(f"--models: unknown model {m!r}; expected some of {MODELS}")
    out: Dict[str, Any] = {"machine": machine(args.device), "args": vars(args), "datasets": {}}
    for which in [d for d in args.datasets.split(",") if d]:
        data = load_events(which, args.edge_dim, args.max_events)
        tcsr = TCSR.from_data(data, add_reverse=True)
        res: Dict[str, Any] = {"num_events": data.num_events, "runs": {}}
        # TGN: ours (each precision) and the peers, interleaved round by round.
        where = {"device": args.device, "sync_timers": args.sync}
        ours = {f"pyg_tgl_tgn_{p}": Ours(data, tcsr, "tgn", args.batch_size, p,
                                         args.sampler_threads, **where)
                for p in precisions}
        if args.batch_roots:
            ours[f"pyg_tgl_tgn_{precisions[0]}_batchroots"] = Ours(
                data, tcsr, "tgn", args.batch_size, precisions[0], args.sampler_threads,
                root_time="batch", **where)
        if args.host_plans:
            ours[f"pyg_tgl_tgn_{precisions[0]}_hostplans"] = Ours(
                data, tcsr, "tgn", args.batch_size, precisions[0], args.sampler_threads,
                host_plans=True, **where)
        for o in ours.values():  # warm-up: first-touch allocations and lazy inits
            o.time_epoch(3)
        rounds: Dict[str, List[Dict[str, Any]]] = {name: [] for name in ours}
        rounds.update({name: [] for name in peers})
        for r in range(args.rounds):
            for name, o in ours.items():
                rounds[name].append(o.time_epoch(args.max_batches))
                print(f"[{which}] round {r}: {name}: "
                      f"{rounds[name][-1]['events_per_second']:.0f} ev/s", flush=True)
            for name, fns in peers.items():
                rounds[name].append(fns["time"](data, batch_size=args.batch_size,
                                                max_batches=args.max_batches, **where))
                print(f"[{which}] round {r}: {name}: "
                      f"{rounds[name][-1]['events_per_second']:.0f} ev/s", flush=True)
        for name, rs in rounds.items():
            res["runs"][name] = _summary(rs)
        if args.ap_epochs:
            for name, o in ours.items():
                res["runs"][name].update(o.train_and_test(args.ap_epochs))
            for name, fns in peers.items():
                r = fns["run"](data, epochs=args.ap_epochs, batch_size=args.batch_size,
                               device=args.device)
                res["runs"][name].update({"test_ap": r["test_ap"][-1],
                                          "test_auc": r["test_auc"][-1]})
        # The other models, pyg_tgl alone.
        for m in models:
            if m == "tgn":
                continue
            variants = {f"pyg_tgl_{m}_{precisions[0]}": False}
            if args.host_plans:
                variants[f"pyg_tgl_{m}_{precisions[0]}_hostplans"] = True
            others = {name: Ours(data, tcsr, m, args.batch_size, precisions[0],
                                 args.sampler_threads, host_plans=plans, **where)
                      for name, plans in variants.items()}
            for o in others.values():
                o.time_epoch(3)
            rs: Dict[str, List[Dict[str, Any]]] = {name: [] for name in others}
            for _ in range(args.rounds_others):  # interleaved, as TGN's rows
                for name, o in others.items():
                    rs[name].append(o.time_epoch(args.max_batches))
            for name, o in others.items():
                res["runs"][name] = _summary(rs[name])
                print(f"[{which}] {name}: {rs[name][-1]['events_per_second']:.0f} ev/s",
                      flush=True)
                if args.ap_epochs:
                    res["runs"][name].update(o.train_and_test(args.ap_epochs))
        base = res["runs"].get("pyg_tgn")
        if base:
            for name, run in res["runs"].items():
                run["ratio_vs_pyg_tgn"] = (run["events_per_second_median"]
                                           / base["events_per_second_median"])
        out["datasets"][which] = res
    out["machine"]["load_average_end"] = list(os.getloadavg())
    return out


def markdown(out: Dict[str, Any]) -> str:
    m = out["machine"]
    a = out["args"]
    gpu = f" and {m['gpu']} ({m['device']})" if m.get("gpu") else ""
    unsynced = ("" if a.get("sync", True) or not m.get("gpu") else
                ", no synchronisation at phase borders (the time split is the host's share)")
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores{gpu}, torch {m['torch']} "
             f"({m['torch_threads']} threads); load average at start "
             f"{', '.join(f'{x:.2f}' for x in m['load_average'])}, at end "
             f"{', '.join(f'{x:.2f}' for x in m.get('load_average_end', []))}. Batch "
             f"{a['batch_size']}, {a['edge_dim']}-dim edge features, "
             f"{'full epoch' if a['max_batches'] is None else str(a['max_batches']) + ' batches'}"
             f", {a['rounds']} interleaved rounds{unsynced}.", ""]
    for which, res in out["datasets"].items():
        lines += [f"### {which} ({res['num_events']:,} events)", "",
                  "| run | events/s median | min-max | vs PyG TGN | sample | memory | gnn | "
                  "backward | update | test AP |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in res["runs"].items():
            share = r["time_share"]
            ratio = r.get("ratio_vs_pyg_tgn")
            ap = r.get("test_ap")
            lines.append(
                f"| {name} | {r['events_per_second_median']:,.0f} | "
                f"{r['events_per_second_min']:,.0f}-{r['events_per_second_max']:,.0f} | "
                f"{'' if ratio is None else f'{ratio:.2f}x'} | "
                + " | ".join(f"{100 * share[k]:.0f}%" for k in PHASES)
                + f" | {'' if ap is None else f'{ap:.4f}'} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="real,synthetic",
                   help="comma list of 'real' (wikipedia.csv) and 'synthetic'")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {MODELS}")
    p.add_argument("--peers", default="pyg,tgm", help="comma list of 'pyg', 'tgm' (or empty)")
    p.add_argument("--precision", default="float32,bfloat16",
                   help="pyg_tgl precisions to time (the first is used for the other models)")
    p.add_argument("--batch-size", type=int, default=600)
    p.add_argument("--no-batch-roots", dest="batch_roots", action="store_false",
                   help="skip TGN with sampling.root_time=batch (every root at the batch's "
                        "start, each distinct node embedded once, as PyG's example)")
    p.add_argument("--host-plans", action="store_true",
                   help="also time each model with LinkTrainer(host_plans=True): the index work "
                        "planned on the host by the loader's thread (rows *_hostplans)")
    p.add_argument("--edge-dim", type=int, default=172)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rounds-others", type=int, default=1)
    p.add_argument("--max-batches", type=int, default=None,
                   help="partial epochs of this many batches (default: whole epochs)")
    p.add_argument("--max-events", type=int, default=None, help="use the first N events only")
    p.add_argument("--ap-epochs", type=int, default=0,
                   help="also train this many epochs and report test AP (ours and peers)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--sampler-threads", type=int, default=1,
                   help="sampler threads (it runs in a background thread beside training)")
    p.add_argument("--device", default="cpu",
                   help="where ours and the peers train, e.g. cuda (CUDA synchronises at phase "
                        "borders for the time split, in ours and the peers alike)")
    p.add_argument("--no-sync", dest="sync", action="store_false",
                   help="CUDA: no synchronisation at phase borders (the throughput a user gets; "
                        "the time split then counts only the host's share)")
    p.add_argument("--tag", default="", help="suffix of the result files")
    args = p.parse_args(argv)
    if args.rounds < 1:
        raise SystemExit("--rounds must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = bench(args)
    table = markdown(out)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "bench_train" + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1))
    (RESULTS / f"{stem}.md").write_text(table + "\n")
    return out


if __name__ == "__main__":
    main()
