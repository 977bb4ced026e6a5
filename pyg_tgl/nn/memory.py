"""Node memory with a mailbox (TGL), held in flat tensors (no per-node Python objects).

The mailbox (:mod:`pyg_tgl.nn.mailbox`) and the storage it shares with the memory
(:mod:`pyg_tgl.nn.storage`) live in their own modules; their names are importable from here too.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

from pyg_tgl.nn.mailbox import Mailbox
from pyg_tgl.nn.storage import (DeviceLike, _check_nodes, _gather, _StateModule,
                                latest_entry_of, latest_per_node, unique_pairs)
from pyg_tgl.nn.tgn_interface import TGNMemoryInterface
from pyg_tgl.nn.updaters import UPDATERS

__all__ = ["NodeMemory", "Mailbox", "MemoryState", "MemoryQuery", "MemoryWrites",
           "latest_entry_of", "latest_per_node", "unique_pairs", "DeviceLike"]


class MemoryState(NamedTuple):
    """What :meth:`NodeMemory.compute` returns for ``n`` queried nodes."""

    memory: Tensor  #: ``[n, d]`` updated memory (differentiable w.r.t. the updater)
    last_update: Tensor  #: ``[n]`` time of the latest event the node's state knows of
    memory_ts: Tensor  #: ``[n]`` timestamp of the stored (not yet updated) memory
    ts: Tensor  #: ``[n]`` query time used by the updater (stamped on the memory when written)


class MemoryQuery(NamedTuple):
    """The index work of :meth:`NodeMemory.compute` for queries ``(n_id, t)``: which rows to
    gather and which distinct ``(node, time)`` queries to update. It depends on the ids and times
    alone, so a loader can compute it on the host ahead of time (:meth:`NodeMemory.query_plan`)
    and spare the device the synchronisations that ``torch.unique`` costs there."""

    nodes: Tensor  #: ``[u]`` distinct node ids, sorted
    node_of: Tensor  #: ``[n]`` row of each query's node in ``nodes``
    query_node: Tensor  #: ``[q]`` row in ``nodes`` of each distinct ``(node, time)`` query
    query_t: Tensor  #: ``[q]`` its time
    query_of: Tensor  #: ``[n]`` each query's row among the distinct ones


class MemoryWrites(NamedTuple):
    """What one batch writes into a :class:`NodeMemory`: memories of the batch's nodes and the
    mails it delivers, in event order.

    Separating the computation of the writes from their application is what keeps replicas of
    the memory identical under data parallelism: every rank computes the writes of its share of
    a batch, the writes of all ranks are concatenated in rank (= event) order, and every rank
    applies the concatenation (see :mod:`pyg_tgl.train.distributed`).
    """

    nodes: Tensor  #: ``[n]`` nodes whose memory is written
    memory: Tensor  #: ``[n, d]`` their new memory
    ts: Tensor  #: ``[n]`` the memory's timestamp
    mail_nodes: Tensor  #: ``[m]`` mail recipients
    mails: Tensor  #: ``[m, dim_mail]`` the mails
    mail_ts: Tensor  #: ``[m]`` the mails' timestamps

    @classmethod
    def cat(cls, parts: "list[MemoryWrites]") -> "MemoryWrites":
        """Concatenates writes in the given order (later entries win ties)."""
        return cls(*(torch.cat([getattr(p, f) for p in parts]) for f in cls._fields))


class NodeMemory(TGNMemoryInterface, _StateModule):
    r"""Node memory with a mailbox, TGL's design (Zhou et al., `"TGL: A General Framework for
    Temporal GNN Training on Billion-Scale Graphs" <https://arxiv.org/abs/2203.14883>`_, VLDB
    2022) behind the interface of :class:`torch_geometric.nn.models.tgn.TGNMemory` (Rossi et
    al., `"Temporal Graph Networks for Deep Learning on Dynamic Graphs"
    <https://arxiv.org/abs/2006.10637>`_).

    State (outside the state dict, see :meth:`memory_state`): ``memory`` ``[N, d]``,
    ``memory_ts`` ``[N]`` and a :class:`Mailbox` of mails
    :math:`[s_u \,\|\, s_v \,\|\, e_{uv}]` (dimension ``2 d + raw_msg_dim``).

    * :meth:`forward` / :meth:`compute` return the memory of the queried nodes *updated* from
      their pending mails, without writing anything; gradients flow into the updater.
    * :meth:`write` stores memories (detached), :meth:`deliver` stores mails.
    * :meth:`update_state` (PyG's name) does both for a batch of events, so a PyG training loop
      written for ``TGNMemory`` runs unchanged: only the constructor differs (PyG's
      ``message_module`` and ``aggregator_module`` become TGL's identity mail and ``'last'``
      mailbox).

    PyG's names (:class:`~pyg_tgl.nn.tgn_interface.TGNMemoryInterface`): ``num_nodes``,
    ``raw_msg_dim``, ``memory_dim``, ``time_dim``, ``memory``, ``last_update`` (the tensor
    ``memory_ts`` under PyG's name), ``time_enc``, ``device``, ``gru`` (``updater='gru'``),
    ``forward``, ``update_state``, ``reset_parameters``, ``reset_state``, ``detach``. PyG's
    message store and modules (``msg_s_store``, ``msg_s_module``, ``aggr_module``, ...) raise an
    :class:`AttributeError` naming what replaces them. Unlike ``TGNMemory``, :meth:`eval` flushes
    nothing (``forward`` applies pending mails in either mode) and ``memory`` / ``last_update``
    are not in the state dict.

    Where PyG keeps raw messages in one Python dict entry per node, all state here is in
    tensors, so a call costs a few gathers and scatters whatever ``num_nodes`` is.

    .. note::
        Time input (TGL, not the TGN paper): the updater encodes ``t - memory_ts``, the query
        time minus the memory's timestamp, and a written memory is stamped with its query time.
        Called without ``t`` (as PyG's loop does), the query time is each node's latest mail
        time, which gives the TGN paper's gap between consecutive events.

    Args:
        num_nodes: number of nodes.
        raw_msg_dim: dimension of the raw event message (edge feature); may be 0.
        memory_dim: memory dimension :math:`d`.
        time_dim: time-encoding dimension of the updater (0 disables the time input).
        updater: ``'gru'`` (TGN), ``'rnn'`` (JODIE), ``'transformer'`` (APAN) or a module called
            as ``updater(memory, memory_ts, mail, mail_ts, t)`` (one row per query; a module with
            ``accepts_index = True`` gets each node once plus ``index=``, see
            :mod:`pyg_tgl.nn.updaters`).
        mailbox_size: slots per node.
        mail_combine: ``'last'`` or ``'mean'``, how mails to one node in one call combine.
        num_heads, dropout, att_dropout: options of the ``'transformer'`` updater.
        device: storage device; ``None`` follows the module's ``.to()``.
        ts_dtype: dtype of stored timestamps.
        pin_memory: keep the state in page-locked host memory (ignored without CUDA).
        share_memory: keep the state in shared host memory.
        dtype: dtype of stored memories and mails (default: :func:`torch.get_default_dtype`).
    """

    _state_names = ("memory", "memory_ts")

    def __init__(self, num_nodes: int, raw_msg_dim: int, memory_dim: int, time_dim: int,
                 updater: Union[str, torch.nn.Module] = "gru", mailbox_size: int = 1,
                 mail_combine: str = "last", num_heads: int = 2, dropout: float = 0.0,
                 att_dropout: float = 0.0, device: DeviceLike = None,
                 ts_dtype: torch.dtype = torch.float64, pin_memory: bool = False,
                 share_memory: bool = False, dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        dtype = dtype or torch.get_default_dtype()
        if num_nodes <= 0 or memory_dim <= 0 or raw_msg_dim < 0 or time_dim < 0:
            raise ValueError(f"NodeMemory: expected num_nodes > 0, memory_dim > 0, "
                             f"raw_msg_dim >= 0, time_dim >= 0, got {num_nodes}, {memory_dim}, "
                             f"{raw_msg_dim}, {time_dim}")
        self.num_nodes = int(num_nodes)
        self.raw_msg_dim = int(raw_msg_dim)
        self.memory_dim = int(memory_dim)
        self.time_dim = int(time_dim)
        dim_mail = 2 * self.memory_dim + self.raw_msg_dim
        self.dim_mail = dim_mail
        if isinstance(updater, str):
            if updater not in UPDATERS:
                raise ValueError(f"NodeMemory: updater (memory_update) must be one of "
                                 f"{sorted(UPDATERS)}, got {updater!r}")
            kwargs = {}
            if updater == "transformer":
                kwargs = dict(num_heads=num_heads, dropout=dropout, att_dropout=att_dropout)
            updater = UPDATERS[updater](dim_mail, self.memory_dim, self.time_dim,
                                        mailbox_size=mailbox_size, **kwargs)
        self.updater = updater
        self._init_storage(device, pin_memory, share_memory)
        self.memory = self._alloc((self.num_nodes, self.memory_dim), dtype)
        self.memory_ts = self._alloc((self.num_nodes,), ts_dtype)
        self.mailbox = Mailbox(self.num_nodes, dim_mail, mailbox_size, combine=mail_combine,
                               dtype=dtype, ts_dtype=ts_dtype, device=device, pin_memory=pin_memory,
                               share_memory=share_memory)

    @property
    def mailbox_size(self) -> int:
        return self.mailbox.mailbox_size

    @property
    def nbytes(self) -> int:
        return super().nbytes + self.mailbox.nbytes

    def _compute_device(self) -> torch.device:
        for p in self.updater.parameters():
            return p.device
        return self.storage_device

    def reset_parameters(self) -> None:
        """Resets the updater's parameters and the state."""
        if hasattr(self.updater, "reset_parameters"):
            self.updater.reset_parameters()
        self.reset_state()

    def reset_state(self) -> None:
        """Zero memory at time 0 and empty mailboxes for every node."""
        self.memory.zero_()
        self.memory_ts.zero_()
        self.mailbox.reset_state()

    def detach(self) -> None:
        """Cuts the state from any autograd graph (it is stored detached, so this only guards
        state assigned from outside)."""
        self.memory = self.memory.detach()
        self.memory_ts = self.memory_ts.detach()

    def query_plan(self, n_id: Tensor, t: Tensor) -> MemoryQuery:
        """The :class:`MemoryQuery` of ``compute(n_id, t)``, on the device of ``n_id``.

        A sampled neighbourhood lists few distinct nodes many times (on Wikipedia ~10% distinct,
        ~40% distinct ``(node, time)`` pairs): :meth:`compute` gathers each node's state once
        and runs the updater once per distinct ``(node, time)`` query."""
        nodes, node_of = torch.unique(n_id, return_inverse=True)
        t = t.to(device=n_id.device, dtype=self.memory_ts.dtype)
        # Distinct (node row, time) queries.
        query_node, query_t, query_of = unique_pairs(node_of, t)
        return MemoryQuery(nodes, node_of, query_node, query_t, query_of)

    def compute(self, n_id: Tensor, t: Optional[Tensor] = None,
                plan: Optional[MemoryQuery] = None) -> MemoryState:
        """Updated memory of nodes ``n_id`` queried at times ``t`` (default: each node's latest
        mail time), from their stored memory and pending mails; writes nothing. ``plan``: the
        :meth:`query_plan` of ``(n_id, t)`` computed ahead of time (on any device)."""
        _check_nodes("NodeMemory.compute", n_id, self.num_nodes)
        if t is not None and t.shape != n_id.shape:
            raise ValueError(f"NodeMemory.compute: t must have the shape of n_id "
                             f"{tuple(n_id.shape)}, got {tuple(t.shape)}")
        dev = self._compute_device()
        if plan is not None:
            if t is None or plan.node_of.numel() != n_id.numel():
                raise ValueError(f"NodeMemory.compute: the plan is for {plan.node_of.numel()} "
                                 f"timed queries, got {n_id.numel()}"
                                 f"{' without times' if t is None else ''}")
            plan = MemoryQuery(*(x.to(dev, non_blocking=True) for x in plan))
            nodes, node_of = plan.nodes, plan.node_of
        elif t is None:
            nodes, node_of = torch.unique(n_id.to(dev), return_inverse=True)
        else:
            plan = self.query_plan(n_id.to(dev), t.to(dev))
            nodes, node_of = plan.nodes, plan.node_of
        # State stored in a narrower dtype (``dtype=torch.bfloat16`` halves its bytes) is
        # computed on in the updater's dtype (a parameter-free updater gets it as stored).
        param = next(self.updater.parameters(), None)
        work = self.memory.dtype if param is None else param.dtype
        memory = _gather(self.memory, nodes, dev).to(work)
        memory_ts = _gather(self.memory_ts, nodes, dev)
        mail, mail_ts = self.mailbox.gather(nodes, dev)
        mail = mail.to(work)
        last_update = torch.maximum(memory_ts, mail_ts.amax(dim=1))
        if t is None:
            t = last_update.index_select(0, node_of)
            query_node, query_t, query_of = (torch.arange(nodes.numel(), device=dev),
                                             last_update, node_of)
        else:
            t = t.to(device=dev, dtype=memory_ts.dtype)
            query_node, query_t, query_of = plan.query_node, plan.query_t, plan.query_of
        if getattr(self.updater, "accepts_index", False):
            new = self.updater(memory, memory_ts, mail, mail_ts, query_t, index=query_node)
        else:
            new = self.updater(memory.index_select(0, query_node),
                               memory_ts.index_select(0, query_node),
                               mail.index_select(0, query_node),
                               mail_ts.index_select(0, query_node), query_t)
        return MemoryState(memory=new.index_select(0, query_of),
                           last_update=last_update.index_select(0, node_of),
                           memory_ts=memory_ts.index_select(0, node_of), ts=t)

    @torch.no_grad()
    def write(self, n_id: Tensor, memory: Tensor, ts: Tensor) -> None:
        """Stores ``memory [n, d]`` stamped ``ts [n]`` for nodes ``n_id`` (detached); a node
        listed twice keeps its latest entry (largest ``ts``, ties to the later one)."""
        _check_nodes("NodeMemory.write", n_id, self.num_nodes)
        if memory.shape != (n_id.numel(), self.memory_dim) or ts.shape != n_id.shape:
            raise ValueError(f"NodeMemory.write: expected memory [{n_id.numel()}, "
                             f"{self.memory_dim}] and ts [{n_id.numel()}], got "
                             f"{tuple(memory.shape)} and {tuple(ts.shape)}")
        winner = latest_entry_of(n_id, ts)
        idx = n_id.to(self.memory.device).long()
        self.memory.index_copy_(0, idx, memory.detach().index_select(0, winner).to(
            self.memory.device, self.memory.dtype))
        self.memory_ts.index_copy_(0, idx, ts.index_select(0, winner).to(
            self.memory_ts.device, self.memory_ts.dtype))

    def deliver(self, nodes: Tensor, mails: Tensor, ts: Tensor,
                return_nodes: bool = True) -> Optional[Tensor]:
        """Delivers mails to nodes, see :meth:`Mailbox.deliver`."""
        return self.mailbox.deliver(nodes, mails, ts, return_nodes)

    def make_mails(self, mem_src: Tensor, mem_dst: Tensor,
                   raw_msg: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """TGL mails of events ``(src, dst)``: ``[s_src || s_dst || e]`` for the source and
        ``[s_dst || s_src || e]`` for the destination."""
        if self.raw_msg_dim:
            if raw_msg is None or raw_msg.dim() != 2 or raw_msg.size(1) != self.raw_msg_dim:
                got = None if raw_msg is None else tuple(raw_msg.shape)
                raise ValueError(f"NodeMemory: raw_msg must be [num_events, {self.raw_msg_dim}],"
                                 f" got {got}")
            raw_msg = raw_msg.to(mem_src.dtype)
            return (torch.cat([mem_src, mem_dst, raw_msg], dim=1),
                    torch.cat([mem_dst, mem_src, raw_msg], dim=1))
        return torch.cat([mem_src, mem_dst], dim=1), torch.cat([mem_dst, mem_src], dim=1)

    def pair_mails(self, src: Tensor, dst: Tensor, t: Tensor, mem_src: Tensor, mem_dst: Tensor,
                   raw_msg: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """``(nodes, mails, ts)`` of events ``(src, dst, t)`` for both endpoints (TGL's
        ``deliver_to: self``), interleaved ``(src_0, dst_0, src_1, ...)`` so that, on equal
        times, the later event wins."""
        src_mail, dst_mail = self.make_mails(mem_src, mem_dst, raw_msg)
        nodes = torch.stack([src, dst], dim=1).view(-1)
        mails = torch.stack([src_mail, dst_mail], dim=1).view(nodes.numel(), self.dim_mail)
        return nodes, mails, t.repeat_interleave(2)

    @torch.no_grad()
    def deliver_pairs(self, src: Tensor, dst: Tensor, t: Tensor, mem_src: Tensor,
                      mem_dst: Tensor, raw_msg: Optional[Tensor] = None) -> None:
        """Delivers the mails of events ``(src, dst, t)`` to both endpoints; the latest event
        of a node wins."""
        self.deliver(*self.pair_mails(src, dst, t, mem_src, mem_dst, raw_msg),
                     return_nodes=False)

    @torch.no_grad()
    def apply_writes(self, writes: MemoryWrites) -> None:
        """Writes the memories, then delivers the mails, of :class:`MemoryWrites`."""
        self.write(writes.nodes, writes.memory, writes.ts)
        self.deliver(writes.mail_nodes, writes.mails, writes.mail_ts, return_nodes=False)

    def memory_state(self) -> dict:
        """The state tensors (memory, timestamps, mailbox), e.g. for checkpoints."""
        out = {"memory": self.memory, "memory_ts": self.memory_ts,
               "mail": self.mailbox.mail, "mail_ts": self.mailbox.mail_ts}
        if self.mailbox.next_pos is not None:
            out["next_pos"] = self.mailbox.next_pos
        return out

    @torch.no_grad()
    def load_memory_state(self, state: dict) -> None:
        """Copies tensors from :meth:`memory_state` into the (already allocated) state."""
        for name, dst in self.memory_state().items():
            if name not in state:
                raise KeyError(f"NodeMemory.load_memory_state: missing {name!r}")
            if tuple(state[name].shape) != tuple(dst.shape):
                raise ValueError(f"NodeMemory.load_memory_state: {name} has shape "
                                 f"{tuple(state[name].shape)}, expected {tuple(dst.shape)}")
            dst.copy_(state[name])

    def extra_repr(self) -> str:
        return (f"num_nodes={self.num_nodes}, raw_msg_dim={self.raw_msg_dim}, "
                f"memory_dim={self.memory_dim}, time_dim={self.time_dim}, "
                f"storage={self.storage_device}")
