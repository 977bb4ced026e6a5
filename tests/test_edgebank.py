"""EdgeBank (pyg_tgl.nn.edgebank): hand-computed AP on a small stream, window expiry, the
vectorised store against a dictionary, checkpoints, errors, the published number on real data."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from pyg_tgl.data.batch import TemporalBatch
from pyg_tgl.nn.edgebank import EdgeBank
from pyg_tgl.train.metrics import average_precision, roc_auc


def make_batch(events, neg_dst) -> TemporalBatch:
    src = torch.tensor([e[0] for e in events])
    dst = torch.tensor([e[1] for e in events])
    t = torch.tensor([float(e[2]) for e in events], dtype=torch.float64)
    neg = torch.tensor(neg_dst, dtype=torch.long)
    k = neg.numel() // src.numel()
    return TemporalBatch(src=src, dst=dst, t=t, eid=torch.arange(src.numel()), neg_dst=neg,
                         root_nodes=torch.cat([src, dst, neg]),
                         root_ts=torch.cat([t, t, t.repeat(k)]))


# Three batches of two events, one negative each: (events, negative destinations).
STREAM = [
    ([(0, 3, 1), (1, 4, 2)], [5, 3]),  # empty memory: everything unseen
    ([(0, 3, 3), (2, 5, 4)], [4, 3]),  # (0,3) repeats; (2,5) new; negatives (0,4), (2,3) new
    ([(1, 4, 5), (0, 5, 6)], [3, 3]),  # (1,4) repeats; (0,5) new; negative (0,3) WAS seen
]


def run_stream(bank: EdgeBank):
    pos, neg = [], []
    for events, negs in STREAM:
        batch = make_batch(events, negs)
        p, n = bank.score_batch(batch)
        bank.update_memory(batch)
        pos.append(p)
        neg.append(n)
    return torch.cat(pos), torch.cat(neg)


def test_stream_scores_and_ap_by_hand():
    bank = EdgeBank(6)
    pos, neg = run_stream(bank)
    assert pos.tolist() == [0, 0, 1, 0, 1, 0]
    assert neg.tolist() == [0, 0, 0, 0, 0, 1]
    assert bank.num_pairs == 4  # (0,3), (1,4), (2,5), (0,5)

    # AP by hand: 12 predictions, 6 positive. Threshold "score >= 1" keeps 3 predictions, 2 of them
    # positive: precision 2/3 at recall 2/6. Threshold "score >= 0" keeps all: precision 6/12 at
    # recall 1. AP = sum (R_n - R_{n-1}) P_n = (2/6)(2/3) + (1 - 2/6)(6/12) = 5/9.
    ap_by_hand = (2 / 6) * (2 / 3) + (1 - 2 / 6) * (6 / 12)
    assert ap_by_hand == pytest.approx(5 / 9)
    # AUC by hand over the 36 (pos, neg) pairs: 2 seen positives beat 5 unseen negatives (10
    # wins); ties: 2 * 1 (both seen) + 4 * 5 (both unseen) = 22 count one half each.
    auc_by_hand = (10 + 0.5 * 22) / 36

    y = torch.cat([torch.ones(6), torch.zeros(6)])
    s = torch.cat([pos, neg])
    assert average_precision_score(y.numpy(), s.numpy()) == pytest.approx(ap_by_hand)
    assert average_precision(y, s) == pytest.approx(ap_by_hand)
    assert roc_auc_score(y.numpy(), s.numpy()) == pytest.approx(auc_by_hand)
    assert roc_auc(y, s) == pytest.approx(auc_by_hand)


def test_pairs_are_directed_and_reset_forgets():
    bank = EdgeBank(4)
    bank.update(torch.tensor([0]), torch.tensor([1]), torch.tensor([0.0]))
    assert bank.score(torch.tensor([0, 1]), torch.tensor([1, 0])).tolist() == [1.0, 0.0]
    bank.reset_state()
    assert bank.num_pairs == 0
    assert bank.score(torch.tensor([0]), torch.tensor([1])).tolist() == [0.0]


def test_time_window_expiry():
    bank = EdgeBank(5, mode="time_window", time_window=2.0)
    bank.update(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([0.0, 1.0]))
    src, dst = torch.tensor([0, 1]), torch.tensor([1, 2])
    assert bank.score(src, dst, torch.tensor([2.0, 2.0])).tolist() == [1.0, 1.0]  # edge inclusive
    assert bank.score(src, dst, torch.tensor([2.5, 2.5])).tolist() == [0.0, 1.0]  # (0,1) expired
    assert bank.score(src, dst, 3.5).tolist() == [0.0, 0.0]  # scalar time, both expired
    # A repeat refreshes the pair; an older duplicate in a later update does not roll it back.
    bank.update(torch.tensor([0, 0]), torch.tensor([1, 1]), torch.tensor([4.0, 3.0]))
    bank.update(torch.tensor([0]), torch.tensor([1]), torch.tensor([0.5]))
    assert bank.score(torch.tensor([0]), torch.tensor([1]), 6.0).tolist() == [1.0]
    assert bank.score(torch.tensor([0]), torch.tensor([1]), 6.01).tolist() == [0.0]
    # The unlimited bank on the same events never forgets.
    inf = EdgeBank(5)
    inf.update(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([0.0, 1.0]))
    assert inf.score(src, dst, torch.tensor([1e9, 1e9])).tolist() == [1.0, 1.0]


def test_time_window_in_score_batch_uses_each_events_time():
    bank = EdgeBank(6, mode="time_window", time_window=1.5)
    bank.update(torch.tensor([0, 2]), torch.tensor([3, 5]), torch.tensor([1.0, 2.0]))
    # Event 0 at t=3 sees (0,3) from t=1 expired; event 1 at t=3 sees (2,5) from t=2.
    batch = make_batch([(0, 3, 3), (2, 5, 3)], [3, 3])  # negatives (0,3) and (2,3)
    pos, neg = bank.score_batch(batch)
    assert pos.tolist() == [0.0, 1.0]
    assert neg.tolist() == [0.0, 0.0]


def test_matches_dictionary_reference_on_random_stream():
    gen = torch.Generator().manual_seed(3)
    n, window = 30, 7.0
    inf, tw = EdgeBank(n), EdgeBank(n, mode="time_window", time_window=window)
    last = {}
    t0 = 0.0
    for _ in range(25):
        b = int(torch.randint(1, 40, (1,), generator=gen))
        src = torch.randint(0, n, (b,), generator=gen)
        dst = torch.randint(0, n, (b,), generator=gen)
        t = t0 + torch.sort(torch.rand(b, generator=gen, dtype=torch.float64) * 3).values
        t0 = float(t[-1])
        qs = torch.randint(0, n, (50,), generator=gen)
        qd = torch.randint(0, n, (50,), generator=gen)
        qt = torch.full((50,), t0, dtype=torch.float64)
        want_inf = [float((a, c) in last) for a, c in zip(qs.tolist(), qd.tolist())]
        want_tw = [float((a, c) in last and last[(a, c)] >= t0 - window)
                   for a, c in zip(qs.tolist(), qd.tolist())]
        assert inf.score(qs, qd, qt).tolist() == want_inf
        assert tw.score(qs, qd, qt).tolist() == want_tw
        inf.update(src, dst, t)
        tw.update(src, dst, t)
        for a, c, s in zip(src.tolist(), dst.tolist(), t.tolist()):
            last[(a, c)] = max(s, last.get((a, c), -math.inf))
        assert inf.num_pairs == len(last)
        assert bool((inf.keys[1:] > inf.keys[:-1]).all())  # sorted, unique


def test_window_from_history_rules():
    t = torch.arange(101, dtype=torch.float64)  # 0..100
    # DyGLib: t_max - quantile(t, 0.85) = 100 - 85; TGB: 0.15 * (100 - 0).
    assert EdgeBank.window_from_history(t, 0.15, rule="dyglib") == pytest.approx(15.0)
    skewed = torch.tensor([0.0, 90.0, 95.0, 100.0])
    assert EdgeBank.window_from_history(skewed, 0.5, rule="dyglib") == pytest.approx(7.5)
    assert EdgeBank.window_from_history(skewed, 0.5, rule="tgb") == pytest.approx(50.0)
    with pytest.raises(ValueError, match="rule"):
        EdgeBank.window_from_history(t, 0.15, rule="other")


def test_state_dict_round_trip_and_mismatch():
    bank = EdgeBank(6, mode="time_window", time_window=3.0)
    run_stream(bank)
    fresh = EdgeBank(6, mode="time_window", time_window=1.0)
    fresh.load_state_dict(bank.state_dict())
    assert fresh.time_window == 3.0
    assert torch.equal(fresh.keys, bank.keys) and torch.equal(fresh.last_t, bank.last_t)
    q = (torch.tensor([0, 1, 2, 0]), torch.tensor([3, 4, 5, 5]), torch.tensor([7.0] * 4))
    assert torch.equal(fresh.score(*q), bank.score(*q))
    with pytest.raises(ValueError, match="num_nodes=6"):
        EdgeBank(7, mode="time_window", time_window=1.0).load_state_dict(bank.state_dict())


def test_bad_input_errors():
    with pytest.raises(ValueError, match="mode"):
        EdgeBank(3, mode="forever")
    with pytest.raises(ValueError, match="needs time_window"):
        EdgeBank(3, mode="time_window")
    with pytest.raises(ValueError, match="only used with mode='time_window'"):
        EdgeBank(3, time_window=1.0)
    bank = EdgeBank(3, mode="time_window", time_window=1.0)
    with pytest.raises(ValueError, match=r"dst\[1\] = 3 is not a node id in \[0, num_nodes=3\)"):
        bank.update(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="needs the event times"):
        bank.update(torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"t\[0\] = nan"):
        bank.update(torch.tensor([0]), torch.tensor([1]), torch.tensor([math.nan]))
    with pytest.raises(TypeError, match="integer node ids"):
        bank.score(torch.tensor([0.0]), torch.tensor([1]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="same length"):
        bank.score(torch.tensor([0, 1]), torch.tensor([1]), torch.tensor([0.0]))


def test_wikipedia_test_ap_matches_published_edgebank(shared_data):
    """EdgeBank_inf on JODIE Wikipedia, the chronological 70/15/15 split, one random negative per
    event: TARGETS.md's 0.918 (negatives over all node ids); DyGLib publishes 0.9035 with
    negatives over the destination side, where our run gives about 0.909."""
    path = shared_data / "wikipedia.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    table = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 1, 2), dtype=np.int64)
    src, dst = torch.from_numpy(table[:, 0]), torch.from_numpy(table[:, 1])
    t = torch.from_numpy(table[:, 2]).double()
    num_nodes = int(max(src.max(), dst.max())) + 1
    test_start = int((t <= float(np.quantile(t.numpy(), 0.85))).sum())

    def test_ap(low: int, high: int) -> float:
        gen = torch.Generator().manual_seed(0)
        bank = EdgeBank(num_nodes)
        bank.update(src[:test_start], dst[:test_start], t[:test_start])
        pos, neg = [], []
        for lo in range(test_start, t.numel(), 200):
            e = slice(lo, min(lo + 200, t.numel()))
            pos.append(bank.score(src[e], dst[e]))
            neg.append(bank.score(src[e], torch.randint(low, high, (e.stop - e.start,),
                                                        generator=gen)))
            bank.update(src[e], dst[e], t[e])
        p, n = torch.cat(pos), torch.cat(neg)
        return average_precision(torch.cat([torch.ones_like(p), torch.zeros_like(n)]),
                                 torch.cat([p, n]))

    assert test_ap(0, num_nodes) == pytest.approx(0.918, abs=0.004)
    assert test_ap(int(dst.min()), int(dst.max()) + 1) == pytest.approx(0.909, abs=0.006)
