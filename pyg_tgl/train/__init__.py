"""Training side of pyg_tgl: the loop, batch schedules, optimisation options, callbacks and
loggers, metrics, checkpoints, node classification and sweep summaries (see
``docs/training.md``).

Submodules load on first attribute access, so ``import pyg_tgl.train`` stays cheap.
"""
from pyg_tgl._lazy import lazy_attributes

_LAZY = {
    "LinkTrainer": "pyg_tgl.train.loop",
    "link_loss": "pyg_tgl.train.loop",
    "BatchSchedule": "pyg_tgl.train.schedule",
    "average_precision": "pyg_tgl.train.metrics",
    "roc_auc": "pyg_tgl.train.metrics",
    "mrr": "pyg_tgl.train.metrics",
    "LinkMetricAccumulator": "pyg_tgl.train.metrics",
    "save_checkpoint": "pyg_tgl.train.checkpoint",
    "load_checkpoint": "pyg_tgl.train.checkpoint",
    "inductive_mask": "pyg_tgl.train.splits",
    "cap_split": "pyg_tgl.train.splits",
    "TemporalEmbedder": "pyg_tgl.train.node",
    "train_classifier": "pyg_tgl.train.node",
    "Callback": "pyg_tgl.train.callbacks",
    "RunInfo": "pyg_tgl.train.callbacks",
    "StepInfo": "pyg_tgl.train.callbacks",
    "CSVLogger": "pyg_tgl.train.loggers",
    "TensorBoardLogger": "pyg_tgl.train.loggers",
    "WandbLogger": "pyg_tgl.train.loggers",
    "MLflowLogger": "pyg_tgl.train.loggers",
    "TrainingOptimizer": "pyg_tgl.train.optim",
    "LRSchedule": "pyg_tgl.train.optim",
    "build_optimizer": "pyg_tgl.train.optim",
    "run_experiment": "pyg_tgl.train.experiment",
    "ConfigError": "pyg_tgl.train.experiment",
    "write_summary": "pyg_tgl.train.summary",
    "read_tgl_config": "pyg_tgl.train.tgl_config",
    "apply_tgl_config": "pyg_tgl.train.tgl_config",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
