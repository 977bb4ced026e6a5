"""The training loop makes no host synchronisation per batch (issue 7, GPU readiness).

On a GPU, ``.item()``, ``.tolist()``, ``bool(tensor)``, ``int(tensor)`` and ``float(tensor)``
stall the host until the device has finished every queued kernel. The check runs on CPU: it patches
those tensor methods, counts the calls made from pyg_tgl's own code while the loop trains (the
loader, which works on host tensors by design, is excluded), and asserts the count does not grow
with the number of batches.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Iterator

import pytest
import torch
from omegaconf import OmegaConf
from torch_geometric.data import TemporalData

from pyg_tgl.data.loader import TemporalNeighborLoader
from pyg_tgl.data.synthetic import SyntheticConfig, synthetic_events
from pyg_tgl.models import build_model
from pyg_tgl.train.loop import LinkStep, LinkTrainer
from pyg_tgl.train.schedule import BatchSchedule

PKG = str(Path(__file__).resolve().parents[1] / "pyg_tgl")
CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
SYNC_METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")
BATCH = 100


class _Counter:
    """Counts host-syncing tensor calls whose caller is a pyg_tgl source file."""

    def __init__(self) -> None:
        self.active = False
        self.calls: Dict[str, int] = {}
        self.roots = (PKG,)

    def wrap(self, name: str, orig):
        def patched(tensor, *args, **kwargs):
            if self.active:
                caller = sys._getframe(1).f_code.co_filename
                if caller.startswith(self.roots):
                    key = f"{name} from {Path(caller).name}:{sys._getframe(1).f_lineno}"
                    self.calls[key] = self.calls.get(key, 0) + 1
            return orig(tensor, *args, **kwargs)
        return patched

    @property
    def total(self) -> int:
        return sum(self.calls.values())


class _UncountedLoader:
    """Forwards a loader but pauses counting while it builds a batch (host-side work)."""

    def __init__(self, loader: TemporalNeighborLoader, counter: _Counter) -> None:
        self.loader, self.counter = loader, counter

    def set_batches(self, batches) -> None:
        self.loader.set_batches(batches)

    def __iter__(self) -> Iterator:
        it = iter(self.loader)
        while True:
            self.counter.active = False
            batch = next(it, None)
            self.counter.active = True
            if batch is None:
                return
            yield batch


@pytest.fixture
def counter(monkeypatch):
    c = _Counter()
    for name in SYNC_METHODS:
        monkeypatch.setattr(torch.Tensor, name, c.wrap(name, getattr(torch.Tensor, name)))
    return c


def _data(num_events: int = 1200) -> TemporalData:
    src, dst, t, msg = synthetic_events(
        SyntheticConfig(num_nodes=60, num_events=num_events, seed=3, edge_dim=8), 0, num_events)
    return TemporalData(src=torch.from_numpy(src), dst=torch.from_numpy(dst),
                        t=torch.from_numpy(t), msg=torch.from_numpy(msg))


def _model_cfg(name: str):
    cfg = OmegaConf.load(CONF / f"{name}.yaml").model
    # Small dimensions: the test is about which calls happen, not about their cost.
    for sec in ("memory", "gnn"):
        if sec in cfg and cfg[sec].get("dim_out"):
            cfg[sec].dim_out = 16
        if sec in cfg and cfg[sec].get("dim_time"):
            cfg[sec].dim_time = 8
    return cfg


def _syncs(counter: _Counter, name: str, num_batches: int, precision: str,
           optimizer=None, callbacks=None) -> Dict[str, int]:
    torch.manual_seed(0)
    data = _data()
    cfg = _model_cfg(name)
    num_nodes = int(torch.cat([data.src, data.dst]).max()) + 1
    sampling = cfg.get("sampling", {})
    fanout = list(sampling.get("neighbor") or []) if not sampling.get("no_sample") else []
    loader = TemporalNeighborLoader(data, fanout, batch_size=BATCH, num_threads=1,
                                    history=int(sampling.get("history", 1) or 1),
                                    duration=float(sampling.get("duration", 0) or 0.0) or 1.0)
    model = build_model(cfg, num_nodes, edge_feat=data.msg)
    opt = (optimizer or torch.optim.Adam)(model.parameters(), lr=1e-3)
    events = torch.arange(num_batches * BATCH)
    trainer = LinkTrainer(model, opt, _UncountedLoader(loader, counter),
                          BatchSchedule(events, BATCH), progress=False, precision=precision,
                          callbacks=callbacks)
    counter.calls = {}
    counter.active = True
    try:
        out = trainer.train_epoch(0)
    finally:
        counter.active = False
    assert out["num_batches"] == num_batches
    assert torch.isfinite(torch.tensor(out["loss"]))
    return dict(counter.calls)


@pytest.mark.parametrize("name", ["tgn", "jodie", "apan", "tgat"])
def test_training_loop_makes_no_per_batch_host_sync(counter, name):
    few = _syncs(counter, name, 2, "float32")
    many = _syncs(counter, name, 6, "float32")
    # Only once-per-epoch reads (the mean loss) are allowed: the count must not grow with the
    # number of batches.
    grown = {k: v - few.get(k, 0) for k, v in many.items() if v != few.get(k, 0)}
    assert not grown, f"{name}: host syncs per batch from pyg_tgl code: {grown}"


def test_bfloat16_training_has_no_per_batch_host_sync_and_float32_logits(counter):
    few = _syncs(counter, "tgn", 2, "bfloat16")
    many = _syncs(counter, "tgn", 6, "bfloat16")
    assert many == few


def test_clipping_schedule_and_callbacks_add_no_per_batch_host_sync(counter):
    from pyg_tgl.train.callbacks import Callback, CallbackList
    from pyg_tgl.train.optim import LRSchedule, TrainingOptimizer

    def clipped_cosine(params, lr):
        return TrainingOptimizer(torch.optim.AdamW(params, lr=lr, weight_decay=0.01), 1.0,
                                 LRSchedule("cosine", 2, warmup_epochs=0.5))

    runs = [_syncs(counter, "tgn", n, "float32", clipped_cosine, CallbackList([Callback()]))
            for n in (2, 6)]
    assert runs[1] == runs[0]


def test_counter_detects_a_per_batch_item(counter, monkeypatch):
    # The check must be able to fail: a loop that reads the loss every batch is caught.
    orig = LinkStep.forward

    def reading_forward(self, batch, weight=1.0):
        loss, pos, neg, update = orig(self, batch, weight)
        loss.detach().item()
        return loss, pos, neg, update

    monkeypatch.setattr(LinkStep, "forward", reading_forward)
    counter.roots = (PKG, __file__)
    few = _syncs(counter, "tgn", 2, "float32")
    many = _syncs(counter, "tgn", 6, "float32")
    assert sum(many.values()) - sum(few.values()) == 4


def test_bfloat16_scores_are_float32_and_close_to_float32():
    torch.manual_seed(0)
    data = _data(400)
    cfg = _model_cfg("tgn")
    loader = TemporalNeighborLoader(data, [10], batch_size=BATCH, num_threads=1)
    model = build_model(cfg, 60, edge_feat=data.msg).eval()
    batch = next(iter(loader))
    _, pos32, neg32, _ = LinkStep(model)(batch)
    model.reset_state()
    loss16, pos16, neg16, _ = LinkStep(model, precision="bfloat16")(batch)
    assert pos16.dtype == torch.float32 and loss16.dtype == torch.float32
    # bfloat16 keeps ~3 significant digits; logits of a fresh model are O(1).
    assert torch.allclose(pos16, pos32, atol=0.05) and torch.allclose(neg16, neg32, atol=0.05)
    assert not torch.equal(pos16, pos32)  # autocast really ran in bfloat16


def test_unknown_precision_is_refused():
    model = build_model(_model_cfg("tgn"), 10, edge_feat=torch.zeros(5, 8))
    with pytest.raises(ValueError, match="precision='fp8'.*float32.*bfloat16"):
        LinkTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), None,
                    BatchSchedule(torch.arange(5), 5), precision="fp8")
