"""Schema of training, evaluation, the batch schedule, the task and the embedding export.

Defaults are TGL's (``config/readme.yml``, ``train.py``); each model's file sets its own TGL
values of ``epoch``, ``batch_size``, ``lr``, ``dropout`` and ``att_dropout``. The optimisation
defaults train exactly what TGL trains: Adam, no weight decay, no clipping, a constant rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pyg_tgl.config.forms as forms
from pyg_tgl.config.fields import option

NEG_SAMPLING = ("random", "historical", "inductive")
LOSSES = ("bce",)
OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULES = ("none", "cosine", "linear", "step")
SCHEDULES = ("chronological", "random_chunk")
VARIANTS = ("offset", "interleave", "tgl")
TIES = ("average", "optimistic", "pessimistic")
SELECT = ("best", "last")
SELECT_METRICS = ("ap", "auc", "mrr", "loss")
TASKS = ("link", "node")


@dataclass
class TrainConfig:
    """``train``: how the link model is trained."""

    epoch: int = option(100, "Epochs (TGL: epoch).", ge=1)
    batch_size: int = option(600, "Positive events per batch and rank (TGL: batch_size).", ge=1)
    lr: float = option(0.0001, "Learning rate (TGL: lr).", gt=0.0)
    dropout: float = option(0.2, "Dropout of the GNN and the memory updater (TGL: dropout).",
                            ge=0.0, lt=1.0)
    att_dropout: float = option(0.2, "Dropout of attention weights (TGL: att_dropout).",
                                ge=0.0, lt=1.0)
    loss: str = option("bce", "bce: BCE(pos, 1) + BCE(neg, 0), each averaged (TGL).",
                       choices=LOSSES)
    num_negatives: int = option(1, "Negative destinations per training event (TGL: 1).", ge=1)
    neg_sampling: str = option("random", "Training negatives (pyg_tgl.data.loader."
                               "NegativeSampler).", choices=NEG_SAMPLING)
    patience: int = option(0, "Stop after this many epochs without a better validation score; "
                           "0 disables (TGL: no stopping).", ge=0)
    max_events: Optional[int] = option(None, "Use only the first N events, split in the data "
                                       "set's proportions (CI, quick tries); null: all.", ge=3)
    checkpoint_every: Any = option(
        "30min", "Also save checkpoints/last.pt inside an epoch: every N batches or after a "
        "duration ('90s', '30min', '2h'); null: at epoch ends only. A killed run resumes "
        "from it exactly.", check=forms.checkpoint_every, expects=forms.CHECKPOINT_EVERY)
    optimizer: str = option("adam", "adamw: decoupled weight decay (Loshchilov & Hutter).",
                            choices=OPTIMIZERS)
    weight_decay: float = option(0.0, "Weight decay of all parameters: an L2 term with adam, "
                                 "decoupled with adamw.", ge=0)
    grad_clip: Optional[float] = option(None, "Clip the global L2 norm of the gradients to this "
                                        "value before each step; null: off.", gt=0)
    lr_schedule: str = option("none", "Learning-rate schedule, updated before every step "
                              "(docs/training.md): cosine / linear decay to lr * lr_min_factor "
                              "at lr_horizon_epochs; step multiplies by lr_gamma every "
                              "lr_step_epochs.", choices=LR_SCHEDULES)
    lr_warmup_epochs: float = option(0.0, "Linear warmup over this many epochs (fractions "
                                     "allowed), with any schedule; 0: none.", ge=0)
    lr_horizon_epochs: Optional[float] = option(None, "Epoch at which cosine / linear end; "
                                                "null: train.epoch (kept on resume).", gt=0)
    lr_min_factor: float = option(0.0, "Final factor of cosine / linear.", ge=0, le=1)
    lr_step_epochs: float = option(1.0, "Epochs between two decays of step.", gt=0)
    lr_gamma: float = option(0.1, "Factor of each decay of step.", gt=0, le=1)


#: The optimisation options of :mod:`pyg_tgl.train.optim`.
OPTIM_OPTIONS = ("optimizer", "weight_decay", "grad_clip", "lr_schedule", "lr_warmup_epochs",
                 "lr_horizon_epochs", "lr_min_factor", "lr_step_epochs", "lr_gamma")


@dataclass
class EvalConfig:
    """``eval``: validation after each epoch and the test."""

    memory_carry: bool = option(False, "false: TGL's protocol (test: reset memory, replay train "
                                "+ val, score test while memory keeps updating); true: the "
                                "TARGETS.md / PyG protocol (memory carried into the test).")
    batch_size: Optional[int] = option(None, "Events per validation / test batch over all "
                                       "ranks; null: the training batch size (TGL).", ge=1)
    num_negatives: int = option(49, "Negatives per test event (TGL: --eval_neg_samples); "
                                "AP/AUC use the first, MRR ranks among all.", ge=1)
    val_num_negatives: int = option(1, "Negatives per validation event.", ge=1)
    neg_sampling: str = option("random", "Validation and test negatives.",
                               choices=NEG_SAMPLING)
    ties: str = option("average", "MRR ties: average (TGB: a tie counts 1/2), optimistic "
                       "(TGL), pessimistic.", choices=TIES)
    select: str = option("best", "Which epoch is tested: the best validation score (TGL) or "
                         "the last.", choices=SELECT)
    metric: str = option("ap", "Validation metric of select=best and early stopping.",
                         choices=SELECT_METRICS)
    min_subset_events: int = option(50, "Fewest events a sub-population metric (inductive_ap, "
                                    "...) is reported over.", ge=1)


@dataclass
class ExportConfig:
    """``export``: node embeddings written at the end of the run."""

    time: Optional[float] = option(None, "Query time of embeddings.pt; null: no export. "
                                   "Memory absorbs every event strictly before it.")
    nodes: Any = option(None, "Node ids (list); null: all nodes.", check=forms.node_ids,
                        expects="a list of node ids or null")


@dataclass
class LinkTask:
    """``task=link``: temporal link prediction (TGL's train.py)."""

    name: str = option("link", "The task.", choices=TASKS)


@dataclass
class NodeTask:
    """``task=node``: dynamic node classification (TGL's train_node.py) from the link model's
    embeddings at the label times."""

    name: str = option("node", "The task.", choices=TASKS)
    batch_size: int = option(4000, "Label batch of embedding and MLP training (TGL: 4000).",
                             ge=1)
    epoch: int = option(100, "MLP epochs (TGL: 100); the best validation epoch is tested.",
                        ge=1)
    dim: int = option(100, "MLP hidden dimension (TGL: 100).", ge=1)
    lr: float = option(0.001, "MLP learning rate (TGL: 0.001).", gt=0.0)
    posneg: Any = option("auto", "Binary labels: each batch holds all positives and as many "
                         "sampled negatives (TGL's --posneg); auto: on for binary labels.",
                         choices=("auto", True, False))
    link_checkpoint: Optional[str] = option(None, "A best.pt of an earlier link run to use "
                                            "instead of training a link model here.")


@dataclass
class ChronologicalSchedule:
    """``schedule=chronological``: consecutive batches, the same every epoch."""

    name: str = option("chronological", "The batch schedule.", choices=SCHEDULES)


@dataclass
class RandomChunkSchedule:
    """``schedule=random_chunk``: TGL's random chunk scheduling (train.reorder)."""

    name: str = option("random_chunk", "The batch schedule.", choices=SCHEDULES)
    reorder: int = option(16, "Chunks per batch (TGL: reorder): batches start at a random "
                          "multiple of batch_size // reorder.", ge=1)
    variant: str = option("offset", "offset: a random chunk offset each epoch; interleave: "
                          "TGL's interleaved batches; tgl: each epoch one of chronological, "
                          "interleaved, offsets as TGL's train.py.", choices=VARIANTS)
