"""Row gathers whose backward avoids ``index_add_`` on CPU.

Temporal GNNs gather rows all the time: per-node projections read back for every query of the
node, deduplicated embeddings expanded to every occurrence. The gradient of such a gather is a
sum of rows by index. On CPU, PyTorch computes it with ``index_add_``, which runs about ten times
slower than the gather itself (it serialises over the index); a sort by index followed by a
contiguous segment sum costs about as much as the forward gather. On CUDA ``index_add_`` uses
atomics and stays the better choice, so it is kept there.
"""
from __future__ import annotations

import torch
from torch import Tensor


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.num_rows = src.size(0)
        return src.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        num_rows = ctx.num_rows
        if not ctx.needs_input_grad[0]:
            return None, None
        if grad.device.type != "cpu":
            out = grad.new_zeros((num_rows,) + tuple(grad.shape[1:]))
            return out.index_add_(0, index, grad), None
        # Rows grouped by destination, then one contiguous sum per destination (zero when a
        # row was never gathered).
        order = torch.argsort(index)
        lengths = torch.bincount(index, minlength=num_rows)
        out = torch.segment_reduce(grad.index_select(0, order), "sum", lengths=lengths, axis=0)
        return out, None


def gather_rows(src: Tensor, index: Tensor) -> Tensor:
    r"""``src.index_select(0, index)`` with a fast gradient on CPU (a sort and a segment sum
    instead of ``index_add_``); identical values and gradients.

    Args:
        src: ``[n, ...]`` tensor.
        index: ``[m]`` int64 row indices into ``src`` (on ``src``'s device).

    Returns:
        ``[m, ...]`` the gathered rows.
    """
    if not (src.requires_grad and torch.is_grad_enabled()):
        return src.index_select(0, index)
    return _GatherRows.apply(src, index)
