r"""One training and evaluation loop for every temporal GNN and data set.

Per batch (TGL, Zhou et al., VLDB 2022, ``train.py``): the loader samples the neighbourhoods of
``cat([src, dst, neg_dst])``; the model reads memory (absorbing the mails of earlier batches),
embeds and scores; BCE loss on positives and negatives; backward; optimizer step; then the batch's
own events are written to memory and mailbox. Memory is reset at the start of every epoch.

Time is split per epoch into four phases, measured with :func:`time.perf_counter` (on CUDA the
device is synchronised at phase borders when ``sync_timers`` is set, otherwise asynchronous kernels
would be charged to the wrong phase):

* ``sample``: waiting for the loader (negative drawing, neighbour sampling, batch assembly) and the
  host-to-device copy;
* ``compute``: forward (memory read, embedding, scores), loss and backward;
* ``update``: the optimizer step;
* ``memory``: writing the batch's events to memory and mailbox (``update_memory``) and cutting the
  autograd history (``detach``).

Losses are accumulated as device tensors and read once per epoch, so the hot loop never forces a
host synchronisation.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from pyg_tgl.train.metrics import LinkMetricAccumulator
from pyg_tgl.train.schedule import BatchSchedule

LOSSES = ("bce",)
PRECISIONS = ("float32", "bfloat16")


def link_loss(pos: Tensor, neg: Tensor, loss: str = "bce") -> Tensor:
    """TGL's loss: ``BCE(pos, 1) + BCE(neg, 0)``, each averaged over its own logits (so the
    weight of the negatives does not grow with their number)."""
    if loss != "bce":
        raise ValueError(f"train.loss={loss!r} is unknown; allowed: {list(LOSSES)}")
    out = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
    if neg.numel():
        out = out + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
    return out


def _progress(total: int, desc: str, disable: bool):
    if disable:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="ev", unit_scale=True, leave=False,
                dynamic_ncols=True)


class LinkTrainer:
    r"""Trains and evaluates a :class:`~pyg_tgl.nn.TemporalGNN` on temporal link prediction.

    Args:
        model (torch.nn.Module): a model following the contract of ``docs/design.md``
            (``score``, ``update_memory``, ``reset_state``, ``detach``).
        optimizer (torch.optim.Optimizer): optimizer of ``model``'s parameters.
        train_loader: a :class:`~pyg_tgl.data.loader.TemporalNeighborLoader` over the training
            events, with the training negatives.
        schedule (BatchSchedule): per-epoch batches of training events.
        device (torch.device or str): where the model lives; batches are moved there.
        loss (str): ``"bce"``.
        ties (str): tie convention of the MRR (see :func:`~pyg_tgl.train.metrics.mrr`).
        progress (bool): show tqdm bars with events/s.
        sync_timers (bool): synchronise CUDA at phase borders for an exact time split.
        precision (str): ``"float32"``, or ``"bfloat16"`` to run forward and loss under
            :func:`torch.autocast` (matrix products in bfloat16, parameters, optimizer and the
            stored memory stay float32); on CPUs with AVX-512 BF16 or AMX this is the largest
            single speed-up (see ``docs/performance.md``).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, train_loader: Any,
                 schedule: BatchSchedule, device: Any = "cpu", loss: str = "bce",
                 ties: str = "average", progress: bool = True, sync_timers: bool = True,
                 precision: str = "float32") -> None:
        self.model = model
        self.optimizer = optimizer
        self.train_loader = train_loader
        self.schedule = schedule
        self.device = torch.device(device)
        self.loss = loss
        self.ties = ties
        self.progress = progress
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r} is unknown; allowed: {list(PRECISIONS)}")
        self.precision = precision
        self._sync: Callable[[], None] = (
            (lambda: torch.cuda.synchronize(self.device))
            if sync_timers and self.device.type == "cuda" else (lambda: None))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.precision == "bfloat16")

    def _score(self, batch: Any) -> Tuple[Tensor, Tensor, Tensor]:
        with self._autocast():
            pos, neg = self.model.score(batch)
            # Logits go back to float32 so the loss and the metrics keep full precision.
            pos, neg = pos.float(), neg.float()
        return pos, neg, link_loss(pos, neg, self.loss)

    def _to_device(self, batch: Any) -> Any:
        if self.device.type == "cpu":
            return batch
        return batch.to(self.device, non_blocking=True)

    def reset_state(self) -> None:
        """Clears memory and mailbox (a no-op for memory-less models)."""
        self.model.reset_state()

    def train_epoch(self, epoch: int, max_batches: Optional[int] = None) -> Dict[str, Any]:
        """Runs one training epoch: memory reset, then the epoch's batches of the schedule.

        Args:
            epoch (int): epoch index (selects the schedule's batches).
            max_batches (int, optional): stop after this many batches.

        Returns:
            dict: ``loss`` (mean over batches), ``time_{sample,compute,update,memory,total}``,
            ``num_events``, ``num_batches``, ``events_per_s`` and the ``schedule`` choice.
        """
        model, opt = self.model, self.optimizer
        batches = self.schedule.batches(epoch)
        if max_batches:
            batches = batches[:max_batches]
        num_events = int(sum(b.numel() for b in batches))
        self.train_loader.set_batches(batches)
        model.train()
        self.reset_state()
        losses: List[Tensor] = []
        t_sample = t_compute = t_update = t_memory = 0.0
        bar = _progress(num_events, f"epoch {epoch}", not self.progress)
        start = time.perf_counter()
        it = iter(self.train_loader)
        while True:
            t0 = time.perf_counter()
            batch = next(it, None)
            if batch is None:
                break
            batch = self._to_device(batch)
            self._sync()
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            pos, neg, loss = self._score(batch)
            loss.backward()
            self._sync()
            t2 = time.perf_counter()
            opt.step()
            self._sync()
            t3 = time.perf_counter()
            with torch.no_grad():
                model.update_memory(batch)
            model.detach()
            self._sync()
            t4 = time.perf_counter()
            losses.append(loss.detach())
            t_sample += t1 - t0
            t_compute += t2 - t1
            t_update += t3 - t2
            t_memory += t4 - t3
            if bar is not None:
                bar.update(batch.num_events)
        total = time.perf_counter() - start
        if bar is not None:
            bar.close()
        mean_loss = float(torch.stack(losses).mean()) if losses else float("nan")
        return {
            "loss": mean_loss,
            "time_sample": t_sample,
            "time_compute": t_compute,
            "time_update": t_update,
            "time_memory": t_memory,
            "time_total": total,
            "num_events": num_events,
            "num_batches": len(batches),
            "events_per_s": num_events / total if total > 0 else float("nan"),
            "schedule": self.schedule.choice(epoch),
        }

    @torch.no_grad()
    def evaluate(self, loader: Any, inductive: Optional[Tensor] = None, desc: str = "eval",
                 score: bool = True) -> Dict[str, Any]:
        r"""Scores the loader's events in order while memory keeps absorbing them.

        Args:
            loader: a :class:`~pyg_tgl.data.loader.TemporalNeighborLoader` over the evaluated
                events (its ``num_neg`` negatives per event; the first is the AP/AUC negative).
            inductive (torch.Tensor, optional): ``[num_events_total]`` bool indexed by event id,
                True for inductive events; adds the ``inductive_*`` metrics.
            desc (str): progress bar label.
            score (bool): collect metrics; ``False`` only replays the events into memory.

        Returns:
            dict: the metrics of :class:`~pyg_tgl.train.metrics.LinkMetricAccumulator` plus
            ``time`` (seconds); ``{"time": ...}`` only when ``score=False``.
        """
        model = self.model
        model.eval()
        acc = LinkMetricAccumulator(self.ties)
        ind = None if inductive is None else inductive.to(self.device)
        start = time.perf_counter()
        bar = _progress(int(getattr(loader, "events", torch.empty(0)).numel()) or 0, desc,
                        not self.progress)
        for batch in loader:
            batch = self._to_device(batch)
            pos, neg, loss = self._score(batch)
            if score:
                acc.add(pos, neg, None if ind is None else ind[batch.eid], loss=loss)
            model.update_memory(batch)
            if bar is not None:
                bar.update(batch.num_events)
        if bar is not None:
            bar.close()
        out: Dict[str, Any] = acc.compute() if score else {}
        out["time"] = time.perf_counter() - start
        return out
