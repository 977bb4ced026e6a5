"""Negative destinations for link prediction: :class:`NegativeSampler`."""
from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor
from torch_geometric.data import TemporalData

from .loader_options import EventSelection, check_neg_strategy, event_ids

__all__ = ["NegativeSampler"]


class NegativeSampler:
    r"""Draws negative destinations for link prediction.

    Strategies (as named by Poursafaei et al., NeurIPS 2022, and TGB):

    * ``random``: uniform over every node that is the destination of some event (for bipartite
      graphs such as Wikipedia this is the item side, as in PyG's TGN example; for unipartite graphs
      it is all active nodes). TGL draws from all node ids instead.
    * ``historical``: for a batch starting at event position ``p``, each negative is the
      destination of an event drawn uniformly from the events before ``p`` (pairs that really
      happened, weighted by how often); falls back to ``random`` while there is no history.
    * ``inductive``: uniform over destinations never seen in ``train_events``; falls back to
      ``random`` when every destination was seen in training.

    Randomness comes from one seeded :class:`torch.Generator`, whose state is part of
    :meth:`state_dict`, so a resumed run draws the same negatives.

    Args:
        data: the events.
        strategy: ``random``, ``historical`` or ``inductive``.
        seed: seed of the generator.
        train_events: events of the training split (``inductive`` only).
    """

    def __init__(self, data: TemporalData, strategy: str = "random", seed: int = 0,
                 train_events: EventSelection = None) -> None:
        check_neg_strategy(strategy)
        self.strategy = strategy
        self.dst = data.dst
        self.candidates = torch.unique(data.dst)
        if strategy == "inductive":
            train = event_ids(train_events, data.num_events)
            seen = torch.unique(torch.cat([data.src[train], data.dst[train]]))
            unseen = self.candidates[~torch.isin(self.candidates, seen)]
            if unseen.numel():
                self.candidates = unseen
        self.generator = torch.Generator().manual_seed(int(seed))

    def _uniform(self, n: int) -> Tensor:
        pick = torch.randint(self.candidates.numel(), (n,), generator=self.generator)
        return self.candidates[pick]

    def sample(self, event_ids: Tensor, num_neg: int) -> Tensor:
        """Returns ``[num_neg * B]`` negative destinations, negative-major."""
        n = int(event_ids.numel()) * num_neg
        if n == 0:
            return torch.empty(0, dtype=torch.long)
        if self.strategy == "historical":
            start = int(event_ids.min())
            if start > 0:
                return self.dst[torch.randint(start, (n,), generator=self.generator)].long()
        return self._uniform(n)

    def state_dict(self) -> Dict[str, Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])
