"""Prediction heads on top of temporal node embeddings."""
from __future__ import annotations

import torch
from torch import Tensor


class EdgePredictor(torch.nn.Module):
    r"""TGL's link predictor (Zhou et al., `"TGL: A General Framework for Temporal GNN Training on
    Billion-Scale Graphs" <https://arxiv.org/abs/2203.14883>`_, VLDB 2022), also used by PyG's TGN
    example: :math:`\mathrm{logit}(u, v) = w_o^\top \mathrm{ReLU}(W_s h_u + W_d h_v) + b`.

    Args:
        dim_in: embedding dimension.
    """

    def __init__(self, dim_in: int) -> None:
        super().__init__()
        if dim_in <= 0:
            raise ValueError(f"EdgePredictor: dim_in must be positive, got {dim_in}")
        self.dim_in = dim_in
        self.src_fc = torch.nn.Linear(dim_in, dim_in)
        self.dst_fc = torch.nn.Linear(dim_in, dim_in)
        self.out_fc = torch.nn.Linear(dim_in, 1)

    def reset_parameters(self) -> None:
        for lin in (self.src_fc, self.dst_fc, self.out_fc):
            lin.reset_parameters()

    def forward(self, h_src: Tensor, h_dst: Tensor) -> Tensor:
        """Logits ``[n_dst]`` of the pairs ``(h_src, h_dst)``.

        ``h_dst`` may hold ``q`` destinations per source, negative-major
        (``h_dst[p * B + i]`` pairs with ``h_src[i]``), as TGL lays out negatives.
        """
        b, n = h_src.size(0), h_dst.size(0)
        if b == 0 or n % b:
            raise ValueError(f"EdgePredictor: h_dst has {n} rows, not a multiple of the {b} "
                             f"sources")
        src = self.src_fc(h_src)
        if n != b:
            src = src.repeat(n // b, 1)
        return self.out_fc(torch.relu(src + self.dst_fc(h_dst))).squeeze(-1)


class NodeClassifier(torch.nn.Module):
    r"""Two-layer MLP on (frozen) temporal node embeddings for dynamic node classification, as in
    TGL's ``train_node.py``: :math:`W_2\,\mathrm{Dropout}(\mathrm{ReLU}(W_1 h))`.

    Args:
        dim_in: embedding dimension.
        dim_hidden: hidden dimension.
        num_classes: number of classes (logits returned; 1 for a binary label).
        dropout: dropout on the hidden layer.
    """

    def __init__(self, dim_in: int, dim_hidden: int, num_classes: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(dim_in, dim_hidden)
        self.fc2 = torch.nn.Linear(dim_hidden, num_classes)
        self.dropout = torch.nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        self.fc1.reset_parameters()
        self.fc2.reset_parameters()

    def forward(self, h: Tensor) -> Tensor:
        return self.fc2(self.dropout(torch.relu(self.fc1(h))))
