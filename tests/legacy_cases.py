"""Small models whose training and checkpoints were recorded with the code before the models were
composed from parts (``TemporalGNN`` built from a configuration, commit bd3c8fe): the fixture
``tests/data/legacy_models.pt.gz`` holds, per case, the losses of three training steps, the
checkpoint (``model_state``: parameters under their old names, memory, pair history) written
after them, and the scores and memory of two evaluation batches that followed.

``python tests/legacy_cases.py`` re-records the fixture; it uses the old API (``TemporalGNN(cfg,
...)``, ``score`` then ``update_memory``) and so runs only on that commit. The cases and their
data are defined here once, for the recorder and for ``tests/test_model_parts.py``.
"""
from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch
from omegaconf import OmegaConf
from torch_geometric.data import TemporalData

from pyg_tgl.data.loader import TemporalNeighborLoader
from pyg_tgl.data.synthetic import SyntheticConfig, synthetic_events

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "legacy_models.pt.gz"
NUM_NODES, NUM_EVENTS, BATCH = 40, 600, 100
TRAIN_BATCHES, EVAL_BATCHES = 3, 2

#: name -> (model file, overrides of model.gnn / model.memory, node features, bfloat16 autocast)
CASES: Dict[str, Tuple[str, Dict[str, Any], bool, bool]] = {
    "jodie": ("jodie", {}, False, False),
    "dysat": ("dysat", {}, False, False),
    "tgat": ("tgat", {}, False, False),
    "tgn": ("tgn", {}, False, False),
    "apan": ("apan", {}, False, False),
    "tgn_pair_features": ("tgn", {"gnn.pair_features": True, "gnn.pair_recency": True},
                          False, False),
    "tgn_pair_history": ("tgn", {"gnn.pair_history": True, "gnn.pair_history_recency": True,
                                 "gnn.pair_history_nodes": True}, False, False),
    "tgn_node_feat": ("tgn", {}, True, False),
    "tgat_node_feat": ("tgat", {}, True, False),
    "jodie_node_feat": ("jodie", {}, True, False),
    "tgn_bfloat16": ("tgn", {}, False, True),
    "apan_bfloat16": ("apan", {}, False, True),
}


def case_data() -> TemporalData:
    src, dst, t, msg = synthetic_events(
        SyntheticConfig(num_nodes=NUM_NODES, num_events=NUM_EVENTS, seed=5, edge_dim=4),
        0, NUM_EVENTS)
    return TemporalData(src=torch.from_numpy(src), dst=torch.from_numpy(dst),
                        t=torch.from_numpy(t), msg=torch.from_numpy(msg))


def case_node_feat() -> torch.Tensor:
    return torch.randn(NUM_NODES, 6, generator=torch.Generator().manual_seed(1))


def case_config(name: str, data: TemporalData):
    """The model configuration of case ``name``: the shipped file with small widths."""
    file, overrides, _, _ = CASES[name]
    cfg = OmegaConf.load(REPO / "conf" / "model" / f"{file}.yaml")
    model = cfg.model
    for sec in ("memory", "gnn"):
        if model[sec].get("dim_out"):
            model[sec].dim_out = 8
        if model[sec].get("dim_time"):
            model[sec].dim_time = 6
    if int(model.sampling.get("history", 1) or 1) > 1:
        model.sampling.duration = float(data.t.max() - data.t.min()) / 10
    for key, value in overrides.items():
        OmegaConf.update(model, key, value)
    return cfg


def case_loaders(cfg, data: TemporalData) -> List[TemporalNeighborLoader]:
    """The training loader (first ``TRAIN_BATCHES`` batches) and the evaluation loader."""
    from pyg_tgl.train.experiment import sampling_options
    s = sampling_options(cfg.model)
    split = TRAIN_BATCHES * BATCH

    def loader(events: slice, seed: int) -> TemporalNeighborLoader:
        return TemporalNeighborLoader(
            data, s["num_neighbors"], strategy=s["strategy"], batch_size=BATCH, events=events,
            num_threads=1, seed=seed, history=s["history"], duration=s["duration"],
            prop_time=s["prop_time"], sample_negatives=not s["no_neg"],
            root_time=s["root_time"])
    return [loader(slice(0, split), 0),
            loader(slice(split, split + EVAL_BATCHES * BATCH), 1)]


def load_fixture() -> Dict[str, Any]:
    return torch.load(io.BytesIO(gzip.decompress(FIXTURE.read_bytes())), weights_only=True)


def link_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    return bce(pos, torch.ones_like(pos)) + bce(neg, torch.zeros_like(neg))


def _record_case(name: str) -> Dict[str, Any]:  # the old API: runs on commit bd3c8fe only
    from pyg_tgl.nn import TemporalGNN
    from pyg_tgl.train.resume import model_state
    _, _, with_node_feat, bf16 = CASES[name]
    data = case_data()
    cfg = case_config(name, data)
    torch.manual_seed(0)
    model = TemporalGNN(cfg.model, NUM_NODES, dropout=cfg.train.dropout,
                        att_dropout=cfg.train.att_dropout, edge_feat=data.msg,
                        node_feat=case_node_feat() if with_node_feat else None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train, evaluate = case_loaders(cfg, data)
    losses = []
    model.train()
    for batch in train:
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pos, neg = model.score(batch)
        loss = link_loss(pos.float(), neg.float())
        loss.backward()
        opt.step()
        model.update_memory(batch)
        losses.append(loss.detach())
    state = model_state(model)
    state = {k: ({n: t.clone() for n, t in v.items()} if isinstance(v, dict) else v)
             for k, v in state.items()}
    model.eval()
    scores = []
    with torch.no_grad():
        for batch in evaluate:
            pos, neg = model.score(batch)
            model.update_memory(batch)
            scores.append((pos, neg))
    return {"losses": torch.stack(losses), "state": state, "scores": scores,
            "memory_after": (None if model.memory is None
                             else {k: v.clone() for k, v in model.memory.memory_state().items()})}


def record() -> None:
    torch.set_num_threads(1)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # featureless DySAT's fallback
        out = {name: _record_case(name) for name in CASES}
    buf = io.BytesIO()
    torch.save(out, buf)
    FIXTURE.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    record()
