"""The training pipeline in-process: resume equivalence, evaluation protocols, bad options,
node classification and embedding export (small runs on the shipped CollegeMsg data)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from hydra import compose, initialize_config_dir

from pyg_tgl.run import config_dir
from pyg_tgl.train import loop
from pyg_tgl.train.checkpoint import load_checkpoint, save_checkpoint
from pyg_tgl.train.experiment import ConfigError, run_experiment, validate_config
from pyg_tgl.train.node import TemporalEmbedder, train_classifier

# Small and fast: 2,400 events of CollegeMsg, batches of 200.
SMALL = ["quiet=true", "train.max_events=2400", "train.batch_size=200", "eval.num_negatives=4"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    # Processed data sets go to a per-session folder, not the user's cache.
    monkeypatch.setenv("PYG_TGL_DATA", str(tmp_path_factory.getbasetemp() / "pyg_tgl_data"))
    torch.set_num_threads(1)


def cfg_of(*overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _without_times(result):
    return [{k: v for k, v in e.items() if not k.startswith("time") and k != "events_per_s"}
            for e in result["epochs"]]


def _test_metrics(result):
    return {k: v for k, v in result["test"].items() if k != "time"}


def _killed_at_training_batch(n, cfg, out_dir, monkeypatch):
    """Runs ``cfg`` into ``out_dir`` and interrupts it inside its ``n``-th training batch
    (counted over epochs; evaluation batches do not count)."""
    calls = {"n": 0}
    real_loss = loop.link_loss

    def dying_loss(*args, **kwargs):
        calls["n"] += torch.is_grad_enabled()
        if calls["n"] == n:
            raise KeyboardInterrupt("killed mid-epoch")
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(loop, "link_loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, out_dir, progress=False)
    monkeypatch.setattr(loop, "link_loss", real_loss)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch):
    overrides = SMALL + ["train.epoch=3", "schedule=random_chunk", "schedule.reorder=4"]
    full = run_experiment(cfg_of(*overrides), tmp_path / "full", progress=False)

    # Kill the second run in the middle of epoch 1 (its 3rd training batch), after epoch 0's
    # checkpoint was written.
    _killed_at_training_batch(full["epochs"][0]["num_batches"] + 3, cfg_of(*overrides),
                              tmp_path / "killed", monkeypatch)
    partial = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert partial["finished"] is False and len(partial["epochs"]) == 1

    resumed = run_experiment(cfg_of(*overrides, "resume=true"), tmp_path / "killed",
                             progress=False)
    assert _without_times(resumed) == _without_times(full)
    assert _test_metrics(resumed) == _test_metrics(full)
    assert resumed["best_epoch"] == full["best_epoch"]
    # The random chunk schedule really moved the batch boundaries.
    assert len({e["schedule"] for e in full["epochs"]}) > 1

    # Resuming with different options is refused, naming them.
    with pytest.raises(ConfigError, match="train"):
        run_experiment(cfg_of(*overrides, "resume=true", "train.lr=0.01"),
                       tmp_path / "killed", progress=False)
    with pytest.raises(ConfigError, match="no checkpoint"):
        run_experiment(cfg_of(*overrides, "resume=true"), tmp_path / "empty", progress=False)


@pytest.mark.parametrize("model,prefetch", [("tgn", True), ("apan", False)])
def test_kill_inside_an_epoch_resumes_from_its_mid_epoch_checkpoint(tmp_path, monkeypatch,
                                                                    model, prefetch):
    """``train.checkpoint_every`` batches: a run killed inside its first epoch (nothing was
    saved at an epoch's end yet) resumes from the last mid-epoch checkpoint and trains exactly
    what an uninterrupted run trains (memory, mailbox, optimizer, loader streams, RNG), also when
    the loader has already sampled batches ahead in its prefetch thread."""
    overrides = SMALL + [f"model={model}", "train.epoch=2", "train.checkpoint_every=3",
                         f"hardware.prefetch={str(prefetch).lower()}"]
    full = run_experiment(cfg_of(*overrides), tmp_path / "full", progress=False)
    # Epoch 0, batch 5: after the checkpoint at batch 3.
    _killed_at_training_batch(5, cfg_of(*overrides), tmp_path / "killed", monkeypatch)
    state = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")
    assert state["epoch"] == -1 and state["mid_epoch"]["next_batch"] == 3
    resumed = run_experiment(cfg_of(*overrides, "resume=true"), tmp_path / "killed",
                             progress=False)
    assert _without_times(resumed) == _without_times(full)
    assert _test_metrics(resumed) == _test_metrics(full)


def test_resume_before_any_checkpoint_starts_over(tmp_path, monkeypatch):
    """A run killed before its first checkpoint has nothing to resume: ``resume=true`` runs it
    from the beginning (with a warning) instead of refusing; a folder without a run is refused."""
    overrides = SMALL + ["model=jodie", "train.epoch=1", "train.checkpoint_every=null"]
    monkeypatch.setattr(loop, "link_loss", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt("killed")))
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg_of(*overrides), tmp_path / "killed", progress=False)
    monkeypatch.undo()
    assert not (tmp_path / "killed" / "checkpoints" / "last.pt").exists()
    resumed = run_experiment(cfg_of(*overrides, "resume=true"), tmp_path / "killed",
                             progress=False)
    full = run_experiment(cfg_of(*overrides), tmp_path / "full", progress=False)
    assert _without_times(resumed) == _without_times(full)
    with pytest.raises(ConfigError, match="holds no run"):
        run_experiment(cfg_of(*overrides, "resume=true"), tmp_path / "nothing", progress=False)


def test_checkpoints_from_before_an_option_existed_resume(tmp_path):
    # A checkpoint written before model.sampling.root_time / dedup existed resumes under the
    # values that reproduce it, and is refused under any other value, naming the option.
    overrides = SMALL + ["model=tgat", "model.sampling.strategy=recent"]
    run_experiment(cfg_of(*overrides, "train.epoch=1"), tmp_path, progress=False)
    last = tmp_path / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    for key in ("root_time", "dedup"):
        del state["config"]["model"]["sampling"][key]
    save_checkpoint(state, last)

    with pytest.raises(ConfigError, match=r"\(model\.sampling\.root_time\)"):
        run_experiment(cfg_of(*overrides, "train.epoch=2", "resume=true",
                              "model.sampling.root_time=batch"), tmp_path, progress=False)
    resumed = run_experiment(cfg_of(*overrides, "train.epoch=2", "resume=true"), tmp_path,
                             progress=False)
    assert [e["epoch"] for e in resumed["epochs"]] == [0, 1]


def test_protocols_early_stopping_and_outputs(tmp_path):
    tgl = run_experiment(cfg_of(*SMALL, "model=jodie", "train.epoch=2"), tmp_path / "tgl",
                         progress=False)
    carry = run_experiment(cfg_of(*SMALL, "model=jodie", "train.epoch=2",
                                  "eval.memory_carry=true"), tmp_path / "carry", progress=False)
    assert tgl["protocol"] == "tgl" and carry["protocol"] == "memory_carry"
    # Same training (same seed), different test memory: the protocols are really different.
    assert _without_times(tgl) == _without_times(carry)
    assert _test_metrics(tgl)["ap"] != _test_metrics(carry)["ap"]
    t = tgl["test"]
    assert t["num_events"] == tgl["split"]["test"][1] - tgl["split"]["test"][0]
    assert t["num_negatives"] == 4
    for key in ("ap", "auc", "mrr", "ap_batch_mean", "inductive_ap"):
        assert 0.0 <= t[key] <= 1.0
    assert 0 < t["num_inductive"] < t["num_events"]
    e = tgl["epochs"][0]
    for key in ("loss", "val_ap", "val_auc", "val_mrr", "time_sample", "time_memory",
                "time_compute", "time_update", "events_per_s"):
        assert math.isfinite(e[key])
    # eval.select=last tests the last epoch whatever the validation scores; export.time writes
    # embeddings at the end of the run.
    last = run_experiment(cfg_of(*SMALL, "model=jodie", "train.epoch=2", "eval.select=last",
                                 "export.time=1e6", "export.nodes=[3,1]"),
                          tmp_path / "last", progress=False)
    assert last["best_epoch"] == 1
    emb = torch.load(tmp_path / "last" / "embeddings.pt", weights_only=True)
    assert emb["nodes"].tolist() == [3, 1] and emb["embeddings"].shape == (2, 100)


def test_eval_batch_size_changes_the_evaluation_only(tmp_path, monkeypatch):
    """``eval.batch_size``: null and the training batch size are the same run; a smaller one
    batches validation, replay and test by that size, trains identically (same losses) and
    scores the test with fresher memory (other scores)."""
    import pyg_tgl.data.loader as loader_module
    sizes = []

    class RecordingLoader(loader_module.TemporalNeighborLoader):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            sizes.append(self.batch_size)

    monkeypatch.setattr(loader_module, "TemporalNeighborLoader", RecordingLoader)
    base = [*SMALL, "model=jodie", "train.epoch=1"]
    default = run_experiment(cfg_of(*base), tmp_path / "default", progress=False)
    same = run_experiment(cfg_of(*base, "eval.batch_size=200"), tmp_path / "same", progress=False)
    sizes.clear()
    fine = run_experiment(cfg_of(*base, "eval.batch_size=50"), tmp_path / "fine", progress=False)
    # train, val, test, replay of train and val (TGL's protocol resets memory before the test)
    assert sizes == [200, 50, 50, 50, 50]
    assert _without_times(same) == _without_times(default)
    assert _test_metrics(same) == _test_metrics(default)
    assert [e["loss"] for e in fine["epochs"]] == [e["loss"] for e in default["epochs"]]
    assert _test_metrics(fine)["ap"] != _test_metrics(default)["ap"]


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path, monkeypatch):
    real_evaluate = loop.LinkTrainer.evaluate

    def flat_validation(self, loader, *args, **kwargs):
        out = real_evaluate(self, loader, *args, **kwargs)
        out["ap"] = 0.5  # validation never improves after the first epoch
        return out

    monkeypatch.setattr(loop.LinkTrainer, "evaluate", flat_validation)
    stop = run_experiment(cfg_of(*SMALL, "model=jodie", "train.epoch=6", "train.patience=2"),
                          tmp_path / "stop", progress=False)
    # Epoch 0 is best; epochs 1 and 2 do not improve; epoch 3 never starts.
    assert stop["stopped_early"] and len(stop["epochs"]) == 3 and stop["best_epoch"] == 0


def test_sampling_dedup_reaches_the_sampler_and_keeps_recent_runs(tmp_path, monkeypatch):
    """``model.sampling.dedup``: null deduplicates the deeper hops where that is exact (recent
    sampling) and not under TGL's uniform sampling; true and false force it. Under recent
    sampling TGAT scores every split alike either way. The learning rate is ~0: Adam turns float
    rounding differences of near-zero gradients into full steps, so two trainings part within a
    few batches however exact the forward is."""
    import pyg_tgl.data.loader as loader_module
    flags = []

    class RecordingLoader(loader_module.TemporalNeighborLoader):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            flags.append(self.sampler.dedup)

    monkeypatch.setattr(loader_module, "TemporalNeighborLoader", RecordingLoader)
    # Without dropout, whose masks depend on how many rows each layer has.
    base = [*SMALL, "model=tgat", "train.epoch=1", "train.dropout=0", "train.att_dropout=0",
            "train.lr=1e-12"]
    recent = [*base, "model.sampling.strategy=recent"]
    dedup = run_experiment(cfg_of(*recent), tmp_path / "dedup", progress=False)
    assert flags and all(flags)
    flags.clear()
    plain = run_experiment(cfg_of(*recent, "model.sampling.dedup=false"), tmp_path / "plain",
                           progress=False)
    assert flags and not any(flags)
    for a, b in zip(_without_times(plain), _without_times(dedup)):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float):
                assert a[k] == pytest.approx(b[k], rel=1e-5), k
    for k, v in _test_metrics(plain).items():
        if isinstance(v, float):
            assert _test_metrics(dedup)[k] == pytest.approx(v, rel=1e-5), k
    # TGL's uniform draws stay independent unless asked.
    for option, expected in ((None, False), ("true", True)):
        flags.clear()
        extra = [] if option is None else [f"model.sampling.dedup={option}"]
        run_experiment(cfg_of(*base, "train.max_events=1200", *extra),
                       tmp_path / f"uniform{option}", progress=False)
        assert flags and all(f == expected for f in flags)


@pytest.mark.parametrize("overrides,match", [
    (["schedule=random_chunk", "train.batch_size=8"], r"train.batch_size=8 < schedule.reorder"),
    (["model=dysat", "model.sampling.duration=0"], r"model.sampling.duration > 0"),
    (["model=tgn", "model.sampling.duration=100"], r"model.sampling.history > 1"),
    (["eval.neg_sampling=hist"], r"eval.neg_sampling='hist'.*'historical'"),
    (["task.name=graph"], r"task.name='graph'.*\['link', 'node'\]"),
    (["train.batch_size=0"], r"train.batch_size=0: expected an integer >= 1"),
    (["eval.batch_size=0"], r"eval.batch_size=0: expected an integer >= 1"),
    (["model=tgn", "model.sampling.root_time=query"],
     r"model.sampling.root_time='query'.*\['event', 'batch'\]"),
])
def test_bad_options_one_clear_line(overrides, match):
    with pytest.raises(ConfigError, match=match) as info:
        validate_config(cfg_of(*overrides))
    assert "\n" not in str(info.value)


def test_bad_data_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"data.path='.*nope.csv'.*not found"):
        run_experiment(cfg_of("data=csv", f"data.path={tmp_path}/nope.csv"), tmp_path / "r",
                       progress=False)
    with pytest.raises(ConfigError, match="task=node needs node labels"):
        run_experiment(cfg_of("task=node", *SMALL), tmp_path / "r2", progress=False)


def test_inductive_flags_agree_with_the_data_set():
    from pyg_tgl.train.experiment import Context, load_data
    cfg = cfg_of("quiet=true")
    ds = load_data(cfg)
    ctx = Context(cfg, ds, torch.device("cpu"))
    test = ds.split["test"]
    assert torch.equal(ctx.inductive[test], ds.inductive_test_mask)
    assert not ctx.inductive[ds.split["train"]].any()
    # By definition: an endpoint absent from every training event.
    seen = torch.zeros(ds.num_nodes, dtype=torch.bool)
    seen[ds.data.src[ds.split["train"]]] = True
    seen[ds.data.dst[ds.split["train"]]] = True
    val = ds.split["val"]
    assert torch.equal(ctx.inductive[val], ~seen[ds.data.src[val]] | ~seen[ds.data.dst[val]])


def test_classifier_learns_binary_and_multiclass():
    g = torch.Generator().manual_seed(0)
    for classes in (2, 4):
        emb, ys = {}, {}
        for part, n in (("train", 600), ("val", 200), ("test", 200)):
            y = torch.randint(classes, (n,), generator=g)
            centers = torch.eye(8)[:classes] * 3
            emb[part] = centers[y] + torch.randn(n, 8, generator=g)
            ys[part] = y
        out = train_classifier(emb, ys, classes, dim=16, lr=0.01, epochs=30, batch_size=128,
                               posneg=classes == 2)
        assert out["metric"] == ("ap" if classes == 2 else "f1_micro")
        assert out["test"] > 0.9, out
        assert out["num_labels"] == {"train": 600, "val": 200, "test": 200}


def test_embedder_replays_exactly_the_events_before_the_query(tmp_path):
    from pyg_tgl.train.experiment import Context, build_model, load_data
    cfg = cfg_of(*SMALL)
    ds = load_data(cfg)
    ctx = Context(cfg, ds, torch.device("cpu"))
    model = build_model(cfg, ds, torch.device("cpu"))
    loader = ctx.loader(slice(0, 2400), 1, "random", 0)
    emb = TemporalEmbedder(model, loader, 2400, 200)
    t = ds.data.t
    query = float(t[1000])
    done = emb.advance_to(query)
    assert done == int((t[:2400] < query).sum())  # strictly earlier events only
    assert emb.advance_to(query) == 0  # nothing twice
    nodes = torch.tensor([int(ds.data.src[0]), int(ds.data.dst[5])])
    out = emb.embed(nodes, torch.full((2,), query, dtype=torch.float64))
    assert out.shape == (2, 100) and torch.isfinite(out).all()
    # Memory really moved: the same query before any event differs.
    fresh = TemporalEmbedder(model, loader, 2400, 200)
    before = fresh.embed(nodes, torch.full((2,), query, dtype=torch.float64))
    assert not torch.allclose(before, out)
    with pytest.raises(ValueError, match="sorted"):
        fresh.embed_queries(nodes, torch.tensor([5.0, 1.0], dtype=torch.float64), 10)


def test_node_classification_on_wikipedia(tmp_path, shared_data, monkeypatch):
    from pyg_tgl.train.experiment import load_data
    monkeypatch.setenv("PYG_TGL_SHARED_DATA", str(shared_data))
    # 12,000 events hold 17 of the 217 ban labels (some in each split).
    cfg = cfg_of("quiet=true", "data=wikipedia_nofeat", "task=node", "model=jodie",
                 "train.epoch=1", "train.max_events=12000", "eval.num_negatives=1",
                 "task.epoch=3")
    res = run_experiment(cfg, tmp_path / "node", progress=False)
    node = res["node"]
    assert node["metric"] == "ap"  # binary ban labels
    assert 0.0 <= node["test"] <= 1.0 and 0.0 <= node["val"] <= 1.0
    labels = load_data(cfg).node_labels
    last_time = load_data(cfg).data.t[11999]
    assert sum(node["num_labels"].values()) == int((labels.t <= last_time).sum())
    assert json.loads((tmp_path / "node" / "metrics.json").read_text())["node"]["metric"] == "ap"
