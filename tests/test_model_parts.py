"""Models composed from parts compute what the single configuration-driven class computed, bit
for bit, and load its checkpoints (fixture recorded before the split, ``tests/legacy_cases.py``);
a step's state update is an explicit value; the batch transform declares its contract."""
from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
import torch

import legacy_cases as cases
from test_models import _threads  # noqa: F401 (fixture: one thread)
from pyg_tgl.data.transform import BatchTransform, apply_transform
from pyg_tgl.models import build_model
from pyg_tgl.nn import StateUpdate, TemporalGNN
from pyg_tgl.nn.model import _rename_old_keys
from pyg_tgl.train.resume import load_model_state, model_state

FIXTURE = cases.load_fixture()


def _build(name: str, data, cfg) -> TemporalGNN:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # featureless DySAT's fallback
        return build_model(cfg.model, cases.NUM_NODES, dropout=cfg.train.dropout,
                           att_dropout=cfg.train.att_dropout, edge_feat=data.msg,
                           node_feat=cases.case_node_feat() if cases.CASES[name][2] else None)


def _equal_states(a, b) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _equal_states(a[key], b[key])
        elif a[key] is not None:
            assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("name", list(cases.CASES))
def test_training_matches_the_recording_bit_for_bit(name):
    """Same seed, same batches: the same losses (bfloat16 autocast included: the memory writes
    computed inside the step keep the values and dtypes they had when computed after it), the
    same parameters, memory and pair history as the code before the split."""
    recorded = FIXTURE[name]
    data = cases.case_data()
    cfg = cases.case_config(name, data)
    model = _build(name, data, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train, _ = cases.case_loaders(cfg, data)
    bf16 = cases.CASES[name][3]
    losses = []
    model.train()
    for batch in train:
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pos, neg, update = model.step(batch)
        loss = cases.link_loss(pos.float(), neg.float())
        loss.backward()
        opt.step()
        model.apply_update(update)
        losses.append(loss.detach())
    assert torch.equal(torch.stack(losses), recorded["losses"])
    state = model_state(model)
    old = copy.deepcopy(recorded["state"])
    # The old names map onto the new ones: load them into a twin and compare there.
    twin = _build(name, data, cfg)
    load_model_state(twin, old)
    _equal_states(model_state(twin), state)


@pytest.mark.parametrize("name", list(cases.CASES))
def test_a_checkpoint_of_the_old_layout_loads_and_scores_the_same(name):
    recorded = FIXTURE[name]
    data = cases.case_data()
    cfg = cases.case_config(name, data)
    model = _build(name, data, cfg)
    old_keys = list(recorded["state"]["params"])
    assert any(k.startswith("layers.") for k in old_keys)  # the old layout's names
    assert not any(k.startswith("layers.") for k in model.state_dict())
    # Parameters in the old order (an optimizer's state is keyed by position, so a resumed
    # checkpoint's Adam moments must land on the same parameters).
    renamed = []
    for key in old_keys:
        one = {key: None}
        _rename_old_keys(model, one, "")
        renamed += list(one)
    params = [n for n, _ in model.named_parameters()]
    assert [k for k in renamed if k in params] == params
    load_model_state(model, copy.deepcopy(recorded["state"]))
    model.eval()
    _, evaluate = cases.case_loaders(cfg, data)
    with torch.no_grad():
        for batch, (pos_old, neg_old) in zip(evaluate, recorded["scores"]):
            pos, neg, update = model.step(batch)
            assert torch.equal(pos, pos_old) and torch.equal(neg, neg_old)
            model.apply_update(update)
    if recorded["memory_after"] is not None:
        _equal_states(model.memory.memory_state(), recorded["memory_after"])


def test_old_parameter_names_are_refused_nowhere_and_new_ones_kept():
    data = cases.case_data()
    cfg = cases.case_config("tgn_node_feat", data)
    model = _build("tgn_node_feat", data, cfg)
    old = FIXTURE["tgn_node_feat"]["state"]["params"]
    assert any(k.startswith("layers.") for k in old) and any(
        k.startswith("node_feat_map.") for k in old)
    names = set(model.state_dict())
    assert {"embedding.layers.0.0.w_k.weight", "node_input.feat_map.weight"} <= names
    model.load_state_dict(old)  # strict: every old key has a new home
    model.load_state_dict(model.state_dict())  # and the new names load as they are
    with pytest.raises(RuntimeError, match="Unexpected key"):
        model.load_state_dict({**old, "layers.9.0.w_k.weight": torch.zeros(1)})


def test_a_step_changes_no_state_and_its_update_is_a_value():
    """``score`` and ``step`` leave memory and pair history alone; the update of one model
    applied to a twin gives the twin the same state (nothing hidden stays behind)."""
    data = cases.case_data()
    cfg = cases.case_config("tgn_pair_history", data)
    model = _build("tgn_pair_history", data, cfg).eval()
    twin = copy.deepcopy(model)
    train, _ = cases.case_loaders(cfg, data)
    for batch in train:
        before = model_state(model)
        with torch.no_grad():
            model.score(batch)
            _, _, update = model.step(batch)
        _equal_states(model_state(model), before)
        assert isinstance(update, StateUpdate)
        assert update.memory.nodes.numel() == 2 * batch.num_events
        assert torch.equal(update.events.src, batch.src)
        twin.apply_update(update)
        model.apply_update(update)
        _equal_states(model_state(twin), model_state(model))
    assert len(model.pair_history) > 0 and model.memory.memory.abs().sum() > 0


def test_the_batch_transform_declares_and_checks_its_contract():
    data = cases.case_data()
    cfg = cases.case_config("tgn", data)
    model = _build("tgn", data, cfg).eval()
    transform = model.batch_transform
    assert isinstance(transform, BatchTransform) and transform is model.batch_transform
    assert transform.requires == {"root_nodes", "root_ts", "blocks"}
    assert transform.produces == {"plan"}
    batch = next(iter(cases.case_loaders(cfg, data)[0]))
    out = apply_transform(transform, batch)
    assert out.plan is not None and len(out.plan) == 1
    with torch.no_grad():
        planned = model.score(out)
        out.plan = None
        assert all(torch.equal(a, b) for a, b in zip(planned, model.score(out)))
    out.blocks = None
    with pytest.raises(ValueError, match=r"IndexPlan\(requires=.*the batch has no blocks"):
        apply_transform(transform, out)

    class Forgetful(BatchTransform):
        produces = frozenset({"plan"})

        def __call__(self, batch):
            return batch

    out.plan = None
    with pytest.raises(ValueError, match="Forgetful.*did not set plan"):
        apply_transform(Forgetful(), out)


def test_parts_that_do_not_fit_are_named():
    from pyg_tgl.nn import EdgePredictor, IdentityEmbedding, NodeMemory, PairHistory
    memory = NodeMemory(10, 0, 8, 4)
    with pytest.raises(ValueError, match="edge_predictor.dim_in is 6 but embedding.dim_out is 8"):
        TemporalGNN(IdentityEmbedding(8), EdgePredictor(6), memory=memory)
    with pytest.raises(ValueError, match="dim_pair is 0 but the pair features' width is 2"):
        TemporalGNN(IdentityEmbedding(8), EdgePredictor(8), memory=memory,
                    pair_history=PairHistory(10))
    with pytest.raises(ValueError, match="memory.raw_msg_dim is 0 but edge_feat is 3"):
        TemporalGNN(IdentityEmbedding(8), EdgePredictor(8), memory=memory,
                    edge_feat=torch.zeros(5, 3))
    with pytest.raises(ValueError, match="3 snapshots, so a combiner is needed"):
        TemporalGNN(IdentityEmbedding(8, num_snapshots=3), EdgePredictor(8), memory=memory)
    with pytest.raises(TypeError, match=r"pyg_tgl.models.build_model\(model_cfg"):
        TemporalGNN({"gnn": {"arch": "identity"}}, 10)


@pytest.mark.parametrize("name", ["dysat", "tgn_pair_features", "tgn_pair_history",
                                  "jodie_node_feat", "apan"])
def test_every_part_resets_its_parameters(name):
    """Each part is a PyG-style module with ``reset_parameters()``; the model's resets every
    parameter (here: from NaN back to finite values) and empties the state."""
    data = cases.case_data()
    cfg = cases.case_config(name, data)
    model = _build(name, data, cfg)
    for part_name, part in model.named_children():
        assert callable(getattr(part, "reset_parameters", None)), part_name
    train, _ = cases.case_loaders(cfg, data)
    model.apply_update(model.step(next(iter(train)))[2])
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    model.reset_parameters()
    for pname, p in model.named_parameters():
        assert torch.isfinite(p).all(), pname
    if model.memory is not None:
        assert model.memory.memory.abs().sum() == 0
    if model.pair_history is not None:
        assert len(model.pair_history) == 0


def test_the_builder_reads_a_dict_a_dictconfig_and_dataclasses_alike():
    """The typed schema may hand the builder nested dataclasses (or a structured DictConfig of
    them): the same model, parameter for parameter, as from the YAML's DictConfig."""
    import dataclasses

    from omegaconf import OmegaConf
    data = cases.case_data()
    cfg = cases.case_config("tgn_pair_history", data)

    def as_dataclass(name: str, values: dict):
        fields = [(k, Any, dataclasses.field(default_factory=lambda v=v: copy.deepcopy(v)))
                  for k, v in values.items()]
        return dataclasses.make_dataclass(name, fields)()

    plain = OmegaConf.to_container(cfg.model, resolve=True)
    typed = as_dataclass("Model", {k: as_dataclass(k.title(), v) if isinstance(v, dict) else v
                                   for k, v in plain.items()})
    reference = {k: v.clone() for k, v in _build("tgn_pair_history", data, cfg).state_dict()
                 .items()}
    for form in (plain, typed, OmegaConf.structured(typed)):
        torch.manual_seed(0)
        model = build_model(form, cases.NUM_NODES, dropout=cfg.train.dropout,
                            att_dropout=cfg.train.att_dropout, edge_feat=data.msg)
        assert model.pair_history is not None and model.memory is not None
        state = model.state_dict()
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in reference), type(form)
