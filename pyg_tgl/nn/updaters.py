"""Memory updaters: new memory from the old memory and the pending mails.

Every updater is called as ``updater(memory, memory_ts, mail, mail_ts, t)`` with

* ``memory`` ``[n, d]`` and ``memory_ts`` ``[n]``: the stored state of ``n`` nodes,
* ``mail`` ``[n, S, D]`` and ``mail_ts`` ``[n, S]``: their mailbox (``S`` slots),
* ``t`` ``[n]``: the time at which the memory is queried,

and returns the updated memory ``[n, d]``. Times may be float64 (they are subtracted before the
cast to the model's dtype, so Unix timestamps keep their resolution).

With ``index`` (``[q]``), the call answers ``q`` queries: query ``i`` is node ``index[i]`` at time
``t[i]``, and the node tensors hold each node once. A node queried at several times (a temporal
neighbourhood lists the same node many times) then pays for its mail and memory projections once;
the result equals the call on the gathered rows.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from pyg_tgl.nn.attention import stacked_key_value
from pyg_tgl.nn.time_encoder import TimeEncoder


def _check_dims(name: str, dim_mail: int, dim_memory: int, dim_time: int,
                mailbox_size: int) -> None:
    if dim_mail <= 0 or dim_memory <= 0 or dim_time < 0 or mailbox_size <= 0:
        raise ValueError(f"{name}: expected dim_mail > 0, dim_memory > 0, dim_time >= 0 and "
                         f"mailbox_size > 0, got dim_mail={dim_mail}, dim_memory={dim_memory}, "
                         f"dim_time={dim_time}, mailbox_size={mailbox_size}")


class _RecurrentUpdater(torch.nn.Module):
    # Subclasses set the cell and implement ``_step(gi, gh, h)``, the cell's update from its
    # input and hidden projections.
    cell_type: type = torch.nn.GRUCell
    accepts_index = True

    def __init__(self, dim_mail: int, dim_memory: int, dim_time: int = 100,
                 mailbox_size: int = 1) -> None:
        super().__init__()
        _check_dims(type(self).__name__, dim_mail, dim_memory, dim_time, mailbox_size)
        self.dim_mail = dim_mail
        self.dim_memory = dim_memory
        self.dim_time = dim_time
        self.mailbox_size = mailbox_size
        self.time_enc: Optional[TimeEncoder] = TimeEncoder(dim_time) if dim_time > 0 else None
        # TGL feeds all slots at once (flattened); with the usual single slot this is the mail.
        self.cell = self.cell_type(mailbox_size * dim_mail + dim_time, dim_memory)

    def reset_parameters(self) -> None:
        if self.time_enc is not None:
            self.time_enc.reset_parameters()
        self.cell.reset_parameters()

    def forward(self, memory: Tensor, memory_ts: Tensor, mail: Tensor, mail_ts: Tensor,
                t: Tensor, index: Optional[Tensor] = None) -> Tensor:
        width = self.mailbox_size * self.dim_mail
        x = mail.reshape(mail.size(0), width).to(memory.dtype)
        if index is None:
            if self.time_enc is not None:
                x = torch.cat([x, self.time_enc(t - memory_ts).to(x.dtype)], dim=-1)
            return self.cell(x, memory)
        # The cell's input projection splits into a per-node mail part and a per-query time
        # part, so the wide mail and memory products run once per node.
        cell = self.cell
        gi = F.linear(x, cell.weight_ih[:, :width], cell.bias_ih).index_select(0, index)
        if self.time_enc is not None:
            te = self.time_enc(t - memory_ts.index_select(0, index)).to(x.dtype)
            gi = gi + F.linear(te, cell.weight_ih[:, width:])
        gh = F.linear(memory, cell.weight_hh, cell.bias_hh).index_select(0, index)
        return self._step(gi, gh, memory.index_select(0, index))

    def extra_repr(self) -> str:
        return (f"dim_mail={self.dim_mail}, dim_memory={self.dim_memory}, "
                f"dim_time={self.dim_time}, mailbox_size={self.mailbox_size}")


class GRUUpdater(_RecurrentUpdater):
    r"""GRU memory updater of TGN (`"Temporal Graph Networks for Deep Learning on Dynamic
    Graphs" <https://arxiv.org/abs/2006.10637>`_, Rossi et al., 2020) as implemented by TGL
    (Zhou et al., VLDB 2022):

    .. math::
        s_i \leftarrow \mathrm{GRU}\big([m_i \,\|\, \Phi(t - t^{s}_i)],\; s_i\big)

    where :math:`m_i` is the node's mail (all slots concatenated), :math:`\Phi` a
    :class:`TimeEncoder` and :math:`t^{s}_i` the time stamped on the stored memory.

    .. note::
        TGL, and this module, measure the time input from the memory's timestamp to the query
        time :math:`t`; the TGN paper encodes the gap between the mail's event and the node's
        previous update instead. With TGL's bookkeeping (memory stamped with the time of the
        node's latest event) this is the time elapsed since the node was last active.

    Args:
        dim_mail: mail dimension :math:`D` (``2 * dim_memory + dim_edge`` for TGL mails).
        dim_memory: memory dimension.
        dim_time: time-encoding dimension (0 disables the time input).
        mailbox_size: slots per node; their mails are concatenated.
    """

    cell_type = torch.nn.GRUCell

    def _step(self, gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
        # torch.nn.GRUCell's equations, gates ordered (reset, update, new).
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return n + z * (h - n)


class RNNUpdater(_RecurrentUpdater):
    r"""Vanilla RNN (:math:`\tanh`) memory updater of JODIE (`"Predicting Dynamic Embedding
    Trajectory in Temporal Interaction Networks" <https://arxiv.org/abs/1908.01207>`_, Kumar et
    al., KDD 2019) as implemented by TGL (Zhou et al., VLDB 2022):

    .. math::
        s_i \leftarrow \tanh\big(W [m_i \,\|\, \Phi(t - t^{s}_i)] + U s_i + b\big)

    The time input follows TGL (query time minus the memory's timestamp), see
    :class:`GRUUpdater`.

    Args:
        dim_mail: mail dimension.
        dim_memory: memory dimension.
        dim_time: time-encoding dimension (0 disables the time input).
        mailbox_size: slots per node; their mails are concatenated.
    """

    cell_type = torch.nn.RNNCell

    def _step(self, gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
        return torch.tanh(gi + gh)


class TransformerUpdater(torch.nn.Module):
    r"""Attention memory updater of APAN (`"APAN: Asynchronous Propagation Attention Network for
    Real-time Temporal Graph Embedding" <https://arxiv.org/abs/2011.11545>`_, Wang et al., SIGMOD
    2021) as implemented by TGL (Zhou et al., VLDB 2022): the memory attends over the mailbox
    slots, each slot keyed by its mail and the time since it arrived,

    .. math::
        a &= \mathrm{softmax}_j\Big(\mathrm{LeakyReLU}\big(\langle W_q s_i,\,
             W_k [m_{ij} \,\|\, \Phi(t - t_{ij})]\rangle\big)\Big) \\
        s_i &\leftarrow \mathrm{ReLU}\Big(\mathrm{Dropout}\big(W_o\,\mathrm{LayerNorm}
             (s_i + \textstyle\sum_j a_j W_v [m_{ij} \,\|\, \Phi(t - t_{ij})])\big)\Big)

    per head. As in TGL every slot takes part, including slots that never received a mail (they
    hold zeros at time 0).

    Args:
        dim_mail: mail dimension.
        dim_memory: memory dimension (divisible by ``num_heads``).
        dim_time: time-encoding dimension (0 disables the time input).
        mailbox_size: slots per node.
        num_heads: attention heads.
        dropout: dropout after the output projection.
        att_dropout: dropout on the attention weights.
    """

    accepts_index = True

    def __init__(self, dim_mail: int, dim_memory: int, dim_time: int = 100,
                 mailbox_size: int = 10, num_heads: int = 2, dropout: float = 0.0,
                 att_dropout: float = 0.0) -> None:
        super().__init__()
        _check_dims(type(self).__name__, dim_mail, dim_memory, dim_time, mailbox_size)
        if num_heads <= 0 or dim_memory % num_heads:
            raise ValueError(f"TransformerUpdater: dim_memory ({dim_memory}) must be divisible by "
                             f"num_heads ({num_heads})")
        self.dim_mail = dim_mail
        self.dim_memory = dim_memory
        self.dim_time = dim_time
        self.mailbox_size = mailbox_size
        self.num_heads = num_heads
        self.time_enc: Optional[TimeEncoder] = TimeEncoder(dim_time) if dim_time > 0 else None
        self.w_q = torch.nn.Linear(dim_memory, dim_memory)
        self.w_k = torch.nn.Linear(dim_mail + dim_time, dim_memory)
        self.w_v = torch.nn.Linear(dim_mail + dim_time, dim_memory)
        self.norm = torch.nn.LayerNorm(dim_memory)
        self.mlp = torch.nn.Linear(dim_memory, dim_memory)
        self.dropout = torch.nn.Dropout(dropout)
        self.att_dropout = torch.nn.Dropout(att_dropout)

    def reset_parameters(self) -> None:
        if self.time_enc is not None:
            self.time_enc.reset_parameters()
        for lin in (self.w_q, self.w_k, self.w_v, self.mlp):
            lin.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, memory: Tensor, memory_ts: Tensor, mail: Tensor, mail_ts: Tensor,
                t: Tensor, index: Optional[Tensor] = None) -> Tensor:
        # Keys and values in one product with the stacked weights, split by input: the mail
        # part depends on the node only, so it runs once per node (then gathered to the
        # queries) and, the mails needing no gradient, gets none in backward; only the time
        # part runs per query.
        weight, bias = stacked_key_value(self.w_k, self.w_v)
        kv = F.linear(mail.to(memory.dtype), weight[:, :self.dim_mail], bias)
        q = self.w_q(memory)
        if index is not None:
            kv, q, memory, mail_ts = (kv.index_select(0, index), q.index_select(0, index),
                                      memory.index_select(0, index),
                                      mail_ts.index_select(0, index))
        if self.time_enc is not None:
            te = self.time_enc(t.unsqueeze(1) - mail_ts).to(kv.dtype)
            kv = kv + F.linear(te, weight[:, self.dim_mail:])
        n, slots = kv.size(0), kv.size(1)
        head = self.dim_memory // self.num_heads
        q = q.view(n, 1, self.num_heads, head)
        k, v = kv.view(n, slots, 2, self.num_heads, head).unbind(2)
        att = torch.nn.functional.leaky_relu((q * k).sum(-1), 0.2).softmax(dim=1)
        att = self.att_dropout(att)
        out = (att.unsqueeze(-1) * v).sum(1).reshape(n, self.dim_memory)
        out = self.mlp(self.norm(out + memory))
        return torch.relu(self.dropout(out))

    def extra_repr(self) -> str:
        return (f"dim_mail={self.dim_mail}, dim_memory={self.dim_memory}, "
                f"dim_time={self.dim_time}, mailbox_size={self.mailbox_size}, "
                f"num_heads={self.num_heads}")


UPDATERS = {"gru": GRUUpdater, "rnn": RNNUpdater, "transformer": TransformerUpdater}
