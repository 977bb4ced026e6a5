r"""Mini-batch schedules over the training events: chronological and random chunk scheduling.

TGL (Zhou et al., "TGL: A General Framework for Temporal GNN Training on Billion-Scale Graphs",
VLDB 2022, Sec. 3.3) observes that with large batches the events of one batch cannot see each
other (memory and neighbourhoods only contain earlier batches), so accuracy drops; it proposes
*random chunk scheduling*: split each batch of ``batch_size`` events into ``reorder`` chunks of
``chunk = batch_size // reorder`` events and, every epoch, start the batches at a random chunk
boundary. Over the epochs every pair of nearby events lands in different batches some of the time,
so the model learns the dependencies a fixed batching hides.

What :class:`BatchSchedule` produces per epoch (always a partition of the training events: every
event exactly once, each batch in chronological order):

* ``chronological``: ``[0, bs), [bs, 2 bs), ...``.
* ``random_chunk`` with ``variant="offset"`` (default): an offset ``o = i * chunk`` with
  ``i`` uniform in ``{0, ..., reorder - 1}``; batches are ``[0, o)`` (when ``o > 0``), then
  ``[o, o + bs), [o + bs, o + 2 bs), ...``. Batches stay chronological with respect to each other.
* ``variant="interleave"``: TGL's interleaved grouping. Consecutive batches are grouped in blocks
  of ``reorder``; the ``c``-th batch of a block takes the ``c``-th chunk of each of the block's
  batches, so one batch spans ``reorder`` times the usual time range with strided chunks (and the
  batches of a block are no longer in time order; when ``bs`` is not a multiple of ``reorder``,
  chunks differ in size by at most one event, so a batch may exceed ``bs`` by up to ``reorder``).
* ``variant="tgl"``: exactly TGL's ``train.py``: each epoch picks uniformly among the
  ``reorder + 1`` groupings {chronological, interleaved, offsets ``1..reorder-1`` chunks}.

The epoch's choice is a pure function of ``(seed, epoch)``, so a resumed run replays the same
schedule without saving any generator state.
"""
from __future__ import annotations

from typing import List, Union

import torch
from torch import Tensor

from pyg_tgl.config.train import SCHEDULES, VARIANTS

EventSet = Union[slice, range, Tensor]


def as_event_ids(events: EventSet) -> Tensor:
    """Returns the event ids of a ``slice``/``range`` (``stop`` required) or tensor as int64."""
    if isinstance(events, slice):
        if events.stop is None:
            raise ValueError("an event slice needs an explicit stop")
        events = range(events.start or 0, events.stop, events.step or 1)
    if isinstance(events, range):
        return torch.arange(events.start, events.stop, events.step, dtype=torch.long)
    if not isinstance(events, Tensor) or events.dim() != 1:
        raise TypeError(f"events must be a slice, range or 1-D tensor, got {type(events)}")
    return events.long()


def chronological_batches(events: EventSet, batch_size: int) -> List[Tensor]:
    """Splits ``events`` (in order) into consecutive batches of ``batch_size`` events."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ids = as_event_ids(events)
    return list(torch.split(ids, batch_size))


def offset_batches(events: EventSet, batch_size: int, offset: int) -> List[Tensor]:
    """Batches of ``batch_size`` events starting at position ``offset``; the first ``offset``
    events form one leading, shorter batch."""
    ids = as_event_ids(events)
    if offset < 0 or offset >= max(batch_size, 1):
        raise ValueError(f"offset must lie in [0, batch_size={batch_size}), got {offset}")
    head = [ids[:offset]] if offset > 0 else []
    return [b for b in head + list(torch.split(ids[offset:], batch_size)) if b.numel()]


def interleaved_batches(events: EventSet, batch_size: int, reorder: int) -> List[Tensor]:
    """TGL's interleaved grouping (see the module docstring)."""
    ids = as_event_ids(events)
    n = ids.numel()
    pos = torch.arange(n)
    batch = pos // batch_size
    # Equals (pos % bs) // chunk when reorder divides bs (TGL's case); otherwise chunks differ
    # in size by at most one event.
    c = (pos % batch_size) * reorder // batch_size
    group = (batch // reorder) * reorder + c
    # Stable sort by group keeps time order inside a group, like pandas' groupby in TGL.
    order = torch.argsort(group, stable=True)
    counts = torch.bincount(group)
    counts = counts[counts > 0]
    return list(torch.split(ids[order], counts.tolist()))


class BatchSchedule:
    r"""Per-epoch batches of training event ids, fed to
    :meth:`pyg_tgl.data.loader.TemporalNeighborLoader.set_batches`.

    See the module docstring for what each schedule does.

    Args:
        events (slice or torch.Tensor): the training events in chronological order.
        batch_size (int): events per batch.
        schedule (str): ``"chronological"`` or ``"random_chunk"``.
        reorder (int): chunks per batch (TGL's ``train.reorder``); ``batch_size >= reorder``.
        variant (str): ``"offset"``, ``"interleave"`` or ``"tgl"`` (random chunk only).
        seed (int): seed of the per-epoch choice.
    """

    def __init__(self, events: EventSet, batch_size: int, schedule: str = "chronological",
                 reorder: int = 1, variant: str = "offset", seed: int = 0) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule.name={schedule!r} is unknown; allowed: {list(SCHEDULES)}")
        if variant not in VARIANTS:
            raise ValueError(f"schedule.variant={variant!r} is unknown; allowed: {list(VARIANTS)}")
        if batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {batch_size}")
        if schedule == "random_chunk":
            if reorder < 1:
                raise ValueError(f"schedule.reorder must be >= 1, got {reorder}")
            if batch_size < reorder:
                raise ValueError(
                    f"train.batch_size={batch_size} < schedule.reorder={reorder}: a chunk "
                    f"(batch_size // reorder) would be empty; lower schedule.reorder")
        self.events = as_event_ids(events)
        self.batch_size = int(batch_size)
        self.schedule = schedule
        self.reorder = int(reorder)
        self.variant = variant
        self.seed = int(seed)

    @property
    def chunk(self) -> int:
        return self.batch_size // self.reorder

    def choice(self, epoch: int) -> str:
        """Names the grouping used in ``epoch``: ``"offset:<events>"`` or ``"interleave"``."""
        if self.schedule == "chronological" or self.reorder == 1:
            return "offset:0"
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.variant == "interleave":
            return "interleave"
        if self.variant == "offset":
            i = int(torch.randint(self.reorder, (1,), generator=g))
            return f"offset:{i * self.chunk}"
        # tgl: index 0 chronological, 1 interleaved, 2..reorder offsets of 1..reorder-1 chunks.
        i = int(torch.randint(self.reorder + 1, (1,), generator=g))
        if i == 1:
            return "interleave"
        return f"offset:{0 if i == 0 else (i - 1) * self.chunk}"

    def batches(self, epoch: int) -> List[Tensor]:
        """The list of int64 event-id tensors to train on in ``epoch``."""
        c = self.choice(epoch)
        if c == "interleave":
            return interleaved_batches(self.events, self.batch_size, self.reorder)
        return offset_batches(self.events, self.batch_size, int(c.split(":")[1]))

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(events={self.events.numel()}, "
                f"batch_size={self.batch_size}, schedule={self.schedule!r}, "
                f"reorder={self.reorder}, variant={self.variant!r})")
