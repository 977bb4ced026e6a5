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
* ``compute``: forward (memory read, embedding, scores, and the batch's state update, which the
  model's ``step`` returns without applying it), loss and backward;
* ``update``: the optimizer step;
* ``memory``: applying the state update to memory, mailbox and pair history (``apply_update``)
  and cutting the autograd history (``detach``);
* ``sync`` (data-parallel runs only): exchanging the memory writes of all ranks (the gradient
  all-reduce of DDP overlaps the backward and is part of ``compute``).

Losses are accumulated as device tensors and read once per epoch, so the hot loop never forces a
host synchronisation.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from pyg_tgl.config.hardware import PRECISIONS
from pyg_tgl.config.train import LOSSES
from pyg_tgl.train.callbacks import CallbackList
from pyg_tgl.train.distributed import (DistEnv, gather_update, searches_unused_parameters,
                                       wrap_ddp)
from pyg_tgl.train.metrics import LinkMetricAccumulator
from pyg_tgl.train.progress import progress as _progress
from pyg_tgl.train.schedule import BatchSchedule


@contextlib.contextmanager
def default_dtype(precision: str) -> Iterator[None]:
    """torch's default dtype while a run builds, trains and evaluates its model: float64 under
    ``precision="float64"`` (parameters, memory, mails and every intermediate; features are
    cast where they are read), otherwise left as it is. Restored on exit."""
    if precision != "float64":
        yield
        return
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def link_loss(pos: Tensor, neg: Tensor, loss: str = "bce") -> Tensor:
    """TGL's loss: ``BCE(pos, 1) + BCE(neg, 0)``, each averaged over its own logits (so the
    weight of the negatives does not grow with their number)."""
    if loss != "bce":
        raise ValueError(f"train.loss={loss!r} is unknown; allowed: {list(LOSSES)}")
    out = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
    if neg.numel():
        out = out + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
    return out


class LinkStep(torch.nn.Module):
    r"""The forward of one training step: link logits, the loss and the model's state update
    (the module that :class:`~torch.nn.parallel.DistributedDataParallel` wraps).

    Args:
        model (torch.nn.Module): the temporal GNN (``step(batch) -> (pos, neg, update)``, see
            :meth:`~pyg_tgl.nn.TemporalGNN.step`).
        loss (str): ``"bce"``.
        precision (str): ``"float32"``, ``"bfloat16"`` (autocast of forward and loss) or
            ``"float64"`` (the model must have been built under :func:`default_dtype`).
        grad_all_parameters (bool): a step with a hop without any sampled edge (whose
            attention layer then uses none of its parameters) gives every parameter a zero
            gradient instead of none, so that DDP needs no search for unused parameters
            (:func:`~pyg_tgl.train.distributed.searches_unused_parameters`).
    """

    def __init__(self, model: torch.nn.Module, loss: str = "bce",
                 precision: str = "float32", grad_all_parameters: bool = False) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r} is unknown; allowed: {list(PRECISIONS)}")
        self.model = model
        self.loss = loss
        self.precision = precision
        self.grad_all_parameters = bool(grad_all_parameters)

    def _zero(self) -> Tensor:
        """A zero that involves every trainable parameter (each gets a zero gradient)."""
        return sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0

    def forward(self, batch: Any, weight: float = 1.0) -> Tuple[Tensor, Tensor, Tensor, Any]:
        """Returns ``(weight * loss, pos [B], neg [num_neg * B], update)``, ``update`` the
        batch's :class:`~pyg_tgl.nn.StateUpdate` (not applied)."""
        if batch.num_events == 0:
            # An empty slice of a tiny global batch (data parallel): a zero loss that still
            # involves every parameter, so DDP's gradient all-reduce runs on every rank, and an
            # empty update for the exchange.
            zero = self._zero()
            empty = torch.empty(0, device=zero.device)
            return zero, empty, empty, self.model.step(batch)[2]
        device = next(self.model.parameters()).device
        with torch.autocast(device.type, dtype=torch.bfloat16,
                            enabled=self.precision == "bfloat16"):
            pos, neg, update = self.model.step(batch)
        if self.precision == "bfloat16":
            # Logits go back to float32 so the loss and the metrics keep full precision.
            pos, neg = pos.float(), neg.float()
        out = link_loss(pos, neg, self.loss) * weight
        if self.grad_all_parameters and any(hop.num_edges == 0 for hops in batch.blocks
                                            for hop in hops):
            # Host-known sizes: no synchronisation. Same rule in one process and in each rank,
            # so the averaged gradients still equal one process's.
            out = out + self._zero()
        return out, pos, neg, update


@dataclass
class EpochProgress:
    r"""How far a training epoch got: what a mid-epoch checkpoint stores to finish the epoch
    exactly as an uninterrupted run would.

    Attributes:
        next_batch (int): batches of the epoch already trained.
        losses (list of Tensor): their (this rank's) losses, to average at the epoch's end.
        times (dict): seconds so far per phase (``sample``, ``compute``, ``update``,
            ``memory``, ``sync``) and in all (``total``).
        sent_bytes (int): memory writes this rank sent so far (data parallel).
    """

    next_batch: int = 0
    losses: List[Tensor] = field(default_factory=list)
    times: Dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("sample", "compute", "update", "memory", "sync", "total"), 0.0))
    sent_bytes: int = 0

    def state_dict(self) -> Dict[str, Any]:
        """Weights-only data (the losses as one tensor)."""
        losses = torch.stack(self.losses).cpu() if self.losses else torch.empty(0)
        return {"next_batch": self.next_batch, "losses": losses, "times": dict(self.times),
                "sent_bytes": self.sent_bytes}

    @classmethod
    def from_state_dict(cls, state: Dict[str, Any], device: Any = "cpu") -> "EpochProgress":
        return cls(int(state["next_batch"]), list(state["losses"].to(device).unbind()),
                   dict(state["times"]), int(state["sent_bytes"]))


class LinkTrainer:
    r"""Trains and evaluates a :class:`~pyg_tgl.nn.TemporalGNN` on temporal link prediction.

    Args:
        model (torch.nn.Module): a model following the contract of ``docs/design.md``
            (``step``, ``apply_update``, ``reset_state``, ``detach``, and optionally a
            ``batch_transform``).
        optimizer (torch.optim.Optimizer): optimizer of ``model``'s parameters.
        train_loader: a :class:`~pyg_tgl.data.loader.TemporalNeighborLoader` over the training
            events, with the training negatives.
        schedule (BatchSchedule): per-epoch batches of training events.
        device (torch.device or str): where the model lives; batches are moved there.
        loss (str): ``"bce"``.
        ties (str): tie convention of the MRR (see :func:`~pyg_tgl.train.metrics.mrr`).
        progress (bool): show tqdm bars with events/s; otherwise a long pass logs a plain
            line a minute (:mod:`pyg_tgl.train.progress`).
        sync_timers (bool): synchronise CUDA at phase borders for an exact time split.
        precision (str): ``"float32"``, or ``"bfloat16"`` to run forward and loss under
            :func:`torch.autocast` (matrix products in bfloat16, parameters, optimizer and the
            stored memory stay float32); on CPUs with AVX-512 BF16 or AMX this is the largest
            single speed-up (see ``docs/performance.md``); ``"float64"`` for a model built
            under :func:`default_dtype` (double precision throughout, for numerical checks).
        dist (DistEnv, optional): this process's rank for data-parallel training (see
            :mod:`pyg_tgl.train.distributed`): the schedule and the loaders then hold *global*
            batches, of which the loaders yield this rank's slice.
        find_unused_parameters (bool, optional): DDP's option; ``None`` decides from the model
            (:func:`~pyg_tgl.train.distributed.searches_unused_parameters`). Without the
            search, steps whose hop has no sampled edge give every parameter a zero gradient
            (``LinkStep(grad_all_parameters=True)``), in one process too.
        host_plans (bool): have the loaders apply the model's ``batch_transform`` (for a
            :class:`~pyg_tgl.nn.TemporalGNN` its index work,
            :meth:`~pyg_tgl.nn.TemporalGNN.index_plan`: deduplications by ``torch.unique``) on
            the host, in their prefetch thread: on an accelerator, where each ``torch.unique``
            is a host synchronisation, training then never waits for the device. Off by
            default: on an H100 it left TGN's speed unchanged and halved TGAT's, whose large
            hops make the host's single thread the bottleneck (``docs/performance.md``). On
            CUDA the loaders page-lock their batches either way, so the copies to the device
            are asynchronous.
        min_subset_events (int): fewest events an ``inductive_*`` metric is reported over.
        callbacks (CallbackList, optional): called at the start of each epoch and after each
            training step (:mod:`pyg_tgl.train.callbacks`).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, train_loader: Any,
                 schedule: BatchSchedule, device: Any = "cpu", loss: str = "bce",
                 ties: str = "average", progress: bool = True, sync_timers: bool = True,
                 precision: str = "float32", dist: Optional[DistEnv] = None,
                 find_unused_parameters: Optional[bool] = None, host_plans: bool = False,
                 min_subset_events: int = 50,
                 callbacks: Optional[CallbackList] = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.train_loader = train_loader
        self.schedule = schedule
        self.device = torch.device(device)
        self.loss = loss
        self.ties = ties
        self.progress = progress
        self.dist = dist if dist is not None else DistEnv(device=self.device)
        search = searches_unused_parameters(model, find_unused_parameters)
        self.step = LinkStep(model, loss, precision, grad_all_parameters=not search)
        self.train_step = wrap_ddp(self.step, self.dist, self.device, search)
        self._sync: Callable[[], None] = (
            (lambda: torch.cuda.synchronize(self.device))
            if sync_timers and self.device.type == "cuda" else (lambda: None))
        self.host_plans = bool(host_plans)
        self.min_subset_events = int(min_subset_events)
        self._loader_options(train_loader)
        self.callbacks = callbacks if callbacks is not None else CallbackList()

    def _loader_options(self, loader: Any) -> Dict[str, Any]:
        """Sets a loader's ``transform`` and ``pin_memory`` for this trainer (see
        ``host_plans``); returns their previous values."""
        old = {k: getattr(loader, k) for k in ("transform", "pin_memory") if hasattr(loader, k)}
        transform = getattr(self.model, "batch_transform", None)
        if self.host_plans and "transform" in old and transform is not None:
            loader.transform = transform
        if "pin_memory" in old and self.device.type == "cuda":
            loader.pin_memory = True
        return old

    def _to_device(self, batch: Any) -> Any:
        if self.device.type == "cpu":
            return batch
        return batch.to(self.device, non_blocking=True)

    def reset_state(self) -> None:
        """Clears memory and mailbox (a no-op for memory-less models)."""
        self.model.reset_state()

    def _exchange(self, update: Any) -> Any:
        """All ranks' state updates of this step concatenated in rank order (this rank's alone
        when not distributed), so that every replica applies the whole batch."""
        return gather_update(self.dist, update) if self.dist.enabled else update

    def train_epoch(self, epoch: int, max_batches: Optional[int] = None,
                    start: Optional["EpochProgress"] = None,
                    after_batch: Optional[Callable[["EpochProgress"], None]] = None
                    ) -> Dict[str, Any]:
        """Runs one training epoch: memory reset, then the epoch's batches of the schedule.

        Args:
            epoch (int): epoch index (selects the schedule's batches).
            max_batches (int, optional): stop after this many batches.
            start (EpochProgress, optional): continue an epoch interrupted after
                ``start.next_batch`` batches (memory, optimizer, loader and RNG already restored
                as of then): no memory reset, and the returned loss and times cover the whole
                epoch.
            after_batch (callable, optional): called with the epoch's :class:`EpochProgress`
                after every batch (memory written); a mid-epoch checkpoint is taken there. Its
                time is not counted in the epoch's times.

        Returns:
            dict: ``loss`` (mean over batches), ``time_{sample,compute,update,memory,sync,total}``,
            ``sync_bytes_per_step``, ``num_events``, ``num_batches``, ``events_per_s`` (all
            ranks' events) and the ``schedule`` choice.
        """
        model, opt, world = self.model, self.optimizer, self.dist.world_size
        batches = self.schedule.batches(epoch)
        if max_batches:
            batches = batches[:max_batches]
        sizes = [int(b.numel()) for b in batches]
        num_events = sum(sizes)
        done = start if start is not None else EpochProgress()
        self.train_loader.set_batches(batches[done.next_batch:])
        if hasattr(opt, "start_epoch"):  # a TrainingOptimizer: the lr schedule's position
            opt.start_epoch(epoch, len(batches))
        self.callbacks.epoch_start(epoch, len(batches), done.next_batch)
        model.train()
        if done.next_batch == 0:
            self.reset_state()
        times = done.times
        sent_before = self.dist.gathered_bytes - done.sent_bytes
        bar = _progress(num_events, f"epoch {epoch}", self.progress)
        bar.update(sum(sizes[:done.next_batch]))
        begin = time.perf_counter() - times["total"]
        it = iter(self.train_loader)
        for size in sizes[done.next_batch:]:
            t0 = time.perf_counter()
            batch = self._to_device(next(it))
            self._sync()
            t1 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            # Each rank's loss weighted by its share, so DDP's gradient average is the gradient
            # of the global batch's loss, even when the batch does not split evenly.
            weight = batch.num_events * world / size if world > 1 else 1.0
            loss, _, _, update = self.train_step(batch, weight)
            loss.backward()
            self._sync()
            t2 = time.perf_counter()
            opt.step()
            self._sync()
            t3 = time.perf_counter()
            with torch.no_grad():
                t4 = time.perf_counter()
                update = self._exchange(update)
                t5 = time.perf_counter()
                model.apply_update(update)
            model.detach()
            self._sync()
            t6 = time.perf_counter()
            done.losses.append(loss.detach())
            if self.callbacks:
                self.callbacks.batch_end(size, done.losses[-1], opt.param_groups[0]["lr"])
            times["sample"] += t1 - t0
            times["compute"] += t2 - t1
            times["update"] += t3 - t2
            times["memory"] += (t4 - t3) + (t6 - t5)
            times["sync"] += t5 - t4
            done.next_batch += 1
            bar.update(size)
            if after_batch is not None:
                times["total"] = t6 - begin
                done.sent_bytes = self.dist.gathered_bytes - sent_before
                after_batch(done)
                begin += time.perf_counter() - t6  # the checkpoint's time is not training time
        if self.device.type == "cuda":  # once per epoch: the epoch's time includes queued kernels
            torch.cuda.synchronize(self.device)
        total = time.perf_counter() - begin
        bar.close()
        mean_loss = float("nan")
        if done.losses:
            mean_loss = float(self.dist.all_reduce_sum(torch.stack(done.losses).sum())) / (
                len(done.losses) * world)
        return {
            "loss": mean_loss,
            **{f"time_{k}": times[k] for k in ("sample", "compute", "update", "memory", "sync")},
            # Memory writes this rank sent per step (data parallel; DDP's gradient all-reduce
            # adds 4 bytes per parameter).
            "sync_bytes_per_step": (self.dist.gathered_bytes - sent_before) / max(len(sizes), 1),
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
                Data parallel: every rank scores its slice and the scores are gathered, so every
                rank returns the metrics of the whole split.
            inductive (torch.Tensor, optional): ``[num_events_total]`` bool indexed by event id,
                True for inductive events; adds the ``inductive_*`` metrics.
            desc (str): progress bar label.
            score (bool): collect metrics; ``False`` only replays the events into memory.

        Returns:
            dict: the metrics of :class:`~pyg_tgl.train.metrics.LinkMetricAccumulator` plus
            ``time`` (seconds); ``{"time": ...}`` only when ``score=False``.
        """
        self.model.eval()
        acc = LinkMetricAccumulator(self.ties, self.min_subset_events)
        ind = None if inductive is None else inductive.to(self.device)
        num_neg = int(getattr(loader, "num_neg", 1))
        start = time.perf_counter()
        restore = self._loader_options(loader)
        try:
            self._evaluate_batches(loader, acc, ind, num_neg, desc, score)
        finally:
            for key, value in restore.items():
                setattr(loader, key, value)
        out: Dict[str, Any] = acc.compute() if score else {}
        out["time"] = time.perf_counter() - start
        return out

    def _evaluate_batches(self, loader: Any, acc: LinkMetricAccumulator, ind: Optional[Tensor],
                          num_neg: int, desc: str, score: bool) -> None:
        model = self.model
        bar = _progress(int(getattr(loader, "events", torch.empty(0)).numel()) or 0, desc,
                        self.progress)
        for batch in loader:
            batch = self._to_device(batch)
            loss, pos, neg, update = self.step(batch)
            eid = batch.eid
            if self.dist.enabled:
                # Negatives are negative-major [num_neg, B]: gather them event-major so the
                # concatenation over ranks is the global batch's [num_neg, sum B].
                b = pos.numel()
                neg_rows = neg.view(num_neg, b).t() if b else neg.view(0, num_neg)
                (pos, eid, neg_rows), = self.dist.all_gather_cat([[pos, eid.long(), neg_rows]])
                pos, neg = pos.to(self.device), neg_rows.t().reshape(-1).to(self.device)
                loss = link_loss(pos, neg, self.loss)
            if score:
                acc.add(pos, neg, None if ind is None else ind[eid.to(self.device)], loss=loss)
            model.apply_update(self._exchange(update))
            bar.update(int(eid.numel()))
        bar.close()
