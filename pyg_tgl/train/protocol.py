r"""The test of a trained link model under the run's evaluation protocol (``eval.memory_carry``),
shared by the training run and :func:`pyg_tgl.load_run` (so a loaded run re-scores its test
exactly as the run did).

* ``eval.memory_carry=false`` (TGL): memory is reset, the training and validation events are
  replayed (evaluation mode, no gradient), then the test events are scored while memory keeps
  absorbing them.
* ``eval.memory_carry=true``: the test is scored with the memory the model holds (the memory the
  selected epoch left after its validation pass, restored from ``best.pt``).
"""
from __future__ import annotations

import time
from typing import Any, Dict


def score_test(cfg: Any, ctx: Any, trainer: Any) -> Dict[str, Any]:
    """Scores ``ctx.split["test"]`` with ``trainer``'s model (the selected epoch's state loaded).

    Args:
        cfg: the run's configuration (``seed``, ``eval``).
        ctx: the run's :class:`~pyg_tgl.train.experiment.Context`.
        trainer: a :class:`~pyg_tgl.train.loop.LinkTrainer` of the model.

    Returns:
        dict: the test metrics of :meth:`~pyg_tgl.train.loop.LinkTrainer.evaluate`, with
        ``time`` covering the replay too.
    """
    seed, split = int(cfg.seed), ctx.split
    test_loader = ctx.loader(split["test"], int(cfg.eval.num_negatives), cfg.eval.neg_sampling,
                             seed + 2, ctx.eval_batch_size)
    t0 = time.perf_counter()
    if not cfg.eval.memory_carry:
        trainer.reset_state()
        for part in ("train", "val"):
            replay = ctx.loader(split[part], 1, "random", seed + 3, ctx.eval_batch_size)
            trainer.evaluate(replay, desc=f"replay {part}", score=False)
    test = trainer.evaluate(test_loader, ctx.inductive, desc="test")
    test["time"] = time.perf_counter() - t0
    return test
