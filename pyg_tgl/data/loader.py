"""Chronological mini-batches of events with negatives and sampled temporal neighbourhoods."""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.data import TemporalData

from pyg_tgl.data.batch import TemporalBatch
from pyg_tgl.data.transform import apply_transform

EventSelection = Union[slice, Tensor, None]

NEG_STRATEGIES = ("random", "historical", "inductive")
ROOT_TIMES = ("event", "batch")


def _event_ids(events: EventSelection, num_events: int) -> Tensor:
    if events is None:
        return torch.arange(num_events, dtype=torch.long)
    if isinstance(events, slice):
        return torch.arange(num_events, dtype=torch.long)[events]
    ids = torch.as_tensor(events, dtype=torch.long).view(-1)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_events):
        raise ValueError(f"event ids must lie in [0, {num_events}), got range "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    return ids


def shard_bounds(n: int, rank: int, world: int) -> Tuple[int, int]:
    """``[lo, hi)`` of the ``rank``-th of ``world`` consecutive slices of ``n`` items (sizes
    differ by at most one, larger slices first, as :func:`torch.tensor_split`)."""
    base, extra = divmod(int(n), int(world))
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class NegativeSampler:
    r"""Draws negative destinations for link prediction.

    Strategies (as named by Poursafaei et al., NeurIPS 2022, and TGB):

    * ``random``: uniform over every node that is the destination of some event (for bipartite
      graphs such as Wikipedia this is the item side, as in PyG's TGN example; for unipartite graphs
      it is all active nodes). TGL draws from all node ids instead.
    * ``historical``: for a batch starting at event position ``p``, each negative is the
      destination of an event drawn uniformly from the events before ``p`` (pairs that really
      happened, weighted by how often); falls back to ``random`` while there is no history.
    * ``inductive``: uniform over destinations never seen in ``train_events``; falls back to
      ``random`` when every destination was seen in training.

    Randomness comes from one seeded :class:`torch.Generator`, whose state is part of
    :meth:`state_dict`, so a resumed run draws the same negatives.

    Args:
        data: the events.
        strategy: ``random``, ``historical`` or ``inductive``.
        seed: seed of the generator.
        train_events: events of the training split (``inductive`` only).
    """

    def __init__(self, data: TemporalData, strategy: str = "random", seed: int = 0,
                 train_events: EventSelection = None) -> None:
        if strategy not in NEG_STRATEGIES:
            raise ValueError(f"neg_sampling must be one of {NEG_STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self.dst = data.dst
        self.candidates = torch.unique(data.dst)
        if strategy == "inductive":
            train = _event_ids(train_events, data.num_events)
            seen = torch.unique(torch.cat([data.src[train], data.dst[train]]))
            unseen = self.candidates[~torch.isin(self.candidates, seen)]
            if unseen.numel():
                self.candidates = unseen
        self.generator = torch.Generator().manual_seed(int(seed))

    def _uniform(self, n: int) -> Tensor:
        pick = torch.randint(self.candidates.numel(), (n,), generator=self.generator)
        return self.candidates[pick]

    def sample(self, event_ids: Tensor, num_neg: int) -> Tensor:
        """Returns ``[num_neg * B]`` negative destinations, negative-major."""
        n = int(event_ids.numel()) * num_neg
        if n == 0:
            return torch.empty(0, dtype=torch.long)
        if self.strategy == "historical":
            start = int(event_ids.min())
            if start > 0:
                return self.dst[torch.randint(start, (n,), generator=self.generator)].long()
        return self._uniform(n)

    def state_dict(self) -> Dict[str, Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])


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

    Args:
        data: the events (``src``, ``dst``, ``t`` sorted by time; ``msg`` optional).
        num_neighbors: fan-out per hop, e.g. ``[10]`` or ``[10, 10]``; empty for no sampling.
        strategy: ``recent`` or ``uniform``.
        batch_size: events per batch.
        neg_sampling: ``random``, ``historical`` or ``inductive`` (see :class:`NegativeSampler`).
        num_neg: negatives per event (0 for none).
        events: which events to iterate (slice or index tensor), in this order; all by default.
        tcsr: a prebuilt :class:`~pyg_tgl.data.tcsr.TCSR` over *all* events (the sampler only
            ever returns edges strictly before a root's time, so one graph serves every split).
        add_reverse: whether a T-CSR built here holds reverse edges (undirected use).
        prop_time, history, duration: see :class:`~pyg_tgl.data.sampler.TemporalSampler`.
        num_threads: sampler threads (OpenMP); all cores by default.
        seed: seed of the sampler and the negative sampler.
        prefetch: sample batch ``i + 1`` in a background thread while batch ``i`` trains (the
            C++ sampler releases the GIL).
        batches: explicit batches of event ids for the next iteration (see :meth:`set_batches`).
        train_events: the training events, for ``inductive`` negatives.
        use_pointer_cache: let the sampler keep per-node pointers for chronological roots.
        shard: ``(rank, world_size)`` for data-parallel training: each batch (the *global*
            batch of all ranks) draws its negatives as one process would, then keeps the
            ``rank``-th of ``world_size`` consecutive slices of its events and their negatives,
            and samples neighbourhoods for that slice only (see
            :mod:`pyg_tgl.train.distributed`).
        sample_negatives: sample neighbourhoods for the negative roots too; ``False`` is TGL's
            ``no_neg`` (APAN, whose embedding ignores neighbourhoods and whose mails go to the
            positive roots' neighbours only): the hops then list the ``2 B`` positive roots.
        root_time: when each root is embedded. ``'event'`` (TGL): at its event's time, so a root
            sees the batch's earlier events among its neighbours. ``'batch'``: every root at the
            time of the batch's first event, seeing only events before the batch, as PyG's TGN
            example does; a node's roots in a batch then coincide, and
            :class:`~pyg_tgl.nn.TemporalGNN` embeds each distinct node once (about half the
            roots on Wikipedia at batch 600). Negatives and events are unchanged.
        dedup: sample the neighbours of hop ``l + 1`` once per distinct ``(node, time)`` of hop
            ``l`` (:class:`~pyg_tgl.data.sampler.TemporalSampler`'s ``dedup``; multi-hop models
            such as TGAT). Under ``recent`` sampling exactly the same neighbourhoods, so
            ``None`` (the default) turns it on there; under ``uniform`` ``True`` makes a
            repeated ``(node, time)`` share one draw instead of drawing again.
        transform: applied to each batch where it is built (in the prefetch thread with
            ``prefetch``): a :class:`~pyg_tgl.data.transform.BatchTransform` (e.g. a model's
            ``batch_transform``), its contract checked, or a callable returning the batch's
            ``plan``, stored there. Settable later.
        pin_memory: return batches in page-locked host memory, so that moving them to a CUDA
            device with ``non_blocking=True`` is asynchronous. Settable later.
    """

    def __init__(self, data: TemporalData, num_neighbors: Optional[Sequence[int]] = (10,),
                 strategy: str = "recent", batch_size: int = 600, neg_sampling: str = "random",
                 num_neg: int = 1, events: EventSelection = None, tcsr=None,
                 add_reverse: bool = True, prop_time: bool = False, history: int = 1,
                 duration: float = 0.0, num_threads: Optional[int] = None, seed: int = 0,
                 prefetch: bool = False, batches: Optional[List[Tensor]] = None,
                 train_events: EventSelection = None,
                 use_pointer_cache: bool = False, shard: Tuple[int, int] = (0, 1),
                 sample_negatives: bool = True, root_time: str = "event",
                 dedup: Optional[bool] = None,
                 transform: Optional[Callable[[TemporalBatch], Any]] = None,
                 pin_memory: bool = False) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if num_neg < 0:
            raise ValueError(f"num_neg must be >= 0, got {num_neg}")
        rank, world = (int(x) for x in shard)
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"shard must be (rank, world_size) with 0 <= rank < world_size, "
                             f"got {tuple(shard)}")
        self.shard = (rank, world)
        if root_time not in ROOT_TIMES:
            raise ValueError(f"root_time must be one of {ROOT_TIMES}, got {root_time!r}")
        self.root_time = root_time
        self.sample_negatives = bool(sample_negatives)
        self.data = data
        self.src = data.src.long()
        self.dst = data.dst.long()
        self.t = data.t.to(torch.float64)
        self.batch_size = int(batch_size)
        self.num_neg = int(num_neg)
        self.events = _event_ids(events, data.num_events)
        self.prefetch = prefetch
        self.transform, self.pin_memory = transform, bool(pin_memory)
        self.neg_sampler = NegativeSampler(data, neg_sampling, seed=seed,
                                           train_events=train_events)
        self.sampler = None
        num_neighbors = list(num_neighbors or [])
        if num_neighbors:
            from pyg_tgl.data.sampler import TemporalSampler
            if dedup is None:
                dedup = strategy == "recent" and len(num_neighbors) > 1
            if tcsr is None:
                from pyg_tgl.data.tcsr import TCSR
                tcsr = TCSR.from_data(data, add_reverse=add_reverse)
            self.sampler = TemporalSampler(
                tcsr, num_neighbors=num_neighbors, strategy=strategy, prop_time=prop_time,
                history=history, duration=duration, num_threads=num_threads, seed=seed,
                use_pointer_cache=use_pointer_cache, dedup=dedup)
        self._batches: Optional[List[Tensor]] = None
        # While iterating: the random state right after the last batch handed out (state_dict).
        self._handed_out: Optional[Dict[str, object]] = None
        if batches is not None:
            self.set_batches(batches)

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
