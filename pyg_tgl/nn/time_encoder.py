"""Functional time encoding."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import Parameter


class TimeEncoder(torch.nn.Module):
    r"""The time encoding :math:`\cos(\omega \Delta t + \phi)` of TGAT (`"Inductive
    Representation Learning on Temporal Graphs" <https://arxiv.org/abs/2002.07962>`_, Xu et al.,
    ICLR 2020), initialised as in TGL (Zhou et al., VLDB 2022):
    :math:`\omega_i = 10^{-9 i / (d - 1)}` (geometric from 1 down to :math:`10^{-9}`, so the
    channels resolve time differences from seconds to decades) and :math:`\phi = 0`.

    It accepts time differences of any shape and returns ``t.shape + (dim,)``; ``out_channels``
    makes it a drop-in for :class:`torch_geometric.nn.models.tgn.TimeEncoder`.

    Args:
        dim: number of channels :math:`d`.
        trainable: learn :math:`\omega` and :math:`\phi` (TGL's choice); ``False`` freezes them at
            their initial values.
    """

    def __init__(self, dim: int, trainable: bool = True) -> None:
        super().__init__()
        if dim <= 0:
            raise ValueError(f"TimeEncoder: dim must be positive, got {dim}")
        self.dim = int(dim)
        self.out_channels = self.dim
        self.trainable = bool(trainable)
        self.weight = Parameter(torch.empty(self.dim), requires_grad=self.trainable)
        self.bias = Parameter(torch.empty(self.dim), requires_grad=self.trainable)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            # Computed in float64 so the smallest frequencies are exact before the cast.
            w = 1.0 / 10 ** torch.linspace(0, 9, self.dim, dtype=torch.float64)
            self.weight.copy_(w.to(self.weight.dtype))
            self.bias.zero_()

    def forward(self, t: Tensor) -> Tensor:
        """Encodes time differences ``t`` (any shape, any real dtype) as ``t.shape + (dim,)``."""
        t = t.to(self.weight.dtype).unsqueeze(-1)
        return torch.cos(t * self.weight + self.bias)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, trainable={self.trainable}"
