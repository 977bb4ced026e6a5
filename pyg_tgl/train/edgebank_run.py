r"""EdgeBank (``model=edgebank``) in the experiment pipeline.

EdgeBank (Poursafaei et al., NeurIPS 2022, :class:`pyg_tgl.nn.edgebank.EdgeBank`) learns nothing:
a pair scores 1 if it interacted before (within the time window, for ``model.mode=time_window``),
else 0. It runs here under exactly the protocol of the learned models
(:func:`pyg_tgl.train.experiment.train_link`): the same split (``train.max_events`` included),
the same validation and test loaders (so the same negatives: ``eval.val_num_negatives`` /
``eval.num_negatives`` drawn by ``eval.neg_sampling`` from seeds ``seed + 1`` / ``seed + 2``),
the same metrics (:class:`~pyg_tgl.train.metrics.LinkMetricAccumulator`: AP/AUC against the first
negative, MRR among all of them with ``eval.ties``, inductive metrics) and a ``metrics.json`` of
the same shape (``epochs: []``), so sweeps and their summary table include it.

Memory: EdgeBank's memory is every event before the scored batch. The training events are
inserted first, then each validation and test batch is scored and inserted afterwards (as the
learned models' memory absorbs a batch after scoring it). For EdgeBank the two evaluation
protocols (``eval.memory_carry``) coincide: TGL's protocol replays training and validation
before the test, which leaves exactly the memory carried from the validation pass.

Time window (``model.mode=time_window``): with ``model.time_window`` null, the window's duration
is derived before each evaluated split by :meth:`EdgeBank.window_from_history`:
``model.window_rule=dyglib`` (default; DGB/DyGLib) from every event before the split (training
for validation, training + validation for the test), ``tgb`` (TGB) from the training events only;
``proportion`` is ``model.window_proportion``, by default ``data.test_ratio`` (0.15), the value
both references use.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from omegaconf import DictConfig

from pyg_tgl.train.errors import ConfigError
from pyg_tgl.train.metrics import LinkMetricAccumulator, test_summary
from pyg_tgl.train.outputs import write_json
from pyg_tgl.train.validation import _get

log = logging.getLogger("pyg_tgl")

def _window(cfg: DictConfig, ctx: Any, part: str) -> Optional[float]:
    """The window's duration used while ``part`` (``val`` or ``test``) is scored."""
    from pyg_tgl.nn.edgebank import EdgeBank
    if _get(cfg, "model.mode", "unlimited") != "time_window":
        return None
    fixed = _get(cfg, "model.time_window")
    if fixed is not None:
        return float(fixed)
    proportion = _get(cfg, "model.window_proportion")
    if proportion is None:
        proportion = _get(cfg, "data.test_ratio", 0.15) or 0.15
    rule = _get(cfg, "model.window_rule", "dyglib")
    split = ctx.split
    if rule == "tgb":
        history = split["train"]
    else:
        history = slice(split["train"].start, split[part].start)
    return EdgeBank.window_from_history(ctx.ds.data.t[history], float(proportion), rule)


def _evaluate(bank: Any, loader: Any, inductive: torch.Tensor, ties: str,
              device: torch.device, min_subset_events: int) -> Dict[str, Any]:
    """Scores the loader's batches in order, inserting each batch after scoring it."""
    acc = LinkMetricAccumulator(ties, min_subset_events)
    ind = inductive.to(device)
    start = time.perf_counter()
    for batch in loader:
        if device.type != "cpu":
            batch = batch.to(device)
        pos, neg = bank.score_batch(batch)
        acc.add(pos, neg, ind[batch.eid])
        bank.update_memory(batch)
    out: Dict[str, Any] = acc.compute()
    out["time"] = time.perf_counter() - start
    return out


def run_edgebank(cfg: DictConfig, ctx: Any, out_dir: Path) -> Dict[str, Any]:
    """Fills EdgeBank with the training split, scores validation then test, writes
    ``metrics.json`` into ``out_dir`` and returns its content.

    Args:
        cfg: the composed configuration (``model.name=edgebank``).
        ctx: the experiment's :class:`~pyg_tgl.train.experiment.Context` (data, split,
            loaders, inductive flags).
        out_dir: the run directory.

    Raises:
        ConfigError: in a data-parallel run (EdgeBank runs in one process).
    """
    dist = getattr(ctx, "dist", None)
    if dist is not None and getattr(dist, "enabled", False):
        raise ConfigError("model=edgebank runs in one process; data-parallel training "
                          "(hardware.distributed) does not apply to it")
    result = edgebank_metrics(cfg, ctx)
    write_json(result, Path(out_dir) / "metrics.json")
    return result


def edgebank_metrics(cfg: DictConfig, ctx: Any) -> Dict[str, Any]:
    """The content of ``metrics.json`` of an EdgeBank run (see :func:`run_edgebank`)."""
    from pyg_tgl.nn.edgebank import EdgeBank
    seed = int(cfg.seed)
    split = ctx.split
    data = ctx.ds.data
    mode = str(_get(cfg, "model.mode", "unlimited"))
    windows = {part: _window(cfg, ctx, part) for part in ("val", "test")}
    bank = EdgeBank(int(ctx.ds.num_nodes), mode=mode, time_window=windows["val"],
                    device=ctx.device)
    t0 = time.perf_counter()
    tr = split["train"]
    bank.update(data.src[tr], data.dst[tr], data.t[tr])
    fill_seconds = time.perf_counter() - t0
    ties = str(cfg.eval.ties)
    # The learned models' loaders, seeds and negative counts (train_link).
    val_loader = ctx.loader(split["val"], int(cfg.eval.val_num_negatives),
                            cfg.eval.neg_sampling, seed + 1, ctx.eval_batch_size)
    min_subset = int(_get(cfg, "eval.min_subset_events", 50))
    val = _evaluate(bank, val_loader, ctx.inductive, ties, ctx.device, min_subset)
    if mode == "time_window":
        bank.time_window = windows["test"]
    test_loader = ctx.loader(split["test"], int(cfg.eval.num_negatives), cfg.eval.neg_sampling,
                             seed + 2, ctx.eval_batch_size)
    test = _evaluate(bank, test_loader, ctx.inductive, ties, ctx.device, min_subset)
    window = (f", window val {windows['val']:.6g} test {windows['test']:.6g}"
              if mode == "time_window" else "")
    log.info("%s", test_summary(test, str(cfg.eval.neg_sampling), f"EdgeBank {mode}{window}"))
    return {
        "finished": True,
        "epochs": [],
        "best_epoch": None,
        "stopped_early": False,
        "val": val,
        "test": test,
        # EdgeBank's "training": inserting the training split once.
        "seconds_per_epoch": fill_seconds,
        "protocol": "memory_carry" if cfg.eval.memory_carry else "tgl",
        "split": {k: [v.start, v.stop] for k, v in split.items()},
        "edgebank": {"mode": mode, "time_window": windows if mode == "time_window" else None,
                     "window_rule": str(_get(cfg, "model.window_rule", "dyglib")),
                     "num_pairs": bank.num_pairs},
    }
