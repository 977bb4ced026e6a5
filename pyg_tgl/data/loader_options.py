r"""The typed options of :class:`~pyg_tgl.data.loader.TemporalNeighborLoader`, in three groups:

* :class:`SamplingOptions`: how each root's temporal neighbourhood is sampled (the
  :class:`~pyg_tgl.data.sampler.TemporalSampler`'s options) and which roots are sampled when;
* :class:`NegativeOptions`: how many negative destinations each event gets, and from where
  (:class:`~pyg_tgl.data.negatives.NegativeSampler`);
* :class:`BatchOptions`: which events are batched, how many per batch, this rank's share of
  them, and how batches are delivered (prefetching, page-locked memory, a per-batch transform).

Each option is a typed field with its default; values are checked when the object is made, with
one-line errors naming the option. The loader also takes every field as a keyword shortcut
(:data:`SHORTCUTS`, e.g. ``batch_size=200`` or ``neg_sampling="historical"``), applied on top of
the objects given.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import Tensor

__all__ = ["EventSelection", "NEG_STRATEGIES", "ROOT_TIMES", "SamplingOptions",
           "NegativeOptions", "BatchOptions", "SHORTCUTS", "loader_options", "event_ids",
           "check_neg_strategy"]

#: Which events: a ``slice`` or an index tensor over the data set's events; ``None`` for all.
EventSelection = Union[slice, Tensor, None]

NEG_STRATEGIES = ("random", "historical", "inductive")
ROOT_TIMES = ("event", "batch")


def event_ids(events: EventSelection, num_events: int) -> Tensor:
    """The int64 ids of an :data:`EventSelection` over ``num_events`` events, in its order;
    :class:`ValueError` for ids outside ``[0, num_events)``."""
    if events is None:
        return torch.arange(num_events, dtype=torch.long)
    if isinstance(events, slice):
        return torch.arange(num_events, dtype=torch.long)[events]
    ids = torch.as_tensor(events, dtype=torch.long).view(-1)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_events):
        raise ValueError(f"event ids must lie in [0, {num_events}), got range "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    return ids


def check_neg_strategy(strategy: str) -> None:
    """:class:`ValueError` unless ``strategy`` is one of :data:`NEG_STRATEGIES`."""
    if strategy not in NEG_STRATEGIES:
        raise ValueError(f"neg_sampling must be one of {NEG_STRATEGIES}, got {strategy!r}")


@dataclass(frozen=True)
class SamplingOptions:
    r"""How the loader samples temporal neighbourhoods (TGL, Zhou et al., VLDB 2022).

    Args:
        num_neighbors: fan-out per hop, e.g. ``(10,)`` or ``(10, 10)``; empty for no sampling
            (the batches then have no hops).
        strategy: ``recent`` or ``uniform``.
        prop_time, history, duration: see :class:`~pyg_tgl.data.sampler.TemporalSampler`.
        num_threads: sampler threads (OpenMP); all cores by default.
        use_pointer_cache: let the sampler keep per-node pointers for chronological roots.
        dedup: sample the neighbours of hop ``l + 1`` once per distinct ``(node, time)`` of hop
            ``l`` (the sampler's ``dedup``; multi-hop models such as TGAT). Under ``recent``
            sampling exactly the same neighbourhoods, so ``None`` (the default) turns it on
            there for more than one hop; under ``uniform`` ``True`` makes a repeated
            ``(node, time)`` share one draw instead of drawing again.
        root_time: when each root is embedded. ``'event'`` (TGL): at its event's time, so a root
            sees the batch's earlier events among its neighbours. ``'batch'``: every root at the
            time of the batch's first event, seeing only events before the batch, as PyG's TGN
            example does; a node's roots in a batch then coincide, and
            :class:`~pyg_tgl.nn.TemporalGNN` embeds each distinct node once. Negatives and
            events are unchanged.
        sample_negatives: sample neighbourhoods for the negative roots too; ``False`` is TGL's
            ``no_neg`` (APAN, whose embedding ignores neighbourhoods and whose mails go to the
            positive roots' neighbours only): the hops then list the ``2 B`` positive roots.
        add_reverse: whether a T-CSR that the loader builds itself (no ``tcsr=`` given) lists
            each event under both endpoints (undirected neighbourhoods).
    """

    num_neighbors: Tuple[int, ...] = (10,)
    strategy: str = "recent"
    prop_time: bool = False
    history: int = 1
    duration: float = 0.0
    num_threads: Optional[int] = None
    use_pointer_cache: bool = False
    dedup: Optional[bool] = None
    root_time: str = "event"
    sample_negatives: bool = True
    add_reverse: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_neighbors", tuple(self.num_neighbors or ()))
        if self.root_time not in ROOT_TIMES:
            raise ValueError(f"root_time must be one of {ROOT_TIMES}, got {self.root_time!r}")

    @property
    def sampler_dedup(self) -> bool:
        """``dedup`` with ``None`` decided: on for ``recent`` sampling over several hops."""
        if self.dedup is not None:
            return bool(self.dedup)
        return self.strategy == "recent" and len(self.num_neighbors) > 1


@dataclass(frozen=True)
class NegativeOptions:
    r"""Negative destinations for link prediction
    (:class:`~pyg_tgl.data.negatives.NegativeSampler`).

    Args:
        strategy: ``random``, ``historical`` or ``inductive`` (the loader's ``neg_sampling``).
        num_neg: negatives per event (0 for none).
        train_events: the training events, for ``inductive`` negatives.
    """

    strategy: str = "random"
    num_neg: int = 1
    train_events: EventSelection = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_neg_strategy(self.strategy)
        if self.num_neg < 0:
            raise ValueError(f"num_neg must be >= 0, got {self.num_neg}")
        object.__setattr__(self, "num_neg", int(self.num_neg))


@dataclass(frozen=True)
class BatchOptions:
    r"""Which events the loader batches and how it hands the batches out.

    Args:
        batch_size: events per batch (the *global* batch of all ranks when sharded).
        events: which events to iterate (slice or index tensor), in this order; all by default.
            :meth:`~pyg_tgl.data.loader.TemporalNeighborLoader.set_batches` overrides the
            batching of one iteration.
        shard: ``(rank, world_size)`` for data-parallel training: each (global) batch draws its
            negatives as one process would, then keeps the ``rank``-th of ``world_size``
            consecutive slices of its events and their negatives, and samples neighbourhoods for
            that slice only (see :mod:`pyg_tgl.train.distributed`).
        prefetch: build batch ``i + 1`` in a background thread while batch ``i`` trains (the
            C++ sampler releases the GIL).
        pin_memory: return batches in page-locked host memory, so that moving them to a CUDA
            device with ``non_blocking=True`` is asynchronous.
        transform: applied to each batch where it is built (in the prefetch thread with
            ``prefetch``): a :class:`~pyg_tgl.data.transform.BatchTransform` (e.g. a model's
            ``batch_transform``), its contract checked, or a callable returning the batch's
            ``plan``, stored there.
    """

    batch_size: int = 600
    events: EventSelection = field(default=None, compare=False)
    shard: Tuple[int, int] = (0, 1)
    prefetch: bool = False
    pin_memory: bool = False
    transform: Optional[Callable[[Any], Any]] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        object.__setattr__(self, "batch_size", int(self.batch_size))
        rank, world = (int(x) for x in self.shard)
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"shard must be (rank, world_size) with 0 <= rank < world_size, "
                             f"got {tuple(self.shard)}")
        object.__setattr__(self, "shard", (rank, world))
        object.__setattr__(self, "pin_memory", bool(self.pin_memory))


_GROUPS = {"sampling": SamplingOptions, "negatives": NegativeOptions, "batching": BatchOptions}

#: Keyword shortcut of the loader -> (option group, field).
SHORTCUTS: Dict[str, Tuple[str, str]] = {
    **{f.name: ("sampling", f.name) for f in fields(SamplingOptions)},
    "neg_sampling": ("negatives", "strategy"),
    "num_neg": ("negatives", "num_neg"),
    "train_events": ("negatives", "train_events"),
    **{f.name: ("batching", f.name) for f in fields(BatchOptions)},
}


def loader_options(sampling: Optional[SamplingOptions] = None,
                   negatives: Optional[NegativeOptions] = None,
                   batching: Optional[BatchOptions] = None,
                   **shortcuts: Any) -> Tuple[SamplingOptions, NegativeOptions, BatchOptions]:
    r"""The three option objects with the keyword ``shortcuts`` applied on top (defaults where
    an object is not given).

    Raises:
        TypeError: an unknown keyword (naming the closest known one) or an object of the wrong
            type.
    """
    given = {"sampling": sampling, "negatives": negatives, "batching": batching}
    for group, obj in given.items():
        if obj is not None and not isinstance(obj, _GROUPS[group]):
            raise TypeError(f"TemporalNeighborLoader: {group}= takes a "
                            f"{_GROUPS[group].__name__}, got {type(obj).__name__}")
    changes: Dict[str, Dict[str, Any]] = {group: {} for group in _GROUPS}
    for key, value in shortcuts.items():
        if key not in SHORTCUTS:
            close = difflib.get_close_matches(key, list(SHORTCUTS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"TemporalNeighborLoader got an unknown option {key!r}{hint} "
                            f"(known: {', '.join(sorted(SHORTCUTS))})")
        group, name = SHORTCUTS[key]
        changes[group][name] = value
    out = []
    for group, cls in _GROUPS.items():
        obj = given[group]
        out.append(replace(obj, **changes[group]) if obj is not None else cls(**changes[group]))
    return out[0], out[1], out[2]
