r"""Checks of the data set a run loads, before anything trains, and the mapping of the model's
``sampling`` section to the loader's arguments.

The options themselves are checked by the schema (:func:`pyg_tgl.config.check_config`); what is
left here needs the data: node ids that fit the memory, labels for the node task, a split with
events in every part. Each check raises :class:`ConfigError` with one line that names the option
or the data set, so the command line can print it as ``error: ...`` and exit with status 2.
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from pyg_tgl.config.errors import ConfigError


def _get(cfg: Any, path: str, default: Any = None) -> Any:
    return OmegaConf.select(cfg, path, default=default)


def is_edgebank(cfg: Any) -> bool:
    """Whether the configuration selects ``model=edgebank``."""
    return _get(cfg, "model.name") == "edgebank"


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
