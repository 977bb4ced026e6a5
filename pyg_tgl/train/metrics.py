"""Link-prediction metrics computed in torch, on whatever device the scores live on.

The definitions follow the references users compare against:

* :func:`average_precision` equals :func:`sklearn.metrics.average_precision_score` (step-wise
  precision-recall area; tied scores form a single threshold), the metric TGL (Zhou et al., VLDB
  2022) and the TGN/TGAT papers report.
* :func:`roc_auc` equals :func:`sklearn.metrics.roc_auc_score`: the Mann-Whitney statistic, where a
  positive tied with a negative counts one half.
* :func:`mrr` is TGB's (Huang et al., NeurIPS 2023) filtered-free mean reciprocal rank of each
  positive among its own ``k`` negatives. Ties default to TGB's convention: the rank is the mean of
  the optimistic and the pessimistic rank, i.e. ``1 + #(neg > pos) + 0.5 * #(neg == pos)``; TGL
  counts only strictly greater negatives (``ties="optimistic"``).

:class:`LinkMetricAccumulator` collects the scores of a whole split without a host
synchronisation per batch and computes everything once at the end.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor


def _check_binary(y_true: Tensor, y_score: Tensor) -> None:
    if y_true.dim() != 1 or y_score.dim() != 1 or y_true.numel() != y_score.numel():
        raise ValueError(
            f"y_true and y_score must be 1-D of equal length, got shapes "
            f"{tuple(y_true.shape)} and {tuple(y_score.shape)}")


def average_precision(y_true: Tensor, y_score: Tensor) -> float:
    r"""Average precision :math:`\sum_n (R_n - R_{n-1}) P_n` over the distinct score thresholds.

    Args:
        y_true (torch.Tensor): ``[N]`` binary labels (bool or 0/1).
        y_score (torch.Tensor): ``[N]`` scores; larger means more likely positive.

    Returns:
        float: the AP, ``nan`` when there is no positive label.
    """
    _check_binary(y_true, y_score)
    y = y_true.to(torch.float64)
    num_pos = float(y.sum())
    if num_pos == 0:
        return math.nan
    order = torch.argsort(y_score, descending=True, stable=True)
    s = y_score[order]
    y = y[order]
    # The last position of every run of equal scores is a threshold: ties are all-or-nothing.
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    idx = last.nonzero().view(-1)
    tps = torch.cumsum(y, 0)[idx]
    precision = tps / (idx + 1).to(torch.float64)
    recall = tps / num_pos
    d_recall = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((d_recall * precision).sum())


def _average_ranks(x: Tensor) -> Tensor:
    """1-based ranks of ``x`` in ascending order, tied values sharing their mean rank."""
    order = torch.argsort(x, stable=True)
    sx = x[order]
    _, counts = torch.unique_consecutive(sx, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)
    group_rank = ends - (counts.to(torch.float64) - 1) / 2
    ranks = torch.empty(x.numel(), dtype=torch.float64, device=x.device)
    ranks[order] = torch.repeat_interleave(group_rank, counts)
    return ranks


def roc_auc(y_true: Tensor, y_score: Tensor) -> float:
    r"""Area under the ROC curve (Mann-Whitney U with average ranks for ties).

    Args:
        y_true (torch.Tensor): ``[N]`` binary labels (bool or 0/1).
        y_score (torch.Tensor): ``[N]`` scores.

    Returns:
        float: the AUC, ``nan`` when one of the classes is absent.
    """
    _check_binary(y_true, y_score)
    y = y_true.to(torch.bool)
    num_pos = int(y.sum())
    num_neg = y.numel() - num_pos
    if num_pos == 0 or num_neg == 0:
        return math.nan
    ranks = _average_ranks(y_score)
    u = float(ranks[y].sum()) - num_pos * (num_pos + 1) / 2
    return u / (num_pos * num_neg)


def reciprocal_ranks(pos: Tensor, neg: Tensor, ties: str = "average") -> Tensor:
    r"""Reciprocal rank of each positive among its own negatives.

    Args:
        pos (torch.Tensor): ``[B]`` positive scores.
        neg (torch.Tensor): ``[k * B]`` negative scores, negative-major as in
            :class:`~pyg_tgl.data.batch.TemporalBatch` (``neg[q * B + i]`` belongs to event ``i``),
            or already shaped ``[k, B]``.
        ties (str): ``"average"`` (TGB: a tied negative counts one half), ``"optimistic"`` (TGL:
            ties favour the positive) or ``"pessimistic"``.

    Returns:
        torch.Tensor: ``[B]`` float64 reciprocal ranks.
    """
    b = pos.numel()
    if b == 0:
        return pos.new_zeros(0, dtype=torch.float64)
    if neg.numel() % b != 0:
        raise ValueError(f"neg has {neg.numel()} scores, not a multiple of the {b} positives")
    neg = neg.reshape(-1, b)
    greater = (neg > pos.view(1, -1)).sum(0).to(torch.float64)
    equal = (neg == pos.view(1, -1)).sum(0).to(torch.float64)
    if ties == "average":
        rank = 1 + greater + 0.5 * equal
    elif ties == "optimistic":
        rank = 1 + greater
    elif ties == "pessimistic":
        rank = 1 + greater + equal
    else:
        raise ValueError(
            f"ties={ties!r} is not supported; expected one of 'average', 'optimistic', "
            f"'pessimistic'")
    return rank.reciprocal()


def mrr(pos: Tensor, neg: Tensor, ties: str = "average") -> float:
    r"""Mean reciprocal rank of each positive among its ``k`` negatives (TGB protocol).

    Args:
        pos (torch.Tensor): ``[B]`` positive scores.
        neg (torch.Tensor): ``[k * B]`` negative scores, negative-major (see
            :func:`reciprocal_ranks`).
        ties (str): tie convention, see :func:`reciprocal_ranks`.
    """
    rr = reciprocal_ranks(pos, neg, ties)
    return float(rr.mean()) if rr.numel() else math.nan


class LinkMetricAccumulator:
    r"""Collects the scores of one evaluation pass and computes the split's metrics at the end.

    Scores stay on their device (no host sync per batch). :meth:`compute` reports:

    * ``ap``, ``auc``: over the whole split, positives against their first negative (the 1:1
      protocol of the TGN/TGAT/TGL papers);
    * ``ap_batch_mean``, ``auc_batch_mean``: TGL's mean of the per-batch values (pos against all
      negatives of the batch), so numbers compare with the TGL paper;
    * ``mrr``: each positive ranked among all its ``k`` negatives (TGB), ties as ``ties``;
    * the same with an ``inductive_`` prefix over events flagged by ``inductive`` in :meth:`add`,
      plus ``num_events`` / ``num_inductive``. With fewer than ``min_subset_events`` flagged
      events the ``inductive_`` metrics are left out and ``inductive_note`` says so: an AP over
      a handful of events (1.0 over a single one) says nothing about the model.

    Args:
        ties (str): tie convention of the MRR (see :func:`reciprocal_ranks`).
        min_subset_events (int): fewest events a sub-population metric is reported over.
    """

    def __init__(self, ties: str = "average", min_subset_events: int = 50) -> None:
        self.ties = ties
        self.min_subset_events = int(min_subset_events)
        self._pos: List[Tensor] = []
        self._neg: List[Tensor] = []
        self._ind: List[Optional[Tensor]] = []
        self._loss: List[Tensor] = []

    def add(self, pos: Tensor, neg: Tensor, inductive: Optional[Tensor] = None,
            loss: Optional[Tensor] = None) -> None:
        """Adds one batch: ``pos`` ``[B]`` and ``neg`` ``[k * B]`` logits (negative-major), an
        optional ``[B]`` bool mask of inductive events and the batch's (detached) loss tensor."""
        b = pos.numel()
        if b == 0:
            return
        if neg.numel() == 0 or neg.numel() % b != 0:
            raise ValueError(
                f"each positive needs the same number (>= 1) of negatives; got {b} positives "
                f"and {neg.numel()} negatives")
        self._pos.append(pos.detach().reshape(-1).float())
        self._neg.append(neg.detach().reshape(-1, b).float())
        self._ind.append(None if inductive is None else inductive.reshape(-1).bool())
        if loss is not None:
            self._loss.append(loss.detach().reshape(()).float())

    def __len__(self) -> int:
        return len(self._pos)

    def _split_metrics(self, pos: Tensor, neg: Tensor, prefix: str) -> Dict[str, float]:
        first = neg[0]
        scores = torch.cat([pos, first])
        labels = torch.cat([torch.ones_like(pos, dtype=torch.bool),
                            torch.zeros_like(first, dtype=torch.bool)])
        return {
            f"{prefix}ap": average_precision(labels, scores),
            f"{prefix}auc": roc_auc(labels, scores),
            f"{prefix}mrr": mrr(pos, neg, self.ties),
        }

    def compute(self) -> Dict[str, float]:
        """Returns the metrics dictionary described above (empty when nothing was added)."""
        if not self._pos:
            return {}
        pos = torch.cat(self._pos).cpu()
        neg = torch.cat(self._neg, dim=1).cpu()
        out = self._split_metrics(pos, neg, "")
        out["num_events"] = int(pos.numel())
        out["num_negatives"] = int(neg.size(0))
        # TGL's number: average of per-batch AP/AUC (every negative of the batch included).
        aps, aucs = [], []
        for p, n in zip(self._pos, self._neg):
            p, n = p.cpu(), n.cpu().reshape(-1)
            s = torch.cat([p, n])
            y = torch.cat([torch.ones_like(p, dtype=torch.bool),
                           torch.zeros_like(n, dtype=torch.bool)])
            aps.append(average_precision(y, s))
            aucs.append(roc_auc(y, s))
        out["ap_batch_mean"] = float(sum(aps) / len(aps))
        out["auc_batch_mean"] = float(sum(aucs) / len(aucs))
        if self._loss:
            out["loss"] = float(torch.stack(self._loss).mean())
        if all(m is not None for m in self._ind):
            ind = torch.cat(self._ind).cpu()  # type: ignore[arg-type]
            out["num_inductive"] = n = int(ind.sum())
            if n >= max(self.min_subset_events, 1):
                out.update(self._split_metrics(pos[ind], neg[:, ind], "inductive_"))
            elif n:
                out["inductive_note"] = (f"inductive metrics left out: {n} inductive events, "
                                         f"fewer than eval.min_subset_events="
                                         f"{self.min_subset_events}")
        return out


def test_summary(test: Dict[str, Any], neg_sampling: str, setting: str) -> str:
    """The run's last log line: the test AP, said in words, and where the other numbers are.

    Args:
        test (dict): :meth:`LinkMetricAccumulator.compute` of the test split.
        neg_sampling (str): how the negatives were drawn (``eval.neg_sampling``).
        setting (str): which model and protocol, e.g. ``"model of epoch 3, TGL protocol"``.
    """
    k = int(test.get("num_negatives", 1))
    rest = (f"MRR against {k} negatives, AUC and the other metrics are in metrics.json"
            if k > 1 else "AUC and the other metrics are in metrics.json")
    return (f"test AP {test.get('ap', math.nan):.4f}: average precision of the "
            f"{int(test.get('num_events', 0)):,} test events, each against one "
            f"{neg_sampling} negative destination ({setting}); "
            f"{rest}")
