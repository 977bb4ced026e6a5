r"""The state that passes from one training step to the next, as an explicit value.

A step of a :class:`~pyg_tgl.nn.TemporalGNN` scores a batch and returns a :class:`StateUpdate`:
what the batch writes into node memory and mailboxes (:class:`~pyg_tgl.nn.MemoryWrites`) and the
events it adds to the pair history. Nothing is written until the trainer applies it
(:meth:`~pyg_tgl.nn.TemporalGNN.apply_update`), after the optimizer step (TGL's order, Zhou et
al., VLDB 2022), so an event never informs its own prediction. Under data parallelism the ranks
exchange their updates first (:func:`~pyg_tgl.train.distributed.gather_update`) and every rank
applies the concatenation, which keeps the replicas identical.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from pyg_tgl.nn.memory import MemoryWrites, NodeMemory

DELIVER_TO = ("self", "neighbors")


class PairEvents(NamedTuple):
    """A batch's positive events, for the pair history."""

    src: Tensor  #: ``[B]`` sources
    dst: Tensor  #: ``[B]`` destinations
    t: Tensor  #: ``[B]`` times


class StateUpdate(NamedTuple):
    """What one step writes into a model's state (``None``: that part of the model is absent).

    Entries are in event order, so the updates of consecutive batches, concatenated, equal the
    update of their union: what data-parallel training relies on.
    """

    memory: Optional[MemoryWrites] = None  #: memory and mails of the batch's events
    events: Optional[PairEvents] = None  #: the events the pair history counts


def canonical_writes(memory: NodeMemory, writes: MemoryWrites) -> MemoryWrites:
    """Writes in the storage dtypes (int64 ids), the same on every rank and every batch whatever
    autocast produced, so ranks can exchange them as raw bytes."""
    value, ts = memory.memory.dtype, memory.memory_ts.dtype
    return MemoryWrites(writes.nodes.long(), writes.memory.to(value), writes.ts.to(ts),
                        writes.mail_nodes.long(), writes.mails.to(value), writes.mail_ts.to(ts))


def empty_writes(memory: NodeMemory) -> MemoryWrites:
    """The writes of a batch without events (a rank's empty slice of a small global batch)."""
    empty = torch.empty(0, dtype=torch.long)
    return canonical_writes(memory, MemoryWrites(
        empty, torch.empty(0, memory.memory_dim), torch.empty(0), empty,
        torch.empty(0, memory.dim_mail), torch.empty(0)))


@torch.no_grad()
def memory_writes(memory: NodeMemory, src: Tensor, dst: Tensor, t: Tensor, nodes: Tensor,
                  values: Tensor, ts: Tensor, edge_attr: Optional[Tensor] = None,
                  deliver_to: str = "self", hop=None) -> MemoryWrites:
    r"""The memory writes and mails of ``B`` events (TGL's semantics), without applying them.

    The positive endpoints store their updated memories; each receives the mail
    :math:`[s_\text{self} \,\|\, s_\text{other} \,\|\, e]` stamped with the event time, and with
    ``deliver_to='neighbors'`` (APAN) the sampled neighbours of the positive endpoints receive a
    copy. Entries are in event order (an event's source, its destination, then the neighbours
    that receive its mails): on equal times the later event's mail wins, however the batch is
    split.

    Args:
        memory: the node memory written to.
        src, dst, t: ``[B]`` the events.
        nodes: ``[2 B]`` the positive endpoints, sources then destinations.
        values: ``[2 B, d]`` their updated memories (as the step computed them).
        ts: ``[2 B]`` the query times the memories are stamped with.
        edge_attr: ``[B, raw_msg_dim]`` the events' features.
        deliver_to: ``'self'`` or ``'neighbors'``.
        hop: with ``'neighbors'``: hop 0 of the batch's most recent snapshot.
    """
    b = src.numel()
    mem_src, mem_dst = values[:b], values[b:]
    t = t.to(ts.device)
    if deliver_to == "self":
        mail_nodes, mails, mail_ts = memory.pair_mails(src, dst, t, mem_src, mem_dst, edge_attr)
        return canonical_writes(memory, MemoryWrites(nodes, values, ts, mail_nodes, mails,
                                                     mail_ts))
    if hop is None:
        raise ValueError("TemporalGNN: memory.deliver_to 'neighbors' needs sampled neighbours "
                         "in the batch (sampling.neighbor)")
    src_mail, dst_mail = memory.make_mails(mem_src, mem_dst, edge_attr)
    root_mail = torch.cat([src_mail, dst_mail])
    root_ts = torch.cat([t, t])
    nbr, root = hop.edge_index
    if hop.num_roots > 2 * b:  # neighbours of negative roots receive nothing
        keep = root < 2 * b
        nbr, root = nbr[keep], root[keep]
    targets = torch.cat([src, dst, hop.nodes.index_select(0, nbr)])
    mails = torch.cat([root_mail, root_mail.index_select(0, root.to(root_mail.device))])
    mail_ts = torch.cat([root_ts, root_ts.index_select(0, root.to(root_ts.device))])
    # Event-major order (source, destination, then the neighbours of both).
    events = torch.arange(b, device=root.device)
    order = torch.sort(torch.cat([events, events, root % b]), stable=True).indices
    return canonical_writes(memory, MemoryWrites(
        nodes, values, ts, targets.index_select(0, order),
        mails.index_select(0, order.to(mails.device)),
        mail_ts.index_select(0, order.to(mail_ts.device))))
