"""TGL's five models from conf/model/*.yaml: configs, learning, features, no leakage."""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import average_precision_score
from torch_geometric.data import TemporalData

from pyg_tgl.models import build_model
from pyg_tgl.nn import NodeMemory

pytest.importorskip("pyg_tgl._core",
                    reason="the C++ sampler is not built (python setup.py build_ext --inplace)")
from pyg_tgl.data.loader import TemporalNeighborLoader  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
MODELS = ["jodie", "dysat", "tgat", "tgn", "apan"]


@pytest.fixture(autouse=True)
def _threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(previous)


def load(name: str) -> dict:
    return yaml.safe_load((CONF / f"{name}.yaml").read_text())


def small(name: str, dim: int = 32, duration: Optional[float] = 200.0) -> dict:
    """The shipped configuration with smaller widths (and DySAT snapshots fitted to the toy
    graph's time scale), structure unchanged."""
    cfg = copy.deepcopy(load(name))
    for section in ("memory", "gnn"):
        for key in ("dim_out", "dim_time"):
            if cfg["model"][section].get(key):
                cfg["model"][section][key] = dim
    if cfg["model"]["sampling"].get("history", 1) > 1 and duration is not None:
        cfg["model"]["sampling"]["duration"] = duration
    return cfg


def recency_graph(num_events: int = 3000, users: int = 100, items: int = 100, active: int = 10,
                  span: float = 2000.0, seed: int = 0, edge_dim: int = 0) -> TemporalData:
    """Users pick among the ``active`` items of a window sliding over the item ids: the
    destination of an event has been busy lately, a random item usually not."""
    g = np.random.default_rng(seed)
    t = np.sort(g.uniform(0, span, num_events)).round()
    src = g.integers(0, users, num_events)
    dst = ((t / span) * (items - active) + g.integers(0, active, num_events)).astype(np.int64)
    data = TemporalData(src=torch.from_numpy(src), dst=torch.from_numpy(dst % items + users),
                        t=torch.from_numpy(t))
    if edge_dim:
        data.msg = torch.from_numpy(g.standard_normal((num_events, edge_dim)).astype(np.float32))
    return data


def random_graph(num_events: int = 3000, nodes: int = 100, span: float = 2000.0,
                 seed: int = 0) -> TemporalData:
    """Uniformly random pairs: nothing about an event is predictable before it happens."""
    g = np.random.default_rng(seed)
    src = g.integers(0, nodes, num_events)
    dst = (src + g.integers(1, nodes, num_events)) % nodes
    t = np.sort(g.uniform(0, span, num_events)).round()
    return TemporalData(src=torch.from_numpy(src), dst=torch.from_numpy(dst),
                        t=torch.from_numpy(t))


def loader(data, model_cfg, events, batch_size=100, seed=0, **kw) -> TemporalNeighborLoader:
    s = model_cfg["sampling"]
    neighbors = [] if s.get("no_sample") else list(s["neighbor"])
    return TemporalNeighborLoader(
        data, neighbors, strategy=s.get("strategy", "recent"), batch_size=batch_size,
        events=events, prop_time=bool(s.get("prop_time", False)),
        history=int(s.get("history", 1)), duration=float(s.get("duration", 0) or 0),
        seed=seed, num_threads=1, **kw)


def bce(pos, neg):
    logits = torch.cat([pos, neg])
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]))


def train_and_eval(model, train_loader, test_loader, epochs, lr, leaky=False) -> float:
    """TGL's loop: reset state per epoch, score, step, then write memory; test continues from the
    training state. ``leaky`` scores again after writing the batch's own memory (a bug)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        model.reset_state()
        for batch in train_loader:
            opt.zero_grad()
            pos, neg, update = model.step(batch)
            if leaky:
                model.apply_update(update)
                pos, neg, update = model.step(batch)
            bce(pos, neg).backward()
            opt.step()
            model.apply_update(update)
    model.eval()
    y, p = [], []
    with torch.no_grad():
        for batch in test_loader:
            pos, neg, update = model.step(batch)
            if leaky:
                model.apply_update(update)
                pos, neg, update = model.step(batch)
            model.apply_update(update)
            y += [1] * pos.numel() + [0] * neg.numel()
            p += torch.cat([pos, neg]).tolist()
    return average_precision_score(y, p)


# -- configurations -------------------------------------------------------------------------------

TGL_VALUES = {  # from TGL's config/*.yml
    "tgn": dict(neighbor=[10], strategy="recent", layer=1, memory="node", update="gru",
                mailbox=1, arch="transformer_attention", dim=100, lr=1e-4, dropout=0.2, epoch=100),
    "tgat": dict(neighbor=[10, 10], strategy="uniform", layer=2, memory="none",
                 arch="transformer_attention", dim=100, lr=1e-4, dropout=0.1, epoch=100),
    "dysat": dict(neighbor=[10, 10], strategy="uniform", layer=2, memory="none", history=3,
                  duration=10000, arch="transformer_attention", dim=100, lr=1e-4, dropout=0.1,
                  epoch=50),
    "jodie": dict(memory="node", update="rnn", mailbox=1, arch="identity", lr=1e-4,
                  dropout=0.1, epoch=100),
    "apan": dict(neighbor=[10], strategy="recent", layer=1, memory="node",
                 update="transformer", mailbox=10, arch="identity", lr=1e-4, dropout=0.1,
                 epoch=100),
}


@pytest.mark.parametrize("name", MODELS)
def test_config_files_carry_tgl_hyper_parameters(name):
    text = (CONF / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    cfg = yaml.safe_load(text)
    # TGL's sections and values, and the schema class they are read through.
    assert set(cfg) == {"defaults", "model", "train"}
    assert cfg["defaults"] == [{"optional /schema/model@model": "temporal"}, "_self_"]
    model, train = cfg["model"], cfg["train"]
    assert model["name"] == name and set(model) == {"name", "sampling", "memory", "gnn"}
    for section in ("sampling", "memory", "gnn"):
        assert isinstance(model[section], dict), f"{name}: {section} must be a plain mapping"
    want = TGL_VALUES[name]
    s, m, g = model["sampling"], model["memory"], model["gnn"]
    assert train["batch_size"] == 600 and train["lr"] == want["lr"]
    assert train["dropout"] == want["dropout"] and train["epoch"] == want["epoch"]
    assert m["type"] == want["memory"] and g["arch"] == want["arch"]
    if "neighbor" in want:
        assert s["neighbor"] == want["neighbor"] and s["strategy"] == want["strategy"]
        assert s["layer"] == want["layer"]
    if want["memory"] == "node":
        assert m["memory_update"] == want["update"] and m["mailbox_size"] == want["mailbox"]
        assert m["dim_out"] == 100 and m["dim_time"] == 100
    if "dim" in want:
        assert g["dim_out"] == want["dim"] and g["att_head"] == 2
    if name == "dysat":
        assert s["history"] == 3 and s["duration"] == 10000 and s["prop_time"] is True
        assert g["combine"] == "rnn" and g["dim_time"] == 0
    if name == "tgn":
        assert g["layer"] == 1 and g["dim_time"] == 100 and m["deliver_to"] == "self"
    if name == "jodie":
        assert s["no_sample"] is True and g["time_proj"] is True
    if name == "apan":
        assert m["deliver_to"] == "neighbors" and m["combine_node_feature"] is False
        assert m["attention_head"] == 2


def test_hydra_composes_model_configs(tmp_path):
    hydra = pytest.importorskip("hydra")
    (tmp_path / "config.yaml").write_text("defaults:\n  - model: tgn\n  - _self_\n")
    (tmp_path / "model").symlink_to(CONF, target_is_directory=True)
    with hydra.initialize_config_dir(config_dir=str(tmp_path), version_base=None):
        for name in MODELS:
            cfg = hydra.compose("config", overrides=[f"model={name}"])
            assert cfg.model.name == name and cfg.train.batch_size == 600
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # DySAT's featureless fallback
                model = build_model(cfg.model, 10, dropout=cfg.train.dropout,
                                    att_dropout=cfg.train.att_dropout)
            assert model.dim_out == 100


def test_structure_built_from_config():
    tgn = build_model(load("tgn")["model"], 50, dim_edge_feat=4, edge_feat=torch.randn(9, 4))
    assert isinstance(tgn.memory, NodeMemory) and tgn.memory.mailbox.dim_mail == 204
    layers = tgn.embedding.layers
    assert len(layers) == 1 and layers[0][0].dim_node == 100
    tgat = build_model(load("tgat")["model"], 50)
    layers = tgat.embedding.layers
    assert tgat.memory is None and len(layers) == 2 and layers[0][0].dim_node == 0
    with pytest.warns(UserWarning, match="no memory, node or edge features"):
        dysat = build_model(load("dysat")["model"], 50)
    assert len(dysat.embedding.layers[0]) == 3 and dysat.combiner is not None
    dysat_e = build_model(load("dysat")["model"], 50, edge_feat=torch.randn(9, 4))
    # TGL's DySAT: structure and edge features only
    assert dysat_e.embedding.layers[0][0].dim_time == 0
    jodie = build_model(load("jodie")["model"], 50)
    assert jodie.embedding.time_proj is not None
    assert jodie.memory.updater.cell_type is torch.nn.RNNCell
    apan = build_model(load("apan")["model"], 50)
    assert apan.deliver_to == "neighbors" and apan.memory.mailbox_size == 10


@pytest.mark.parametrize("change,match", [
    (lambda m: m["gnn"].update(arch="gcn"), "gnn.arch"),
    (lambda m: m["gnn"].update(layer=2), "sampling.layer"),
    (lambda m: m["sampling"].update(history=2), "gnn.combine"),
    (lambda m: m["memory"].update(memory_update="lstm"), "memory_update"),
    (lambda m: m["memory"].update(memory_update=None), "memory.memory_update"),
    (lambda m: m["memory"].update(deliver_to="everyone"), "deliver_to"),
    (lambda m: m["memory"].update(type="edge"), "memory.type"),
    (lambda m: m["gnn"].update(att_score="cosine"), "att_score"),
])
def test_config_errors_name_the_key(change, match):
    cfg = load("tgn")["model"]
    change(cfg)
    with pytest.raises(ValueError, match=match):
        build_model(cfg, 10)


def test_a_left_out_option_takes_the_schemas_default():
    # The builder and the command line read one definition of each option (pyg_tgl/config/).
    from pyg_tgl.config.model import MemoryConfig
    cfg = load("tgn")["model"]
    del cfg["memory"]["memory_update"], cfg["memory"]["mailbox_size"]
    torch.manual_seed(0)
    left_out = build_model(cfg, 10)
    cfg["memory"].update(memory_update=MemoryConfig.memory_update,
                         mailbox_size=MemoryConfig.mailbox_size)
    torch.manual_seed(0)
    spelled_out = build_model(cfg, 10)
    assert left_out.memory.updater.cell_type is torch.nn.GRUCell
    assert {k: v.tolist() for k, v in left_out.state_dict().items()} == \
        {k: v.tolist() for k, v in spelled_out.state_dict().items()}


def test_feature_errors():
    cfg = load("tgat")["model"]
    with pytest.raises(ValueError, match=r"node_feat must be \[10, d\]"):
        build_model(cfg, 10, node_feat=torch.randn(9, 3))
    with pytest.raises(ValueError, match="dim_edge_feat is 5"):
        build_model(cfg, 10, dim_edge_feat=5, edge_feat=torch.randn(9, 3))
    with pytest.raises(ValueError, match="no edge_feat was given"):
        build_model(cfg, 10, dim_edge_feat=5)
    apan = load("apan")["model"]
    apan["memory"]["type"] = "none"
    with pytest.raises(ValueError, match="neighbors"):
        build_model(apan, 10)


# -- learning -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_each_model_learns(name):
    data = recency_graph()
    cfg = small(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DySAT's featureless fallback
        model = build_model(cfg["model"], 200, dropout=cfg["train"]["dropout"],
                            att_dropout=cfg["train"]["att_dropout"])
    ap = train_and_eval(model, loader(data, cfg["model"], slice(0, 2250)),
                        loader(data, cfg["model"], slice(2250, 3000), seed=1),
                        epochs=4, lr=5e-3)
    assert ap > 0.8, f"{name}: test AP {ap:.3f}"


def test_apan_without_negative_neighbourhoods_trains_identically():
    # TGL's sampling.no_neg: APAN never reads the negatives' neighbourhoods (identity embedding,
    # mails to the positive roots' neighbours), so not sampling them changes nothing.
    data = recency_graph()
    cfg = small("apan")
    runs = []
    for sample_negatives in (True, False):
        torch.manual_seed(0)
        model = build_model(cfg["model"], 200, dropout=cfg["train"]["dropout"],
                            att_dropout=cfg["train"]["att_dropout"])
        train = loader(data, cfg["model"], slice(0, 2250), sample_negatives=sample_negatives)
        test = loader(data, cfg["model"], slice(2250, 3000), seed=1,
                      sample_negatives=sample_negatives)
        if not sample_negatives:
            probe = loader(data, cfg["model"], slice(0, 200), sample_negatives=False)
            batch = next(iter(probe))
            assert batch.blocks[0][0].num_roots == 2 * batch.num_events
        runs.append((train_and_eval(model, train, test, epochs=2, lr=5e-3), model.state_dict()))
    (ap_all, params_all), (ap_pos, params_pos) = runs
    assert ap_all == ap_pos
    assert all(torch.equal(params_all[k], params_pos[k]) for k in params_all)


@pytest.mark.parametrize("name", ["tgn", "tgat", "jodie"])
def test_node_and_edge_features(name):
    # GDELT has both kinds of features, MAG node features only, LASTFM neither.
    data = recency_graph(num_events=800, edge_dim=5)
    node_feat = torch.randn(200, 7)
    cfg = small(name, dim=16)["model"]
    both = build_model(cfg, 200, node_feat=node_feat, edge_feat=data.msg)
    only_nodes = build_model(cfg, 200, node_feat=node_feat)
    assert "node_feat" not in both.state_dict() and "edge_feat" not in both.state_dict()
    for model in (both, only_nodes):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for batch in loader(data, cfg, slice(0, 400), batch_size=200):
            opt.zero_grad()
            pos, neg, update = model.step(batch)
            assert pos.shape == (200,) and neg.shape == (200,)
            bce(pos, neg).backward()
            opt.step()
            model.apply_update(update)
    if name != "tgat":
        # The node features enter through a projection added to the memory (TGL).
        assert both.node_input.feat_map.weight.grad is not None
        assert both.memory.mailbox.dim_mail == 2 * 16 + 5
    else:
        layer = both.embedding.layers[0][0]
        assert layer.dim_node == 7 and layer.dim_edge == 5


@pytest.mark.parametrize("name", ["tgat", "tgn", "dysat"])
def test_dense_and_message_passing_models_agree(name):
    data = recency_graph(num_events=600, edge_dim=3)
    cfg = small(name, dim=16)["model"]
    model = build_model(cfg, 200, edge_feat=data.msg).eval()
    for batch in loader(data, cfg, slice(0, 600), batch_size=150):
        with torch.no_grad():
            model.embedding.dense = True
            dense = model(batch)
            model.embedding.dense = False
            sparse = model(batch)
            model.apply_update(model.step(batch)[2])
        assert torch.allclose(dense, sparse, atol=1e-5)


@pytest.mark.parametrize("name", ["tgat", "tgn"])
def test_deduplicating_sampler_gives_the_same_embeddings(name):
    from pyg_tgl.data.sampler import TemporalSampler

    data = recency_graph(num_events=600)
    cfg = small(name, dim=16)["model"]
    cfg["sampling"].update(layer=2, neighbor=[5, 5], strategy="recent")
    cfg["gnn"].update(layer=2)
    ref_loader = loader(data, cfg, slice(0, 600), batch_size=150, dedup=False)
    dedup = TemporalSampler(ref_loader.sampler.tcsr, [5, 5], num_threads=1, dedup=True)
    model = build_model(cfg, 200).eval()
    twin = copy.deepcopy(model)
    for batch in ref_loader:
        deduped = copy.copy(batch)
        deduped.blocks = dedup.sample(batch.root_nodes, batch.root_ts)
        assert deduped.blocks[0][1].num_roots < batch.blocks[0][1].num_roots
        with torch.no_grad():
            assert torch.allclose(model(batch), twin(deduped), atol=1e-5)
            model.apply_update(model.step(batch)[2])
            twin.apply_update(twin.step(deduped)[2])
    if name == "tgn":
        assert torch.allclose(model.memory.memory, twin.memory.memory, atol=1e-5)


@pytest.mark.parametrize("name", ["tgn", "apan"])
def test_bfloat16_memory_storage_halves_the_state_and_tracks_float32(name):
    data = recency_graph(num_events=600, edge_dim=3)
    cfg = small(name, dim=16)["model"]
    full = build_model(cfg, 200, edge_feat=data.msg).eval()
    cfg["memory"]["storage_dtype"] = "bfloat16"
    half = build_model(cfg, 200, edge_feat=data.msg).eval()
    half.load_state_dict(full.state_dict())
    assert half.memory.memory.dtype == half.memory.mailbox.mail.dtype == torch.bfloat16
    # Timestamps stay float64; memory and mails take half the bytes.
    assert half.memory.memory_ts.dtype == torch.float64
    assert half.memory.nbytes < 0.75 * full.memory.nbytes
    for batch in loader(data, cfg, slice(0, 600), batch_size=150):
        with torch.no_grad():
            a, b = full(batch), half(batch)
            assert b.dtype == torch.float32
            assert torch.allclose(a, b, atol=0.05), (a - b).abs().max()
            full.apply_update(full.step(batch)[2])
            half.apply_update(half.step(batch)[2])
    assert torch.allclose(full.memory.memory, half.memory.memory.float(), atol=0.05)
    assert half.memory.memory.abs().sum() > 0
    cfg["memory"]["storage_dtype"] = "int8"
    with pytest.raises(ValueError, match="memory.storage_dtype must be one of"):
        build_model(cfg, 200)


# -- no leakage -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_an_event_never_informs_its_own_prediction(name):
    """The last 20 events of batch k share one time t. Changing them (where they go, their
    features) and everything after must change no embedding of batch k's sources and no score
    of an unchanged event: nothing at time t may inform a prediction at time t.

    (Earlier events of the same batch are legitimately visible to later ones through the
    sampler, as in TGL, which is why the changed events share the batch's last time.)"""
    base = recency_graph(num_events=500, edge_dim=4, seed=3)
    k, bs = 3, 100
    cut = k * bs + 80
    t = base.t.clone()
    t[cut:(k + 1) * bs] = t[(k + 1) * bs - 1]
    base.t = t
    changed = copy.copy(base)
    dst = base.dst.clone()
    alter = torch.arange(cut, 500)[::2]
    dst[alter] = 100 + (dst[alter] - 100 + 37) % 100  # another item
    msg = base.msg.clone()
    msg[cut:] = torch.randn(500 - cut, 4)  # the label-bearing features of the events themselves
    changed.dst, changed.msg = dst, msg
    cfg = small(name, dim=16)["model"]
    if cfg["memory"]["type"] == "node":
        cfg["memory"]["mailbox_size"] = min(cfg["memory"]["mailbox_size"], 3)
    outputs = []
    for data in (base, changed):
        torch.manual_seed(0)
        model = build_model(cfg, 200, edge_feat=data.msg).eval()
        with torch.no_grad():
            for i, batch in enumerate(loader(data, cfg, slice(0, 500), batch_size=bs)):
                if i == k:
                    outputs.append((model(batch), model.score(batch)[0], batch))
                    break
                model.apply_update(model.step(batch)[2])
    (h_a, pos_a, batch_a), (h_b, pos_b, batch_b) = outputs
    assert not torch.equal(batch_a.dst, batch_b.dst)  # the batch really differs
    assert torch.equal(h_a[:bs], h_b[:bs]), f"{name}: source embeddings saw their own events"
    same = batch_a.dst == batch_b.dst
    assert torch.equal(h_a[bs:2 * bs][same], h_b[bs:2 * bs][same])
    assert torch.equal(pos_a[same], pos_b[same])


def test_leakage_would_be_detected_by_learning():
    """On uniformly random events nothing is predictable: a correct TGN stays near chance,
    while the same loop with the batch's memory written before scoring (a leak) learns it."""
    data = random_graph()
    cfg = small("tgn", dim=16)
    aps = {}
    for leaky in (False, True):
        torch.manual_seed(0)
        model = build_model(cfg["model"], 100, dropout=0.1, att_dropout=0.1)
        aps[leaky] = train_and_eval(model, loader(data, cfg["model"], slice(0, 2000)),
                                    loader(data, cfg["model"], slice(2000, 3000), seed=1),
                                    epochs=2, lr=5e-3, leaky=leaky)
    assert aps[False] < 0.6, f"a correct model predicted random events: AP {aps[False]:.3f}"
    assert aps[True] > 0.7, f"the leaky control did not exploit the leak: AP {aps[True]:.3f}"


def test_no_neg_with_a_layer_that_needs_negative_neighbourhoods_is_refused():
    from pyg_tgl.config import ConfigError, compose
    with pytest.raises(ConfigError, match="no_neg=true .*pair_features=true"):
        compose(["model=apan", "model.gnn.pair_features=true"])
    with pytest.raises(ConfigError, match="no_neg=true .*arch=.transformer_attention."):
        compose(["model=tgn", "+model.sampling.no_neg=true"])
    compose(["model=apan"])
