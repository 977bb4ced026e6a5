r"""The peers pyg_tgl is measured against, run under one protocol.

* :func:`run_edgebank`: EdgeBank (Poursafaei et al., NeurIPS 2022),
  :class:`pyg_tgl.nn.edgebank.EdgeBank`.
* :func:`experiments.peers.pyg_tgn.run_pyg_tgn`: PyG's ``examples/tgn.py`` (TGN, Rossi et al. 2020)
  rebuilt from PyG's public classes, parameterised.
* :func:`experiments.peers.tgm_tgn.run_tgm_tgn`: TGM 0.1.0b1's TGN link-prediction example.

The protocol (``../shared/TARGETS.md``): a chronological 70/15/15 split by PyG's rule
(:func:`split_indices`), one uniformly random negative destination per event drawn from the split's
destination-id range (PyG's ``TemporalDataLoader``), AP and AUC over the *whole* split (positives
against their negatives, :mod:`pyg_tgl.train.metrics`, equal to scikit-learn's), memory and
neighbourhoods carried from train through validation into test, the evaluation negatives drawn
from a fixed seed so every epoch and every peer sees the same ones.

Every runner returns a dict with per-epoch lists (``loss``, ``train_seconds``,
``events_per_second``, ``time_split``, ``val_ap``, ``val_auc``, ``test_ap``, ``test_auc``,
``val_ap_batch_mean``, ``test_ap_batch_mean``); the last element is the number to report.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import TemporalData

from pyg_tgl.train.metrics import average_precision, roc_auc

__all__ = [
    "EVAL_SEED",
    "PhaseTimer",
    "read_events_csv",
    "prepare_data",
    "split_indices",
    "temporal_loader",
    "link_metrics",
    "eval_rng",
    "run_edgebank",
    "PHASES",
    "timed_epoch",
    "peer_main",
    "train_and_evaluate",
    "progress_bar",
]

#: Phases of one training step that both peers' epoch timers charge.
PHASES = ("sample", "memory", "gnn", "backward", "update")

#: Seed of the evaluation negatives; PyG's example reseeds with it before every evaluation.
EVAL_SEED = 12345


def read_events_csv(path: Union[str, Path], max_events: Optional[int] = None,
                    edge_dim: int = 1) -> TemporalData:
    r"""Reads a JODIE/DyGLib-style event file (header with columns ``u``, ``i``, ``ts``).

    Only for quick peer runs on ``../shared/data/wikipedia.csv`` or ``ml_enron.csv``; the project's
    loader is :func:`pyg_tgl.data.load_dataset`.

    Args:
        path (str or Path): the CSV file.
        max_events (int, optional): keep only the first ``max_events`` rows.
        edge_dim (int): width of the all-zero edge feature ``msg`` (the protocol's "no features").
            (default: :obj:`1`)
    """
    path = Path(path)
    with path.open() as f:
        header = [h.strip() for h in f.readline().split(",")]
    missing = [c for c in ("u", "i", "ts") if c not in header]
    if missing:
        raise ValueError(f"{path}: header {header} lacks the column(s) {missing}; expected "
                         f"'u', 'i', 'ts'")
    cols = [header.index(c) for c in ("u", "i", "ts")]
    table = np.loadtxt(path, delimiter=",", skiprows=1, usecols=cols, max_rows=max_events,
                       dtype=np.float64, ndmin=2)
    if table.shape[0] == 0:
        raise ValueError(f"{path}: no events")
    src = torch.from_numpy(table[:, 0]).long()
    dst = torch.from_numpy(table[:, 1]).long()
    t = torch.from_numpy(table[:, 2])
    msg = torch.zeros(src.numel(), edge_dim)
    return TemporalData(src=src, dst=dst, t=t, msg=msg)


def prepare_data(data: TemporalData, integer_time: bool = True) -> TemporalData:
    r"""Checks a :class:`~torch_geometric.data.TemporalData` for the peers and normalises dtypes.

    Returns a shallow copy with ``src``/``dst`` int64, ``msg`` float32 (an all-zero ``[E, 1]``
    feature when absent) and, with ``integer_time``, ``t`` int64: PyG's and TGM's ``TGNMemory``
    keep ``last_update`` as int64 and TGM requires integer times, so fractional times are refused
    rather than silently truncated.
    """
    for key in ("src", "dst", "t"):
        if getattr(data, key, None) is None:
            raise ValueError(f"TemporalData lacks '{key}'")
    src, dst, t = data.src, data.dst, data.t
    num = src.numel()
    if src.dim() != 1 or dst.shape != src.shape or t.shape != src.shape:
        raise ValueError(f"src, dst and t must be 1-D of one length; got shapes "
                         f"{tuple(src.shape)}, {tuple(dst.shape)}, {tuple(t.shape)}")
    if num < 3:
        raise ValueError(f"need at least 3 events for a train/val/test split, got {num}")
    if bool((src < 0).any()) or bool((dst < 0).any()):
        raise ValueError("node ids must be >= 0")
    if bool((t[1:] < t[:-1]).any()):
        i = int((t[1:] < t[:-1]).nonzero()[0]) + 1
        raise ValueError(f"events must be sorted by time; t[{i}] = {t[i].item()} < "
                         f"t[{i - 1}] = {t[i - 1].item()}")
    if integer_time and t.is_floating_point():
        if not bool(torch.isfinite(t).all()) or not bool((t == t.round()).all()):
            raise ValueError("PyG's and TGM's TGNMemory store times as int64; the event times "
                             "have fractional parts: rescale them to integers first")
        t = t.long()
    msg = getattr(data, "msg", None)
    if msg is None:
        msg = torch.zeros(num, 1)
    elif msg.dim() != 2 or msg.size(0) != num:
        raise ValueError(f"msg must be [num_events={num}, d], got shape {tuple(msg.shape)}")
    return TemporalData(src=src.long(), dst=dst.long(), t=t, msg=msg.float())


def split_indices(t: Tensor, val_ratio: float = 0.15, test_ratio: float = 0.15) -> Tuple[int, int]:
    r"""Event indices where validation and test start, by PyG's
    :meth:`~torch_geometric.data.TemporalData.train_val_test_split` rule (time quantiles; events
    sharing a time stay in one split).

    Raises:
        ValueError: when a split would be empty.
    """
    if val_ratio <= 0 or test_ratio <= 0 or val_ratio + test_ratio >= 1:
        raise ValueError(f"need 0 < val_ratio, test_ratio and val_ratio + test_ratio < 1, got "
                         f"{val_ratio}, {test_ratio}")
    val_time, test_time = np.quantile(t.cpu().double().numpy(),
                                      [1.0 - val_ratio - test_ratio, 1.0 - test_ratio])
    val_idx = int((t <= val_time).sum())
    test_idx = int((t <= test_time).sum())
    if not 0 < val_idx < test_idx < t.numel():
        raise ValueError(f"the {val_ratio}/{test_ratio} split of {t.numel()} events leaves an "
                         f"empty split (val starts at {val_idx}, test at {test_idx}); too many "
                         f"events share a timestamp")
    return val_idx, test_idx


def temporal_loader(data: TemporalData, batch_size: int, neg_range: str = "dst",
                    num_nodes: Optional[int] = None) -> Any:
    r"""PyG's :class:`~torch_geometric.loader.TemporalDataLoader` with one negative per event.

    Args:
        data (TemporalData): the split's events.
        batch_size (int): events per batch.
        neg_range (str): ``"dst"``: uniform over ``[min(dst), max(dst)]`` of the split (PyG's
            example); ``"all"``: uniform over every node id ``[0, num_nodes)`` (TGL's
            ``NegLinkSampler``; the EdgeBank column of ``TARGETS.md`` on Wikipedia is reproduced
            only with this one, as almost no user-user pair was ever seen).
        num_nodes (int, optional): required for ``neg_range="all"``.
    """
    from torch_geometric.loader import TemporalDataLoader

    loader = TemporalDataLoader(data, batch_size=batch_size, neg_sampling_ratio=1.0)
    if neg_range == "all":
        if num_nodes is None:
            raise ValueError("neg_range='all' needs num_nodes")
        # The loader draws randint(min_dst, max_dst + 1); widening the bounds is all it takes.
        loader.min_dst, loader.max_dst = 0, int(num_nodes) - 1
    elif neg_range != "dst":
        raise ValueError(f"neg_range={neg_range!r} is not supported; expected 'dst' or 'all'")
    return loader


def link_metrics(pos: List[Tensor], neg: List[Tensor]) -> Dict[str, float]:
    """AP and AUC of all positives against all negatives of a split, and PyG's example number
    (the mean of the per-batch APs)."""
    p, n = torch.cat(pos).double().cpu(), torch.cat(neg).double().cpu()
    scores = torch.cat([p, n])
    labels = torch.cat([torch.ones_like(p), torch.zeros_like(n)])
    batch_ap = [average_precision(torch.cat([torch.ones_like(a), torch.zeros_like(b)]),
                                  torch.cat([a, b]).double().cpu()) for a, b in zip(pos, neg)]
    return {"ap": average_precision(labels, scores), "auc": roc_auc(labels, scores),
            "ap_batch_mean": float(np.mean(batch_ap))}


@contextlib.contextmanager
def eval_rng(device: Union[str, torch.device], seed: int = EVAL_SEED) -> Iterator[None]:
    """Seeds the global generator of ``device`` for an evaluation pass and restores it afterwards,
    so evaluation negatives are the same every epoch without resetting the training stream."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield


class PhaseTimer:
    """Accumulates wall time per named phase of a training loop (synchronising CUDA first, unless
    ``sync`` is off: then the phases are only the host's share and the total stays exact)."""

    def __init__(self, device: Union[str, torch.device] = "cpu", sync: bool = True) -> None:
        self.device = torch.device(device)
        self.sync = sync
        self.seconds: Dict[str, float] = {}
        self._last = 0.0

    def synchronize(self) -> None:
        """Waits for the device's queued work (CUDA); a no-op on CPU."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _sync(self) -> None:
        if self.sync:
            self.synchronize()

    def start(self) -> None:
        self._sync()
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        """Charges the time since the previous lap (or :meth:`start`) to ``phase``."""
        self._sync()
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now


def progress_bar(loader, on: bool, desc: str):
    """``loader`` wrapped in a tqdm bar when ``on``, else unchanged."""
    if not on:
        return loader
    from tqdm import tqdm

    return tqdm(loader, desc=desc, leave=False)


def timed_epoch(peer: str, train_epoch, events: int, batches: int,
                device: Union[str, torch.device], batch_size: int,
                sync_timers: bool = True) -> Dict[str, Any]:
    """Runs ``train_epoch(timer)`` once and returns its wall time, throughput and time split."""
    timer = PhaseTimer(device, sync_timers)
    timer.synchronize()
    start = time.perf_counter()
    loss = train_epoch(timer)
    timer.synchronize()
    seconds = time.perf_counter() - start
    split = {p: timer.seconds.get(p, 0.0) for p in PHASES}
    split["other"] = max(seconds - sum(split.values()), 0.0)
    return {"peer": peer, "seconds": seconds, "events": events, "batches": batches,
            "events_per_second": events / seconds, "loss": loss, "time_split": split,
            "device": str(device), "batch_size": batch_size}


def train_and_evaluate(peer: str, config: Dict[str, Any], num_events: Dict[str, int],
                       epochs: int, train_epoch, evaluate,
                       device: Union[str, torch.device]) -> Dict[str, Any]:
    """The peers' shared protocol: ``epochs`` times, one training epoch (``train_epoch(timer)``
    returns the loss) then AP/AUC on validation and test (``evaluate(split)`` returns a dict with
    ``ap``, ``auc`` and ``ap_batch_mean``); memory carries from train through val into test."""
    out: Dict[str, Any] = {"peer": peer, "config": config, "num_events": num_events}
    for key in ("loss", "train_seconds", "events_per_second", "time_split", "val_ap", "val_auc",
                "val_ap_batch_mean", "test_ap", "test_auc", "test_ap_batch_mean",
                "eval_seconds"):
        out[key] = []
    for _ in range(epochs):
        timer = PhaseTimer(device)
        start = time.perf_counter()
        loss = train_epoch(timer)
        seconds = time.perf_counter() - start
        out["loss"].append(loss)
        out["train_seconds"].append(seconds)
        out["events_per_second"].append(num_events["train"] / seconds)
        out["time_split"].append(timer.seconds)
        start = time.perf_counter()
        for split in ("val", "test"):
            m = evaluate(split)
            out[f"{split}_ap"].append(m["ap"])
            out[f"{split}_auc"].append(m["auc"])
            out[f"{split}_ap_batch_mean"].append(m["ap_batch_mean"])
        out["eval_seconds"].append(time.perf_counter() - start)
    return out


def peer_main(description: str, run_fn, time_fn, argv: Optional[List[str]] = None) -> None:
    """Command line shared by the peers: train/evaluate (``run_fn``) or time one epoch."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("csv", help="event file with columns u,i,ts (e.g. wikipedia.csv)")
    parser.add_argument("--max-events", type=int, default=None)
    parser.add_argument("--edge-dim", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--dim", type=int, default=100, help="memory, time and embedding size")
    parser.add_argument("--neighbors", type=int, default=10)
    parser.add_argument("--neg-range", choices=("dst", "all"), default="dst")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--time-epoch", action="store_true",
                        help="only time one training epoch (speed benchmark)")
    args = parser.parse_args(argv)
    data = read_events_csv(args.csv, args.max_events, args.edge_dim)
    if args.time_epoch:
        res = time_fn(data, args.batch_size, args.lr, args.dim, args.dim, args.dim,
                      args.neighbors, args.seed, args.device)
    else:
        res = run_fn(data, args.epochs, args.batch_size, args.lr, args.dim, args.dim, args.dim,
                     args.neighbors, args.seed, args.device, progress=True,
                     neg_range=args.neg_range)
    print(json.dumps(res, indent=1))


def run_edgebank(data: TemporalData, batch_size: int = 200, mode: str = "unlimited",
                 time_window: Optional[float] = None, val_ratio: float = 0.15,
                 test_ratio: float = 0.15, neg_range: str = "dst",
                 device: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    r"""EdgeBank under the peers' protocol: memory filled with the training events, then each
    validation and test batch is scored and inserted, with the same negatives as
    :func:`~experiments.peers.pyg_tgn.run_pyg_tgn`'s evaluation.

    Args:
        data (TemporalData): events sorted by time.
        batch_size (int): events per batch. (default: :obj:`200`)
        mode (str): ``"unlimited"`` or ``"time_window"``.
        time_window (float, optional): window duration; by default DyGLib's rule
            (:meth:`EdgeBank.window_from_history` with ``proportion=test_ratio``) over the history
            before each evaluated split.
        val_ratio, test_ratio (float): the chronological split. (default: 0.15, 0.15)
        neg_range (str): where negatives come from, see :func:`temporal_loader`.
        device (str or torch.device): where the memory lives.
    """
    from pyg_tgl.nn.edgebank import EdgeBank

    data = prepare_data(data, integer_time=False)
    val_idx, test_idx = split_indices(data.t, val_ratio, test_ratio)
    num_nodes = int(max(data.src.max(), data.dst.max())) + 1
    window = None
    if mode == "time_window":
        window = (time_window if time_window is not None else
                  EdgeBank.window_from_history(data.t[:val_idx], test_ratio))
    bank = EdgeBank(num_nodes, mode=mode, time_window=window, device=device)
    bank.update(data.src[:val_idx], data.dst[:val_idx], data.t[:val_idx])
    out: Dict[str, Any] = {"peer": "edgebank", "mode": mode, "neg_range": neg_range,
                           "num_events": {"train": val_idx, "val": test_idx - val_idx,
                                          "test": data.num_events - test_idx}}
    for name, lo, hi in (("val", val_idx, test_idx), ("test", test_idx, data.num_events)):
        if mode == "time_window":
            if time_window is None:
                bank.time_window = EdgeBank.window_from_history(data.t[:lo], test_ratio)
            out[f"{name}_time_window"] = bank.time_window
        loader = temporal_loader(data[lo:hi], batch_size, neg_range, num_nodes)
        pos, neg = [], []
        with eval_rng("cpu"):
            for batch in loader:
                pos.append(bank.score(batch.src, batch.dst, batch.t))
                neg.append(bank.score(batch.src, batch.neg_dst, batch.t))
                bank.update(batch.src, batch.dst, batch.t)
        m = link_metrics(pos, neg)
        out.update({f"{name}_ap": [m["ap"]], f"{name}_auc": [m["auc"]],
                    f"{name}_ap_batch_mean": [m["ap_batch_mean"]]})
    return out
