"""The node input of an embedding: node memory, node features, or their sum."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


class NodeInput(torch.nn.Module):
    r"""What an embedding module reads for a node at a time, as TGL forms it (Zhou et al.,
    `"TGL: A General Framework for Temporal GNN Training on Billion-Scale Graphs"
    <https://arxiv.org/abs/2203.14883>`_, VLDB 2022):

    * with memory: the updated memory :math:`s'_v`, plus the node features
      :math:`x_v` (projected, :math:`s'_v + W x_v`, when their width differs) if
      ``combine_node_feature``;
    * without memory: the node features (or nothing).

    Args:
        dim_node_feat: node feature dimension (0 for none).
        dim_memory: memory dimension (0: no memory).
        combine_node_feature: add the node features to the memory (TGL's
            ``combine_node_feature``; ``False``: the memory alone).
    """

    def __init__(self, dim_node_feat: int = 0, dim_memory: int = 0,
                 combine_node_feature: bool = True) -> None:
        super().__init__()
        if dim_node_feat < 0 or dim_memory < 0:
            raise ValueError(f"NodeInput: dimensions must be >= 0, got dim_node_feat="
                             f"{dim_node_feat}, dim_memory={dim_memory}")
        self.dim_node_feat, self.dim_memory = int(dim_node_feat), int(dim_memory)
        self.combine_node_feature = bool(combine_node_feature)
        self.feat_map: Optional[torch.nn.Linear] = None
        if dim_memory and combine_node_feature and dim_node_feat and dim_node_feat != dim_memory:
            self.feat_map = torch.nn.Linear(dim_node_feat, dim_memory)

    @property
    def dim_out(self) -> int:
        """Width of the input (0 for none)."""
        return self.dim_memory or self.dim_node_feat

    @property
    def reads_node_feat(self) -> bool:
        """Whether :meth:`forward` uses node features (when there are any)."""
        return bool(self.dim_node_feat) and (not self.dim_memory or self.combine_node_feature)

    def reset_parameters(self) -> None:
        if self.feat_map is not None:
            self.feat_map.reset_parameters()

    def forward(self, memory: Optional[Tensor] = None,
                node_feat: Optional[Tensor] = None) -> Optional[Tensor]:
        """``[n, dim_out]`` inputs from the memory rows ``memory [n, dim_memory]`` and the node
        feature rows ``node_feat [n, dim_node_feat]`` of the same nodes (``None``: no input)."""
        if self.dim_memory and memory is None:
            raise ValueError("NodeInput: built with dim_memory > 0 but given no memory")
        if memory is None:
            return node_feat
        if not self.combine_node_feature or node_feat is None:
            return memory
        return memory + (self.feat_map(node_feat) if self.feat_map is not None else node_feat)

    def extra_repr(self) -> str:
        return (f"dim_node_feat={self.dim_node_feat}, dim_memory={self.dim_memory}, "
                f"combine_node_feature={self.combine_node_feature}")
