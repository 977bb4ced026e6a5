r"""PyG's TGN example (``examples/tgn.py``), rebuilt from PyG's public classes and parameterised.

TGN (Rossi et al., "Temporal Graph Networks for Deep Learning on Dynamic Graphs", ICML 2020 GRL
workshop, https://arxiv.org/abs/2006.10637) as PyG ships it: :class:`~torch_geometric.nn.TGNMemory`
with :class:`IdentityMessage` and :class:`LastAggregator`, a
:class:`~torch_geometric.nn.models.tgn.LastNeighborLoader` of the ``num_neighbors`` most recent
neighbours, one :class:`~torch_geometric.nn.TransformerConv` layer (2 heads, dropout 0.1) over
memory with time-encoded edge features, and the example's two-layer link predictor; Adam,
binary cross-entropy, one random negative destination per event from
:class:`~torch_geometric.loader.TemporalDataLoader`.

Same model and loop as the example; differences, all protocol: sizes are arguments; validation
and test AP/AUC are computed over the whole split (the example averages per-batch values, also
returned as ``*_ap_batch_mean``); the example's ``torch.manual_seed(12345)`` before each evaluation
is kept but scoped (:func:`experiments.peers.eval_rng`) so it does not reset the training stream.

Run ``python -m experiments.peers.pyg_tgn ../shared/data/wikipedia.csv --max-events 20000
--epochs 1`` from the repository root for a quick check.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Union

import torch
from torch import Tensor
from torch.nn import Linear
from torch_geometric.data import TemporalData
from torch_geometric.nn import TGNMemory, TransformerConv
from torch_geometric.nn.models.tgn import IdentityMessage, LastAggregator, LastNeighborLoader

from experiments.peers import (
    progress_bar,
    train_and_evaluate,
    peer_main,
    timed_epoch,
    PhaseTimer,
    eval_rng,
    link_metrics,
    prepare_data,
    split_indices,
    temporal_loader,
)

__all__ = ["GraphAttentionEmbedding", "LinkPredictor", "PygTGN", "run_pyg_tgn",
           "time_pyg_tgn_epoch"]



class GraphAttentionEmbedding(torch.nn.Module):
    r"""The example's embedding module: one :class:`~torch_geometric.nn.TransformerConv` over
    node memories, with edge features ``[cos time encoding of (last_update - t), msg]``.

    Args:
        in_channels (int): memory size.
        out_channels (int): embedding size (two heads of ``out_channels // 2``).
        msg_dim (int): edge feature size.
        time_enc (torch.nn.Module): the memory's time encoder (shared, as in the example).
    """

    def __init__(self, in_channels: int, out_channels: int, msg_dim: int,
                 time_enc: torch.nn.Module) -> None:
        super().__init__()
        self.time_enc = time_enc
        edge_dim = msg_dim + time_enc.out_channels
        self.conv = TransformerConv(in_channels, out_channels // 2, heads=2, dropout=0.1,
                                    edge_dim=edge_dim)

    def forward(self, x: Tensor, last_update: Tensor, edge_index: Tensor, t: Tensor,
                msg: Tensor) -> Tensor:
        rel_t = last_update[edge_index[0]] - t
        rel_t_enc = self.time_enc(rel_t.to(x.dtype))
        edge_attr = torch.cat([rel_t_enc, msg], dim=-1)
        return self.conv(x, edge_index, edge_attr)


class LinkPredictor(torch.nn.Module):
    r"""The example's decoder: ``lin_final(relu(lin_src(z_src) + lin_dst(z_dst)))`` (a logit).

    Args:
        in_channels (int): embedding size.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.lin_src = Linear(in_channels, in_channels)
        self.lin_dst = Linear(in_channels, in_channels)
        self.lin_final = Linear(in_channels, 1)

    def forward(self, z_src: Tensor, z_dst: Tensor) -> Tensor:
        h = self.lin_src(z_src) + self.lin_dst(z_dst)
        return self.lin_final(h.relu())


class PygTGN:
    r"""PyG's TGN example as an object: model, optimiser, neighbour loader and the loops.

    Args:
        data (TemporalData): all events (after :func:`experiments.peers.prepare_data`); event ids
            index ``data.t`` and ``data.msg``, as the example's ``LastNeighborLoader`` assumes.
        num_nodes (int): number of nodes.
        memory_dim, time_dim, embedding_dim (int): sizes. (default: 100 each)
        num_neighbors (int): most recent neighbours kept per node. (default: 10)
        lr (float): Adam's learning rate. (default: 1e-4)
        device (str or torch.device): where everything runs.
    """

    def __init__(self, data: TemporalData, num_nodes: int, memory_dim: int = 100,
                 time_dim: int = 100, embedding_dim: int = 100, num_neighbors: int = 10,
                 lr: float = 1e-4, device: Union[str, torch.device] = "cpu") -> None:
        self.device = torch.device(device)
        # The example keeps small data sets on the device to avoid per-batch copies.
        self.data = data.to(self.device)
        msg_dim = data.msg.size(-1)
        self.memory = TGNMemory(
            num_nodes, msg_dim, memory_dim, time_dim,
            message_module=IdentityMessage(msg_dim, memory_dim, time_dim),
            aggregator_module=LastAggregator(),
        ).to(self.device)
        self.gnn = GraphAttentionEmbedding(memory_dim, embedding_dim, msg_dim,
                                           self.memory.time_enc).to(self.device)
        self.link_pred = LinkPredictor(embedding_dim).to(self.device)
        # The example builds the optimiser from a set (the time encoder is shared); a list in
        # first-seen order is the same parameters in a reproducible order.
        params: List[torch.nn.Parameter] = []
        for module in (self.memory, self.gnn, self.link_pred):
            params.extend(p for p in module.parameters() if all(p is not q for q in params))
        self.optimizer = torch.optim.Adam(params, lr=lr)
        self.criterion = torch.nn.BCEWithLogitsLoss()
        self.neighbor_loader = LastNeighborLoader(num_nodes, size=num_neighbors,
                                                  device=self.device)
        self.assoc = torch.empty(num_nodes, dtype=torch.long, device=self.device)

    def _embed(self, batch: TemporalData):
        n_id, edge_index, e_id = self.neighbor_loader(batch.n_id)
        self.assoc[n_id] = torch.arange(n_id.size(0), device=self.device)
        return n_id, edge_index, self.data.t[e_id], self.data.msg[e_id]

    def _scores(self, z: Tensor, batch: TemporalData):
        src = z[self.assoc[batch.src]]
        return (self.link_pred(src, z[self.assoc[batch.dst]]),
                self.link_pred(src, z[self.assoc[batch.neg_dst]]))

    def train_epoch(self, loader: Iterable, timer: Optional[PhaseTimer] = None,
                    max_batches: Optional[int] = None, progress: bool = False) -> float:
        """One pass over ``loader`` (the training split) from a fresh memory and graph; returns
        the mean loss per event and charges time to ``timer``'s phases."""
        timer = timer or PhaseTimer(self.device)
        self.memory.train()
        self.gnn.train()
        self.link_pred.train()
        self.memory.reset_state()
        self.neighbor_loader.reset_state()
        total_loss, num_events = 0.0, 0
        it = iter(progress_bar(loader, progress, "train"))
        timer.start()
        for i, batch in enumerate(it):
            if max_batches is not None and i >= max_batches:
                break
            self.optimizer.zero_grad()
            batch = batch.to(self.device)
            n_id, edge_index, t, msg = self._embed(batch)
            timer.lap("sample")
            z, last_update = self.memory(n_id)
            timer.lap("memory")
            z = self.gnn(z, last_update, edge_index, t, msg)
            pos_out, neg_out = self._scores(z, batch)
            loss = self.criterion(pos_out, torch.ones_like(pos_out))
            loss = loss + self.criterion(neg_out, torch.zeros_like(neg_out))
            timer.lap("gnn")
            # The example updates memory and graph before the backward pass; so do we.
            self.memory.update_state(batch.src, batch.dst, batch.t, batch.msg)
            self.neighbor_loader.insert(batch.src, batch.dst)
            timer.lap("update")
            loss.backward()
            self.optimizer.step()
            self.memory.detach()
            timer.lap("backward")
            total_loss += float(loss.detach()) * batch.num_events
            num_events += batch.num_events
            timer.lap("backward")  # the float() above waits for the step on a GPU
        return total_loss / max(num_events, 1)

    @torch.no_grad()
    def evaluate(self, loader: Iterable, progress: bool = False) -> Dict[str, float]:
        """Scores each batch then inserts it into memory and graph (state carries on)."""
        self.memory.eval()
        self.gnn.eval()
        self.link_pred.eval()
        pos, neg = [], []
        with eval_rng(self.device):
            for batch in progress_bar(loader, progress, "eval"):
                batch = batch.to(self.device)
                n_id, edge_index, t, msg = self._embed(batch)
                z, last_update = self.memory(n_id)
                z = self.gnn(z, last_update, edge_index, t, msg)
                pos_out, neg_out = self._scores(z, batch)
                pos.append(pos_out.view(-1).sigmoid().cpu())
                neg.append(neg_out.view(-1).sigmoid().cpu())
                self.memory.update_state(batch.src, batch.dst, batch.t, batch.msg)
                self.neighbor_loader.insert(batch.src, batch.dst)
        return link_metrics(pos, neg)


def _setup(data: TemporalData, seed: int, val_ratio: float, test_ratio: float):
    torch.manual_seed(seed)
    data = prepare_data(data)
    val_idx, test_idx = split_indices(data.t, val_ratio, test_ratio)
    num_nodes = int(max(data.src.max(), data.dst.max())) + 1
    return data, val_idx, test_idx, num_nodes


def run_pyg_tgn(data: TemporalData, epochs: int = 5, batch_size: int = 200, lr: float = 1e-4,
                memory_dim: int = 100, time_dim: int = 100, embedding_dim: int = 100,
                num_neighbors: int = 10, seed: int = 0, device: Union[str, torch.device] = "cpu",
                progress: bool = False, val_ratio: float = 0.15, test_ratio: float = 0.15,
                neg_range: str = "dst") -> Dict[str, Any]:
    r"""Trains and evaluates PyG's TGN example under the peers' protocol.

    Each epoch trains on the training split from a fresh memory and neighbour graph, then
    evaluates the validation and then the test split, memory and graph carried over.

    Args:
        data (TemporalData): events sorted by time, integer times, optional ``msg`` (an all-zero
            one-dimensional feature when absent).
        epochs (int): training epochs. (default: :obj:`5`)
        batch_size (int): events per batch. (default: :obj:`200`)
        lr (float): learning rate. (default: :obj:`1e-4`)
        memory_dim, time_dim, embedding_dim (int): sizes. (default: :obj:`100`)
        num_neighbors (int): most recent neighbours per node. (default: :obj:`10`)
        seed (int): seeds parameters and training negatives. (default: :obj:`0`)
        device (str or torch.device): where to run. (default: ``"cpu"``)
        progress (bool): show tqdm bars. (default: :obj:`False`)
        val_ratio, test_ratio (float): the chronological split. (default: 0.15 each)
        neg_range (str): ``"dst"`` (PyG) or ``"all"`` (TGL), see
            :func:`experiments.peers.temporal_loader`. (default: ``"dst"``)

    Returns:
        dict: ``config``, ``num_events`` per split and per-epoch lists ``loss``,
        ``train_seconds``, ``events_per_second``, ``time_split`` (seconds per phase),
        ``val_ap``, ``val_auc``, ``val_ap_batch_mean``, ``test_ap``, ``test_auc``,
        ``test_ap_batch_mean``, ``eval_seconds``.
    """
    config = dict(epochs=epochs, batch_size=batch_size, lr=lr, memory_dim=memory_dim,
                  time_dim=time_dim, embedding_dim=embedding_dim, num_neighbors=num_neighbors,
                  seed=seed, device=str(device), val_ratio=val_ratio, test_ratio=test_ratio,
                  neg_range=neg_range)
    data, val_idx, test_idx, num_nodes = _setup(data, seed, val_ratio, test_ratio)
    model = PygTGN(data, num_nodes, memory_dim, time_dim, embedding_dim, num_neighbors, lr,
                   device)
    loaders = {name: temporal_loader(model.data[lo:hi], batch_size, neg_range, num_nodes)
               for name, lo, hi in (("train", 0, val_idx), ("val", val_idx, test_idx),
                                    ("test", test_idx, data.num_events))}
    num_events = {"train": val_idx, "val": test_idx - val_idx,
                  "test": data.num_events - test_idx}

    def train_epoch(timer: PhaseTimer) -> float:
        return model.train_epoch(loaders["train"], timer, progress=progress)

    def evaluate(split: str) -> Dict[str, float]:
        return model.evaluate(loaders[split], progress)

    return train_and_evaluate("pyg_tgn", config, num_events, epochs, train_epoch, evaluate, device)


def time_pyg_tgn_epoch(data: TemporalData, batch_size: int = 600, lr: float = 1e-4,
                       memory_dim: int = 100, time_dim: int = 100, embedding_dim: int = 100,
                       num_neighbors: int = 10, seed: int = 0,
                       device: Union[str, torch.device] = "cpu", val_ratio: float = 0.15,
                       test_ratio: float = 0.15, max_batches: Optional[int] = None,
                       sync_timers: bool = True) -> Dict[str, Any]:
    r"""Times exactly one training epoch of PyG's TGN example (the speed benchmark).

    Args:
        data (TemporalData): as for :func:`run_pyg_tgn`.
        batch_size (int): events per batch. (default: :obj:`600`, TARGETS.md's speed setting)
        max_batches (int, optional): stop after this many batches (partial epoch, for smoke
            tests); ``None`` runs the whole training split.
        sync_timers (bool): synchronise CUDA at phase borders for an exact time split; off, the
            epoch's time is still exact (one synchronisation at each end).
        Others: as for :func:`run_pyg_tgn`.

    Returns:
        dict: ``seconds`` (wall), ``events``, ``events_per_second``, ``batches``, ``loss`` and
        ``time_split`` with seconds in ``sample`` (batching, negatives, ``LastNeighborLoader``
        lookup, feature gather), ``memory`` (``TGNMemory`` forward: messages, aggregation, GRU),
        ``gnn`` (attention, decoder, loss), ``update`` (``update_state`` and the neighbour
        insert), ``backward`` (backward, Adam step, detach), plus ``other``.
    """
    data, val_idx, _, num_nodes = _setup(data, seed, val_ratio, test_ratio)
    model = PygTGN(data, num_nodes, memory_dim, time_dim, embedding_dim, num_neighbors, lr,
                   device)
    loader = temporal_loader(model.data[:val_idx], batch_size)
    num_batches = len(loader) if max_batches is None else min(max_batches, len(loader))
    events = min(val_idx, num_batches * batch_size)
    def epoch(timer: PhaseTimer) -> float:
        return model.train_epoch(loader, timer, max_batches=max_batches)

    return timed_epoch("pyg_tgn", epoch, events, num_batches, device, batch_size, sync_timers)


def main(argv: Optional[List[str]] = None) -> None:
    peer_main(__doc__.splitlines()[0], run_pyg_tgn, time_pyg_tgn_epoch, argv)


if __name__ == "__main__":
    main()
