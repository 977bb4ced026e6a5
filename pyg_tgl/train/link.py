r"""Link prediction training: epochs of the schedule with validation after each, the best (or
last) epoch kept, checkpoints (also mid-epoch) and resume, then the test.

Evaluation protocols (``eval.memory_carry``):

* ``false`` (TGL, Zhou et al., VLDB 2022, ``train.py``): after every epoch the validation events
  are scored with the memory left by the training epoch; the best validation epoch is kept. For
  the test, the best model's memory is reset, the training and validation events are replayed
  (evaluation mode, no gradient), then the test events are scored while memory keeps absorbing
  them.
* ``true`` (``../shared/TARGETS.md``, PyG's TGN example): the test is scored with the memory the
  selected epoch left after its validation pass (carried from training through validation).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from pyg_tgl.train.callbacks import Callback, RunInfo, build_callbacks
from pyg_tgl.train.checkpoint import load_checkpoint, save_checkpoint
from pyg_tgl.train.context import Context
from pyg_tgl.train.loggers import build_loggers
from pyg_tgl.train.loop import EpochProgress, LinkTrainer
from pyg_tgl.train.metrics import test_summary
from pyg_tgl.train.optim import build_optimizer, current_lr
from pyg_tgl.train.outputs import write_json
from pyg_tgl.train.protocol import score_test
from pyg_tgl.train.resume import (CheckpointPolicy, load_model_state, model_state,
                                  restore_training_state, training_state)
from pyg_tgl.train.schedule import BatchSchedule
from pyg_tgl.train.validation import _get

log = logging.getLogger("pyg_tgl")


def find_unused_parameters(cfg: DictConfig) -> Optional[bool]:
    """``hardware.distributed.find_unused_parameters``; ``None`` for ``auto`` (decided from the
    model: :func:`~pyg_tgl.train.distributed.searches_unused_parameters`)."""
    value = _get(cfg, "hardware.distributed.find_unused_parameters", "auto")
    return None if value == "auto" else bool(value)


def train_link(cfg: DictConfig, ctx: Context, model: torch.nn.Module, out_dir: Path,
               progress: bool = True, resume_from: Optional[Path] = None,
               callbacks: Sequence[Callback] = ()) -> Dict[str, Any]:
    """Trains with validation after each epoch, keeps the best (or last) epoch, then tests.

    Writes ``metrics.json`` after every epoch (``"finished": false`` until the test is done),
    ``checkpoints/last.pt`` (everything needed to resume; also within an epoch with
    ``train.checkpoint_every``) and ``checkpoints/best.pt``. ``resume_from``: the ``last.pt``
    to continue from (:func:`~pyg_tgl.train.resume.checkpoint_to_resume`).

    Returns:
        dict: the content of ``metrics.json``.
    """
    seed = int(cfg.seed)
    split = ctx.split
    dist = ctx.dist
    main = dist.is_main  # only rank 0 writes files
    ckpt_dir = out_dir / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    optimizer = build_optimizer(cfg, model.parameters())  # + clipping, lr schedule
    hooks = build_callbacks(cfg, build_loggers(cfg, out_dir) if main else [], callbacks)
    schedule = BatchSchedule(split["train"], ctx.global_batch_size, cfg.schedule.name,
                             int(_get(cfg, "schedule.reorder", 1) or 1),
                             _get(cfg, "schedule.variant", "offset"), seed=seed)
    train_loader = ctx.loader(split["train"], int(cfg.train.num_negatives),
                              cfg.train.neg_sampling, seed)
    # Evaluation loaders restart from the same generator state at every pass, so every epoch is
    # validated against the same negatives (and a resumed run sees the same ones).
    val_loader = ctx.loader(split["val"], int(cfg.eval.val_num_negatives), cfg.eval.neg_sampling,
                            seed + 1, ctx.eval_batch_size)
    val_init = val_loader.state_dict()
    trainer = LinkTrainer(model, optimizer, train_loader, schedule, device=ctx.device,
                          loss=cfg.train.loss, ties=cfg.eval.ties, progress=progress,
                          sync_timers=bool(_get(cfg, "hardware.sync_timers", True)),
                          host_plans=bool(_get(cfg, "hardware.host_plans", False)),
                          precision=str(_get(cfg, "hardware.precision", "float32")), dist=dist,
                          find_unused_parameters=find_unused_parameters(cfg),
                          min_subset_events=int(_get(cfg, "eval.min_subset_events", 50)),
                          callbacks=hooks)
    metric = cfg.eval.metric
    sign = -1.0 if metric == "loss" else 1.0
    history: List[Dict[str, Any]] = []
    best: Dict[str, Any] = {"epoch": -1, "score": -math.inf, "val": {}}
    bad_epochs, start_epoch, partial = 0, 0, None
    if resume_from is not None:
        # Rank 0 reads the checkpoint and hands it to the others (no shared file system needed).
        state = dist.broadcast_object(load_checkpoint(resume_from, map_location="cpu")
                                      if main else None)
        history, best, bad_epochs, partial = restore_training_state(
            state, cfg, model, optimizer, train_loader, dist)
        start_epoch = state["epoch"] + 1
        if main and resume_from.parent.parent != out_dir:
            best_src = resume_from.parent / "best.pt"
            if best_src.is_file():
                save_checkpoint(load_checkpoint(best_src), best_path)
        log.info("resumed from %s %s", resume_from,
                 f"in epoch {start_epoch} after {partial.next_batch} batches" if partial
                 else f"after epoch {state['epoch']}")
    policy = CheckpointPolicy(_get(cfg, "train.checkpoint_every"), dist)

    def save_last(epoch_done: int, mid_epoch: Optional[EpochProgress] = None) -> None:
        state = training_state(model, optimizer, train_loader, dist, cfg, epoch_done, history,
                               best, bad_epochs, mid_epoch)
        if main:
            save_checkpoint(state, last_path)
        policy.saved()

    hooks.train_start(RunInfo(cfg, out_dir if main else None, model, optimizer, dist.rank,
                              dist.world_size, start_epoch, list(history)))
    stopped_early = False
    for epoch in range(start_epoch, int(cfg.train.epoch)):
        if bad_epochs and cfg.train.patience and bad_epochs >= cfg.train.patience:
            stopped_early = True
            break

        def after_batch(done: EpochProgress, epoch_done: int = epoch - 1) -> None:
            if policy.due(done.next_batch):
                save_last(epoch_done, done)

        stats = trainer.train_epoch(epoch, start=partial, after_batch=after_batch)
        partial = None
        val_loader.load_state_dict(val_init)
        val = trainer.evaluate(val_loader, ctx.inductive, desc="val")
        hooks.validation_end(epoch, val)
        record = {"epoch": epoch, "loss": stats["loss"],
                  **{f"val_{k}": v for k, v in val.items() if k != "time"},
                  "time_sample": stats["time_sample"], "time_memory": stats["time_memory"],
                  "time_compute": stats["time_compute"], "time_update": stats["time_update"],
                  "time_sync": stats["time_sync"],
                  "sync_bytes_per_step": stats["sync_bytes_per_step"],
                  "time_train": stats["time_total"], "time_eval": val["time"],
                  "events_per_s": stats["events_per_s"], "num_events": stats["num_events"],
                  "num_batches": stats["num_batches"], "schedule": stats["schedule"]}
        record["lr"] = current_lr(optimizer)  # the rate of the epoch's last step
        history.append(record)
        score = sign * val.get(metric, math.nan)
        if cfg.eval.select == "last" or score > best["score"]:
            best = {"epoch": epoch, "score": score, "val": val}
            bad_epochs = 0
            if main:
                save_checkpoint({"model": model_state(model), "epoch": epoch, "val": val,
                                 "config_yaml": OmegaConf.to_yaml(cfg, resolve=True)}, best_path)
        else:
            bad_epochs += 1
        save_last(epoch)
        if main:
            write_json({"finished": False, "epochs": history, "best_epoch": best["epoch"]},
                        out_dir / "metrics.json")
        hooks.epoch_end(record)
        log.info("epoch %d  loss %.4f  val AP %.4f (%s negative per event)  train %.1fs (sample "
                 "%.1f memory %.1f compute %.1f update %.1f)  %.0f ev/s  eval %.1fs", epoch,
                 stats["loss"], val.get("ap", math.nan), cfg.eval.neg_sampling,
                 stats["time_total"], stats["time_sample"], stats["time_memory"],
                 stats["time_compute"], stats["time_update"], stats["events_per_s"],
                 val["time"])

    # ---- test ----
    chosen = dist.broadcast_object(load_checkpoint(best_path, map_location="cpu")
                                   if main else None)
    load_model_state(model, chosen["model"])
    test = score_test(cfg, ctx, trainer)  # pyg_tgl/train/protocol.py
    hooks.test_end(chosen["epoch"], test)
    log.info("%s", test_summary(test, str(cfg.eval.neg_sampling),
                                f"model of epoch {chosen['epoch']}, "
                                f"{'memory-carry' if cfg.eval.memory_carry else 'TGL'} protocol"))
    train_times = [h["time_train"] for h in history]
    result = {
        "finished": True,
        "epochs": history,
        "best_epoch": chosen["epoch"],
        "stopped_early": stopped_early,
        "val": {k: v for k, v in chosen["val"].items()},
        "test": test,
        "seconds_per_epoch": sum(train_times) / len(train_times) if train_times else math.nan,
        "protocol": "memory_carry" if cfg.eval.memory_carry else "tgl",
        "split": {k: [v.start, v.stop] for k, v in split.items()},
    }
    hooks.train_end(result)
    return result
