"""The interface of PyG's :class:`torch_geometric.nn.models.tgn.TGNMemory` on
:class:`~pyg_tgl.nn.NodeMemory`: the method and attribute names PyG code uses, mapped onto
NodeMemory's own state without a second copy of it."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

# TGNMemory attributes with no counterpart here, and what replaces each of them.
_REPLACED = {
    "msg_s_store": "pending messages are tensors, memory.mailbox.mail [num_nodes, slots, "
                   "2 * memory_dim + raw_msg_dim] and memory.mailbox.mail_ts, not a dict per node",
    "msg_d_store": "pending messages of both endpoints are tensors in memory.mailbox (mail, "
                   "mail_ts), not a dict per node",
    "msg_s_module": "the message function is TGL's identity mail [s_src || s_dst || e] "
                    "(memory.make_mails); the time encoding is applied in memory.updater",
    "msg_d_module": "the message function is TGL's identity mail [s_dst || s_src || e] "
                    "(memory.make_mails); the time encoding is applied in memory.updater",
    "aggr_module": "mails to one node combine in memory.mailbox as mail_combine says "
                   "('last' or 'mean', memory.mailbox.combine)",
    "gru": "only updater='gru' has a GRU cell (memory.updater.cell); this memory's update "
           "function is memory.updater",
}


class TGNMemoryInterface:
    r"""PyG's ``TGNMemory`` names on :class:`~pyg_tgl.nn.NodeMemory` (mixed into it; relies on
    its ``compute``, ``write``, ``deliver_pairs``, ``memory_ts`` and ``updater``).

    * ``forward(n_id) -> (memory, last_update)`` and ``update_state(src, dst, t, raw_msg)``,
      the calls of PyG's training loop.
    * ``last_update``: PyG's buffer of each node's stored-memory time, here the same tensor as
      ``memory_ts`` (an alias: writes through either name are seen by both).
    * ``time_enc``, ``device`` and, with ``updater='gru'``, ``gru``: the time encoder, the
      device of the parameters, and the GRU cell.
    * The attributes of PyG's message store and message functions (``msg_s_store``,
      ``msg_d_store``, ``msg_s_module``, ``msg_d_module``, ``aggr_module``) have no
      counterpart: asking for one raises an :class:`AttributeError` that names what replaces
      it.
    """

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name not in _REPLACED:
                raise
        raise AttributeError(f"{type(self).__name__} has no {name!r} (a TGNMemory attribute): "
                             f"{_REPLACED[name]}") from None

    @property
    def last_update(self) -> Tensor:
        """``[num_nodes]`` timestamps of the stored memories: the tensor ``memory_ts`` itself
        under PyG's name (in the ``ts_dtype`` of the memory, float64 by default, where
        PyG's is int64)."""
        return self.memory_ts

    @last_update.setter
    def last_update(self, value: Tensor) -> None:
        # Copied in place: replacing the tensor would drop pinned or shared storage.
        if tuple(value.shape) != tuple(self.memory_ts.shape):
            raise ValueError(f"{type(self).__name__}.last_update: expected shape "
                             f"{tuple(self.memory_ts.shape)} (one time per node), got "
                             f"{tuple(value.shape)}")
        with torch.no_grad():
            self.memory_ts.copy_(value)

    @property
    def time_enc(self):
        """The updater's :class:`~pyg_tgl.nn.TimeEncoder` (``None`` when ``time_dim == 0``)."""
        return getattr(self.updater, "time_enc", None)

    @property
    def device(self) -> torch.device:
        """Device of the parameters, where :meth:`forward` computes (the state may be stored
        elsewhere, see ``storage_device``)."""
        return self._compute_device()

    @property
    def gru(self) -> torch.nn.GRUCell:
        """The updater's GRU cell (``updater='gru'`` only). Its input is the mail and the time
        encoding, ``2 * memory_dim + raw_msg_dim + time_dim`` wide, as with PyG's
        ``IdentityMessage``."""
        cell = getattr(self.updater, "cell", None)
        if not isinstance(cell, torch.nn.GRUCell):
            raise AttributeError("gru")  # answered by __getattr__, which says why
        return cell

    def forward(self, n_id: Tensor, t: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Returns ``(memory, last_update)`` of nodes ``n_id``, as ``TGNMemory`` does: the
        memory updated from the pending mails, and the time of each node's latest event."""
        state = self.compute(n_id, t)
        return state.memory, state.last_update

    @torch.no_grad()
    def update_state(self, src: Tensor, dst: Tensor, t: Tensor,
                     raw_msg: Optional[Tensor] = None) -> None:
        """Absorbs the pending mails of the events' endpoints into their memory, then delivers
        the events' own mails (built from the updated memories), as ``TGNMemory`` does."""
        if src.shape != dst.shape or src.shape != t.shape or src.dim() != 1:
            raise ValueError(f"{type(self).__name__}.update_state: src, dst and t must be 1-D "
                             f"of equal length, got {tuple(src.shape)}, {tuple(dst.shape)}, "
                             f"{tuple(t.shape)}")
        n_id, inv = torch.unique(torch.cat([src, dst]), return_inverse=True)
        state = self.compute(n_id)
        self.write(n_id, state.memory, state.ts)
        b = src.numel()
        self.deliver_pairs(src, dst, t, state.memory[inv[:b]], state.memory[inv[b:]], raw_msg)
