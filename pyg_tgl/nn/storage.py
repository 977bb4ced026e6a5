r"""Per-node state held in flat tensors (no per-node Python objects): the base class of
:class:`~pyg_tgl.nn.Mailbox` and :class:`~pyg_tgl.nn.NodeMemory`, which keeps its large tensors out
of the state dict and wherever they were asked to live, and the index helpers their writes share
(the latest entry of each node, distinct ``(node, time)`` pairs), all tensor code without a host
synchronisation beyond the sizes ``torch.unique`` returns.
"""
from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import Tensor

DeviceLike = Union[str, torch.device, None]


def unique_pairs(nodes: Tensor, ts: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Distinct ``(node, time)`` pairs: ``(nodes_u, ts_u, inverse)`` with
    ``nodes_u[inverse] == nodes`` and ``ts_u[inverse] == ts`` (no Python loop, no host sync
    beyond the sizes ``torch.unique`` returns)."""
    times, time_of = torch.unique(ts, return_inverse=True)
    keys, inverse = torch.unique(nodes * times.numel() + time_of, return_inverse=True)
    return keys // times.numel(), times.index_select(0, keys % times.numel()), inverse


def latest_per_node(nodes: Tensor, ts: Tensor) -> Tensor:
    """Positions of the latest entry of each distinct node: largest ``ts``, ties to the largest
    position. Returns one index per distinct node, ordered by node id (the entries that
    :func:`latest_entry_of` names as their own winners)."""
    winner = latest_entry_of(nodes, ts)
    latest = (winner == torch.arange(winner.numel(), device=nodes.device)).nonzero().view(-1)
    return latest.index_select(0, torch.sort(nodes.index_select(0, latest)).indices)


def latest_entry_of(nodes: Tensor, ts: Tensor) -> Tensor:
    """For each entry ``i``, the position of the latest entry of node ``nodes[i]`` (largest
    ``ts``, ties to the largest position), as :func:`latest_per_node` picks them.

    Writing ``values[winner]`` at ``nodes`` (every entry, duplicates with identical rows) stores
    what writing the latest entries alone stores, with shapes fixed by the input: unlike
    ``torch.unique`` this never waits for an accelerator.
    """
    n = nodes.numel()
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=nodes.device)
    # Entries ordered by (node, time, position): each node's run ends with its latest entry.
    order = torch.sort(ts, stable=True).indices
    order = order.index_select(0, torch.sort(nodes.index_select(0, order), stable=True).indices)
    by_node = nodes.index_select(0, order)
    run = torch.cat([by_node.new_zeros(1), (by_node[1:] != by_node[:-1]).long()]).cumsum(0)
    rank = torch.arange(n, device=nodes.device)
    run_end = torch.zeros(n, dtype=torch.long, device=nodes.device).scatter_reduce_(
        0, run, rank, reduce="amax")
    winner_sorted = order.index_select(0, run_end.index_select(0, run))
    return torch.empty_like(order).scatter_(0, order, winner_sorted)


def _gather(storage: Tensor, index: Tensor, device: torch.device) -> Tensor:
    index = index.to(storage.device)
    if storage.device == device:
        return storage.index_select(0, index)
    if device.type != "cpu" and storage.device.type == "cpu" and storage.is_pinned():
        # Gather into page-locked memory so the host-to-device copy is asynchronous.
        buf = torch.empty((index.numel(),) + tuple(storage.shape[1:]), dtype=storage.dtype,
                          pin_memory=True)
        torch.index_select(storage, 0, index, out=buf)
        return buf.to(device, non_blocking=True)
    return storage.index_select(0, index).to(device)


def _check_nodes(where: str, nodes: Tensor, num_nodes: int) -> None:
    if nodes.dim() != 1 or nodes.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{where}: node ids must be a 1-D int64/int32 tensor, got dtype "
                         f"{nodes.dtype} and shape {tuple(nodes.shape)}")
    if nodes.numel() == 0:
        return
    if nodes.device.type != "cpu":
        # Reading the range back would stall the host every batch; a device-side assert fails
        # the same bad ids without a synchronisation.
        torch._assert_async(((nodes >= 0) & (nodes < num_nodes)).all(),
                            f"{where}: node ids must lie in [0, {num_nodes})")
        return
    if nodes.numel():
        # Host tensors: numpy's reduction reads the buffer in place (no tensor round trip).
        view = nodes.detach().numpy()
        lo, hi = int(view.min()), int(view.max())
        if lo < 0 or hi >= num_nodes:
            raise IndexError(f"{where}: node ids must lie in [0, {num_nodes}), got range "
                             f"[{lo}, {hi}]")


class _StateModule(torch.nn.Module):
    """A module whose large state tensors live outside the state dict.

    Storage follows ``.to()`` / ``.cuda()`` of the module unless a storage ``device`` was given or
    host memory was requested (pinned or shared), in which case it stays where it was allocated
    and only the gathered rows travel.
    """

    _state_names: Tuple[str, ...] = ()

    def _init_storage(self, device: DeviceLike, pin_memory: bool, share_memory: bool) -> None:
        self.pin_memory = bool(pin_memory) and torch.cuda.is_available()
        self.share_memory = bool(share_memory)
        self._storage_fixed = device is not None or self.pin_memory or self.share_memory
        self._storage_device = torch.device("cpu" if device is None or self.pin_memory
                                            or self.share_memory else device)

    def _alloc(self, shape, dtype: torch.dtype) -> Tensor:
        if self.pin_memory:
            return torch.zeros(shape, dtype=dtype, pin_memory=True)
        out = torch.zeros(shape, dtype=dtype, device=self._storage_device)
        return out.share_memory_() if self.share_memory else out

    @property
    def storage_device(self) -> torch.device:
        """Device holding the state tensors."""
        return self._storage_device

    @property
    def nbytes(self) -> int:
        """Bytes held by the state tensors."""
        return sum(getattr(self, n).numel() * getattr(self, n).element_size()
                   for n in self._state_names if getattr(self, n) is not None)

    def _apply(self, fn, recurse: bool = True):
        out = super()._apply(fn, recurse)
        if not self._storage_fixed:
            for name in self._state_names:
                state = getattr(self, name)
                if state is None:
                    continue
                # Probe with an empty tensor: only device moves apply to the state (a .half() of
                # the module must not round timestamps), and nothing large is converted twice.
                target = fn(state.new_empty(0)).device
                if target != state.device:
                    setattr(self, name, state.to(target))
                    self._storage_device = target
        return out
