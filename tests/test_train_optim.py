"""Optimisation options (``pyg_tgl/train/optim.py``): weight decay, gradient clipping and the
learning-rate schedule; defaults that train exactly as before; schedules that resume exactly."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from test_train_loop import SMALL, _isolated, _test_metrics, _without_times, cfg_of  # noqa: F401

from pyg_tgl.train import link
from pyg_tgl.train.checkpoint import load_checkpoint
from pyg_tgl.train.experiment import ConfigError, run_experiment, validate_config
from pyg_tgl.train.optim import DEFAULTS, LRSchedule, TrainingOptimizer, build_optimizer

TRAIN_YAML = Path(__file__).resolve().parents[1] / "conf" / "train" / "default.yaml"


def test_yaml_defaults_are_the_code_defaults():
    # Old checkpoints and configurations without an option read it from DEFAULTS: they must be
    # what the YAML file sets.
    train = yaml.safe_load(TRAIN_YAML.read_text())
    assert {k: train[k] for k in DEFAULTS} == DEFAULTS


def _factors(schedule: LRSchedule, epochs: int, num_batches: int):
    out = []
    for epoch in range(epochs):
        schedule.start_epoch(epoch, num_batches)
        out.append([schedule.next_factor() for _ in range(num_batches)])
    return out


def test_schedule_shapes():
    # cosine over 4 epochs of 2 batches, 1 warmup epoch, ending at 0.1.
    f = _factors(LRSchedule("cosine", 4, warmup_epochs=1, min_factor=0.1), 4, 2)
    assert f[0] == [0.5, 1.0]  # linear warmup, the last warmup batch at the full rate
    cos = [0.1 + 0.9 * (1 + math.cos(math.pi * s)) / 2 for s in (0, 1 / 6, 2 / 6, 3 / 6, 4 / 6,
                                                                5 / 6)]
    assert [x for e in f[1:] for x in e] == pytest.approx(cos)
    f = _factors(LRSchedule("linear", 2, min_factor=0.0), 3, 4)
    assert [x for e in f for x in e] == pytest.approx(
        [1 - i / 8 for i in range(8)] + [0.0] * 4)  # past the horizon: the final factor
    f = _factors(LRSchedule("step", 10, step_epochs=2, gamma=0.5), 5, 3)
    assert f == [[1.0] * 3, [1.0] * 3, [0.5] * 3, [0.5] * 3, [0.25] * 3]
    f = _factors(LRSchedule("none", 10, warmup_epochs=0.5), 2, 4)
    assert f == [[0.5, 1.0, 1.0, 1.0], [1.0] * 4]
    # A schedule whose epochs have different batch counts (random chunk scheduling) still
    # follows the progress in epochs.
    s = LRSchedule("linear", 2)
    s.start_epoch(0, 2)
    first = [s.next_factor() for _ in range(2)]
    s.start_epoch(1, 4)
    assert first + [s.next_factor() for _ in range(4)] == pytest.approx(
        [1, 0.75, 0.5, 0.375, 0.25, 0.125])


def test_schedule_position_survives_a_state_dict_round_trip():
    a = LRSchedule("cosine", 3, warmup_epochs=0.5)
    a.start_epoch(0, 5)
    [a.next_factor() for _ in range(3)]  # stopped mid-epoch
    b = LRSchedule("cosine", 99, warmup_epochs=0.5)
    b.load_state_dict(a.state_dict())
    b.start_epoch(0, 5)  # the same epoch again: the position inside it is kept
    assert [b.next_factor() for _ in range(2)] == [a.next_factor() for _ in range(2)]
    assert b.horizon_epochs == 3


def _model_and_grads():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    model(torch.randn(8, 4)).pow(2).sum().mul(100).backward()
    return model


def test_defaults_are_plain_adam_and_options_reach_the_optimizer():
    opt = build_optimizer(cfg_of(), _model_and_grads().parameters())
    assert type(opt.optimizer) is torch.optim.Adam and opt.schedule is None
    assert opt.grad_clip is None and opt.param_groups[0]["weight_decay"] == 0.0
    # One step equals torch's Adam bit for bit.
    ref_model = _model_and_grads()
    ref = torch.optim.Adam(ref_model.parameters(), lr=opt.param_groups[0]["lr"])
    model = _model_and_grads()
    opt = build_optimizer(cfg_of(), model.parameters())
    opt.step(), ref.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), ref_model.parameters()))

    opt = build_optimizer(cfg_of("train.optimizer=adamw", "train.weight_decay=0.01",
                                 "train.grad_clip=0.5", "train.lr_schedule=cosine",
                                 "train.epoch=7"), _model_and_grads().parameters())
    assert type(opt.optimizer) is torch.optim.AdamW
    assert opt.param_groups[0]["weight_decay"] == 0.01
    assert opt.schedule.name == "cosine" and opt.schedule.horizon_epochs == 7  # train.epoch
    params = opt._params
    assert torch.cat([p.grad.view(-1) for p in params]).norm() > 0.5
    opt.start_epoch(0, 10)
    opt.step()
    # Clipped to the global norm before the step.
    assert float(torch.cat([p.grad.view(-1) for p in params]).norm()) == pytest.approx(0.5)


def test_a_plain_optimizer_state_dict_loads():
    # Checkpoints written before the schedule existed hold Adam's own state_dict.
    model = _model_and_grads()
    plain = torch.optim.Adam(model.parameters(), lr=0.1)
    plain.step()
    opt = TrainingOptimizer(torch.optim.Adam(model.parameters(), lr=0.1), None,
                            LRSchedule("linear", 2))
    opt.load_state_dict(plain.state_dict())
    assert opt.optimizer.state_dict()["state"][0]["step"] == 1
    assert "lr_schedule" in opt.state_dict()


@pytest.mark.parametrize("override,match", [
    ("train.optimizer=sgd", r"train.optimizer='sgd' is not supported.*\['adam', 'adamw'\]"),
    ("train.weight_decay=-1", r"train.weight_decay=-1: expected a number >= 0"),
    ("train.grad_clip=0", r"train.grad_clip=0: expected a number > 0 or null"),
    ("train.lr_schedule=exp", r"train.lr_schedule='exp'.*'cosine'"),
    ("train.lr_min_factor=2", r"train.lr_min_factor=2: expected a number >= 0 and <= 1"),
    ("train.lr_gamma=0", r"train.lr_gamma=0: expected a number > 0 and <= 1"),
    ("train.lr_warmup_epochs=nan", r"train.lr_warmup_epochs=nan"),
])
def test_bad_optimisation_options(override, match):
    with pytest.raises(ConfigError, match=match) as info:
        validate_config(cfg_of(override))
    assert "\n" not in str(info.value)


def test_warmup_longer_than_the_decay_is_refused():
    with pytest.raises(ConfigError, match=r"train.lr_warmup_epochs=5 leaves nothing of the "
                                          r"5-epoch cosine decay"):
        validate_config(cfg_of("train.lr_schedule=cosine", "train.lr_warmup_epochs=5",
                               "train.epoch=5"))


def test_default_options_train_what_plain_adam_trains(tmp_path, monkeypatch):
    base = [*SMALL, "model=jodie", "train.epoch=1"]
    default = run_experiment(cfg_of(*base), tmp_path / "default", progress=False)
    # The trainer as it was before the options: torch's Adam, stepped as is.
    monkeypatch.setattr(link, "build_optimizer",
                        lambda cfg, params: torch.optim.Adam(params, lr=float(cfg.train.lr)))
    plain = run_experiment(cfg_of(*base), tmp_path / "plain", progress=False)
    assert _without_times(default) == _without_times(plain)
    assert _test_metrics(default) == _test_metrics(plain)


def test_scheduled_run_resumes_exactly(tmp_path):
    options = [*SMALL, "model=jodie", "train.optimizer=adamw", "train.weight_decay=0.01",
               "train.grad_clip=1.0", "train.lr=0.01", "train.lr_schedule=cosine",
               "train.lr_warmup_epochs=0.5", "train.lr_min_factor=0.1",
               "train.lr_horizon_epochs=3"]
    full = run_experiment(cfg_of(*options, "train.epoch=3"), tmp_path / "full", progress=False)
    run_experiment(cfg_of(*options, "train.epoch=2"), tmp_path / "cut", progress=False)
    state = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert state["optimizer"]["lr_schedule"]["horizon_epochs"] == 3.0
    resumed = run_experiment(cfg_of(*options, "train.epoch=3", "resume=true"), tmp_path / "cut",
                             progress=False)
    assert _without_times(resumed) == _without_times(full)
    assert _test_metrics(resumed) == _test_metrics(full)
    lrs = [e["lr"] for e in full["epochs"]]
    # Warmup then the cosine: the rate really moved, and ends at the final factor.
    assert lrs[0] < 0.01 and lrs[1] < lrs[0] and lrs[2] == pytest.approx(0.01 * 0.1, rel=0.1)

    # Without a horizon the first run's (its train.epoch) is kept when a resume adds epochs.
    short = [o for o in options if not o.startswith("train.lr_horizon")]
    run_experiment(cfg_of(*short, "train.epoch=1"), tmp_path / "more", progress=False)
    more = run_experiment(cfg_of(*short, "train.epoch=2", "resume=true"), tmp_path / "more",
                          progress=False)
    assert more["epochs"][1]["lr"] == pytest.approx(0.01 * 0.1)


def test_checkpoints_from_before_the_options_resume_under_the_defaults(tmp_path):
    from pyg_tgl.train.checkpoint import save_checkpoint
    base = [*SMALL, "model=jodie"]
    run_experiment(cfg_of(*base, "train.epoch=1"), tmp_path, progress=False)
    last = tmp_path / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    for key in DEFAULTS:
        del state["config"]["train"][key]
    save_checkpoint(state, last)
    with pytest.raises(ConfigError, match=r"\(train\.weight_decay\)"):
        run_experiment(cfg_of(*base, "train.epoch=2", "resume=true", "train.weight_decay=0.1"),
                       tmp_path, progress=False)
    resumed = run_experiment(cfg_of(*base, "train.epoch=2", "resume=true"), tmp_path,
                             progress=False)
    assert [e["epoch"] for e in resumed["epochs"]] == [0, 1]
