"""Guards the accuracy numbers depend on: no future information reaches a test prediction.

The benchmark (``experiments/bench_accuracy.py``) runs the whole pipeline (``run_experiment``);
these tests run the same pipeline on a small CSV file with a strong temporal pattern and check
that scrambling the time of the test events is either refused (``require_sorted``) or costs
accuracy, and that changing events after a test event never changes its score. Model-level
leak tests live in ``tests/test_models.py``; metrics against scikit-learn in
``tests/test_metrics.py``; EdgeBank's hand-computed AP in ``tests/test_edgebank.py``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pyg_tgl._core",
                    reason="the C++ sampler is not built (python setup.py build_ext --inplace)")

from pyg_tgl.train.experiment import ConfigError, run_experiment  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(autouse=True)
def _threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def sliding_window_events(num_events: int = 3000, users: int = 60, items: int = 120,
                          active: int = 4, seed: int = 0) -> np.ndarray:
    """Rows ``(src, dst, t)``: every user talks to one of the ``active`` items of a window that
    slides over all item ids during the stream, so *when* an event happens tells which items are
    likely; an event moved to another time lands among the wrong items."""
    g = np.random.default_rng(seed)
    t = np.sort(g.integers(0, 100_000, num_events))
    src = g.integers(0, users, num_events)
    start = (t / 100_000 * (items - active)).astype(np.int64)
    dst = users + start + g.integers(0, active, num_events)
    return np.stack([src, dst, t], axis=1)


def write_csv(path: Path, rows: np.ndarray) -> Path:
    with open(path, "w") as f:
        f.write("src,dst,t\n")
        for s, d, t in rows.tolist():
            f.write(f"{s},{d},{t}\n")
    return path


def shuffle_test_times(rows: np.ndarray, seed: int = 1) -> np.ndarray:
    """The test events (last 15% by time) keep their pairs but get each other's timestamps;
    the file is then out of time order."""
    out = rows.copy()
    start = int(len(rows) * 0.85)
    g = np.random.default_rng(seed)
    out[start:, 2] = g.permutation(out[start:, 2])
    return out


def config(path: Path, tmp: Path, *extra: str, model: str = "tgn"):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose(config_name="config", overrides=[
            f"model={model}", "data=csv", f"data.path={path}", "data.cache=false", "quiet=true",
            "train.epoch=3", "train.batch_size=100", "train.lr=0.003", "eval.memory_carry=true",
            "eval.num_negatives=1", "hardware.device=cpu", "hardware.num_threads=1",
            "hardware.sampler_threads=1", "model.gnn.dim_out=32", "model.gnn.dim_time=32",
            *(["model.memory.dim_out=32", "model.memory.dim_time=32"] if model == "tgn" else []),
            *extra])


def _test_ap(path: Path, tmp: Path, *extra: str) -> float:
    cfg = config(path, tmp, *extra)
    return run_experiment(cfg, tmp, progress=False)["test"]["ap"]


def test_shuffled_test_timestamps_are_refused_or_cost_accuracy(tmp_path):
    rows = sliding_window_events()
    clean = write_csv(tmp_path / "clean.csv", rows)
    shuffled = write_csv(tmp_path / "shuffled.csv", shuffle_test_times(rows))

    # Loudly: with require_sorted the run stops before training, naming the file and row.
    with pytest.raises(ConfigError, match=r"shuffled\.csv.*(row|line)"):
        config_run = config(shuffled, tmp_path / "r0", "data.require_sorted=true")
        run_experiment(config_run, tmp_path / "r0", progress=False)

    # Quietly sorted, the scrambled test events are scored at times that do not fit them: a
    # model that uses only the past must lose accuracy (a model that saw the future would not).
    ap_clean = _test_ap(clean, tmp_path / "r1")
    ap_shuffled = _test_ap(shuffled, tmp_path / "r2")
    assert ap_clean > 0.8, f"the pattern was not learned (test AP {ap_clean:.3f})"
    assert ap_shuffled < ap_clean - 0.1, (
        f"test AP barely moved when the test events' times were scrambled ({ap_clean:.3f} -> "
        f"{ap_shuffled:.3f}): the predictions do not depend on when an event happens")


@pytest.mark.parametrize("pair", [[], ["model.gnn.pair_features=true"],
                                  ["model.gnn.pair_history=true",
                                   "model.gnn.pair_history_recency=true",
                                   "model.gnn.pair_history_nodes=true"]],
                         ids=["no_pair", "pair_features", "pair_history"])
def test_changing_the_future_changes_no_earlier_test_score(tmp_path, pair):
    """Events after the first test batches are replaced by random pairs: the scores of the
    events before them must be bit-identical, those after must change (TGN, without and with
    the predictor's pair features or pair history)."""
    from pyg_tgl.train.experiment import Context, build_model, load_data
    from pyg_tgl.train.loop import LinkTrainer
    from pyg_tgl.train.schedule import BatchSchedule

    rows = sliding_window_events(num_events=1500)
    changed = rows.copy()
    cut = int(len(rows) * 0.92)
    g = np.random.default_rng(5)
    # Permuting the destinations keeps the set of destination ids (the negatives' range).
    changed[cut:, 1] = g.permutation(changed[cut:, 1])
    scores = []
    for name, r in (("a", rows), ("b", changed)):
        cfg = config(write_csv(tmp_path / f"{name}.csv", r), tmp_path / name, *pair)
        torch.manual_seed(0)
        ds = load_data(cfg)
        ctx = Context(cfg, ds, torch.device("cpu"))
        model = build_model(cfg, ds, torch.device("cpu"))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        split = ctx.split
        sched = BatchSchedule(split["train"], 100, "chronological", 1, "offset", seed=0)
        trainer = LinkTrainer(model, opt, ctx.loader(split["train"], 1, "random", 0), sched,
                              device=torch.device("cpu"), progress=False)
        trainer.train_epoch(0)
        trainer.evaluate(ctx.loader(split["val"], 1, "random", 1), score=False)
        model.eval()
        pos = []
        with torch.no_grad():
            for batch in ctx.loader(split["test"], 1, "random", 2):
                p, _, update = model.step(batch)
                model.apply_update(update)
                pos.append(p)
        scores.append((torch.cat(pos), split["test"].start))
    (a, start), (b, _) = scores
    # Events strictly before the first changed event's time cannot depend on it.
    t_cut = rows[cut, 2]
    before = torch.from_numpy(rows[start:, 2] < t_cut)
    assert before.any() and (~before).any()
    assert torch.equal(a[before], b[before]), "a test score changed when only later events did"
    assert not torch.equal(a[~before], b[~before])


def test_pair_features_count_past_neighbours_by_hand():
    """``pair_features`` against a direct count over the events strictly before each query, on a
    batch with history and on the stream's first event (no sampled edge at all)."""
    from torch_geometric.data import TemporalData

    from pyg_tgl.data.loader import TemporalNeighborLoader
    from pyg_tgl.nn.predictors import pair_features

    src = torch.tensor([0, 1, 0, 2, 0, 1, 3, 0, 1, 2])
    dst = torch.tensor([1, 0, 1, 0, 2, 3, 0, 1, 3, 1])
    t = torch.tensor([1., 2., 3., 4., 5., 6., 7., 8., 8., 9.], dtype=torch.float64)
    data = TemporalData(src=src, dst=dst, t=t)
    k = 3

    def recent(node: int, time: float):
        # Undirected history of `node` strictly before `time`, most recent first.
        before = [(float(t[e]), e) for e in range(10) if t[e] < time
                  and node in (int(src[e]), int(dst[e]))]
        before.sort(reverse=True)
        return [(int(dst[e]) if int(src[e]) == node else int(src[e]), te)
                for te, e in before[:k]]

    def last_gap(node: int, other: int, time: float) -> float:
        gaps = [time - te for n, te in recent(node, time) if n == other]
        return float(np.log1p(min(gaps))) if gaps else 0.0

    for events in (slice(6, 10), slice(0, 1)):
        loader = TemporalNeighborLoader(data, [k], strategy="recent", batch_size=4, num_neg=2,
                                        events=events, seed=0, num_threads=1)
        batch = next(iter(loader))
        got = pair_features(batch, recency=True)
        b = batch.num_events
        cand = batch.root_nodes[b:].tolist()
        for j, v in enumerate(cand):
            i = j % b
            u, time = int(batch.src[i]), float(batch.t[i])
            c_uv = [n for n, _ in recent(u, time)].count(v)
            c_vu = [n for n, _ in recent(v, time)].count(u)
            want = [np.log1p(c_uv), np.log1p(c_vu), float(c_uv > 0), float(c_vu > 0),
                    last_gap(u, v, time), last_gap(v, u, time)]
            assert got[j].tolist() == pytest.approx(want), f"candidate {j} ({u} -> {v})"
        assert torch.equal(pair_features(batch), got[:, :4])
        if events.start == 6:
            assert got[:b, 2].any(), "the hand-made stream should contain repeated pairs"
        else:
            assert batch.blocks[-1][0].dt.numel() == 0, "the first event has no history"


def _since_latest(t: float, earlier: np.ndarray) -> float:
    return float(np.log1p(t - earlier.max())) if earlier.size else 0.0


@pytest.mark.parametrize("nodes", [False, True], ids=["pairs", "pairs_and_nodes"])
def test_pair_history_counts_earlier_batches_by_hand(nodes):
    """``PairHistory`` against direct counts over the events of earlier batches, both
    directions, with the time since the pair's latest event, and with ``nodes`` the source's
    sent and the destination's received counts and the time since each one's latest event;
    reset forgets everything."""
    from pyg_tgl.nn import PairHistory

    g = np.random.default_rng(3)
    src, dst = g.integers(0, 6, 60), g.integers(0, 6, 60)
    t = np.sort(g.integers(0, 1000, 60)).astype(np.float64)
    hist = PairHistory(6, recency=True, nodes=nodes)
    for start in range(0, 60, 10):
        q = slice(start, start + 10)
        got = hist.features(torch.from_numpy(src[q]), torch.from_numpy(dst[q]),
                            torch.from_numpy(t[q]))
        for i in range(start, start + 10):
            want = []
            for a, b in ((src[i], dst[i]), (dst[i], src[i])):
                want.append(np.log1p(np.sum((src[:start] == a) & (dst[:start] == b))))
            for a, b in ((src[i], dst[i]), (dst[i], src[i])):
                want.append(_since_latest(t[i], t[:start][(src[:start] == a) & (dst[:start] == b)]))
            if nodes:
                want += [np.log1p(np.sum(src[:start] == src[i])),
                         np.log1p(np.sum(dst[:start] == dst[i]))]
                for n in (src[i], dst[i]):
                    want.append(_since_latest(t[i], t[:start][(src[:start] == n)
                                                              | (dst[:start] == n)]))
            assert got[i - start].tolist() == pytest.approx(want), f"event {i}"
        hist.update(torch.from_numpy(src[q]), torch.from_numpy(dst[q]), torch.from_numpy(t[q]))
    assert len(hist) == len(set(zip(src.tolist(), dst.tolist())))
    state = hist.history_state()
    hist.reset_state()
    assert len(hist) == 0
    assert hist.features(torch.tensor([0]), torch.tensor([1]), torch.tensor([5.0])).abs().sum() == 0
    hist.load_history_state(state)
    assert torch.equal(hist.keys, state["keys"])
    assert torch.equal(hist.node_in, state["node_in"]) and len(hist.node_in) == 6 * nodes


def test_pair_history_in_the_model_follows_memory_semantics(tmp_path):
    """Inside ``TemporalGNN`` (memory-less TGAT and TGN): a batch never sees its own events, an
    epoch leaves every distinct training pair in the store, the next epoch starts empty, and a
    checkpoint restores the store."""
    from pyg_tgl.train.experiment import (Context, build_model, load_data, load_model_state,
                                          model_state)
    from pyg_tgl.train.loop import LinkTrainer
    from pyg_tgl.train.schedule import BatchSchedule

    rows = sliding_window_events(num_events=600)
    for name, extra in (("tgat", []), ("tgn", ["model.gnn.pair_history_nodes=true"])):
        cfg = config(write_csv(tmp_path / "s.csv", rows), tmp_path / name,
                     "model.gnn.pair_history=true", *extra, model=name)
        ds = load_data(cfg)
        ctx = Context(cfg, ds, torch.device("cpu"))
        model = build_model(cfg, ds, torch.device("cpu"))
        train = ctx.split["train"]
        first = next(iter(ctx.loader(train, 1, "random", 0)))
        pair = model.pair_input(first, torch.device("cpu"))
        assert pair.shape[1] == model.edge_predictor.dim_pair
        assert not pair[:, -model.pair_history.width:].any(), \
            "the first batch must not see its own events"
        trainer = LinkTrainer(model, torch.optim.Adam(model.parameters(), lr=1e-3),
                              ctx.loader(train, 1, "random", 0),
                              BatchSchedule(train, 100, "chronological", 1, "offset", seed=0),
                              device=torch.device("cpu"), progress=False)
        trainer.train_epoch(0)
        seen = {(int(s), int(d)) for s, d in rows[train][:, :2]}
        assert len(model.pair_history) == len(seen)
        if extra:
            assert model.pair_history.node_out.sum() == len(rows[train])
        saved = model_state(model)
        model.reset_state()
        assert len(model.pair_history) == 0
        load_model_state(model, saved)
        assert len(model.pair_history) == len(seen)


def test_time_shift_starts_at_zero_and_keeps_the_split(tmp_path):
    """``time_shift`` moves Unix times to start at 0 (JODIE's projection and a fresh node's first
    memory update assume it) without changing order or split; cached builds of the shifted and
    the raw data set do not mix."""
    from pyg_tgl.data.datasets import load_dataset

    rows = sliding_window_events(num_events=400)
    rows[:, 2] += 1_100_000_000
    path = write_csv(tmp_path / "unix.csv", rows)
    for cache in (False, True):
        opts = dict(path=str(path), cache=cache, cache_dir=str(tmp_path / "cache"))
        raw = load_dataset("csv", time_shift=False, **opts)
        shifted = load_dataset("csv", time_shift=True, **opts)
        assert float(raw.data.t[0]) == float(rows[0, 2])
        assert float(shifted.data.t[0]) == 0.0
        assert torch.equal(shifted.data.t, raw.data.t - raw.data.t[0])
        assert torch.equal(shifted.data.src, raw.data.src)
        assert shifted.split["train"] == raw.split["train"]
        assert shifted.split["test"] == raw.split["test"]


def _bench_module():
    """``experiments/bench_accuracy.py`` (the repository root is not on the test path)."""
    import sys
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    try:
        from experiments import bench_accuracy
    finally:
        sys.path.remove(str(root))
    return bench_accuracy


def test_accuracy_benchmark_configurations_are_valid():
    """Every model x data set of ``experiments/bench_accuracy.py`` composes into a configuration
    the pipeline accepts, with the protocol and the per-model / per-data-set options applied
    (DySAT's snapshot length scales with the data set's time span, TGAT samples recent
    neighbours)."""
    bench = _bench_module()
    from pyg_tgl.config import check_config

    for data in bench.DATASETS:
        for model in bench.MODELS:
            cfg = bench.compose(model, data, 0, [])
            check_config(cfg)
            assert (cfg.train.epoch, cfg.train.batch_size, cfg.train.lr) == (5, 200, 1e-4)
            assert cfg.eval.memory_carry and cfg.model.gnn.pair_features
        assert bench.compose("dysat", data, 0, []).model.sampling.duration == \
            bench.DYSAT_SNAPSHOT_SECONDS[data]
        assert bench.compose("tgat", data, 0, []).model.sampling.strategy == "recent"
    assert bench.compose("dysat", "enron", 0, ["model.sampling.duration=10000"]) \
        .model.sampling.duration == 10000, "explicit options must win over the benchmark's"


def test_accuracy_benchmark_resumes_an_interrupted_run(tmp_path, monkeypatch):
    """``--work-dir``: a benchmark run killed after its first epoch is continued by the next call
    from that epoch's checkpoint (it trains only the missing epoch) and reports exactly the row
    of an uninterrupted run."""
    from pyg_tgl.train.loop import LinkTrainer
    bench = _bench_module()
    path = write_csv(tmp_path / "events.csv", sliding_window_events(num_events=1500))
    options = [f"data.path={path}", "data.cache=false", "train.epoch=2", "train.batch_size=100",
               "eval.num_negatives=5", "model.gnn.dim_out=16", "model.gnn.dim_time=16"]
    uninterrupted = bench.run_pyg_tgl("tgat", "csv", 0, options, out_dir=tmp_path / "full")

    trained_epochs = []
    train_epoch = LinkTrainer.train_epoch

    def killed_in_second_epoch(self, epoch, *args, **kwargs):
        trained_epochs.append(epoch)
        if epoch == 1 and len(trained_epochs) == 2:
            raise KeyboardInterrupt  # the run dies after epoch 0 was checkpointed
        return train_epoch(self, epoch, *args, **kwargs)

    monkeypatch.setattr(LinkTrainer, "train_epoch", killed_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        bench.run_pyg_tgl("tgat", "csv", 0, options, out_dir=tmp_path / "killed")
    resumed = bench.run_pyg_tgl("tgat", "csv", 0, options, out_dir=tmp_path / "killed")
    assert trained_epochs == [0, 1, 1], f"the rerun trained epochs {trained_epochs[2:]}, not [1]"
    for key in ("test_ap", "test_auc", "test_mrr", "val_ap_per_epoch", "best_epoch"):
        assert resumed[key] == uninterrupted[key], key
