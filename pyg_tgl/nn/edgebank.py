r"""EdgeBank: the memorisation baseline of dynamic link prediction.

EdgeBank (Poursafaei et al., "Towards Better Evaluation for Dynamic Link Prediction", NeurIPS 2022
Datasets and Benchmarks) predicts that a directed pair :math:`(u, v)` interacts at time :math:`t`
iff it has interacted before. It learns nothing, so a temporal GNN that does not beat it has not
learned anything useful beyond repetition.

The store is a sorted ``int64`` tensor of pair keys ``src * num_nodes + dst`` with the time of each
pair's latest event beside it; updates merge in :math:`O(P + B \log P)` and queries are one
:func:`torch.searchsorted`, so no Python loop touches individual events.

Memory modes:

* ``"unlimited"`` (EdgeBank\ :sub:`∞`): every pair ever inserted counts as seen.
* ``"time_window"`` (EdgeBank\ :sub:`tw`): a pair counts as seen at query time ``t`` iff its most
  recent insertion happened at ``t' >= t - time_window``. The window has a fixed duration and
  slides with the query time.

How the window's duration is chosen differs between the reference implementations;
:meth:`EdgeBank.window_from_history` provides both:

* DGB / DyGLib (``rule="dyglib"``): the window starts at the ``1 - proportion`` quantile of the
  history's event times (``proportion`` = the test ratio, 0.15), i.e. it spans the most recent 15%
  of past *events*; DyGLib recomputes this from the growing history before each test batch, we fix
  the duration once from the history the caller passes.
* TGB (``rule="tgb"``): ``proportion * (t_max - t_min)`` of the data the predictor was initialised
  with (the training split), i.e. 15% of its *time span*; TGB slides the window's end with the
  latest inserted time instead of the query time (the two differ by at most one batch).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["EdgeBank"]

_MODES = ("unlimited", "time_window")
# Largest N with N * N - 1 representable as int64, so that every pair key src * N + dst fits.
_MAX_NODES = 3_037_000_499


def _check_ids(name: str, x: Tensor, num_nodes: int) -> None:
    if x.dim() != 1:
        raise ValueError(f"EdgeBank: {name} must be a 1-D tensor of node ids, got shape "
                         f"{tuple(x.shape)}")
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise TypeError(f"EdgeBank: {name} must hold integer node ids, got dtype {x.dtype}")
    if x.numel() == 0:
        return
    bad = (x < 0) | (x >= num_nodes)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(f"EdgeBank: {name}[{i}] = {int(x[i])} is not a node id in "
                         f"[0, num_nodes={num_nodes})")


class EdgeBank(torch.nn.Module):
    r"""The EdgeBank link predictor from the `"Towards Better Evaluation for Dynamic Link
    Prediction" <https://arxiv.org/abs/2207.10128>`_ paper (Poursafaei et al., NeurIPS 2022).

    Scores a directed pair :math:`(u, v)` at time :math:`t` with :math:`1` if the pair is in
    memory (for ``mode="time_window"``: inserted at some :math:`t' \ge t - \Delta`), else
    :math:`0`. Used in a chronological evaluation, the caller scores a batch first and inserts its
    positive events afterwards (:meth:`score_batch` then :meth:`update_memory`), so an event never
    sees itself.

    The module has no parameters; its memory lives in buffers (``keys``, ``last_t``), so
    :meth:`to`, :meth:`state_dict` and :meth:`load_state_dict` work as for any module.

    Args:
        num_nodes (int): number of nodes; ids must lie in ``[0, num_nodes)``.
        mode (str): ``"unlimited"`` or ``"time_window"``. (default: ``"unlimited"``)
        time_window (float, optional): window duration :math:`\Delta` in the data's time unit,
            required for ``mode="time_window"`` (see :meth:`window_from_history`), not allowed
            otherwise. (default: :obj:`None`)
        device (torch.device or str, optional): where the memory lives. (default: CPU)
    """

    keys: Tensor
    last_t: Tensor

    def __init__(self, num_nodes: int, mode: str = "unlimited",
                 time_window: Optional[float] = None,
                 device: Optional[Union[torch.device, str]] = None) -> None:
        super().__init__()
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes <= 0:
            raise ValueError(f"EdgeBank: num_nodes must be a positive int, got {num_nodes!r}")
        if num_nodes > _MAX_NODES:
            raise ValueError(f"EdgeBank: num_nodes={num_nodes} is too large for int64 pair keys "
                             f"(at most {_MAX_NODES})")
        if mode not in _MODES:
            raise ValueError(f"EdgeBank: mode={mode!r} is not supported; expected one of "
                             f"{list(_MODES)}")
        self.num_nodes = num_nodes
        self.mode = mode
        if mode == "time_window":
            if time_window is None:
                raise ValueError("EdgeBank: mode='time_window' needs time_window (a duration in "
                                 "the data's time unit; see EdgeBank.window_from_history)")
            self.time_window = time_window
        elif time_window is not None:
            raise ValueError(f"EdgeBank: time_window={time_window!r} is only used with "
                             f"mode='time_window', got mode={mode!r}")
        else:
            self._time_window: Optional[float] = None
        self.register_buffer("keys", torch.empty(0, dtype=torch.long, device=device))
        self.register_buffer("last_t", torch.empty(0, dtype=torch.float64, device=device))

    # ------------------------------------------------------------------------------------------
    # Configuration
    # ------------------------------------------------------------------------------------------

    @property
    def time_window(self) -> Optional[float]:
        """The window duration :math:`\\Delta` (``None`` in ``unlimited`` mode)."""
        return self._time_window

    @time_window.setter
    def time_window(self, value: float) -> None:
        if self.mode != "time_window":
            raise ValueError(f"EdgeBank: time_window is only used with mode='time_window', "
                             f"this bank has mode={self.mode!r}")
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"EdgeBank: time_window must be a finite duration >= 0, got {value}")
        self._time_window = value

    @staticmethod
    def window_from_history(t: Tensor, proportion: float = 0.15, rule: str = "dyglib") -> float:
        r"""The window duration the reference implementations derive from past event times.

        Args:
            t (torch.Tensor): times of the history events (e.g. train + validation for a test
                evaluation, train only for TGB).
            proportion (float): the fraction, 0.15 (the test ratio) in DyGLib and TGB.
                (default: :obj:`0.15`)
            rule (str): ``"dyglib"``: ``t_max - quantile(t, 1 - proportion)``, the span of the
                most recent ``proportion`` of the events (DGB, DyGLib); ``"tgb"``:
                ``proportion * (t_max - t_min)``, that fraction of the time span (TGB).
                (default: ``"dyglib"``)
        """
        if not 0.0 < proportion <= 1.0:
            raise ValueError(f"EdgeBank.window_from_history: proportion must be in (0, 1], "
                             f"got {proportion}")
        if t.numel() == 0:
            raise ValueError("EdgeBank.window_from_history: the history holds no events")
        t = t.detach().reshape(-1).to(torch.float64)
        t_max = float(t.max())
        if rule == "dyglib":
            # numpy, not torch.quantile: the latter refuses inputs over 2^24 elements.
            return t_max - float(np.quantile(t.cpu().numpy(), 1.0 - proportion))
        if rule == "tgb":
            return proportion * (t_max - float(t.min()))
        raise ValueError(f"EdgeBank.window_from_history: rule={rule!r} is not supported; "
                         f"expected 'dyglib' or 'tgb'")

    @property
    def num_pairs(self) -> int:
        """Number of distinct directed pairs in memory."""
        return int(self.keys.numel())

    @property
    def memory(self) -> None:
        """EdgeBank has no :class:`NodeMemory` (the pipeline's models expose one here)."""
        return None

    def extra_repr(self) -> str:
        window = f", time_window={self._time_window}" if self.mode == "time_window" else ""
        return f"num_nodes={self.num_nodes}, mode={self.mode!r}{window}, num_pairs={self.num_pairs}"

    # ------------------------------------------------------------------------------------------
    # Memory
    # ------------------------------------------------------------------------------------------

    def _pair_keys(self, src: Tensor, dst: Tensor) -> Tensor:
        _check_ids("src", src, self.num_nodes)
        _check_ids("dst", dst, self.num_nodes)
        if src.numel() != dst.numel():
            raise ValueError(f"EdgeBank: src and dst must have the same length, got "
                             f"{src.numel()} and {dst.numel()}")
        device = self.keys.device
        return src.to(device, torch.long) * self.num_nodes + dst.to(device, torch.long)

    def _times(self, t: Optional[Tensor], n: int, name: str) -> Optional[Tensor]:
        if t is None:
            return None
        t = torch.as_tensor(t)
        if t.dim() == 0:
            t = t.expand(n)
        if t.dim() != 1 or t.numel() != n:
            raise ValueError(f"EdgeBank: {name} must be a scalar or a 1-D tensor with one time "
                             f"per pair ({n}), got shape {tuple(t.shape)}")
        t = t.to(self.keys.device, torch.float64)
        if n and not bool(torch.isfinite(t).all()):
            i = int((~torch.isfinite(t)).nonzero()[0])
            raise ValueError(f"EdgeBank: {name}[{i}] = {float(t[i])} is not a finite time")
        return t

    def reset_state(self) -> None:
        """Forgets every pair (start of a new pass over the data)."""
        self.keys = self.keys.new_empty(0)
        self.last_t = self.last_t.new_empty(0)

    def detach(self) -> None:
        """No-op: EdgeBank holds no autograd state (kept for the pipeline's model protocol)."""

    @torch.no_grad()
    def update(self, src: Tensor, dst: Tensor, t: Optional[Tensor] = None) -> None:
        r"""Inserts the directed pairs ``(src[i], dst[i])`` observed at times ``t[i]``.

        A pair already in memory keeps the later of its stored and new times.

        Args:
            src (torch.Tensor): ``[B]`` source node ids.
            dst (torch.Tensor): ``[B]`` destination node ids.
            t (torch.Tensor, optional): ``[B]`` event times (or a scalar); required in
                ``time_window`` mode, ignored (stored as :math:`-\infty`) otherwise.
        """
        new_keys = self._pair_keys(src, dst)
        if new_keys.numel() == 0:
            return
        if t is None and self.mode == "time_window":
            raise ValueError("EdgeBank.update: mode='time_window' needs the event times t")
        times = self._times(t, new_keys.numel(), "t")
        if times is None:
            times = torch.full_like(new_keys, -math.inf, dtype=torch.float64)

        # Collapse repeats within the batch to one entry per pair holding its latest time.
        uniq, inv = torch.unique(new_keys, sorted=True, return_inverse=True)
        latest = torch.full((uniq.numel(),), -math.inf, dtype=torch.float64, device=uniq.device)
        latest.scatter_reduce_(0, inv, times, reduce="amax")

        num_old = self.keys.numel()
        pos = torch.searchsorted(self.keys, uniq)
        if num_old:
            found = (pos < num_old) & (self.keys[pos.clamp(max=num_old - 1)] == uniq)
        else:
            found = torch.zeros_like(uniq, dtype=torch.bool)
        if bool(found.any()):
            idx = pos[found]
            self.last_t[idx] = torch.maximum(self.last_t[idx], latest[found])
        fresh = ~found
        num_new = int(fresh.sum())
        if num_new == 0:
            return
        # Linear merge of two sorted key lists: a new key lands at its insertion point shifted by
        # the number of new keys before it, the old keys fill the remaining slots in order.
        dest = pos[fresh] + torch.arange(num_new, device=uniq.device)
        keep_old = torch.ones(num_old + num_new, dtype=torch.bool, device=uniq.device)
        keep_old[dest] = False
        keys = self.keys.new_empty(num_old + num_new)
        last_t = self.last_t.new_empty(num_old + num_new)
        keys[keep_old] = self.keys
        last_t[keep_old] = self.last_t
        keys[dest] = uniq[fresh]
        last_t[dest] = latest[fresh]
        self.keys, self.last_t = keys, last_t

    @torch.no_grad()
    def score(self, src: Tensor, dst: Tensor, t: Optional[Tensor] = None) -> Tensor:
        r"""Scores the directed pairs ``(src[i], dst[i])`` queried at times ``t[i]``.

        Args:
            src (torch.Tensor): ``[Q]`` source node ids.
            dst (torch.Tensor): ``[Q]`` destination node ids.
            t (torch.Tensor, optional): ``[Q]`` query times (or a scalar); required in
                ``time_window`` mode, ignored otherwise.

        Returns:
            torch.Tensor: ``[Q]`` float32, ``1.0`` where the pair is in memory (within the window),
            ``0.0`` elsewhere.
        """
        query = self._pair_keys(src, dst)
        if t is None and self.mode == "time_window":
            raise ValueError("EdgeBank.score: mode='time_window' needs the query times t")
        times = self._times(t, query.numel(), "t") if self.mode == "time_window" else None
        num = self.keys.numel()
        if num == 0 or query.numel() == 0:
            return torch.zeros(query.numel(), dtype=torch.float32, device=query.device)
        pos = torch.searchsorted(self.keys, query).clamp_(max=num - 1)
        seen = self.keys[pos] == query
        if times is not None:
            seen &= self.last_t[pos] >= times - self._time_window
        return seen.to(torch.float32)

    # ------------------------------------------------------------------------------------------
    # Pipeline entry points (same protocol as the learned models)
    # ------------------------------------------------------------------------------------------

    def score_batch(self, batch: Any) -> Tuple[Tensor, Tensor]:
        r"""Scores a :class:`~pyg_tgl.data.batch.TemporalBatch`'s positives and negatives.

        Negative ``q * B + i`` pairs event ``i``'s source with ``batch.neg_dst[q * B + i]`` at
        event ``i``'s time (the batch's negative-major layout).

        Returns:
            (torch.Tensor, torch.Tensor): ``[B]`` positive and ``[num_neg * B]`` negative scores
            in :math:`\{0, 1\}`. They are scores, not logits: rank metrics (AP, AUC, MRR) are
            unaffected, but there is nothing to train.
        """
        num_neg = batch.num_neg
        pos = self.score(batch.src, batch.dst, batch.t)
        neg = self.score(batch.src.repeat(num_neg), batch.neg_dst, batch.t.repeat(num_neg))
        return pos, neg

    def update_memory(self, batch: Any) -> None:
        """Inserts a :class:`~pyg_tgl.data.batch.TemporalBatch`'s positive events (call after
        :meth:`score_batch`, as the models' memory update)."""
        self.update(batch.src, batch.dst, batch.t)

    # ------------------------------------------------------------------------------------------
    # Checkpoints: the buffers change size, and the configuration must match.
    # ------------------------------------------------------------------------------------------

    def get_extra_state(self) -> Dict[str, Any]:
        return {"num_nodes": self.num_nodes, "mode": self.mode, "time_window": self._time_window}

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        if state.get("num_nodes") != self.num_nodes or state.get("mode") != self.mode:
            raise ValueError(
                f"EdgeBank.load_state_dict: checkpoint was saved with num_nodes="
                f"{state.get('num_nodes')}, mode={state.get('mode')!r}; this bank has "
                f"num_nodes={self.num_nodes}, mode={self.mode!r}")
        if self.mode == "time_window" and state.get("time_window") is not None:
            self.time_window = state["time_window"]

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        # The default loader copies in place and rejects a size mismatch; the memory's size is
        # data, not configuration, so take the stored tensors' sizes.
        for name in ("keys", "last_t"):
            stored = state_dict.get(prefix + name)
            if isinstance(stored, Tensor):
                current = getattr(self, name)
                setattr(self, name, current.new_empty(stored.shape))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
