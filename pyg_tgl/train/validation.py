r"""Checks of a composed configuration and of the data set it loads, before anything trains.

Every check raises :class:`ConfigError` with one line that names the option (dotted, as on the
command line), the value it got and what is allowed, so the command line can print it as
``error: ...`` and exit with status 2 instead of a traceback.
"""
from __future__ import annotations

import copy
import math
import re
from typing import Any, Dict, List, Optional, Tuple

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from pyg_tgl.data.loader import ROOT_TIMES
from pyg_tgl.train.callbacks import validate_callbacks_config
from pyg_tgl.train.errors import ConfigError
from pyg_tgl.train.loggers import validate_logger_config
from pyg_tgl.train.loop import LOSSES, PRECISIONS
from pyg_tgl.train.optim import validate_optim_config
from pyg_tgl.train.schedule import SCHEDULES, VARIANTS

MODELS = ("jodie", "dysat", "tgat", "tgn", "apan", "edgebank")
TASKS = ("link", "node")
NEG_SAMPLING = ("random", "historical", "inductive")
STRATEGIES = ("recent", "uniform")
MEMORY_TYPES = ("node", "none")
TIES = ("average", "optimistic", "pessimistic")
SELECT = ("best", "last")
SELECT_METRICS = ("ap", "auc", "mrr", "loss")


# ------------------------------------------------------------------------------------------------
# Configuration checks
# ------------------------------------------------------------------------------------------------

def _get(cfg: Any, path: str, default: Any = None) -> Any:
    return OmegaConf.select(cfg, path, default=default)


def _choice(cfg: Any, path: str, allowed: Tuple[str, ...], default: Any = None) -> Any:
    value = _get(cfg, path, default)
    if value not in allowed:
        raise ConfigError(f"{path}={value!r} is not supported; allowed values: {list(allowed)}")
    return value


def _integer(cfg: Any, path: str, minimum: Optional[int] = None, allow_none: bool = False,
             default: Any = None) -> None:
    value = _get(cfg, path, default)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or (
            minimum is not None and value < minimum):
        expected = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise ConfigError(f"{path}={value!r}: expected {expected}"
                          f"{' or null' if allow_none else ''}")


def _number(cfg: Any, path: str, above: Optional[float] = None,
            at_least: Optional[float] = None, below: Optional[float] = None,
            default: Any = None) -> None:
    """A finite number within the given bounds (NaN and infinities are refused)."""
    value = _get(cfg, path, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and (above is None or value > above) and \
        (at_least is None or value >= at_least) and (below is None or value < below)
    if not ok:
        low = (f"> {above}" if above is not None else f">= {at_least}"
               if at_least is not None else "")
        bounds = " and ".join(b for b in (low, f"< {below}" if below is not None else "") if b)
        raise ConfigError(f"{path}={value!r}: expected a finite number{' ' + bounds if bounds else ''}")


def sampling_options(model_cfg: Any) -> Dict[str, Any]:
    """Maps TGL's ``sampling`` section to :class:`~pyg_tgl.data.loader.TemporalNeighborLoader`
    arguments (``no_sample: true`` means no neighbourhood at all, as JODIE)."""
    s = model_cfg.get("sampling", None) or {}
    if s.get("no_sample", False):
        neighbors: List[int] = []
    else:
        neighbors = s.get("neighbor", None) or []
        if not isinstance(neighbors, (list, tuple, ListConfig)) or any(
                isinstance(k, bool) or not isinstance(k, int) for k in neighbors):
            raise ConfigError(f"model.sampling.neighbor={neighbors!r}: expected a list of "
                              f"integer fan-outs, one per layer (e.g. [10] or [10, 10])")
        neighbors = [int(k) for k in neighbors]
    return {
        "num_neighbors": neighbors,
        "strategy": s.get("strategy", "recent"),
        "prop_time": bool(s.get("prop_time", False)),
        "history": int(s.get("history", 1)),
        "duration": float(s.get("duration", 0) or 0),
        "num_threads": s.get("num_thread", None),
        "no_neg": bool(s.get("no_neg", False)),
        "root_time": str(s.get("root_time", "event")),
        "dedup": None if s.get("dedup", None) is None else bool(s["dedup"]),
    }


#: Sizes of the model sections: (dotted option, minimum, section it applies to). Null means the
#: model's default for ``gnn.dim_out`` only.
_MODEL_SIZES = (
    ("model.sampling.layer", 1, "sampling"), ("model.sampling.history", 1, "sampling"),
    ("model.sampling.num_thread", 1, "sampling"),
    ("model.memory.dim_out", 1, "memory"), ("model.memory.dim_time", 0, "memory"),
    ("model.memory.mailbox_size", 1, "memory"), ("model.memory.attention_head", 1, "memory"),
    ("model.gnn.layer", 1, "gnn"), ("model.gnn.att_head", 1, "gnn"),
    ("model.gnn.dim_time", 0, "gnn"), ("model.gnn.dim_out", 1, "gnn"),
)


#: Options that are true or false (where set; ``model.sampling.dedup`` may also be null).
_SWITCHES = (
    "deterministic", "quiet", "progress", "hardware.prefetch", "hardware.all_on_gpu", "hardware.sync_timers",
    "hardware.host_plans", "eval.memory_carry", "model.sampling.prop_time",
    "model.sampling.no_neg", "model.sampling.no_sample", "model.sampling.dedup",
    "model.memory.combine_node_feature", "model.gnn.dense", "model.gnn.unique_inputs",
    "model.gnn.time_proj", "model.gnn.pair_features", "model.gnn.pair_recency",
    "model.gnn.pair_history", "model.gnn.pair_history_recency", "model.gnn.pair_history_nodes",
)


def _switches(cfg: DictConfig) -> None:
    for path in _SWITCHES:
        value = _get(cfg, path)
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"{path}={value!r}: expected true or false")


def _run_options(cfg: DictConfig) -> None:
    """Threads, device and the embedding export: values that would otherwise fail (or be
    ignored) only when they are used, after the training."""
    for path in ("hardware.num_threads", "hardware.sampler_threads"):
        _integer(cfg, path, 1, allow_none=True)
    device = _get(cfg, "hardware.device", "auto")
    if device != "auto":
        try:
            torch.device(str(device))
        except RuntimeError:
            raise ConfigError(f"hardware.device={device!r} is not a device; allowed values: "
                              f"auto, cpu, cuda, cuda:N (or another torch device)") from None
    if _get(cfg, "export.time") is not None:
        _number(cfg, "export.time")
    nodes = _get(cfg, "export.nodes")
    if nodes is not None and (not isinstance(nodes, (list, tuple, ListConfig)) or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in nodes)):
        raise ConfigError(f"export.nodes={nodes!r}: expected a list of node ids (e.g. [0, 5]) "
                          f"or null for all nodes")


def _model_sizes(cfg: DictConfig, with_memory: bool, with_gnn: bool) -> None:
    """Every layer size, head count and fan-out of the model is a positive integer (a zero or a
    string would otherwise surface as a shape error deep inside the first forward pass)."""
    used = {"sampling": True, "memory": with_memory, "gnn": with_gnn}
    for path, minimum, section in _MODEL_SIZES:
        if used[section] and _get(cfg, path) is not None:
            _integer(cfg, path, minimum)
    if with_gnn:
        dim, heads = _get(cfg, "model.gnn.dim_out"), _get(cfg, "model.gnn.att_head", 1)
        if dim is not None and dim % heads:
            raise ConfigError(f"model.gnn.dim_out={dim} is not divisible by model.gnn.att_head="
                              f"{heads}: each attention head gets dim_out / att_head features")


_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}


def parse_checkpoint_every(value: Any) -> Optional[Tuple[str, float]]:
    """``train.checkpoint_every``: ``None`` (epoch ends only), an integer N (every N training
    batches), or a duration ``"90s"``, ``"30min"``, ``"2h"`` (at the first batch end after
    that much training time since the last save).

    Returns:
        ``None``, ``("batches", N)`` or ``("seconds", S)``.

    Raises:
        ConfigError: naming the option and the accepted forms.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return "batches", float(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|sec|min|m|h)\s*", str(value))
    if isinstance(value, str) and match and float(match.group(1)) > 0:
        return "seconds", float(match.group(1)) * _UNITS[match.group(2)]
    raise ConfigError(f"train.checkpoint_every={value!r}: expected null (epoch ends only), a "
                      f"number of batches >= 1, or a duration such as '90s', '30min' or '2h'")


def normalize_config(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` with shorthands spelt out: one fan-out ``model.sampling.neighbor=10``
    is the list ``[10]`` that TGL's files write."""
    cfg = copy.deepcopy(cfg)
    neighbor = _get(cfg, "model.sampling.neighbor")
    if isinstance(neighbor, int) and not isinstance(neighbor, bool):
        cfg.model.sampling.neighbor = [neighbor]
    return cfg


EDGEBANK_MODES = ("unlimited", "time_window")
EDGEBANK_WINDOW_RULES = ("dyglib", "tgb")


def is_edgebank(cfg: Any) -> bool:
    """Whether the configuration selects ``model=edgebank``."""
    return _get(cfg, "model.name") == "edgebank"


def validate_edgebank_config(cfg: DictConfig) -> None:
    """Checks the EdgeBank options and what EdgeBank cannot do (node task, embedding export).

    Raises:
        ConfigError: one line naming the option and the allowed values.
    """
    _choice(cfg, "model.mode", EDGEBANK_MODES, "unlimited")
    _choice(cfg, "model.window_rule", EDGEBANK_WINDOW_RULES, "dyglib")
    mode = _get(cfg, "model.mode", "unlimited")
    window = _get(cfg, "model.time_window")
    if window is not None:
        if mode != "time_window":
            raise ConfigError(f"model.time_window={window!r} is only used with "
                              f"model.mode=time_window (got model.mode={mode!r}); set it to null")
        if isinstance(window, bool) or not isinstance(window, (int, float)) or \
                not math.isfinite(window) or window < 0:
            raise ConfigError(f"model.time_window={window!r}: expected a duration >= 0 in the "
                              f"data's time unit, or null (derived from the history)")
    proportion = _get(cfg, "model.window_proportion")
    if proportion is not None and (isinstance(proportion, bool) or
                                   not isinstance(proportion, (int, float)) or
                                   not 0 < proportion <= 1):
        raise ConfigError(f"model.window_proportion={proportion!r}: expected a number in (0, 1] "
                          f"or null (data.test_ratio)")
    if _get(cfg, "task.name") != "link":
        raise ConfigError(f"model=edgebank supports task=link only (got "
                          f"task={_get(cfg, 'task.name')!r}): it has no node embeddings")
    if _get(cfg, "export.time") is not None:
        raise ConfigError("export.time: model=edgebank has no node embeddings to export; set "
                          "export.time=null")


def validate_config(cfg: DictConfig) -> None:
    """Checks options and their combinations before anything is loaded.

    Raises:
        ConfigError: one line naming the option and the allowed values.
    """
    _choice(cfg, "task.name", TASKS)
    _integer(cfg, "train.epoch", 1)
    _integer(cfg, "train.batch_size", 1)
    _integer(cfg, "train.num_negatives", 1)
    _integer(cfg, "eval.num_negatives", 1)
    _integer(cfg, "eval.batch_size", 1, allow_none=True)
    _integer(cfg, "eval.val_num_negatives", 1)
    _integer(cfg, "eval.min_subset_events", 1, default=50)
    _integer(cfg, "train.max_events", 3, allow_none=True)
    _integer(cfg, "train.patience", 0)
    parse_checkpoint_every(_get(cfg, "train.checkpoint_every"))
    _choice(cfg, "train.loss", LOSSES)
    _choice(cfg, "train.neg_sampling", NEG_SAMPLING)
    _choice(cfg, "eval.neg_sampling", NEG_SAMPLING)
    _choice(cfg, "eval.ties", TIES)
    _choice(cfg, "eval.select", SELECT)
    _choice(cfg, "eval.metric", SELECT_METRICS)
    _choice(cfg, "hardware.precision", PRECISIONS, "float32")
    _integer(cfg, "seed")
    _switches(cfg)
    _run_options(cfg)
    _number(cfg, "train.lr", above=0.0)
    for p in ("train.dropout", "train.att_dropout"):
        _number(cfg, p, at_least=0.0, below=1.0, default=0.0)

    name = _choice(cfg, "schedule.name", SCHEDULES)
    if name == "random_chunk":
        _integer(cfg, "schedule.reorder", 1)
        _choice(cfg, "schedule.variant", VARIANTS)
        bs, reorder = _get(cfg, "train.batch_size"), _get(cfg, "schedule.reorder")
        if bs < reorder:
            raise ConfigError(
                f"train.batch_size={bs} < schedule.reorder={reorder}: random chunk scheduling "
                f"needs chunks of batch_size // reorder >= 1 events; lower schedule.reorder or "
                f"raise train.batch_size")

    model = cfg.get("model", None)
    if model is None:
        raise ConfigError(f"model is not set; allowed values: {list(MODELS)}")
    mem_type = _choice(cfg, "model.memory.type", MEMORY_TYPES, "none")
    _model_sizes(cfg, with_memory=mem_type != "none",
                 with_gnn=_get(cfg, "model.gnn.arch", "identity") != "identity")
    _number(cfg, "model.sampling.duration", at_least=0.0, default=0.0)
    s = sampling_options(model)
    if s["num_neighbors"]:
        _choice(cfg, "model.sampling.strategy", STRATEGIES, "recent")
        _choice(cfg, "model.sampling.root_time", ROOT_TIMES, "event")
        layer = _get(cfg, "model.sampling.layer", len(s["num_neighbors"]))
        if layer != len(s["num_neighbors"]):
            raise ConfigError(
                f"model.sampling.neighbor={s['num_neighbors']} has {len(s['num_neighbors'])} "
                f"entries but model.sampling.layer={layer}; give one fan-out per layer")
        if any(k < 1 for k in s["num_neighbors"]):
            raise ConfigError(f"model.sampling.neighbor={s['num_neighbors']}: fan-outs must be "
                              f">= 1")
    if s["history"] > 1 and s["duration"] <= 0:
        raise ConfigError(
            f"model.sampling.history={s['history']} snapshots need model.sampling.duration > 0 "
            f"(got {s['duration']}): snapshot sampling without a snapshot length is undefined")
    if s["duration"] > 0 and s["history"] == 1 and s["strategy"] == "recent" and \
            s["num_neighbors"]:
        raise ConfigError(
            f"model.sampling.duration={s['duration']} with history=1 and strategy='recent': "
            f"snapshot sampling needs model.sampling.history > 1 (or duration: 0)")
    if s["no_neg"] and s["num_neighbors"]:
        arch = _get(cfg, "model.gnn.arch", "transformer_attention")
        if arch != "identity" or _get(cfg, "model.gnn.pair_features", False):
            what = (f"model.gnn.arch={arch!r}" if arch != "identity"
                    else "model.gnn.pair_features=true")
            raise ConfigError(
                f"model.sampling.no_neg=true leaves the negatives without neighbourhoods, but "
                f"{what} needs them; set model.sampling.no_neg=false")
    if mem_type != "none" and _get(cfg, "model.memory.deliver_to", "self") == "neighbors" and \
            not s["num_neighbors"]:
        raise ConfigError(
            "model.memory.deliver_to='neighbors' needs sampled neighbours; set "
            "model.sampling.neighbor or deliver_to: self")
    from pyg_tgl.train.distributed import BACKENDS
    _choice(cfg, "hardware.distributed.backend", BACKENDS, "auto")
    nproc = _get(cfg, "hardware.distributed.nproc_per_node", 1)
    if nproc != "auto" and (not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1):
        raise ConfigError(f"hardware.distributed.nproc_per_node={nproc!r}: expected 'auto' or an "
                          f"integer >= 1")
    unused = _get(cfg, "hardware.distributed.find_unused_parameters", "auto")
    if unused not in ("auto", True, False):
        raise ConfigError(f"hardware.distributed.find_unused_parameters={unused!r}: expected "
                          f"auto, true or false")
    _number(cfg, "hardware.distributed.timeout_s", above=0.0, default=300)
    if is_edgebank(cfg):
        validate_edgebank_config(cfg)
    validate_optim_config(cfg)
    validate_logger_config(cfg)
    validate_callbacks_config(cfg)
    device = str(_get(cfg, "hardware.device", "auto"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"hardware.device={device!r} but CUDA is not available here; allowed "
                          f"values on this machine: ['auto', 'cpu']")


def validate_dataset(cfg: DictConfig, ds: Any) -> None:
    """Checks that the data set fits the configuration (node ids for memory, labels for the
    node task)."""
    data = ds.data
    name = _get(cfg, "data.name", "?")
    if data.src.numel() < 3:
        raise ConfigError(f"data={name!r} holds {data.src.numel()} events; at least 3 are needed "
                          f"(one per split)")
    max_id = int(torch.maximum(data.src.max(), data.dst.max()))
    if ds.num_nodes is None or ds.num_nodes <= max_id:
        raise ConfigError(
            f"data={name!r}: node ids must be integers in [0, num_nodes) for "
            f"model.memory / sampling, got max id {max_id} with num_nodes={ds.num_nodes}")
    if _get(cfg, "task.name") == "node" and getattr(ds, "node_labels", None) is None:
        raise ConfigError(f"task=node needs node labels, but data={name!r} has none; use a data "
                          f"set with labels (e.g. data=wikipedia_nofeat) or task=link")


def check_split(split: Dict[str, slice], ds: Any, name: str) -> None:
    """Refuses a split whose ``train``, ``val`` or ``test`` part holds no event, saying why
    (without validation events no epoch can be selected; without test events nothing is
    measured), before any training time is spent.

    Args:
        split (dict): the ``train``/``val``/``test`` slices the run uses.
        ds: the :class:`~pyg_tgl.data.datasets.TemporalDataset` (its times and split rule).
        name (str): the data set's name, for the message.
    """
    sizes = {k: split[k].stop - split[k].start for k in ("train", "val", "test")}
    empty = [k for k, n in sizes.items() if n <= 0]
    if not empty:
        return
    what = " and ".join(f"the {k} split" for k in empty)
    counts = " | ".join(f"{k} {n:,}" for k, n in sizes.items())
    if "ext_roll" in getattr(ds, "split_desc", ""):
        why = "TGL's ext_roll column assigns no event to it"
        fix = "check the ext_roll column of edges.csv, or set data.split=chronological"
    else:
        times = ds.data.t[:split["test"].stop]
        why = (f"a chronological split keeps events of equal time together, and these "
               f"{times.numel():,} events have only {int(torch.unique(times).numel()):,} "
               f"distinct timestamps")
        fix = ("use a data set with finer timestamps or more events, or change data.val_ratio "
               "/ data.test_ratio")
    raise ConfigError(f"data={name!r}: {what} {'is' if len(empty) == 1 else 'are'} empty "
                      f"({counts} events): {why}; {fix}")
