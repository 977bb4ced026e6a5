"""Link-prediction metrics against scikit-learn and hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyg_tgl.train.metrics import (LinkMetricAccumulator, average_precision, mrr,
                                   reciprocal_ranks, roc_auc)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [None, 3, 7])
def test_ap_auc_match_sklearn_with_ties(seed, levels):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    y = rng.random(n) < rng.uniform(0.1, 0.9)
    y[0], y[1] = True, False  # both classes present
    s = rng.normal(size=n) + y * rng.uniform(0, 2)
    if levels is not None:  # few distinct values: many ties across classes
        s = np.round(s * levels / 4) / levels
    yt, st = torch.from_numpy(y), torch.from_numpy(s).float()
    assert average_precision(yt, st) == pytest.approx(
        sklearn_metrics.average_precision_score(y, st.numpy()), abs=1e-9)
    assert roc_auc(yt, st) == pytest.approx(
        sklearn_metrics.roc_auc_score(y, st.numpy()), abs=1e-9)


def test_ap_auc_small_hand_examples():
    y = torch.tensor([1, 0, 1, 0])
    # Perfect ranking.
    assert average_precision(y, torch.tensor([0.9, 0.1, 0.8, 0.2])) == 1.0
    assert roc_auc(y, torch.tensor([0.9, 0.1, 0.8, 0.2])) == 1.0
    # All scores tied: AP equals the positive rate, AUC one half.
    tied = torch.zeros(4)
    assert average_precision(y, tied) == pytest.approx(0.5)
    assert roc_auc(y, tied) == pytest.approx(0.5)
    # Single class -> undefined.
    assert math.isnan(roc_auc(torch.ones(3), torch.rand(3)))
    assert math.isnan(average_precision(torch.zeros(3), torch.rand(3)))
    with pytest.raises(ValueError, match="equal length"):
        average_precision(torch.ones(3), torch.rand(4))


def test_mrr_by_hand_and_ties():
    pos = torch.tensor([0.9, 0.5, 0.1])
    # neg[q * B + i]: q-th negative of event i (B = 3, k = 2).
    neg = torch.tensor([0.1, 0.7, 0.5,
                        0.2, 0.5, 0.3])
    # event 0: no negative above -> rank 1; event 1: 0.7 above, 0.5 tied -> 1 + 1 + 0.5;
    # event 2: 0.5 and 0.3 above -> rank 3.
    rr = reciprocal_ranks(pos, neg)
    assert torch.allclose(rr, torch.tensor([1.0, 1 / 2.5, 1 / 3], dtype=torch.float64))
    assert mrr(pos, neg) == pytest.approx((1 + 1 / 2.5 + 1 / 3) / 3)
    assert mrr(pos, neg, ties="optimistic") == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert mrr(pos, neg, ties="pessimistic") == pytest.approx((1 + 1 / 3 + 1 / 3) / 3)
    # [k, B] input is accepted too.
    assert mrr(pos, neg.view(2, 3)) == mrr(pos, neg)
    with pytest.raises(ValueError, match="ties"):
        mrr(pos, neg, ties="random")
    with pytest.raises(ValueError, match="multiple"):
        mrr(pos, neg[:-1])


def test_accumulator_whole_split_batch_mean_and_inductive():
    g = torch.Generator().manual_seed(0)
    acc = LinkMetricAccumulator(min_subset_events=1)
    all_pos, all_neg, all_ind, batch_aps = [], [], [], []
    for b in (5, 8, 3):
        pos = torch.randn(b, generator=g) + 1
        neg = torch.randn(2 * b, generator=g)  # k = 2
        ind = torch.rand(b, generator=g) < 0.5
        acc.add(pos, neg, ind, loss=torch.tensor(float(b)))
        all_pos.append(pos), all_neg.append(neg.view(2, b)), all_ind.append(ind)
        y = np.r_[np.ones(b), np.zeros(2 * b)]
        batch_aps.append(sklearn_metrics.average_precision_score(y, torch.cat([pos, neg])))
    out = acc.compute()
    pos, neg, ind = torch.cat(all_pos), torch.cat(all_neg, 1), torch.cat(all_ind)
    y = np.r_[np.ones(pos.numel()), np.zeros(pos.numel())]
    # Whole-split AP/AUC: each positive against its first negative.
    assert out["ap"] == pytest.approx(
        sklearn_metrics.average_precision_score(y, torch.cat([pos, neg[0]])))
    assert out["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(y, torch.cat([pos, neg[0]])))
    assert out["ap_batch_mean"] == pytest.approx(np.mean(batch_aps))
    assert out["mrr"] == pytest.approx(mrr(pos, neg))
    assert out["loss"] == pytest.approx((5 + 8 + 3) / 3)
    assert out["num_events"] == 16 and out["num_negatives"] == 2
    assert out["num_inductive"] == int(ind.sum())
    yi = np.r_[np.ones(int(ind.sum())), np.zeros(int(ind.sum()))]
    assert out["inductive_ap"] == pytest.approx(
        sklearn_metrics.average_precision_score(yi, torch.cat([pos[ind], neg[0][ind]])))
    assert out["inductive_mrr"] == pytest.approx(mrr(pos[ind], neg[:, ind]))


@pytest.mark.parametrize("num_inductive,reported", [(0, False), (1, False), (4, False),
                                                    (5, True), (9, True)])
def test_sub_population_metrics_need_a_minimum_count(num_inductive, reported):
    """An inductive AP over a handful of events (1.0 over one, as on Radoslaw e-mail) is left
    out, with the count and a note; from ``min_subset_events`` on it is reported."""
    acc = LinkMetricAccumulator(min_subset_events=5)
    ind = torch.arange(10) < num_inductive
    acc.add(torch.rand(10) + 1, torch.rand(10), ind)
    out = acc.compute()
    assert out["num_inductive"] == num_inductive
    assert ("inductive_ap" in out) is reported and ("inductive_mrr" in out) is reported
    if reported or num_inductive == 0:
        assert "inductive_note" not in out
    else:
        assert out["inductive_note"] == (f"inductive metrics left out: {num_inductive} inductive "
                                         f"events, fewer than eval.min_subset_events=5")


def test_accumulator_rejects_missing_negatives():
    acc = LinkMetricAccumulator()
    with pytest.raises(ValueError, match="negatives"):
        acc.add(torch.rand(4), torch.rand(0))
    assert acc.compute() == {}
