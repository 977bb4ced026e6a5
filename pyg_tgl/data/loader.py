"""Chronological mini-batches of events with negatives and sampled temporal neighbourhoods.

:class:`TemporalNeighborLoader` takes its options as three typed objects
(:mod:`pyg_tgl.data.loader_options`: :class:`SamplingOptions`, :class:`NegativeOptions`,
:class:`BatchOptions`) or as keyword shortcuts for their fields.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.data import TemporalData

from pyg_tgl.data.batch import TemporalBatch
from pyg_tgl.data.loader_options import (NEG_STRATEGIES, ROOT_TIMES, BatchOptions,  # noqa: F401
                                         EventSelection, NegativeOptions, SamplingOptions,
                                         event_ids, loader_options)
from pyg_tgl.data.negatives import NegativeSampler
from pyg_tgl.data.transform import apply_transform

__all__ = ["TemporalNeighborLoader", "NegativeSampler", "SamplingOptions", "NegativeOptions",
           "BatchOptions", "EventSelection", "shard_bounds", "NEG_STRATEGIES", "ROOT_TIMES"]

# ``num_neighbors`` not given positionally: the options (or their default) decide.
_UNSET: Any = object()


def shard_bounds(n: int, rank: int, world: int) -> Tuple[int, int]:
    """``[lo, hi)`` of the ``rank``-th of ``world`` consecutive slices of ``n`` items (sizes
    differ by at most one, larger slices first, as :func:`torch.tensor_split`)."""
    base, extra = divmod(int(n), int(world))
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class TemporalNeighborLoader:
    r"""Iterates chronological mini-batches of events as :class:`TemporalBatch` objects.

    Each batch holds ``batch_size`` consecutive events, ``num_neg`` negative destinations per
    event, and the temporal neighbourhoods of all roots ``cat([src, dst, neg_dst])`` sampled in
    C++ by :class:`~pyg_tgl.data.sampler.TemporalSampler` (TGL, Zhou et al., VLDB 2022). It
    works inside any plain PyG training loop:

    .. code-block:: python

        loader = TemporalNeighborLoader(data, num_neighbors=[10], batch_size=200,
                                        events=slice(0, train_end))
        for batch in loader:
            hop = batch.hops[0]            # SampledHop: edge_index, eid, dt, dense_index ...

    The same loader from its option objects:

    .. code-block:: python

        loader = TemporalNeighborLoader(
            data, sampling=SamplingOptions(num_neighbors=(10,)),
            negatives=NegativeOptions(strategy="historical", num_neg=1),
            batching=BatchOptions(batch_size=200, events=slice(0, train_end)))

    Args:
        data: the events (``src``, ``dst``, ``t`` sorted by time; ``msg`` optional).
        num_neighbors: shortcut for ``sampling.num_neighbors`` (the one positional option).
        sampling: :class:`SamplingOptions` (default: its defaults).
        negatives: :class:`NegativeOptions`.
        batching: :class:`BatchOptions`.
        tcsr: a prebuilt :class:`~pyg_tgl.data.tcsr.TCSR` over *all* events (the sampler only
            ever returns edges strictly before a root's time, so one graph serves every split);
            built here (``sampling.add_reverse``) when not given.
        seed: seed of the sampler and of the negative sampler.
        batches: explicit batches of event ids for the next iteration (see :meth:`set_batches`).
        **options: keyword shortcuts, one per option field, applied on top of the objects:
            the fields of :class:`SamplingOptions` and :class:`BatchOptions` by their names, and
            ``neg_sampling``, ``num_neg``, ``train_events`` for :class:`NegativeOptions`
            (:data:`~pyg_tgl.data.loader_options.SHORTCUTS`). An unknown one is a
            :class:`TypeError` naming the closest known option.

    Attributes:
        sampling, negatives, batching: the option objects in force. ``transform`` and
            ``pin_memory`` can be set later (they replace ``batching``'s fields).
    """

    def __init__(self, data: TemporalData, num_neighbors: Optional[Sequence[int]] = _UNSET, *,
                 sampling: Optional[SamplingOptions] = None,
                 negatives: Optional[NegativeOptions] = None,
                 batching: Optional[BatchOptions] = None, tcsr: Any = None, seed: int = 0,
                 batches: Optional[List[Tensor]] = None, **options: Any) -> None:
        if num_neighbors is not _UNSET:
            options["num_neighbors"] = num_neighbors
        self.sampling, self.negatives, self.batching = loader_options(
            sampling, negatives, batching, **options)
        self.data = data
        self.src = data.src.long()
        self.dst = data.dst.long()
        self.t = data.t.to(torch.float64)
        self.events = event_ids(self.batching.events, data.num_events)
        self.neg_sampler = NegativeSampler(data, self.negatives.strategy, seed=seed,
                                           train_events=self.negatives.train_events)
        self.sampler = None
        s = self.sampling
        if s.num_neighbors:
            from pyg_tgl.data.sampler import TemporalSampler
            if tcsr is None:
                from pyg_tgl.data.tcsr import TCSR
                tcsr = TCSR.from_data(data, add_reverse=s.add_reverse)
            self.sampler = TemporalSampler(
                tcsr, num_neighbors=list(s.num_neighbors), strategy=s.strategy,
                prop_time=s.prop_time, history=s.history, duration=s.duration,
                num_threads=s.num_threads, seed=seed, use_pointer_cache=s.use_pointer_cache,
                dedup=s.sampler_dedup)
        self._batches: Optional[List[Tensor]] = None
        # While iterating: the random state right after the last batch handed out (state_dict).
        self._handed_out: Optional[Dict[str, object]] = None
        if batches is not None:
            self.set_batches(batches)

    # The options the batching code reads, by their old attribute names.
    @property
    def batch_size(self) -> int:
        return self.batching.batch_size

    @property
    def shard(self) -> Tuple[int, int]:
        return self.batching.shard

    @property
    def prefetch(self) -> bool:
        return self.batching.prefetch

    @property
    def num_neg(self) -> int:
        return self.negatives.num_neg

    @property
    def root_time(self) -> str:
        return self.sampling.root_time

    @property
    def sample_negatives(self) -> bool:
        return self.sampling.sample_negatives

    @property
    def transform(self) -> Optional[Callable[[TemporalBatch], Any]]:
        """Applied to each batch where it is built; returns the batch's ``plan``. Settable."""
        return self.batching.transform

    @transform.setter
    def transform(self, fn: Optional[Callable[[TemporalBatch], Any]]) -> None:
        self.batching = replace(self.batching, transform=fn)

    @property
    def pin_memory(self) -> bool:
        """Batches come in page-locked host memory. Settable."""
        return self.batching.pin_memory

    @pin_memory.setter
    def pin_memory(self, value: bool) -> None:
        self.batching = replace(self.batching, pin_memory=bool(value))

    def set_batches(self, batches: Sequence[Tensor]) -> None:
        """Makes the next iteration yield exactly these batches of event ids, in this order.

        This is how a schedule (e.g. random chunk scheduling) decides batch boundaries while the
        loader keeps sampling.
        """
        self._batches = [torch.as_tensor(b, dtype=torch.long).view(-1) for b in batches]

    def _default_batches(self) -> List[Tensor]:
        return list(torch.split(self.events, self.batch_size))

    def __len__(self) -> int:
        if self._batches is not None:
            return len(self._batches)
        return (int(self.events.numel()) + self.batch_size - 1) // self.batch_size

    def _ready_batch(self, event_ids: Tensor) -> TemporalBatch:
        """:meth:`make_batch`, then the ``transform``'s plan and page-locking."""
        batch = self.make_batch(event_ids)
        if self.transform is not None:
            batch = apply_transform(self.transform, batch)
        return batch.pin_memory() if self.pin_memory else batch

    def make_batch(self, event_ids: Tensor) -> TemporalBatch:
        """Builds one batch (negatives + neighbourhoods) for the given events (this rank's slice
        of them when sharded)."""
        neg = self.neg_sampler.sample(event_ids, self.num_neg)
        # Taken over the whole (global) batch, so every rank's slice uses the same time.
        start = (self.t[event_ids].amin() if self.root_time == "batch" and event_ids.numel()
                 else None)
        rank, world = self.shard
        if world > 1:
            lo, hi = shard_bounds(event_ids.numel(), rank, world)
            neg = neg.view(self.num_neg, -1)[:, lo:hi].reshape(-1)
            event_ids = event_ids[lo:hi]
        src, dst, t = self.src[event_ids], self.dst[event_ids], self.t[event_ids]
        root_nodes = torch.cat([src, dst, neg])
        root_ts = torch.cat([t, t, t.repeat(self.num_neg)])
        if start is not None:
            root_ts = start.expand_as(root_ts).clone()
        blocks: list = []
        if self.sampler is not None:
            sampled = root_nodes.numel() if self.sample_negatives else 2 * src.numel()
            blocks = self.sampler.sample(root_nodes[:sampled], root_ts[:sampled])
        return TemporalBatch(src=src, dst=dst, t=t, eid=event_ids, neg_dst=neg,
                             root_nodes=root_nodes, root_ts=root_ts, blocks=blocks)

    def __iter__(self) -> Iterator[TemporalBatch]:
        batches = self._batches if self._batches is not None else self._default_batches()
        self._batches = None
        if not self.prefetch:
            return self._in_turn(batches)
        return self._prefetching(batches)

    def _in_turn(self, batches: List[Tensor]) -> Iterator[TemporalBatch]:
        try:
            for ids in batches:
                batch = self._ready_batch(ids)
                self._handed_out = self._random_state()
                yield batch
        finally:
            self._handed_out = None

    def _prefetching(self, batches: List[Tensor]) -> Iterator[TemporalBatch]:
        out: "queue.Queue" = queue.Queue(maxsize=2)
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for ids in batches:
                    if stop.is_set():
                        return
                    out.put((self._ready_batch(ids), self._random_state()))
                out.put(done)
            except BaseException as exc:  # surfaced in the consumer thread
                out.put(exc)

        self._handed_out = self._random_state()  # before the worker draws ahead
        worker = threading.Thread(target=produce, daemon=True)
        worker.start()
        try:
            while True:
                item = out.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                batch, self._handed_out = item
                yield batch
        finally:
            stop.set()
            while worker.is_alive():
                try:
                    out.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.01)
            self._handed_out = None

    def _random_state(self) -> Dict[str, object]:
        state: Dict[str, object] = {"neg_sampler": self.neg_sampler.state_dict()}
        if self.sampler is not None:
            state["sampler"] = self.sampler.state_dict()
        return state

    def state_dict(self) -> Dict[str, object]:
        """RNG state of the negative sampler and the sampler as of the last batch handed out
        (a prefetching loader has drawn further ahead), for exact resume, mid-epoch too."""
        return self._handed_out if self._handed_out is not None else self._random_state()

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.neg_sampler.load_state_dict(state["neg_sampler"])
        if self.sampler is not None and "sampler" in state:
            self.sampler.load_state_dict(state["sampler"])
        self._handed_out = None
