"""The per-node mailboxes of TGL, in flat tensors."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from pyg_tgl.nn.storage import (DeviceLike, _check_nodes, _gather, _StateModule,
                                latest_entry_of)


class Mailbox(_StateModule):
    r"""Per-node mailboxes of TGL (Zhou et al., `"TGL: A General Framework for Temporal GNN
    Training on Billion-Scale Graphs" <https://arxiv.org/abs/2203.14883>`_, VLDB 2022): ``mail``
    ``[N, slots, dim]``, ``mail_ts`` ``[N, slots]`` and a ring position per node.

    :meth:`deliver` writes at most one mail per node per call: with ``combine='last'`` the latest
    (largest time, ties to the later entry), with ``'mean'`` the average of the node's mails and
    of their times. The slot written is the node's ring position, which then advances. All of it
    is tensor code, so a mailbox for 100 million nodes costs only its tensors (see
    :meth:`bytes_needed`); with ``pin_memory`` they sit in page-locked host memory and only the
    gathered rows go to the GPU.

    Args:
        num_nodes: number of nodes :math:`N`.
        dim_mail: mail dimension.
        mailbox_size: slots per node.
        combine: ``'last'`` or ``'mean'`` (TGL's ``mail_combine``).
        dtype: dtype of the mails.
        ts_dtype: dtype of the timestamps (float64 keeps Unix times exact; float32 halves the
            memory).
        device: storage device; ``None`` follows the module's ``.to()``.
        pin_memory: allocate in page-locked host memory (ignored without CUDA).
        share_memory: allocate in shared host memory (for multi-process trainers).
    """

    _state_names = ("mail", "mail_ts", "next_pos")

    def __init__(self, num_nodes: int, dim_mail: int, mailbox_size: int = 1,
                 combine: str = "last", dtype: torch.dtype = torch.float32,
                 ts_dtype: torch.dtype = torch.float64, device: DeviceLike = None,
                 pin_memory: bool = False, share_memory: bool = False) -> None:
        super().__init__()
        if num_nodes <= 0 or dim_mail <= 0 or mailbox_size <= 0:
            raise ValueError(f"Mailbox: num_nodes, dim_mail and mailbox_size must be positive, "
                             f"got {num_nodes}, {dim_mail}, {mailbox_size}")
        if combine not in ("last", "mean"):
            raise ValueError(f"Mailbox: combine (mail_combine) must be 'last' or 'mean', "
                             f"got {combine!r}")
        self.num_nodes = int(num_nodes)
        self.dim_mail = int(dim_mail)
        self.mailbox_size = int(mailbox_size)
        self.combine = combine
        self._init_storage(device, pin_memory, share_memory)
        self.mail = self._alloc((self.num_nodes, self.mailbox_size, self.dim_mail), dtype)
        self.mail_ts = self._alloc((self.num_nodes, self.mailbox_size), ts_dtype)
        # A single slot needs no ring position; small rings fit in one byte per node.
        pos_dtype = torch.uint8 if self.mailbox_size <= 256 else torch.int32
        self.next_pos: Optional[Tensor] = (self._alloc((self.num_nodes,), pos_dtype)
                                           if self.mailbox_size > 1 else None)

    @staticmethod
    def bytes_needed(num_nodes: int, dim_mail: int, mailbox_size: int = 1,
                     dtype: torch.dtype = torch.float32,
                     ts_dtype: torch.dtype = torch.float64) -> int:
        """Bytes a mailbox with these sizes allocates."""
        pos = 0 if mailbox_size == 1 else (1 if mailbox_size <= 256 else 4)
        return num_nodes * (mailbox_size * (dim_mail * dtype.itemsize + ts_dtype.itemsize) + pos)

    def reset_state(self) -> None:
        """Empties every mailbox (zero mails at time 0, ring positions 0)."""
        self.mail.zero_()
        self.mail_ts.zero_()
        if self.next_pos is not None:
            self.next_pos.zero_()

    def gather(self, nodes: Tensor, device: DeviceLike = None) -> Tuple[Tensor, Tensor]:
        """Returns ``(mail [n, slots, dim], mail_ts [n, slots])`` of ``nodes`` on ``device``
        (default: the device of ``nodes``)."""
        device = torch.device(device) if device is not None else nodes.device
        return _gather(self.mail, nodes, device), _gather(self.mail_ts, nodes, device)

    @torch.no_grad()
    def deliver(self, nodes: Tensor, mails: Tensor, ts: Tensor,
                return_nodes: bool = True) -> Optional[Tensor]:
        """Delivers ``mails [n, dim]`` stamped ``ts [n]`` to ``nodes [n]`` (detached).

        Returns the distinct nodes that received a mail (sorted), or ``None`` without
        ``return_nodes`` (which spares an accelerator a host synchronisation).
        """
        n = nodes.numel()
        if mails.dim() != 2 or mails.size(0) != n or mails.size(1) != self.dim_mail:
            raise ValueError(f"Mailbox.deliver: mails must be [{n}, {self.dim_mail}] for {n} "
                             f"nodes, got {tuple(mails.shape)}")
        if ts.dim() != 1 or ts.numel() != n:
            raise ValueError(f"Mailbox.deliver: ts must be [{n}], got {tuple(ts.shape)}")
        _check_nodes("Mailbox.deliver", nodes, self.num_nodes)
        dev = self.mail.device
        nodes, mails, ts = nodes.to(dev).long(), mails.detach().to(dev), ts.to(dev)
        if self.combine == "last":
            winner = latest_entry_of(nodes, ts)
            mails, ts = mails.index_select(0, winner), ts.index_select(0, winner)
        else:
            nodes, inv = torch.unique(nodes, return_inverse=True)
            count = torch.bincount(inv, minlength=nodes.numel()).unsqueeze(1)
            mails = torch.zeros(nodes.numel(), self.dim_mail, dtype=mails.dtype,
                                device=dev).index_add_(0, inv, mails) / count
            ts = torch.zeros(nodes.numel(), dtype=self.mail_ts.dtype,
                             device=dev).index_add_(0, inv, ts.to(self.mail_ts.dtype))
            ts = ts / count.squeeze(1)
        mails, ts = mails.to(self.mail.dtype), ts.to(self.mail_ts.dtype)
        if self.next_pos is None:
            self.mail.view(self.num_nodes, self.dim_mail).index_copy_(0, nodes, mails)
            self.mail_ts.view(-1).index_copy_(0, nodes, ts)
        else:
            pos = self.next_pos.index_select(0, nodes).long()
            self.mail.index_put_((nodes, pos), mails)
            self.mail_ts.index_put_((nodes, pos), ts)
            self.next_pos.index_copy_(0, nodes,
                                      ((pos + 1) % self.mailbox_size).to(self.next_pos.dtype))
        if not return_nodes:
            return None
        return torch.unique(nodes) if self.combine == "last" else nodes

    def extra_repr(self) -> str:
        return (f"num_nodes={self.num_nodes}, dim_mail={self.dim_mail}, "
                f"mailbox_size={self.mailbox_size}, combine={self.combine!r}, "
                f"storage={self.storage_device}")
