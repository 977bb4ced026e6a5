r"""TGM's TGN link-prediction example (``tgm-lib==0.1.0b1``, ``examples/linkproppred/tgn.py``),
parameterised and run under the peers' protocol.

TGN (Rossi et al., "Temporal Graph Networks for Deep Learning on Dynamic Graphs", 2020,
https://arxiv.org/abs/2006.10637) as TGM composes it: ``DGData`` -> ``DGraph`` ->
``DGDataLoader`` whose ``HookManager`` runs, per batch, a ``NegativeEdgeSamplerHook``, a
``RecencyNeighborHook`` (circular buffer of the ``num_neighbors`` most recent neighbours, with
edge times and features) and a ``DeduplicationHook``; the model is TGM's ``TGNMemory`` (PyG's
design with ``Time2Vec``), ``GraphAttentionEmbedding`` (one ``TransformerConv``) and
``LinkPredictor`` (concatenation, two layers, hidden size = embedding size).

Kept from TGM's example: the hooks, the model, the loops (memory reset at the start of each
training epoch, hooks reset between epochs, memory updated before the backward pass) and its
neighbour ``edge_index`` built as ``[seed, neighbour]``. That orientation makes
``TransformerConv`` send messages from the seeds to their neighbours (PyG's example uses
``[neighbour, seed]``); we keep it because it is what TGM ships and what its numbers measure.

Changed, for the common protocol: the example's validation/test negatives come from TGB's
pre-generated files and MRR; here every split draws one random negative per event with TGM's own
``NegativeEdgeSamplerHook`` over the split's destination range (``high`` set to ``max + 1`` so the
largest id can be drawn, as in PyG; the recipe passes ``max``, which its ``randint`` excludes), and
AP/AUC are computed over the whole split; the split is PyG's
(:func:`experiments.peers.split_indices`) expressed as a TGM ``TemporalSplit``; validation and
test are evaluated after every epoch.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import TemporalData

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
)

__all__ = ["TgmTGN", "run_tgm_tgn", "time_tgm_tgn_epoch"]

_INT32_MAX = 2**31 - 1


def _import_tgm() -> Any:
    try:
        import tgm
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("TGM is needed for this peer: pip install tgm-lib==0.1.0b1 "
                          "(it keeps an installed torch >= 2.5.1)") from e
    if tgm.__version__ != "0.1.0b1":
        warnings.warn(f"written against tgm-lib 0.1.0b1, found {tgm.__version__}")
    return tgm


class TgmTGN:
    r"""TGM's TGN example as an object: graphs, hook manager, loaders, model and loops.

    Args:
        data (TemporalData): all events (after :func:`experiments.peers.prepare_data`).
        val_idx, test_idx (int): where validation and test start.
        memory_dim, time_dim, embedding_dim (int): sizes. (default: 100 each)
        num_neighbors (int): most recent neighbours per node. (default: 10)
        batch_size (int): events per batch. (default: 200)
        lr (float): Adam's learning rate. (default: 1e-4)
        neg_range (str): ``"dst"`` (the split's destination range) or ``"all"`` (every node id).
        device (str or torch.device): where everything runs.
        edge_orientation (str): ``"seed_to_nbr"`` (TGM's example: ``edge_index = [seed,
            neighbour]``, so ``TransformerConv`` sends each seed's memory to its neighbours and a
            seed's embedding aggregates over the *batch's seeds* that have it among their recent
            neighbours) or ``"nbr_to_seed"`` (PyG's example: ``[neighbour, seed]``, each seed
            aggregates over its own recent neighbours; the time encoding then uses the
            neighbour's ``last_update``, as in PyG). (default: ``"seed_to_nbr"``)
    """

    def __init__(self, data: TemporalData, val_idx: int, test_idx: int, memory_dim: int = 100,
                 time_dim: int = 100, embedding_dim: int = 100, num_neighbors: int = 10,
                 batch_size: int = 200, lr: float = 1e-4, neg_range: str = "dst",
                 device: Union[str, torch.device] = "cpu",
                 edge_orientation: str = "seed_to_nbr") -> None:
        _import_tgm()
        if edge_orientation not in ("seed_to_nbr", "nbr_to_seed"):
            raise ValueError(f"edge_orientation={edge_orientation!r} is not supported; expected "
                             f"'seed_to_nbr' or 'nbr_to_seed'")
        self.edge_orientation = edge_orientation
        from tgm import DGraph
        from tgm.data import DGData, DGDataLoader, TemporalSplit
        from tgm.hooks import (
            DeduplicationHook,
            HookManager,
            NegativeEdgeSamplerHook,
            RecencyNeighborHook,
        )
        from tgm.nn import LinkPredictor, TGNMemory
        from tgm.nn.encoder.tgn import GraphAttentionEmbedding, IdentityMessage, LastAggregator

        self.device = torch.device(device)
        t = data.t
        if int(t.min()) < 0 or int(t.max()) >= _INT32_MAX:
            raise ValueError(f"TGM needs integer times in [0, {_INT32_MAX}); got "
                             f"[{int(t.min())}, {int(t.max())}]")
        num_nodes = int(max(data.src.max(), data.dst.max())) + 1
        if num_nodes >= _INT32_MAX:
            raise ValueError(f"TGM stores node ids as int32; got {num_nodes} nodes")
        full = DGData.from_raw(
            edge_time=t.long(),
            edge_index=torch.stack([data.src, data.dst], dim=1).int(),
            edge_x=data.msg.float(),
        )
        # PyG's split as absolute times: train is t < t[val_idx], val t < t[test_idx].
        splits = full.split(TemporalSplit(val_time=int(t[val_idx]), test_time=int(t[test_idx])))
        sizes = [s.edge_index.size(0) for s in splits]
        expected = [val_idx, test_idx - val_idx, data.num_events - test_idx]
        if sizes != expected:  # pragma: no cover - guards a TGM behaviour change
            raise RuntimeError(f"TGM's TemporalSplit gave {sizes} events, expected {expected}")
        self.graphs = {k: DGraph(s, device=self.device)
                       for k, s in zip(("train", "val", "test"), splits)}

        self.hm = HookManager(keys=["train", "val", "test"])
        for key, dg in self.graphs.items():
            if neg_range == "all":
                low, high = 0, num_nodes
            elif neg_range == "dst":
                dst = dg.edge_dst
                low, high = int(dst.min()), int(dst.max()) + 1
            else:
                raise ValueError(f"neg_range={neg_range!r} is not supported; expected 'dst' or "
                                 f"'all'")
            self.hm.register(key, NegativeEdgeSamplerHook(low=low, high=high))
        self.hm.register_shared(RecencyNeighborHook(
            num_nbrs=[num_neighbors], num_nodes=num_nodes,
            seed_nodes_keys=["edge_src", "edge_dst", "neg"],
            seed_times_keys=["edge_time", "edge_time", "neg_time"]))
        self.hm.register_shared(DeduplicationHook())
        self.loaders = {k: DGDataLoader(dg, batch_size, hook_manager=self.hm)
                        for k, dg in self.graphs.items()}

        msg_dim = self.graphs["test"].edge_x_dim
        self.memory = TGNMemory(
            num_nodes, msg_dim, memory_dim, time_dim,
            message_module=IdentityMessage(msg_dim, memory_dim, time_dim),
            aggregator_module=LastAggregator(),
        ).to(self.device)
        self.encoder = GraphAttentionEmbedding(in_channels=memory_dim, out_channels=embedding_dim,
                                               msg_dim=msg_dim, time_enc=self.memory.time_enc
                                               ).to(self.device)
        self.decoder = LinkPredictor(node_dim=embedding_dim, hidden_dim=embedding_dim
                                     ).to(self.device)
        params: List[torch.nn.Parameter] = []
        for module in (self.memory, self.encoder, self.decoder):
            params.extend(p for p in module.parameters() if all(p is not q for q in params))
        self.opt = torch.optim.Adam(params, lr=lr)
        self._epochs_started = 0

    def _neighbourhood(self, batch: Any):
        from tgm.constants import PADDED_NODE_ID

        nbr_nodes = batch.nbr_nids[0].flatten()
        nbr_mask = nbr_nodes != PADDED_NODE_ID
        num_nbrs = len(nbr_nodes) // (len(batch.edge_src) + len(batch.edge_dst) + len(batch.neg))
        src_nodes = torch.cat([batch.edge_src.repeat_interleave(num_nbrs),
                               batch.edge_dst.repeat_interleave(num_nbrs),
                               batch.neg.repeat_interleave(num_nbrs)])
        nbr_edge_index = torch.stack([batch.global_to_local(src_nodes[nbr_mask]),
                                      batch.global_to_local(nbr_nodes[nbr_mask])]
                                     ).to(dtype=torch.int64)
        if self.edge_orientation == "nbr_to_seed":
            nbr_edge_index = nbr_edge_index.flip(0)
        nbr_edge_time = batch.nbr_edge_time[0].flatten()[nbr_mask]
        nbr_edge_x = batch.nbr_edge_x[0].flatten(0, -2).float()[nbr_mask]
        return nbr_edge_index, nbr_edge_time, nbr_edge_x

    def _scores(self, z: Tensor, batch: Any):
        inv_src = batch.global_to_local(batch.edge_src)
        return (self.decoder(z[inv_src], z[batch.global_to_local(batch.edge_dst)]),
                self.decoder(z[inv_src], z[batch.global_to_local(batch.neg)]))

    def train_epoch(self, timer: Optional[PhaseTimer] = None, max_batches: Optional[int] = None,
                    progress: bool = False) -> float:
        """One pass over the training split; returns the mean loss per event."""
        timer = timer or PhaseTimer(self.device)
        if self._epochs_started:
            self.hm.reset_state()  # TGM's example resets its hooks between epochs
        self._epochs_started += 1
        self.memory.train()
        self.encoder.train()
        self.decoder.train()
        self.memory.reset_state()
        total_loss, num_events = 0.0, 0
        with self.hm.activate("train"):
            timer.start()
            for i, batch in enumerate(progress_bar(self.loaders["train"], progress, "train")):
                if max_batches is not None and i >= max_batches:
                    break
                self.opt.zero_grad()
                nbr_edge_index, nbr_edge_time, nbr_edge_x = self._neighbourhood(batch)
                timer.lap("sample")
                z, last_update = self.memory(batch.unique_nids)
                timer.lap("memory")
                z = self.encoder(z, last_update, nbr_edge_index, nbr_edge_time, nbr_edge_x)
                pos_out, neg_out = self._scores(z, batch)
                loss = F.binary_cross_entropy_with_logits(pos_out, torch.ones_like(pos_out))
                loss = loss + F.binary_cross_entropy_with_logits(neg_out,
                                                                 torch.zeros_like(neg_out))
                timer.lap("gnn")
                self.memory.update_state(batch.edge_src, batch.edge_dst, batch.edge_time,
                                         batch.edge_x.float())
                timer.lap("update")
                loss.backward()
                self.opt.step()
                self.memory.detach()
                n = int(batch.edge_src.numel())
                total_loss += float(loss.detach()) * n
                num_events += n
                timer.lap("backward")
        return total_loss / max(num_events, 1)

    @torch.no_grad()
    def evaluate(self, split: str, progress: bool = False) -> Dict[str, float]:
        """Scores each batch of ``split`` then updates memory (state carries on)."""
        self.memory.eval()
        self.encoder.eval()
        self.decoder.eval()
        pos, neg = [], []
        with self.hm.activate(split), eval_rng(self.device):
            for batch in progress_bar(self.loaders[split], progress, split):
                nbr_edge_index, nbr_edge_time, nbr_edge_x = self._neighbourhood(batch)
                z, last_update = self.memory(batch.unique_nids)
                z = self.encoder(z, last_update, nbr_edge_index, nbr_edge_time, nbr_edge_x)
                pos_out, neg_out = self._scores(z, batch)
                pos.append(pos_out.view(-1).sigmoid().cpu())
                neg.append(neg_out.view(-1).sigmoid().cpu())
                self.memory.update_state(batch.edge_src, batch.edge_dst, batch.edge_time,
                                         batch.edge_x.float())
        return link_metrics(pos, neg)


def _setup(data: TemporalData, seed: int, val_ratio: float, test_ratio: float):
    _import_tgm()
    from tgm.util.seed import seed_everything

    seed_everything(seed)
    data = prepare_data(data)
    val_idx, test_idx = split_indices(data.t, val_ratio, test_ratio)
    return data, val_idx, test_idx


def run_tgm_tgn(data: TemporalData, epochs: int = 5, batch_size: int = 200, lr: float = 1e-4,
                memory_dim: int = 100, time_dim: int = 100, embedding_dim: int = 100,
                num_neighbors: int = 10, seed: int = 0, device: Union[str, torch.device] = "cpu",
                progress: bool = False, val_ratio: float = 0.15, test_ratio: float = 0.15,
                neg_range: str = "dst", edge_orientation: str = "seed_to_nbr") -> Dict[str, Any]:
    r"""Trains and evaluates TGM's TGN example under the peers' protocol.

    Same arguments and return value as :func:`experiments.peers.pyg_tgn.run_pyg_tgn`; times must
    be integers in ``[0, 2^31)`` (TGM's limit).
    """
    config = dict(epochs=epochs, batch_size=batch_size, lr=lr, memory_dim=memory_dim,
                  time_dim=time_dim, embedding_dim=embedding_dim, num_neighbors=num_neighbors,
                  seed=seed, device=str(device), val_ratio=val_ratio, test_ratio=test_ratio,
                  neg_range=neg_range, edge_orientation=edge_orientation)
    data, val_idx, test_idx = _setup(data, seed, val_ratio, test_ratio)
    model = TgmTGN(data, val_idx, test_idx, memory_dim, time_dim, embedding_dim, num_neighbors,
                   batch_size, lr, neg_range, device, edge_orientation)
    num_events = {"train": val_idx, "val": test_idx - val_idx,
                  "test": data.num_events - test_idx}

    def train_epoch(timer: PhaseTimer) -> float:
        return model.train_epoch(timer, progress=progress)

    def evaluate(split: str) -> Dict[str, float]:
        return model.evaluate(split, progress)

    return train_and_evaluate("tgm_tgn", config, num_events, epochs, train_epoch, evaluate, device)


def time_tgm_tgn_epoch(data: TemporalData, batch_size: int = 600, lr: float = 1e-4,
                       memory_dim: int = 100, time_dim: int = 100, embedding_dim: int = 100,
                       num_neighbors: int = 10, seed: int = 0,
                       device: Union[str, torch.device] = "cpu", val_ratio: float = 0.15,
                       test_ratio: float = 0.15, max_batches: Optional[int] = None,
                       sync_timers: bool = True) -> Dict[str, Any]:
    r"""Times exactly one training epoch of TGM's TGN example (the speed benchmark).

    Same return value as :func:`experiments.peers.pyg_tgn.time_pyg_tgn_epoch`; ``sample`` here
    is TGM's loader: slicing, materialising, the negative, recency-neighbour (including its
    buffer insert) and deduplication hooks, and building the neighbour ``edge_index``.
    """
    data, val_idx, test_idx = _setup(data, seed, val_ratio, test_ratio)
    model = TgmTGN(data, val_idx, test_idx, memory_dim, time_dim, embedding_dim, num_neighbors,
                   batch_size, lr, "dst", device)
    total = len(model.loaders["train"])
    num_batches = total if max_batches is None else min(max_batches, total)
    events = min(val_idx, num_batches * batch_size)
    def epoch(timer: PhaseTimer) -> float:
        return model.train_epoch(timer, max_batches=max_batches)

    return timed_epoch("tgm_tgn", epoch, events, num_batches, device, batch_size, sync_timers)


def main(argv: Optional[List[str]] = None) -> None:
    peer_main(__doc__.splitlines()[0], run_tgm_tgn, time_tgm_tgn_epoch, argv)


if __name__ == "__main__":
    main()
