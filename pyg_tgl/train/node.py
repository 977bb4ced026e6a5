r"""Dynamic node classification on top of a trained link-prediction model (TGL's
``train_node.py``, Zhou et al., VLDB 2022).

1. :class:`TemporalEmbedder` replays the events through the trained model (evaluation mode, no
   gradient) and, for label queries ``(node, t)`` in time order, computes the node's embedding at
   ``t``. Before a chunk of queries whose earliest time is ``t0``, memory has absorbed exactly the
   events with time ``< t0`` (TGL replays whole batches up to the chunk's *last* time, which lets a
   few later events leak into earlier queries; here a query never sees an event at or after its
   own time, and neighbourhoods are sampled strictly before each query's time).
2. Labels are split by time at the link split's boundaries (first validation / test event time).
3. An MLP (:class:`~pyg_tgl.nn.NodeClassifier`, TGL's ``NodeClassificationModel``: Linear,
   ReLU, Linear) is trained on the embeddings; the best validation epoch is tested. Binary labels
   report AP (and ROC-AUC) over the whole split and, like TGL's ``--posneg``, train on every
   positive plus as many random negatives per batch; more classes report F1-micro (which equals
   accuracy for single-label data).
"""
from __future__ import annotations

import copy
import logging
import math
from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import Tensor

from pyg_tgl.data.batch import TemporalBatch
from pyg_tgl.nn.predictors import NodeClassifier
from pyg_tgl.train.metrics import average_precision, roc_auc

log = logging.getLogger("pyg_tgl")


class TemporalEmbedder:
    r"""Replays events into a model's memory and embeds ``(node, time)`` queries in time order.

    Args:
        model (torch.nn.Module): a trained :class:`~pyg_tgl.nn.TemporalGNN`.
        loader: a :class:`~pyg_tgl.data.loader.TemporalNeighborLoader` over the data (its
            :meth:`make_batch` builds the replayed batches, its sampler the query neighbourhoods).
        num_events (int): replay at most the first ``num_events`` events.
        batch_size (int): events per replayed batch.
        device (torch.device or str): the model's device.
    """

    def __init__(self, model: torch.nn.Module, loader: Any, num_events: int, batch_size: int,
                 device: Any = "cpu") -> None:
        self.model = model
        self.loader = loader
        self.t = loader.t[:num_events]
        self.num_events = int(num_events)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.position = 0
        model.eval()
        model.reset_state()

    @torch.no_grad()
    def advance_to(self, time: float) -> int:
        """Absorbs every not yet replayed event with time ``< time``; returns how many."""
        end = int(torch.searchsorted(self.t, torch.tensor([time], dtype=self.t.dtype)))
        start = self.position
        if end <= start:
            return 0
        for ids in torch.split(torch.arange(start, end), self.batch_size):
            batch = self.loader.make_batch(ids).to(self.device)
            self.model.apply_update(self.model.step(batch)[2])
        self.position = end
        return end - start

    @torch.no_grad()
    def embed(self, nodes: Tensor, times: Tensor) -> Tensor:
        """Embeddings ``[n, d]`` of ``nodes`` at ``times`` with the current memory (no replay)."""
        nodes = nodes.long()
        times = times.to(torch.float64)
        sampler = self.loader.sampler
        blocks = sampler.sample(nodes, times) if sampler is not None else []
        empty = torch.empty(0, dtype=torch.long)
        # Roots only, no event: an embedding, no state update.
        batch = TemporalBatch(src=empty, dst=empty, t=times.new_empty(0), eid=empty,
                              neg_dst=empty, root_nodes=nodes, root_ts=times,
                              blocks=blocks).to(self.device)
        return self.model(batch)

    @torch.no_grad()
    def embed_queries(self, nodes: Tensor, times: Tensor, batch_size: int) -> Tensor:
        """Embeddings of queries sorted by time, ``batch_size`` at a time, replaying events up
        to each chunk's earliest time first."""
        if nodes.numel() and bool((times[1:] < times[:-1]).any()):
            raise ValueError("queries must be sorted by time")
        out = []
        for n, t in zip(torch.split(nodes, batch_size), torch.split(times, batch_size)):
            self.advance_to(float(t[0]))
            out.append(self.embed(n, t).float().cpu())
        if not out:
            raise ValueError("no queries to embed")
        return torch.cat(out)


def _score(clf: NodeClassifier, emb: Tensor, y: Tensor, binary: bool) -> Dict[str, float]:
    with torch.no_grad():
        logits = clf(emb)
    if binary:
        p = logits.softmax(dim=1)[:, 1]
        return {"ap": average_precision(y == 1, p), "auc": roc_auc(y == 1, p)}
    return {"f1_micro": float((logits.argmax(1) == y).float().mean())}


def train_classifier(emb: Dict[str, Tensor], y: Dict[str, Tensor], num_classes: int,
                     dim: int = 100, lr: float = 1e-3, epochs: int = 100,
                     batch_size: int = 4000, posneg: bool = False, seed: int = 0,
                     device: Any = "cpu") -> Dict[str, Any]:
    r"""Trains :class:`~pyg_tgl.nn.NodeClassifier` on ``emb["train"]`` and tests the best validation epoch.

    Args:
        emb (dict): ``train``/``val``/``test`` embeddings ``[n, d]``.
        y (dict): the matching int64 labels ``[n]``.
        num_classes (int): number of classes (2 means binary: AP/AUC are reported).
        dim (int): hidden dimension.
        lr (float): Adam learning rate.
        epochs (int): training epochs.
        batch_size (int): labels per batch.
        posneg (bool): binary only: each batch holds positives and as many random negatives.
        seed (int): seed of shuffling and negative draws.
        device (torch.device or str): where to train.

    Returns:
        dict: ``metric`` (``"ap"`` or ``"f1_micro"``), ``val`` and ``test`` values of the best
        epoch, ``best_epoch``, ``test_metrics`` (all metrics), ``num_labels``.
    """
    device = torch.device(device)
    binary = num_classes == 2
    metric = "ap" if binary else "f1_micro"
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    clf = NodeClassifier(emb["train"].size(1), dim, num_classes).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    e = {k: v.to(device) for k, v in emb.items()}
    yy = {k: v.to(device) for k, v in y.items()}
    pos_idx = (y["train"] == 1).nonzero().view(-1)
    neg_idx = (y["train"] != 1).nonzero().view(-1)
    if posneg and (pos_idx.numel() == 0 or neg_idx.numel() == 0):
        posneg = False
    best = {"epoch": -1, "val": -math.inf, "state": None}
    for epoch in range(epochs):
        clf.train()
        base = pos_idx if posneg else torch.arange(y["train"].numel())
        order = base[torch.randperm(base.numel(), generator=g)]
        for idx in torch.split(order, batch_size):
            if posneg:
                neg = neg_idx[torch.randint(neg_idx.numel(), (idx.numel(),), generator=g)]
                idx = torch.cat([idx, neg])
            idx = idx.to(device)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(clf(e["train"][idx]), yy["train"][idx])
            loss.backward()
            opt.step()
        clf.eval()
        val = _score(clf, e["val"], yy["val"], binary)[metric]
        if val > best["val"] or best["state"] is None:
            best = {"epoch": epoch, "val": val, "state": copy.deepcopy(clf.state_dict())}
    clf.load_state_dict(best["state"])
    clf.eval()
    test = _score(clf, e["test"], yy["test"], binary)
    return {"metric": metric, "val": best["val"], "test": test[metric], "best_epoch": best["epoch"],
            "test_metrics": test, "num_labels": {k: int(v.numel()) for k, v in y.items()}}


def run_node_classification(cfg: Any, ctx: Any, model: torch.nn.Module,
                            progress: bool = True) -> Dict[str, Any]:
    """Embeds the data set's labels with the trained link ``model`` and trains the MLP.

    Args:
        cfg: the run configuration (``task`` section: batch_size, epoch, dim, lr, posneg,
            link_checkpoint).
        ctx: the :class:`~pyg_tgl.train.experiment.Context` of the run.
        model (torch.nn.Module): the link model, already holding the selected parameters.
        progress (bool): unused (kept for a uniform signature); embedding is logged instead.
    """
    from pyg_tgl.train.checkpoint import load_checkpoint
    from pyg_tgl.train.errors import ConfigError
    from pyg_tgl.train.resume import load_model_state

    task = cfg.task
    if task.get("link_checkpoint"):
        try:
            state = load_checkpoint(task.link_checkpoint, map_location=ctx.device)
        except FileNotFoundError as e:
            raise ConfigError(f"task.link_checkpoint: {e}") from e
        load_model_state(model, state["model"])
    labels = ctx.ds.node_labels
    data, split = ctx.ds.data, ctx.split
    num_events = split["test"].stop
    t_all = data.t.to(torch.float64)
    order = torch.argsort(labels.t.to(torch.float64), stable=True)
    nodes, times, ys = labels.node[order].long(), labels.t[order].to(torch.float64), \
        labels.y[order].long()
    keep = times <= t_all[num_events - 1]
    nodes, times, ys = nodes[keep], times[keep], ys[keep]
    if ys.numel() == 0:
        raise ConfigError("task=node: no node label falls inside the used events "
                          "(see train.max_events)")
    t_val, t_test = float(t_all[split["val"].start]), float(t_all[split["test"].start])
    loader = ctx.loader(slice(0, num_events), 1, "random", int(cfg.seed) + 4)
    embedder = TemporalEmbedder(model, loader, num_events, int(cfg.train.batch_size),
                                ctx.device)
    emb = embedder.embed_queries(nodes, times, int(task.batch_size))
    part = {"train": times < t_val, "val": (times >= t_val) & (times < t_test),
            "test": times >= t_test}
    for k, m in part.items():
        if not bool(m.any()):
            raise ConfigError(f"task=node: the {k} split holds no node label; the labels do not "
                              f"cover the event time range")
    num_classes = max(int(ys.max()) + 1, 2)
    posneg = task.get("posneg", "auto")
    posneg = (num_classes == 2) if posneg == "auto" else bool(posneg)
    result = train_classifier({k: emb[m] for k, m in part.items()},
                              {k: ys[m] for k, m in part.items()}, num_classes,
                              dim=int(task.dim), lr=float(task.lr), epochs=int(task.epoch),
                              batch_size=int(task.batch_size), posneg=posneg,
                              seed=int(cfg.seed), device=ctx.device)
    log.info("node classification (%s): val %.4f test %.4f (epoch %d, labels %s)",
             result["metric"], result["val"], result["test"], result["best_epoch"],
             result["num_labels"])
    return result
