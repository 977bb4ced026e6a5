"""Training on a CUDA device (issue 7, GPU readiness): every model trains there, the state stays
there, and the numbers agree with the CPU's.

CI has no GPU, so these tests skip there; they run wherever ``torch.cuda.is_available()``.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Dict, Tuple

import pytest
import torch
from omegaconf import OmegaConf
from torch_geometric.data import TemporalData

from pyg_tgl.data.loader import TemporalNeighborLoader
from pyg_tgl.data.synthetic import SyntheticConfig, synthetic_events
from pyg_tgl.models import build_model
from pyg_tgl.nn import NodeMemory, TemporalGNN
from pyg_tgl.train.experiment import sampling_options
from pyg_tgl.train.loop import LinkTrainer
from pyg_tgl.train.schedule import BatchSchedule

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
MODELS = ("jodie", "dysat", "tgat", "tgn", "apan")
BATCH = 100
NUM_EVENTS = 1500


def _data() -> TemporalData:
    src, dst, t, msg = synthetic_events(
        SyntheticConfig(num_nodes=80, num_events=NUM_EVENTS, seed=5, edge_dim=8), 0, NUM_EVENTS)
    return TemporalData(src=torch.from_numpy(src), dst=torch.from_numpy(dst),
                        t=torch.from_numpy(t), msg=torch.from_numpy(msg))


def _trainer(name: str, data: TemporalData, device: str, model: TemporalGNN = None,
             lr: float = 1e-3, host_plans: bool = False) -> Tuple[LinkTrainer, TemporalGNN, Dict]:
    cfg = OmegaConf.load(CONF / f"{name}.yaml").model
    s = sampling_options(cfg)
    if name == "dysat":  # snapshots scaled to the synthetic stream's span
        s["duration"] = float(data.t.max() - data.t.min()) / 20 or 1.0

    def loader(events, seed):
        return TemporalNeighborLoader(data, s["num_neighbors"], strategy=s["strategy"],
                                      batch_size=BATCH, events=events, prop_time=s["prop_time"],
                                      history=s["history"], duration=s["duration"],
                                      num_threads=1, seed=seed,
                                      sample_negatives=not s["no_neg"])
    if model is None:
        torch.manual_seed(0)
        # No dropout: CPU and CUDA draw different random masks.
        model = build_model(cfg, 80, edge_feat=data.msg, dropout=0.0, att_dropout=0.0)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    train = slice(0, 1000)
    trainer = LinkTrainer(model, opt, loader(train, 0), BatchSchedule(train, BATCH),
                          device=device, progress=False, sync_timers=False,
                          host_plans=host_plans)
    return trainer, model, {"val": loader(slice(1000, NUM_EVENTS), 1)}


@pytest.mark.parametrize("name", MODELS)
def test_model_trains_and_keeps_its_state_on_cuda(name):
    data = _data()
    trainer, model, loaders = _trainer(name, data, "cuda")
    first = trainer.train_epoch(0)["loss"]
    for epoch in range(1, 4):
        last = trainer.train_epoch(epoch)["loss"]
    assert torch.isfinite(torch.tensor([first, last])).all()
    assert last < first, f"{name}: training loss did not fall on CUDA ({first} -> {last})"
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert all(b.device.type == "cuda" for b in model.buffers())
    if model.memory is not None:
        assert model.memory.memory.device.type == "cuda"
        assert model.memory.mailbox.mail.device.type == "cuda"
    m = trainer.evaluate(loaders["val"])
    assert 0.0 <= m["ap"] <= 1.0


@pytest.mark.parametrize("name", MODELS)
def test_cuda_matches_cpu_for_the_same_parameters(name):
    # The optimizer's step is frozen (lr 0) so that every batch runs the whole path (sampling,
    # memory read, forward, backward, memory and mailbox write) on the same parameters: training
    # itself is chaotic here, since a trainable time encoding multiplies its frequencies by time
    # differences of up to 2.6e6 s, so rounding differences between devices grow into different
    # models within a few steps.
    data = _data()
    cpu_trainer, cpu_model, cpu_loaders = _trainer(name, data, "cpu", lr=0.0)
    gpu_model = copy.deepcopy(cpu_model)
    gpu_trainer, _, gpu_loaders = _trainer(name, data, "cuda", model=gpu_model, lr=0.0)
    for epoch in range(2):
        a = cpu_trainer.train_epoch(epoch)["loss"]
        b = gpu_trainer.train_epoch(epoch)["loss"]
        assert abs(a - b) < 1e-4 * max(1.0, abs(a)), f"{name} epoch {epoch}: {a} vs {b}"
    # Gradients of the last batch, as a whole and parameter by parameter.
    pairs = [(n, a.grad, b.grad) for (n, a), b in zip(cpu_model.named_parameters(),
                                                     gpu_model.parameters())]
    assert all((ga is None) == (gb is None) for _, ga, gb in pairs)
    ga = torch.cat([g.flatten() for _, g, _ in pairs if g is not None])
    gb = torch.cat([g.flatten().cpu() for _, _, g in pairs if g is not None])
    rel = float((ga - gb).norm() / ga.norm())
    print(f"{name}: relative gradient difference CPU vs CUDA {rel:.2e}")
    assert rel < 1e-4, f"{name}: gradients differ by {rel:.2e} of their norm"
    for pname, g_cpu, g_gpu in pairs:
        if g_cpu is not None:
            scale = float(g_cpu.abs().max())
            diff = float((g_cpu - g_gpu.cpu()).abs().max())
            assert diff <= 1e-3 * scale + 2e-4, \
                f"{name}: gradient of {pname} differs by {diff} (largest entry {scale})"
    ma = cpu_trainer.evaluate(cpu_loaders["val"])
    mb = gpu_trainer.evaluate(gpu_loaders["val"])
    assert abs(ma["ap"] - mb["ap"]) < 1e-3, f"{name}: val AP {ma['ap']} vs {mb['ap']}"


def _host_synchronisations(trainer: LinkTrainer, batches: int = 5):
    """The host synchronisations (``torch.cuda.set_sync_debug_mode``) of one partial epoch."""
    trainer.train_epoch(0, max_batches=2)  # warm-up: lazy initialisations may synchronise
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.train_epoch(1, max_batches=batches)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return [f"{w.filename}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)]


@pytest.mark.parametrize("name", MODELS)
def test_training_steps_never_wait_for_the_device(name):
    # With the index work planned on the host (LinkTrainer(host_plans=True)) and fixed-shape
    # memory writes, a training step queues its kernels without waiting for any: the only
    # synchronisation is reading the epoch's mean loss back at its end.
    trainer, _, _ = _trainer(name, _data(), "cuda", host_plans=True)
    assert trainer.host_plans and trainer.train_loader.pin_memory
    sites = _host_synchronisations(trainer)
    assert len(sites) <= 1, f"{name}: {len(sites)} synchronisations in 5 batches: {sites}"


def test_pinned_host_memory_matches_device_memory():
    torch.manual_seed(0)
    on_device = NodeMemory(50, 4, 16, 8).to("cuda")
    pinned = NodeMemory(50, 4, 16, 8, pin_memory=True)
    pinned.load_state_dict(on_device.state_dict())
    pinned = pinned.to("cuda")
    # Only the parameters travel; the state stays in page-locked host memory.
    assert pinned.memory.device.type == "cpu" and pinned.memory.is_pinned()
    assert next(pinned.parameters()).device.type == "cuda"
    g = torch.Generator(device="cuda").manual_seed(1)
    for step in range(5):
        src = torch.randint(0, 50, (30,), device="cuda", generator=g)
        dst = torch.randint(0, 50, (30,), device="cuda", generator=g)
        t = torch.full((30,), float(step + 1), device="cuda", dtype=torch.float64)
        msg = torch.randn(30, 4, device="cuda", generator=g)
        for mem in (on_device, pinned):
            mem.update_state(src, dst, t, msg)
    n_id = torch.arange(50, device="cuda")
    (ma, ta), (mb, tb) = on_device(n_id), pinned(n_id)
    assert ma.device.type == mb.device.type == "cuda"
    assert torch.allclose(ma, mb, atol=1e-6) and torch.equal(ta, tb)
